"""C2SP signed-note: golden vectors (tests/vectors/signed-note.json) plus round trips and format edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jejak.audit.checkpoint import verify_checkpoint
from jejak.audit.errors import MalformedKey, MalformedNote, SignatureInvalid, UnknownKey, VerificationError
from jejak.audit.note import Signer, Verifier, key_id, open_note, sign_note

NOTE_FILE = Path(__file__).resolve().parents[1] / "vectors" / "signed-note.json"
CASES = json.loads(NOTE_FILE.read_text("utf-8"))["cases"] if NOTE_FILE.is_file() else []


def test_vectors_present() -> None:
    assert NOTE_FILE.is_file(), f"missing golden vectors at {NOTE_FILE}"
    assert len(CASES) >= 5 and any(not c["wantErr"] for c in CASES)


def _id(case: dict) -> str:
    return case["desc"]


def _split(note: str) -> tuple[str, str]:
    text, sigs = note.rsplit("\n\n", 1)
    return text + "\n", sigs


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_signed_note_vector(case: dict) -> None:
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            open_note(case["note"], [Verifier.from_key_text(case["vkey"])])
        return
    v = Verifier.from_key_text(case["vkey"])
    assert v.key_text() == case["vkey"]
    opened = open_note(case["note"], [v])
    text, sigs = _split(case["note"])
    assert opened.text == text
    assert [(s.name, s.key_id) for s in opened.sigs] == [(v.name, v.key_id)]
    if "skey" in case:
        signer = Signer.from_key_text(case["skey"])
        assert signer.key_text() == case["skey"]
        assert signer.verifier_key_text() == case["vkey"]
        assert signer.sign(text) == sigs
        assert sign_note(text, [signer]) == case["note"]


@pytest.mark.parametrize("case", [c for c in CASES if "checkpoint" in c], ids=_id)
def test_checkpoint_vector(case: dict) -> None:
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_checkpoint(case["note"], [case["vkey"]])
        return
    cp = verify_checkpoint(case["note"], [case["vkey"]], expected_origin=case["checkpoint"]["origin"])
    assert (cp.origin, cp.size, cp.root.hex()) == (
        case["checkpoint"]["origin"], case["checkpoint"]["size"], case["checkpoint"]["root_hex"])


# --- own cases -------------------------------------------------------------------

SIGNER = Signer(name="jejak.test/log", seed=bytes(range(32)))
OTHER = Signer(name="jejak.test/other", seed=bytes(range(1, 33)))


def test_key_id_definition() -> None:
    import hashlib

    pub = b"\x01" + SIGNER.verifier.public_key
    want = hashlib.sha256(b"jejak.test/log\n" + pub).digest()[:4]
    assert key_id("jejak.test/log", pub) == int.from_bytes(want, "big") == SIGNER.key_id
    assert SIGNER.verifier_key_text().split("+")[1] == want.hex()


def test_roundtrip_two_signers_and_unknown_ignored() -> None:
    note = sign_note("hello\nworld\n", [SIGNER, OTHER])
    opened = open_note(note, [SIGNER.verifier])
    assert opened.text == "hello\nworld\n"
    assert [s.name for s in opened.sigs] == ["jejak.test/log"]
    assert [s.name for s in opened.unverified_sigs] == ["jejak.test/other"]
    assert len(open_note(note, [SIGNER.verifier, OTHER.verifier_key_text()]).sigs) == 2


def test_only_unknown_keys_rejected() -> None:
    with pytest.raises(UnknownKey):
        open_note(sign_note("x\n", [OTHER]), [SIGNER.verifier])


def test_bad_signature_from_known_key_rejected_even_with_good_one() -> None:
    import base64

    good = sign_note("x\n", [SIGNER])
    other_sig = base64.b64decode(OTHER.sign("x\n").split()[-1])[4:]
    forged = base64.b64encode(SIGNER.key_id.to_bytes(4, "big") + other_sig).decode()
    note = sign_note("x\n", [OTHER]) + f"— jejak.test/log {forged}\n" + good.split("\n\n")[1]
    with pytest.raises(SignatureInvalid):
        open_note(note, [SIGNER.verifier, OTHER.verifier])


def test_wrong_key_same_name_and_id_is_invalid_signature() -> None:
    # A signature whose name and key id match a trusted key but whose bytes are wrong.
    note = sign_note("x\n", [SIGNER])
    text, line = note.split("\n\n")
    prefix, b64 = line.rsplit(" ", 1)
    import base64

    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    bad = f"{text}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(SignatureInvalid):
        open_note(bad, [SIGNER.verifier])


@pytest.mark.parametrize("note", [
    "no newline at end",
    "text\n",  # no signature block
    "text\n\n",  # empty signature block
    "text\n\n— jejak.test/log\n",  # no base64
    "text\n\n- jejak.test/log AAAAAAA=\n",  # hyphen, not em dash
    "text\n\n— jejak.test/log AAAA\n",  # too short
    "text\n\n— jejak.test/log !!!!\n",  # not base64
    "te\x01xt\n\n— jejak.test/log AAAAAAA=\n",  # control character
])
def test_malformed_notes(note: str) -> None:
    with pytest.raises(MalformedNote):
        open_note(note, [SIGNER.verifier])


@pytest.mark.parametrize("key", [
    "",
    "name+0000000+AAAA",
    "na me+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U",
    "example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong algorithm
])
def test_malformed_verifier_keys(key: str) -> None:
    with pytest.raises(MalformedKey):
        Verifier.from_key_text(key)


def test_signer_key_roundtrip_and_repr_hides_secret() -> None:
    s = Signer.generate("jejak.test/new")
    again = Signer.from_key_text(s.key_text())
    assert again.verifier == s.verifier
    secret = s.key_text().split("+", 4)[4]
    assert secret not in repr(s) and secret not in str(s)
    with pytest.raises(MalformedKey):
        Signer.from_key_text(s.key_text().replace("PRIVATE", "PUBLIC"))


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(MalformedKey):
        Signer(name, bytes(32))


def test_sign_requires_trailing_newline() -> None:
    with pytest.raises(MalformedNote):
        sign_note("abc", [SIGNER])


# ---------------------------------------------------------------- mutation survivors killed
def _unknown_lines(count: int, text: str = "x\n") -> str:
    return "".join(Signer.generate(f"jejak.test/u{i}").sign(text) for i in range(count))


def test_at_most_max_signatures_lines() -> None:
    """C2SP allows a verifier to cap the signatures it reads; ours is 100 lines, trusted or not."""
    from jejak.audit.note import MAX_SIGNATURES

    assert MAX_SIGNATURES == 100
    good = sign_note("x\n", [SIGNER])
    assert open_note(good + _unknown_lines(99), [SIGNER.verifier]).text == "x\n"
    with pytest.raises(MalformedNote, match="too many signatures: expected at most 100, got 101"):
        open_note(good + _unknown_lines(100), [SIGNER.verifier])


def test_an_unknown_signature_before_the_trusted_one_is_skipped() -> None:
    note = "x\n\n" + _unknown_lines(2) + sign_note("x\n", [SIGNER]).split("\n\n")[1]
    opened = open_note(note, [SIGNER.verifier])
    assert [s.name for s in opened.sigs] == ["jejak.test/log"] and len(opened.unverified_sigs) == 2


def test_an_invalid_signer_name_is_malformed_even_beside_a_trusted_signature() -> None:
    good = sign_note("x\n", [SIGNER])
    b64 = good.split()[-1]
    with pytest.raises(MalformedNote, match=r"malformed signature line for 'bad\+name'"):
        open_note(good + f"— bad+name {b64}\n", [SIGNER.verifier])


@pytest.mark.parametrize("note, message", [
    ("x\n\n— jejak.test/log AAAAAAA=", "signature block must be non-empty and end with a newline"),
    ("x\n— jejak.test/log AAAAAAA=\n", "no blank line before the signature block"),
])
def test_malformed_note_messages(note: str, message: str) -> None:
    with pytest.raises(MalformedNote, match=message):
        open_note(note, [SIGNER.verifier])


def test_a_note_that_is_not_utf8_is_malformed() -> None:
    with pytest.raises(MalformedNote, match="note is not valid UTF-8"):
        open_note(sign_note("x\n", [SIGNER]).encode() + b"\xff", [SIGNER.verifier])


def test_unknown_key_error_names_both_sides() -> None:
    with pytest.raises(UnknownKey) as info:
        open_note(sign_note("x\n", [OTHER]), [SIGNER.verifier])
    assert str(info.value) == (f"no trusted signature: expected one of [jejak.test/log+{SIGNER.key_id:08x}], "
                               f"got [jejak.test/other+{OTHER.key_id:08x}]")


def test_verifiers_are_equal_only_for_the_same_key() -> None:
    a, b = Signer.generate("jejak.test/log").verifier, Signer.generate("jejak.test/log").verifier
    assert a != b and a == Verifier.from_key_text(a.key_text())


def test_opened_notes_are_immutable() -> None:
    import dataclasses

    opened = open_note(sign_note("x\n", [SIGNER]), [SIGNER.verifier])
    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.text = "y\n"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.sigs[0].name = "z"  # type: ignore[misc]


def _signature_line(raw: bytes, name: str = "jejak.test/log") -> str:
    import base64

    return f"— {name} {base64.b64encode(raw).decode()}\n"


def test_a_signature_is_a_key_id_and_at_least_one_byte() -> None:
    kid = SIGNER.key_id.to_bytes(4, "big")
    with pytest.raises(MalformedNote, match="malformed signature line"):
        open_note("x\n\n" + _signature_line(kid), [SIGNER.verifier])  # a key id and nothing else
    with pytest.raises(SignatureInvalid):
        open_note("x\n\n" + _signature_line(kid + b"\x00"), [SIGNER.verifier])  # well-formed, wrong


def test_a_repeated_trusted_signature_is_read_once_and_the_next_one_still_counts() -> None:
    one = sign_note("x\n", [SIGNER]).split("\n\n")[1]
    other = sign_note("x\n", [OTHER]).split("\n\n")[1]
    opened = open_note("x\n\n" + one + one + other, [SIGNER.verifier, OTHER.verifier])
    assert [s.name for s in opened.sigs] == ["jejak.test/log", "jejak.test/other"]


def test_key_material_must_be_strict_base64() -> None:
    name, kid, key64 = SIGNER.verifier_key_text().split("+", 2)
    with pytest.raises(MalformedKey, match="not valid base64"):
        Verifier.from_key_text(f"{name}+{kid}+{key64[:10]}!{key64[10:]}")
