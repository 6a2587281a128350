"""Offline verification of exports and proof files against signed checkpoints."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from jejak.audit.checkpoint import Checkpoint, sign_checkpoint
from jejak.audit.errors import (
    ChainBroken,
    InconsistentCheckpoints,
    InvalidProof,
    MalformedExport,
    RootMismatch,
    UnknownKey,
    VerificationError,
)
from jejak.audit.merkle import MemoryNodeStore, consistency_proof, inclusion_proof, leaf_hash, root_at
from jejak.audit.note import Signer
from jejak.audit.offline import CHAIN_SEED, chain_next, verify_consistency_file, verify_export, verify_inclusion_file

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "checkpoint-small-log.json").read_text("utf-8"))
SIGNER = Signer.from_key_text(GOLDEN["skey"])
KEYS = [GOLDEN["vkey"]]
ORIGIN = GOLDEN["origin"]


def make_log(n: int) -> tuple[list[bytes], MemoryNodeStore]:
    leaves = [json.dumps({"seq": i, "fact": {"id": f"f-{i}"}}).encode() for i in range(n)]
    store = MemoryNodeStore()
    store.append(0, [leaf_hash(x) for x in leaves])
    return leaves, store


def export(leaves: list[bytes], chain: bool = True) -> list[str]:
    lines, c = [], CHAIN_SEED
    for i, leaf in enumerate(leaves):
        c = chain_next(c, leaf)
        entry = {"index": i, "leaf": base64.b64encode(leaf).decode(), "fact": json.loads(leaf)["fact"]}
        if chain:
            entry["chain"] = c.hex()
        lines.append(json.dumps(entry) + "\n")
    return lines


def checkpoint(store: MemoryNodeStore, size: int, signer: Signer = SIGNER) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, root_at(size, store)), signer)


LEAVES, STORE = make_log(20)
NOTE = checkpoint(STORE, 20)


def test_golden_export_verifies() -> None:
    leaves = [base64.b64decode(x) for x in GOLDEN["leaves"]]
    lines = [json.dumps({"index": i, "leaf": GOLDEN["leaves"][i], "fact": json.loads(x)["fact"]})
             for i, x in enumerate(leaves)]
    cp = verify_export(lines, GOLDEN["cases"][0]["note"], KEYS, expected_origin=ORIGIN)
    assert cp.size == 7


@pytest.mark.parametrize("chain", [True, False])
def test_export_verifies(chain: bool) -> None:
    lines = export(LEAVES, chain)
    assert verify_export(lines, NOTE, KEYS).size == 20
    assert verify_export([x.encode() for x in lines] + ["\n"], NOTE, KEYS).size == 20


def test_export_longer_than_checkpoint() -> None:
    more, _ = make_log(25)
    assert verify_export(export(more), NOTE, KEYS).size == 20


def _tamper(lines: list[str], i: int, **changes) -> list[str]:
    entry = json.loads(lines[i])
    entry.update(changes)
    return lines[:i] + [json.dumps(entry)] + lines[i + 1:]


def test_changed_leaf_names_index() -> None:
    lines = export(LEAVES)
    bad = _tamper(lines, 7, leaf=base64.b64encode(b'{"seq": 7, "fact": {"id": "evil"}}').decode())
    with pytest.raises(ChainBroken, match="index 7") as info:
        verify_export(bad, NOTE, KEYS)
    assert info.value.index == 7


def test_changed_leaf_without_chain_fails_on_root() -> None:
    lines = export(LEAVES, chain=False)
    bad = _tamper(lines, 7, leaf=base64.b64encode(b"evil").decode())
    with pytest.raises(RootMismatch):
        verify_export(bad, NOTE, KEYS)


def test_changed_fact_caught_by_leaf_check() -> None:
    lines = _tamper(export(LEAVES), 11, fact={"id": "evil"})

    def check(leaf: bytes, entry: dict) -> bool:
        return json.loads(leaf)["fact"] == entry["fact"]

    assert verify_export(lines, NOTE, KEYS).size == 20  # leaf bytes are what is committed
    with pytest.raises(MalformedExport, match="index 11") as info:
        verify_export(lines, NOTE, KEYS, leaf_check=check)
    assert info.value.index == 11


@pytest.mark.parametrize("i", [0, 5, 19])
def test_index_gap_or_swap_names_index(i: int) -> None:
    lines = export(LEAVES)
    with pytest.raises(MalformedExport, match=f"expected {i}, got {i + 100}") as info:
        verify_export(_tamper(lines, i, index=i + 100), NOTE, KEYS)
    assert info.value.index == i
    with pytest.raises(MalformedExport) as info:
        verify_export(lines[:i] + lines[i + 1:], NOTE, KEYS)
    assert info.value.index == i


def test_garbage_line_names_index() -> None:
    lines = export(LEAVES)
    lines[3] = "{not json\n"
    with pytest.raises(MalformedExport, match="index 3"):
        verify_export(lines, NOTE, KEYS)


def test_short_export_rejected() -> None:
    with pytest.raises(MalformedExport, match="expected 20, got 19"):
        verify_export(export(LEAVES)[:19], NOTE, KEYS)


def test_checkpoint_by_unknown_key_rejected() -> None:
    rogue = checkpoint(STORE, 20, Signer.generate(ORIGIN))
    with pytest.raises(UnknownKey):
        verify_export(export(LEAVES), rogue, KEYS)


def _inclusion_json(index: int, size: int) -> dict:
    return {"index": index, "size": size, "leaf_hash": leaf_hash(LEAVES[index]).hex(),
            "proof": [h.hex() for h in inclusion_proof(index, size, STORE)],
            "root": root_at(size, STORE).hex()}


def test_inclusion_file() -> None:
    for i in range(20):
        assert verify_inclusion_file(_inclusion_json(i, 20), NOTE, KEYS, leaf=LEAVES[i]).size == 20
    assert verify_inclusion_file(GOLDEN["inclusion"], GOLDEN["cases"][0]["note"], KEYS).size == 7


@pytest.mark.parametrize("change", [
    {"index": 4}, {"size": 19}, {"root": "00" * 32}, {"leaf_hash": "11" * 32},
    {"proof": []}, {"proof": "nope"}, {"root": "zz"}, {"index": -1},
])
def test_inclusion_file_rejects(change: dict) -> None:
    proof = _inclusion_json(3, 20) | change
    with pytest.raises(VerificationError):
        verify_inclusion_file(proof, NOTE, KEYS)


def test_inclusion_file_wrong_leaf() -> None:
    with pytest.raises(RootMismatch):
        verify_inclusion_file(_inclusion_json(3, 20), NOTE, KEYS, leaf=LEAVES[4])


def _consistency_json(m: int, n: int) -> dict:
    return {"size1": m, "size2": n, "proof": [h.hex() for h in consistency_proof(m, n, STORE)],
            "root1": root_at(m, STORE).hex(), "root2": root_at(n, STORE).hex()}


def test_consistency_file() -> None:
    for m in range(1, 21):
        old, new = verify_consistency_file(_consistency_json(m, 20), checkpoint(STORE, m), NOTE, KEYS)
        assert (old.size, new.size) == (m, 20)
    g = GOLDEN
    verify_consistency_file(g["consistency"], g["old_note"], g["cases"][0]["note"], KEYS)


def test_consistency_file_rejects() -> None:
    old = checkpoint(STORE, 6)
    with pytest.raises(InconsistentCheckpoints):
        verify_consistency_file(_consistency_json(5, 20), old, NOTE, KEYS)
    forked = sign_checkpoint(Checkpoint(ORIGIN, 6, hashlib.sha256(b"fork").digest()), SIGNER)
    proof = _consistency_json(6, 20) | {"root1": hashlib.sha256(b"fork").hexdigest()}
    with pytest.raises(RootMismatch):
        verify_consistency_file(proof, forked, NOTE, KEYS)
    other_origin = sign_checkpoint(Checkpoint("elsewhere", 6, root_at(6, STORE)), SIGNER)
    with pytest.raises(VerificationError):
        verify_consistency_file(_consistency_json(6, 20), other_origin, NOTE, KEYS)
    bad = _consistency_json(6, 20)
    bad["proof"][0] = "00" * 32
    with pytest.raises((RootMismatch, InvalidProof)):
        verify_consistency_file(bad, old, NOTE, KEYS)
