"""`jejak tiles DIR` (SPEC §7): static C2SP tlog-tiles, read back by an
independent reader (tests/tlog_reader.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from jejak.generate import write_files
from tests.e2e.test_cli_core import cli, jsonl
from tests.tlog_reader import dir_getter, read_log


def snapshot(base: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under base: (content, inode) — a rename gives a new inode."""
    return {p.relative_to(base).as_posix(): (p.read_bytes(), p.stat().st_ino)
            for p in sorted(base.rglob("*")) if p.is_file()}


@pytest.fixture
def facts_file(tmp_path: Path) -> Path:
    path = tmp_path / "facts.jsonl"
    write_files(families=30, seed=5, out_path=path)
    return path


def ingest_lines(tmp: Path, store: str, facts: Path, start: int, stop: int) -> None:
    part = tmp / f"part-{start}-{stop}.jsonl"
    part.write_text("".join(facts.read_text().splitlines(keepends=True)[start:stop]))
    r = cli(tmp, "ingest", str(part), store=store)
    assert r.returncode == 0, r.stderr.decode()[-2000:]


def test_tiles_hold_the_export_and_grow_without_rewriting(store_url: str, tmp_path: Path, facts_file: Path) -> None:
    out = tmp_path / "tiles"
    ingest_lines(tmp_path, store_url, facts_file, 0, 300)
    r = cli(tmp_path, "tiles", str(out), store=store_url)
    assert r.returncode == 1 and b"no checkpoint" in r.stderr and not out.exists()

    note = cli(tmp_path, "checkpoint", store=store_url).stdout.decode()
    ingest_lines(tmp_path, store_url, facts_file, 300, 520)  # after the checkpoint: not in the tiles
    r = cli(tmp_path, "tiles", str(out), store=store_url)
    assert r.returncode == 0, r.stderr
    assert (out / "checkpoint").read_text() == note
    origin, size, root, entries, tiles = read_log(dir_getter(out))
    assert size == 300 and (out / "tile/0/000").is_file() and (out / "tile/0/001.p/44").is_file()
    assert (out / "tile/1/000.p/1").is_file() and (out / "tile/entries/001.p/44").is_file()
    exported = [base64.b64decode(e["leaf"]) for e in jsonl(cli(tmp_path, "export", store=store_url).stdout)]
    assert entries == exported[:300]

    first = snapshot(out)
    r = cli(tmp_path, "tiles", str(out), store=store_url)  # nothing new: nothing written
    assert r.returncode == 0 and json.loads(r.stdout)["written"] == 0 and snapshot(out) == first

    note2 = cli(tmp_path, "checkpoint", store=store_url).stdout.decode()
    r = cli(tmp_path, "tiles", str(out), store=store_url)
    assert r.returncode == 0, r.stderr
    origin2, size2, root2, entries2, _ = read_log(dir_getter(out))
    assert (size2, entries2) == (520, exported[:520]) and (out / "checkpoint").read_text() == note2
    after = snapshot(out)
    assert after["tile/0/000"] == first["tile/0/000"]  # a full tile is never rewritten
    assert after["tile/entries/000"] == first["tile/entries/000"]
    assert "tile/0/001" in after and "tile/0/001.p/44" not in after  # the partial tile is superseded
    assert "tile/0/002.p/8" in after and "tile/1/000.p/2" in after
    assert not [p for p in after if "/." in "/" + p]  # no temporary file left behind


def forked_home(tmp: Path, store: str) -> Path:
    """A second working directory holding a copy of `tmp`'s keys, taken before
    anything is signed: the same key signs a second history (a misbehaving
    operator; the key's own signer state would refuse it in one place)."""
    assert cli(tmp, "init", store=store).returncode == 0  # only ingest and init create a store and keys
    assert cli(tmp, "key", store=store).returncode == 0
    home = tmp / "forked"
    shutil.copytree(tmp / "keys", home / "keys")
    return home


def test_a_directory_of_another_tree_is_refused_and_left_untouched(tmp_path: Path, facts_file: Path) -> None:
    store_a, store_b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    home_b = forked_home(tmp_path, store_a)
    ingest_lines(tmp_path, store_a, facts_file, 0, 270)
    ingest_lines(home_b, store_b, facts_file, 1, 290)  # another log (the same origin and key)
    assert cli(tmp_path, "checkpoint", store=store_a).returncode == 0
    assert cli(home_b, "checkpoint", store=store_b).returncode == 0
    out = tmp_path / "tiles"
    assert cli(tmp_path, "tiles", str(out), store=store_a).returncode == 0
    before = snapshot(out)
    r = cli(home_b, "tiles", str(out), store=store_b)
    assert r.returncode == 1 and b"different tree" in r.stderr, r.stderr
    assert snapshot(out) == before

    # no checkpoint left (an interrupted first run), but another tree's tiles: refused too
    (out / "checkpoint").unlink()
    before = snapshot(out)
    r = cli(home_b, "tiles", str(out), store=store_b)
    assert r.returncode == 1 and b"another tree" in r.stderr, r.stderr
    assert snapshot(out) == before
    # the same log's own interrupted run is completed
    r = cli(tmp_path, "tiles", str(out), store=store_a)
    assert r.returncode == 0, r.stderr
    assert read_log(dir_getter(out))[1] == 270
