"""`jejak prove INDEX --format tlog-proof` and `jejak audit verify-proof` of
such a file (SPEC §7): the proof is checked here independently (cryptography's
Ed25519 and a few-line RFC 9162 verifier), then through the command, with
every kind of damage an inspector could meet."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jejak.generate import write_files
from tests.e2e.test_cli_core import cli, jsonl, parse_note, verify_inclusion
from tests.tlog_reader import leaf_hash


@pytest.fixture
def logged(store_url: str, tmp_path: Path) -> tuple[str, Path, list[bytes], str, str]:
    return make_log(store_url, tmp_path)


@pytest.fixture
def logged_sqlite(tmp_path: Path) -> tuple[str, Path, list[bytes], str, str]:
    return make_log(str(tmp_path / "jejak.db"), tmp_path)


def make_log(store_url: str, tmp_path: Path) -> tuple[str, Path, list[bytes], str, str]:
    """A log of some hundred entries with a checkpoint, and a few more entries after it."""
    path = tmp_path / "facts.jsonl"
    write_files(families=8, seed=3, out_path=path)
    lines = path.read_text().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text("".join(lines[:-3]))
    (tmp_path / "b.jsonl").write_text("".join(lines[-3:]))
    assert cli(tmp_path, "ingest", str(tmp_path / "a.jsonl"), store=store_url).returncode == 0
    note = cli(tmp_path, "checkpoint", store=store_url).stdout.decode()
    assert cli(tmp_path, "ingest", str(tmp_path / "b.jsonl"), store=store_url).returncode == 0
    leaves = [base64.b64decode(e["leaf"]) for e in jsonl(cli(tmp_path, "export", store=store_url).stdout)]
    vkey = cli(tmp_path, "key", store=store_url).stdout.decode().strip()
    return store_url, tmp_path, leaves, note, vkey


def independent_check(text: str, leaf: bytes, vkey: str) -> tuple[int, int]:
    """c2sp.org/tlog-proof@v1 read from its specification alone."""
    head, _, note = text.partition("\n\n")
    lines = head.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1" and lines[1].startswith("index ")
    assert not any(line.startswith("extra") for line in lines)
    index = int(lines[1][len("index "):])
    proof = [base64.b64decode(line, validate=True) for line in lines[2:]]
    origin, size, root, text_signed, sigs = parse_note(note)
    name, key_id, key64 = vkey.split("+", 2)
    key = base64.b64decode(key64)
    assert hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex() == key_id
    mine = [sig for who, sig in sigs if who == name and sig[:4].hex() == key_id]
    Ed25519PublicKey.from_public_bytes(key[1:]).verify(mine[0][4:], text_signed.encode())
    assert verify_inclusion(index, size, leaf_hash(leaf), proof, root)
    return index, size


def test_tlog_proof_verifies_independently_and_through_the_command(logged) -> None:
    store, tmp, leaves, note, vkey = logged
    covered = len(leaves) - 3
    for index in (0, 1, covered // 2, covered - 1):
        r = cli(tmp, "prove", str(index), "--format", "tlog-proof", store=store)
        assert r.returncode == 0, r.stderr
        text = r.stdout.decode()
        assert text.endswith("\n\n" + note)  # the recorded checkpoint verbatim
        assert independent_check(text, leaves[index], vkey) == (index, covered)
        proof = tmp / f"p{index}.tlog-proof"
        proof.write_bytes(r.stdout)
        (tmp / "leaf").write_bytes(leaves[index])
        r = cli(tmp, "audit", "verify-proof", str(proof), "--log-key", vkey, "--leaf", str(tmp / "leaf"))
        assert r.returncode == 0 and json.loads(r.stdout)["valid"] is True, r.stdout
        r = cli(tmp, "audit", "verify-proof", str(proof), "--log-key", vkey, stdin=leaves[index])
        assert r.returncode == 0, r.stdout
        r = cli(tmp, "audit", "verify-proof", "-", "--log-key", vkey, "--leaf", str(tmp / "leaf"), stdin=proof.read_bytes())
        assert r.returncode == 0, r.stdout
        r = cli(tmp, "audit", "verify-proof", str(proof), "--log-key", vkey, stdin=leaves[(index + 1) % covered])
        assert r.returncode == 1 and json.loads(r.stdout)["valid"] is False
    # not yet covered by a checkpoint, or not in the log at all
    for index in (covered, covered + 2, len(leaves) + 10):
        r = cli(tmp, "prove", str(index), "--format", "tlog-proof", store=store)
        assert r.returncode == 1 and b"not covered" in r.stderr and not r.stdout
    # plain `prove` stays SPEC §2 JSON
    r = cli(tmp, "prove", "1", store=store)
    assert set(json.loads(r.stdout)) == {"index", "size", "leaf_hash", "proof", "root"}


def damaged(text: str) -> dict[str, str]:
    head, _, note = text.partition("\n\n")
    lines = head.split("\n")
    sig_at = note.rindex(" ") + 1
    flipped_hash = base64.b64encode(bytes([base64.b64decode(lines[2])[0] ^ 1]) + base64.b64decode(lines[2])[1:]).decode()
    return {
        "a proof hash": "\n".join([*lines[:2], flipped_hash, *lines[3:]]) + "\n\n" + note,
        "a missing proof hash": "\n".join(lines[:-1]) + "\n\n" + note,
        "another index": "\n".join([lines[0], "index 2", *lines[2:]]) + "\n\n" + note,
        "a leading zero": "\n".join([lines[0], "index 01", *lines[2:]]) + "\n\n" + note,
        "the header": "\n".join(["c2sp.org/tlog-proof@v2", *lines[1:]]) + "\n\n" + note,
        "no index line": "\n".join([lines[0], *lines[2:]]) + "\n\n" + note,
        "the size": head + "\n\n" + note.replace(f"\n{note.split(chr(10))[1]}\n", "\n999\n", 1),
        "the signature": head + "\n\n" + note[:sig_at] + ("A" if note[sig_at] != "A" else "B") + note[sig_at + 1:],
        "no checkpoint": head + "\n",
    }


def test_damaged_tlog_proofs_are_refused(logged_sqlite) -> None:
    store, tmp, leaves, _note, vkey = logged_sqlite
    text = cli(tmp, "prove", "1", "--format", "tlog-proof", store=store).stdout.decode()
    (tmp / "leaf").write_bytes(leaves[1])
    for what, bad in damaged(text).items():
        path = tmp / "bad.tlog-proof"
        path.write_text(bad)
        r = cli(tmp, "audit", "verify-proof", str(path), "--log-key", vkey, "--leaf", str(tmp / "leaf"))
        assert r.returncode == 1, (what, r.stdout, r.stderr)
        assert json.loads(r.stdout)["valid"] is False, what
    # another log's key (same name)
    from jejak.audit.note import Signer

    stranger = Signer.generate("jejak.local/bansos").verifier_key_text()
    (tmp / "good.tlog-proof").write_text(text)
    r = cli(tmp, "audit", "verify-proof", str(tmp / "good.tlog-proof"), "--log-key", stranger, "--leaf", str(tmp / "leaf"))
    assert r.returncode == 1 and json.loads(r.stdout)["valid"] is False
    r = cli(tmp, "audit", "verify-proof", str(tmp / "good.tlog-proof"), "--log-key", "not-a-key", "--leaf", str(tmp / "leaf"))
    assert r.returncode == 1 and b"not a verifier key" in r.stderr


def test_json_proofs_still_verify_with_a_log_key(logged_sqlite) -> None:
    store, tmp, leaves, note, vkey = logged_sqlite
    (tmp / "cp").write_text(cli(tmp, "checkpoint", store=store).stdout.decode())
    (tmp / "p.json").write_bytes(cli(tmp, "prove", "2", store=store).stdout)  # against that checkpoint
    (tmp / "vkeys.txt").write_text(vkey + "\n")
    (tmp / "leaf").write_bytes(leaves[2])
    for key_args in (["--log-key", vkey], ["--key", str(tmp / "vkeys.txt")]):
        r = cli(tmp, "audit", "verify-proof", str(tmp / "p.json"), "--checkpoint", str(tmp / "cp"), *key_args)
        assert r.returncode == 0 and json.loads(r.stdout)["valid"] is True, r.stdout
    r = cli(tmp, "audit", "verify-proof", str(tmp / "p.json"), "--checkpoint", str(tmp / "cp"), "--log-key", vkey,
            "--leaf", str(tmp / "p.json"))
    assert r.returncode == 1 and json.loads(r.stdout)["valid"] is False
    (tmp / "garbage").write_text("[1, 2]")
    r = cli(tmp, "audit", "verify-proof", str(tmp / "garbage"), "--checkpoint", str(tmp / "cp"), "--log-key", vkey)
    assert r.returncode == 1 and json.loads(r.stdout)["valid"] is False
