"""SPEC §7 with witnesses: a checkpoint cosigned by real `jejak witness serve`
processes travels in tlog-proofs and tiles, and `audit verify-proof --policy`
and `monitor --policy` require the policy's quorum of its cosignatures."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.test_witnessed_checkpoint import Deployment, _jejak


@pytest.fixture
def witnessed(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path, str(tmp_path / "jejak.db"))
    try:
        assert d.checkpoint().exit_code == 0
        yield d
    finally:
        d.stop()


def without_cosignatures(note: str, keep: int) -> str:
    """The note with only the log signature and its first `keep` cosignature lines."""
    text, block = note.split("\n\n", 1)
    lines = block.splitlines(keepends=True)
    return text + "\n\n" + lines[0] + "".join(lines[1:1 + keep])


def test_tlog_proof_carries_the_cosignatures_and_the_policy_needs_them(witnessed: Deployment) -> None:
    d = witnessed
    note = d.recorded()[-1]
    assert len(note.split("\n\n", 1)[1].splitlines()) >= 3  # the log and at least two witnesses
    proof = _jejak(d.store_url, d.keys, "prove", "1", "--format", "tlog-proof").stdout
    assert proof.endswith(note)
    leaf = base64.b64decode(json.loads(_jejak(d.store_url, d.keys, "export").stdout.splitlines()[1])["leaf"])
    (d.tmp / "leaf").write_bytes(leaf)

    def verify(text: str, *extra: str) -> int:
        (d.tmp / "p.tlog-proof").write_text(text)
        return _jejak(d.store_url, d.keys, "audit", "verify-proof", str(d.tmp / "p.tlog-proof"),
                      "--log-key", d.log_key, "--leaf", str(d.tmp / "leaf"), *extra).exit_code

    policy = str(d.policy)
    assert verify(proof) == 0 and verify(proof, "--policy", policy) == 0
    head, cp = proof.split("\n\n", 1)
    one = head + "\n\n" + without_cosignatures(cp, 1)  # one of the two of three
    assert verify(one) == 0 and verify(one, "--policy", policy) == 1
    two = head + "\n\n" + without_cosignatures(cp, 2)
    assert verify(two, "--policy", policy) == 0
    last = two.splitlines()[-1]
    forged = two.replace(last, last[:-12] + ("A" if last[-12] != "A" else "B") + last[-11:])  # one does not verify
    assert verify(forged) == 0 and verify(forged, "--policy", policy) == 1
    (d.tmp / "bad-policy").write_text("quorum nobody\n")
    assert verify(proof, "--policy", str(d.tmp / "bad-policy")) == 2


def test_monitor_requires_the_quorum(witnessed: Deployment) -> None:
    d = witnessed
    out = d.tmp / "tiles"
    assert _jejak(d.store_url, d.keys, "tiles", str(out)).exit_code == 0

    def monitor(state: str) -> tuple[int, str]:
        r = _jejak(d.store_url, d.keys, "monitor", "--tiles", str(out), "--log-key", d.log_key,
                   "--state", str(d.tmp / state), "--policy", str(d.policy))
        return r.exit_code, r.stdout

    assert monitor("s1")[0] == 0
    note = (out / "checkpoint").read_text()
    (out / "checkpoint").write_text(without_cosignatures(note, 1))
    code, stdout = monitor("s2")
    assert code == 1 and json.loads(stdout.splitlines()[0])["problem"] == "invalid"
    assert "quorum" in json.loads(stdout.splitlines()[0])["error"]
