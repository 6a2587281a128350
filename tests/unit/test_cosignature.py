"""C2SP tlog-cosignature v1: golden lines (tests/vectors/cosignature-v1.json) re-derived
by an independent reader, round trips and refusals."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jejak.audit.cosignature import CosignatureSigner, CosignatureVerifier, cosigned_message, parse_cosignature_line
from jejak.audit.errors import MalformedKey, MalformedNote, SignatureInvalid
from jejak.audit.note import Signer

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "cosignature-v1.json").read_text("utf-8"))
CASES = VECTORS["cases"]


def independent_line(name: str, seed: bytes, checkpoint: str, timestamp: int) -> tuple[str, str]:
    """(vkey, cosignature line) straight from the C2SP text, sharing no code with jejak."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes_raw()
    kid = hashlib.sha256(name.encode() + b"\n" + b"\x04" + public).digest()[:4]
    key64 = base64.b64encode(b"\x04" + public).decode()
    vkey = f"{name}+{kid.hex()}+{key64}"
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + checkpoint.encode()
    sig = kid + timestamp.to_bytes(8, "big") + private.sign(message)
    return vkey, f"\u2014 {name} {base64.b64encode(sig).decode()}\n"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["desc"])
def test_golden_line_matches_independent_derivation(case: dict) -> None:
    seed = bytes.fromhex(case["seed_hex"])
    vkey, line = independent_line(case["witness_name"], seed, case["checkpoint"], case["timestamp"])
    assert (vkey, line) == (case["vkey"], case["cosignature_line"])
    signer = CosignatureSigner(case["witness_name"], seed)
    assert signer.verifier_key_text() == case["vkey"]
    assert signer.cosign(case["checkpoint"], case["timestamp"]) == case["cosignature_line"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["desc"])
def test_golden_line_verifies(case: dict) -> None:
    verifier = CosignatureVerifier.from_key_text(case["vkey"])
    assert verifier.verify(case["checkpoint"], case["cosignature_line"]) == case["timestamp"]
    # the independent reader agrees that the signature covers header, time and body
    raw = base64.b64decode(case["cosignature_line"].split(" ")[2])
    message = f"cosignature/v1\ntime {case['timestamp']}\n{case['checkpoint']}".encode()
    Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(raw[12:], message)
    assert cosigned_message(case["checkpoint"], case["timestamp"]) == message


def test_tampered_body_or_time_fails() -> None:
    case = CASES[0]
    verifier = CosignatureVerifier.from_key_text(case["vkey"])
    cosig = parse_cosignature_line(case["cosignature_line"])
    with pytest.raises(SignatureInvalid):
        verifier.verify(case["checkpoint"].replace("\n5\n", "\n6\n"), cosig)
    shifted = type(cosig)(cosig.name, cosig.key_id, cosig.timestamp + 1, cosig.signature)
    with pytest.raises(SignatureInvalid):
        verifier.verify(case["checkpoint"], shifted)
    other = CosignatureVerifier.from_key_text(CASES[1]["vkey"])
    with pytest.raises(SignatureInvalid, match="expected"):
        other.verify(case["checkpoint"], cosig)


def test_log_key_is_not_a_witness_key() -> None:
    log_key = Signer.generate("log.example").verifier_key_text()
    with pytest.raises(MalformedKey, match="expected 0x04.*got 0x01"):
        CosignatureVerifier.from_key_text(log_key)


def test_wrong_key_id_refused() -> None:
    name, kid, key = CASES[0]["vkey"].split("+", 2)
    with pytest.raises(MalformedKey, match="key id"):
        CosignatureVerifier.from_key_text(f"{name}+{int(kid, 16) ^ 1:08x}+{key}")


def test_plain_note_signature_is_not_a_cosignature() -> None:
    log = Signer.generate("log.example")
    line = log.sign("log.example\n1\n" + base64.b64encode(bytes(32)).decode() + "\n")
    with pytest.raises(MalformedNote, match="expected 76 bytes, got 68"):
        parse_cosignature_line(line)


def test_signer_key_text_round_trip() -> None:
    signer = CosignatureSigner.generate("witness.example/x")
    again = CosignatureSigner.from_key_text(signer.key_text())
    assert again.verifier_key_text() == signer.verifier_key_text()
    assert "PRIVATE" not in repr(signer)
