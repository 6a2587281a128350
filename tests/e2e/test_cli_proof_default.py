"""Proofs match the published checkpoint by default (issue 17, item 3).

The log grows after every checkpoint (access records of inspector queries,
new facts), so `jejak prove` proves against the latest checkpoint when it
covers the index; an export longer than the checkpoint says what it left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli_core import cli, fact, lines


def _store_with_checkpoint_then_growth(tmp_path: Path, store: str) -> tuple[int, int]:
    first = tmp_path / "first.jsonl"
    first.write_bytes(lines(*(fact(f"o-{i}") for i in range(7))))
    assert cli(tmp_path, "ingest", str(first), store=store).returncode == 0
    cp = cli(tmp_path, "checkpoint", store=store)
    assert cp.returncode == 0, cp.stderr
    (tmp_path / "cp.note").write_bytes(cp.stdout)
    (tmp_path / "key.txt").write_bytes(cli(tmp_path, "key", store=store).stdout)
    later = tmp_path / "later.jsonl"
    later.write_bytes(lines(*(fact(f"o-later-{i}") for i in range(4))))
    assert cli(tmp_path, "ingest", str(later), store=store).returncode == 0
    return 7, 11


def test_prove_defaults_to_the_latest_checkpoint_covering_the_index(store_url: str, tmp_path: Path) -> None:
    checkpointed, size = _store_with_checkpoint_then_growth(tmp_path, store_url)
    r = cli(tmp_path, "prove", "3", store=store_url)
    assert r.returncode == 0, r.stderr
    proof = json.loads(r.stdout)
    assert proof["size"] == checkpointed
    (tmp_path / "proof.json").write_bytes(r.stdout)
    v = cli(tmp_path, "audit", "verify-proof", str(tmp_path / "proof.json"), "--checkpoint",
            str(tmp_path / "cp.note"), "--key", str(tmp_path / "key.txt"))
    assert v.returncode == 0 and json.loads(v.stdout)["valid"] is True, v.stdout
    # an index the checkpoint does not cover: the current size, as before
    assert json.loads(cli(tmp_path, "prove", "9", store=store_url).stdout)["size"] == size
    # --size still wins
    assert json.loads(cli(tmp_path, "prove", "3", "--size", "5", store=store_url).stdout)["size"] == 5


def test_verify_export_says_how_many_entries_the_checkpoint_did_not_cover(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    checkpointed, size = _store_with_checkpoint_then_growth(tmp_path, store)
    (tmp_path / "export.jsonl").write_bytes(cli(tmp_path, "export", store=store).stdout)
    r = cli(tmp_path, "audit", "verify-export", str(tmp_path / "export.jsonl"), "--checkpoint",
            str(tmp_path / "cp.note"), "--key", str(tmp_path / "key.txt"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["intact"] is True and out["size"] == checkpointed and out["not_covered"] == size - checkpointed
    assert f"{size - checkpointed} more entries (indexes {checkpointed} to {size - 1})" in r.stderr.decode()
