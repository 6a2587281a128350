"""C2SP tlog-checkpoint: own golden cases (tests/vectors) and parser strictness."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from jejak.audit.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from jejak.audit.errors import MalformedCheckpoint, OriginMismatch, UnknownKey, VerificationError
from jejak.audit.merkle import leaf_hash, root_from_leaf_hashes
from jejak.audit.note import Signer

GOLDEN_FILE = Path(__file__).resolve().parents[1] / "vectors" / "checkpoint-small-log.json"
GOLDEN = json.loads(GOLDEN_FILE.read_text("utf-8"))


def test_golden_log_root() -> None:
    leaves = [base64.b64decode(x) for x in GOLDEN["leaves"]]
    assert len(leaves) == GOLDEN["size"]
    assert root_from_leaf_hashes([leaf_hash(x) for x in leaves]).hex() == GOLDEN["root_hex"]


def test_golden_signing_is_reproducible() -> None:
    signer = Signer.from_key_text(GOLDEN["skey"])
    assert signer.verifier_key_text() == GOLDEN["vkey"]
    cp = Checkpoint(GOLDEN["origin"], GOLDEN["size"], bytes.fromhex(GOLDEN["root_hex"]))
    assert sign_checkpoint(cp, signer) == GOLDEN["cases"][0]["note"]


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: c["desc"])
def test_golden_case(case: dict) -> None:
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_checkpoint(case["note"], [GOLDEN["vkey"]], expected_origin=GOLDEN["origin"])
        return
    cp = verify_checkpoint(case["note"], [GOLDEN["vkey"]], expected_origin=GOLDEN["origin"])
    assert (cp.origin, cp.size, cp.root.hex()) == (GOLDEN["origin"], GOLDEN["size"], GOLDEN["root_hex"])
    assert cp.extensions == tuple(case.get("extensions", ()))


def test_unknown_key_and_wrong_origin() -> None:
    note = GOLDEN["cases"][0]["note"]
    with pytest.raises(UnknownKey):
        verify_checkpoint(note, [Signer.generate(GOLDEN["origin"]).verifier])
    with pytest.raises(OriginMismatch, match="expected 'other', got 'jejak.test/log'"):
        verify_checkpoint(note, [GOLDEN["vkey"]], expected_origin="other")


ROOT = bytes(range(32))
R64 = base64.b64encode(ROOT).decode()


def test_to_text_and_parse_roundtrip() -> None:
    cp = Checkpoint("example.com/log", 42, ROOT, ("a b c", "d"))
    assert cp.to_text() == f"example.com/log\n42\n{R64}\na b c\nd\n"
    assert Checkpoint.parse(cp.to_text()) == cp
    assert Checkpoint.parse(f"o\n0\n{R64}\n").size == 0


@pytest.mark.parametrize("text", [
    f"o\n42\n{R64}",  # no final newline
    f"o\n42\n",
    f"\n42\n{R64}\n",
    f"o\n042\n{R64}\n",
    f"o\n+42\n{R64}\n",
    f"o\n-1\n{R64}\n",
    f"o\n4 2\n{R64}\n",
    f"o\n١٢\n{R64}\n",  # non-ASCII digits
    f"o\n18446744073709551616\n{R64}\n",
    f"o\n42\n{R64[:-1]}\n",
    f"o\n42\n{base64.b64encode(ROOT[:31]).decode()}\n",
    f"o\n42\n{base64.b64encode(ROOT + b'x').decode()}\n",
    f"o\n42\n{R64}\n\n",  # empty extension line
    f"o\n42\n{base64.urlsafe_b64encode(bytes([251] * 32)).decode()}\n",
])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(MalformedCheckpoint):
        Checkpoint.parse(text)


def test_constructor_validates() -> None:
    with pytest.raises(MalformedCheckpoint):
        Checkpoint("o", 1, b"short")
    with pytest.raises(MalformedCheckpoint):
        Checkpoint("bad\norigin", 1, ROOT)
    with pytest.raises(MalformedCheckpoint):
        Checkpoint("o", -1, ROOT)


def test_size_is_any_unsigned_64_bit_integer() -> None:
    """C2SP tlog-checkpoint: the tree size is a uint64, so 2^63 and 2^64 - 1 are sizes; 2^64 is not."""
    root = bytes(range(32))
    for size in (1 << 63, (1 << 64) - 1):
        cp = Checkpoint("example.com/log", size, root)
        assert Checkpoint.parse(cp.to_text()) == cp
    for size in (1 << 64, -1):
        with pytest.raises(MalformedCheckpoint, match="size: expected 0 <= size < 2\\^64"):
            Checkpoint("example.com/log", size, root)
    with pytest.raises(MalformedCheckpoint, match="size"):
        Checkpoint.parse(f"example.com/log\n{1 << 64}\n{base64.b64encode(root).decode()}\n")


def test_a_checkpoint_cannot_be_changed_after_it_is_made() -> None:
    import dataclasses

    cp = Checkpoint("example.com/log", 5, bytes(32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.size = 6  # type: ignore[misc]
    assert hash(cp) == hash(Checkpoint("example.com/log", 5, bytes(32)))


def test_a_root_with_characters_outside_base64_is_named_as_such() -> None:
    root64 = base64.b64encode(bytes(32)).decode()
    with pytest.raises(MalformedCheckpoint, match="root is not valid base64"):
        Checkpoint.parse(f"example.com/log\n1\n{root64[:8]}!{root64[8:]}\n")
    with pytest.raises(MalformedCheckpoint, match="root is not canonical base64"):
        Checkpoint.parse(f"example.com/log\n1\n{root64[:-2]}B=\n")  # non-zero padding bits
