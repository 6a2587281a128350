"""KeyRing: 0600 key file, load-or-create, rotation, verify-only rings."""

from __future__ import annotations

import json
import os
import stat

import pytest

from jejak.audit.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from jejak.audit.errors import UnknownKey
from jejak.audit.keys import KEY_FILE_NAME, KeyRing

ROOT = bytes(32)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_create_in_directory_with_0600(tmp_path) -> None:
    ring = KeyRing.load_or_create(tmp_path, "jejak.test/log")
    path = tmp_path / KEY_FILE_NAME
    assert ring.path == path and _mode(path) == 0o600
    data = json.loads(path.read_text())
    assert len(data["keys"]) == 1
    assert data["keys"][0]["skey"] == ring.current_signer().key_text()
    assert "T" in data["keys"][0]["created"]


def test_load_again_gives_same_key(tmp_path) -> None:
    path = tmp_path / "sub" / "keys.json"
    first = KeyRing.load_or_create(path, "jejak.test/log")
    second = KeyRing.load_or_create(path, "ignored-name")
    assert second.current_signer().verifier == first.current_signer().verifier
    assert KeyRing.load(path).verifier_key_texts() == first.verifier_key_texts()


def test_rotation_keeps_old_verifiers(tmp_path) -> None:
    ring = KeyRing.load_or_create(tmp_path, "jejak.test/log")
    cp = Checkpoint("jejak.test/log", 1, ROOT)
    old_note = sign_checkpoint(cp, ring.current_signer())
    old_vkey = ring.current_signer().verifier_key_text()
    new = ring.rotate("jejak.test/log")
    assert ring.current_signer() is new
    assert new.verifier_key_text() != old_vkey
    reloaded = KeyRing.load(tmp_path)
    assert _mode(tmp_path / KEY_FILE_NAME) == 0o600
    assert reloaded.verifier_key_texts() == [old_vkey, new.verifier_key_text()]
    assert reloaded.current_signer().verifier == new.verifier
    # old checkpoints still verify; new ones are signed by the new key
    verify_checkpoint(old_note, reloaded.verifiers())
    new_note = sign_checkpoint(cp, reloaded.current_signer())
    verify_checkpoint(new_note, [new.verifier])
    with pytest.raises(UnknownKey):
        verify_checkpoint(new_note, [old_vkey])
    assert not list(tmp_path.glob(".*tmp"))


def test_verify_only_ring(tmp_path) -> None:
    ring = KeyRing.load_or_create(tmp_path, "jejak.test/log")
    note = sign_checkpoint(Checkpoint("jejak.test/log", 1, ROOT), ring.current_signer())
    vonly = KeyRing.from_verifier_keys(["# trusted", "", *ring.verifier_key_texts()])
    assert verify_checkpoint(note, vonly.verifiers()).size == 1
    with pytest.raises(LookupError, match="verifier keys only"):
        vonly.current_signer()


def test_secret_not_in_repr(tmp_path) -> None:
    ring = KeyRing.load_or_create(tmp_path, "jejak.test/log")
    secret = ring.current_signer().key_text().split("+", 4)[4]
    assert secret not in repr(ring) and secret not in repr(ring.current_signer())


def test_refuses_group_readable_file(tmp_path) -> None:
    KeyRing.load_or_create(tmp_path, "jejak.test/log")
    os.chmod(tmp_path / KEY_FILE_NAME, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        KeyRing.load(tmp_path)


SECRET_SEED = "c2VjcmV0LXNlZWQtdGhhdC1tdXN0LW5ldmVyLWJlLWVjaG9lZA"  # base64 of a would-be secret


@pytest.mark.parametrize("content", [
    b'{"keys": [{"skey": "PRIVATE+KEY+x+00000000+SECRETSECRET"}]}',  # a key text that does not parse
    b'{"keys": [{"skey": "PRIVATE+KEY+jejak.test/log+00000000+' + SECRET_SEED.encode() + b'"}]}',  # wrong length
    b'{"keys": [{"skey": "SECRETSECRET"}]}',  # not a signer key at all
    b'{"keys": [{"nokey": "SECRETSECRET"}]}',
    b'{"keys": "SECRETSECRET"}',
    b'SECRETSECRET',
])
def test_malformed_file_error_does_not_echo_content(tmp_path, content: bytes) -> None:
    path = tmp_path / "keys.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(ValueError) as info:  # KeyRing.load's own message, not a parser's
        KeyRing.load(path)
    message = str(info.value)
    assert type(info.value) is ValueError and message.startswith(f"key file {path} is malformed ("), message
    assert "SECRET" not in message and SECRET_SEED not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__, "the parser's error (and its text) is dropped"
