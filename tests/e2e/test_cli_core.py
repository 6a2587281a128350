"""SPEC §2 command line, end to end through real `jejak` subprocesses.

Everything a third party would check is recomputed here independently of
jejak's own code: the RFC 9162 Merkle root and inclusion proofs (a tiny
implementation below), and the Ed25519 signed-note signature (with
`cryptography` directly, not jejak.audit).
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jejak.generate import write_files

JEJAK = [sys.executable, "-m", "jejak.cli"]
NIK = "1275016708770229"
KK = "1275011104052510"


# ------------------------------------------------- independent RFC 9162 helpers


def rfc_leaf(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def rfc_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes: list[bytes]) -> bytes:
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = _k(n)
    return rfc_node(mth(hashes[:k]), mth(hashes[k:]))


def audit_path(m: int, hashes: list[bytes]) -> list[bytes]:
    n = len(hashes)
    if n <= 1:
        return []
    k = _k(n)
    if m < k:
        return audit_path(m, hashes[:k]) + [mth(hashes[k:])]
    return audit_path(m - k, hashes[k:]) + [mth(hashes[:k])]


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: list[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = rfc_node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = rfc_node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def test_independent_rfc9162_helpers_self_check() -> None:
    hashes = [rfc_leaf(bytes([i])) for i in range(13)]
    root = mth(hashes)
    for size in (1, 2, 3, 7, 8, 13):
        r = mth(hashes[:size])
        for i in range(size):
            assert verify_inclusion(i, size, hashes[i], audit_path(i, hashes[:size]), r)
    assert not verify_inclusion(3, 13, hashes[4], audit_path(3, hashes), root)
    # RFC 6962 test vector: the empty tree
    assert mth([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ---------------------------------------------------------------------- helpers


def cli(tmp: Path, *args: str, store: str | None = None, stdin: bytes | None = None,
        env_store: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("JEJAK_STORE", None)
    env["JEJAK_KEYS_DIR"] = str(tmp / "keys")
    if env_store is not None:
        env["JEJAK_STORE"] = env_store
    pre = ["--store", store] if store else []
    return subprocess.run([*JEJAK, *pre, *args], cwd=tmp, env=env, input=stdin, capture_output=True, timeout=120)


def jsonl(data: bytes) -> list[Any]:
    return [json.loads(ln) for ln in data.decode().splitlines() if ln.strip()]


def fact(fid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": fid, "type": "disbursement.ordered", "at": "2024-03-05T10:00:00+07:00",
        "source": {"kind": "kemensos", "id": "sp2d"}, "kk": KK, "nik": NIK, "program": "PKH",
        "period": "2024-T1", "amount": 750000, "channel": "BRI", **extra,
    }


def lines(*objs: Any) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objs)


# ------------------------------------------------------------------- ingest


def test_ingest_exit_codes_summary_and_rejections(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    good = tmp_path / "good.jsonl"
    good.write_bytes(lines(fact("o-1"), fact("o-2")))
    r = cli(tmp_path, "ingest", str(good), store=store)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode().strip().splitlines()
    assert len(out) == 1 and json.loads(out[0]) == {"accepted": 2, "duplicates": 0, "rejected": 0}

    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(lines(fact("o-1"), b"", b"{broken", fact("o-3", amount=-5), fact("o-2", amount=1), fact("o-4")))
    r = cli(tmp_path, "ingest", str(mixed), store=store)
    assert r.returncode == 3
    assert json.loads(r.stdout) == {"accepted": 1, "duplicates": 1, "rejected": 3}
    rejections = jsonl(r.stderr)
    assert [(x["line"], x["id"]) for x in rejections] == [(3, None), (4, "o-3"), (5, "o-2")]
    for x in rejections:
        assert {"line", "id", "error"} <= set(x) and isinstance(x["error"], str) and x["error"]
    assert "conflict" in rejections[2]["error"]
    assert "amount" in rejections[1]["error"]

    r = cli(tmp_path, "ingest", str(tmp_path / "missing.jsonl"), store=store)
    assert r.returncode == 2 and r.stdout.strip() == b""
    assert b"no such file" in r.stderr
    r = cli(tmp_path, "ingest", str(tmp_path), store=store)  # a directory is not a file
    assert r.returncode == 2 and b"is a directory" in r.stderr

    r = cli(tmp_path, "ingest", str(good), store=store)
    assert r.returncode == 0 and json.loads(r.stdout) == {"accepted": 0, "duplicates": 2, "rejected": 0}


def test_ingest_stdin(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    r = cli(tmp_path, "ingest", "-", store=store, stdin=lines(fact("o-1"), fact("o-2"), b"[]"))
    assert r.returncode == 3
    assert json.loads(r.stdout) == {"accepted": 2, "duplicates": 0, "rejected": 1}
    assert jsonl(r.stderr)[0]["line"] == 3
    r = cli(tmp_path, "ingest", "-", store=store, stdin=b"")
    assert r.returncode == 0 and json.loads(r.stdout) == {"accepted": 0, "duplicates": 0, "rejected": 0}


def test_store_option_env_and_default(tmp_path: Path) -> None:
    f = tmp_path / "f.jsonl"
    f.write_bytes(lines(fact("o-1")))
    env_db = str(tmp_path / "env.db")
    r = cli(tmp_path, "ingest", str(f), env_store=env_db)
    assert r.returncode == 0 and json.loads(r.stdout)["accepted"] == 1
    assert Path(env_db).exists()
    # --store wins over JEJAK_STORE
    opt_db = str(tmp_path / "opt.db")
    r = cli(tmp_path, "ingest", str(f), store=opt_db, env_store=env_db)
    assert json.loads(r.stdout)["accepted"] == 1
    r = cli(tmp_path, "export", env_store=env_db)
    assert [e["fact"]["id"] for e in jsonl(r.stdout)] == ["o-1"]
    # the default is ./jejak.db in the working directory
    r = cli(tmp_path, "ingest", str(f))
    assert r.returncode == 0 and json.loads(r.stdout)["accepted"] == 1
    assert (tmp_path / "jejak.db").exists()


def test_store_option_after_subcommand(tmp_path: Path) -> None:
    f = tmp_path / "f.jsonl"
    f.write_bytes(lines(fact("o-1")))
    db = str(tmp_path / "after.db")
    r = cli(tmp_path, "ingest", str(f), "--store", db)
    assert r.returncode == 0
    assert Path(db).exists()


# ------------------------------------------------ export, checkpoint, key, prove


@pytest.fixture
def ingested(store_url: str, tmp_path: Path) -> tuple[str, Path, list[dict]]:
    path = tmp_path / "facts.jsonl"
    write_files(families=5, seed=11, out_path=path)
    facts = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    r = cli(tmp_path, "ingest", str(path), store=store_url)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert json.loads(r.stdout) == {"accepted": len(facts), "duplicates": 0, "rejected": 0}
    return store_url, tmp_path, facts


def parse_note(note: str) -> tuple[str, int, bytes, str, list[tuple[str, bytes]]]:
    text, sep, sigblock = note.partition("\n\n")
    assert sep, "signed note needs a blank line before its signatures"
    text += "\n"
    body = text.split("\n")
    origin, size, root = body[0], int(body[1]), base64.b64decode(body[2], validate=True)
    sigs = []
    for line in sigblock.splitlines():
        assert line.startswith("\u2014 "), line
        name, b64 = line[2:].split(" ")
        sigs.append((name, base64.b64decode(b64)))
    return origin, size, root, text, sigs


def test_export_root_matches_checkpoint_and_signature_verifies(ingested) -> None:
    store, tmp, facts = ingested
    r = cli(tmp, "export", store=store)
    assert r.returncode == 0
    entries = jsonl(r.stdout)
    assert [e["index"] for e in entries] == list(range(len(facts)))
    leaf_hashes = []
    for e, original in zip(entries, facts):
        assert {"index", "leaf", "fact"} <= set(e)
        leaf = base64.b64decode(e["leaf"], validate=True)
        assert e["fact"] == original  # operator export shows the fact as it was ingested
        decoded = json.loads(leaf)
        assert decoded["fact"]["id"] == original["id"]
        for name in ("nik", "kk"):
            if name in original:
                assert original[name].encode() not in leaf, "the hashed leaf carries no clear NIK/KK"
        leaf_hashes.append(rfc_leaf(leaf))

    cp = cli(tmp, "checkpoint", store=store)
    assert cp.returncode == 0
    note = cp.stdout.decode()
    origin, size, root, text, sigs = parse_note(note)
    assert size == len(facts)
    assert root == mth(leaf_hashes), "independent RFC 9162 root over the export must equal the checkpoint root"

    k = cli(tmp, "key", store=store)
    assert k.returncode == 0
    key_line = k.stdout.decode().strip()
    m = re.fullmatch(r"([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)", key_line)
    assert m, key_line
    name, key_hash, key64 = m.groups()
    raw = base64.b64decode(key64, validate=True)
    assert len(raw) == 33 and raw[0] == 0x01
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == key_hash
    signed = [(n, s) for n, s in sigs if n == name and s[:4].hex() == key_hash]
    assert len(signed) == 1, sigs
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(signed[0][1][4:], text.encode())  # raises if invalid

    # prove: keys, leaf hash, audit path and root all match the independent computation
    for index in (size // 2, size - 1):
        p = cli(tmp, "prove", str(index), "--size", str(size), store=store)
        assert p.returncode == 0, p.stderr.decode()
        proof = json.loads(p.stdout)
        assert set(proof) == {"index", "size", "leaf_hash", "proof", "root"}
        assert (proof["index"], proof["size"]) == (index, size)
        assert proof["leaf_hash"] == leaf_hashes[index].hex()
        assert proof["root"] == root.hex()
        assert proof["proof"] == [h.hex() for h in audit_path(index, leaf_hashes)]
        assert verify_inclusion(index, size, leaf_hashes[index], [bytes.fromhex(h) for h in proof["proof"]], root)

    # an older tree size
    small = size // 3
    p = cli(tmp, "prove", "1", "--size", str(small), store=store)
    proof = json.loads(p.stdout)
    assert proof["root"] == mth(leaf_hashes[:small]).hex()
    assert proof["proof"] == [h.hex() for h in audit_path(1, leaf_hashes[:small])]

    # bad requests are usage errors
    assert cli(tmp, "prove", str(size), "--size", str(size), store=store).returncode == 2

    v = cli(tmp, "verify", store=store)
    assert v.returncode == 0, v.stdout.decode() + v.stderr.decode()
    assert json.loads(v.stdout)["intact"] is True


def test_balances_past_64_bits_print_exactly(store_url: str, tmp_path: Path) -> None:
    """A family's sums may pass 2**64 (orjson's limit): `jejak balances` still
    prints them to the rupiah, as JSON any reader parses exactly."""
    big = 2**63 - 1
    settlements = [
        {"id": f"s-{i}", "type": "disbursement.settled", "at": "2024-03-06T10:00:00+07:00",
         "source": {"kind": "bank", "id": "bri"}, "disbursement": f"o-{i % 2}", "status": "credited",
         "amount": big, "channel": "BRI"}
        for i in range(5)
    ]
    f = tmp_path / "big.jsonl"
    f.write_bytes(lines(fact("o-0", amount=big), fact("o-1", amount=big), *settlements))
    r = cli(tmp_path, "ingest", str(f), store=store_url)
    assert r.returncode == 0, r.stderr.decode()
    r = cli(tmp_path, "balances", store=store_url)
    assert r.returncode == 0, r.stderr.decode()
    assert jsonl(r.stdout) == [{"kk": KK, "program": "PKH", "ordered": 2 * big, "credited": 5 * big,
                                "picked_up": 0, "returned": 0, "outstanding": 5 * big}]


def test_prove_on_an_empty_log_says_so(tmp_path: Path) -> None:
    assert cli(tmp_path, "init", store=str(tmp_path / "empty.db")).returncode == 0
    r = cli(tmp_path, "prove", "0", store=str(tmp_path / "empty.db"))
    assert r.returncode == 2
    assert b"the log is empty" in r.stderr and b"Traceback" not in r.stderr, r.stderr


def test_ingest_reads_a_pipe_given_as_a_file(tmp_path: Path) -> None:
    """`jejak ingest <(zcat f.gz)` or `… | jejak ingest /dev/stdin`: a pipe, not a regular file."""
    store = str(tmp_path / "s.db")
    env = dict(os.environ, JEJAK_KEYS_DIR=str(tmp_path / "keys"))
    env.pop("JEJAK_STORE", None)
    r = subprocess.run([*JEJAK, "--store", store, "ingest", "/dev/stdin"], cwd=tmp_path, env=env,
                       input=lines(fact("o-1"), fact("o-2")), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout) == {"accepted": 2, "duplicates": 0, "rejected": 0}


def test_a_nik_sent_in_the_wrong_field_is_masked_in_the_rejection(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    sent = "3174055012900001"
    f = tmp_path / "f.jsonl"
    f.write_bytes(lines(fact("o-1", channel=sent), fact("o-2", amount=-int(sent)), fact("o-3", period=sent)))
    r = cli(tmp_path, "ingest", str(f), store=store)
    assert r.returncode == 3
    errors = jsonl(r.stderr)
    assert len(errors) == 3
    assert sent.encode() not in r.stderr and b"3174********0001" in r.stderr, r.stderr


def test_a_missing_postgresql_database_is_named_at_once(pg_server: str, tmp_path: Path) -> None:
    """Not a pool time-out: the server's reason and the fix, and `verify` never
    says "tampered" (exit 1) about a store it could not open."""
    host, port = pg_server.rsplit(":", 1)
    missing = f"postgresql://postgres@{host}:{port}/jejak_no_such_db"
    r = cli(tmp_path, "verify", store=missing)
    assert r.returncode == 2, r.stderr
    assert b'database "jejak_no_such_db" does not exist' in r.stderr and b"createdb jejak_no_such_db" in r.stderr
    r = cli(tmp_path, "balances", store=missing)
    assert r.returncode == 2 and b"does not exist" in r.stderr and b"Traceback" not in r.stderr, r.stderr
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    unused_port = closed.getsockname()[1]
    closed.close()
    r = cli(tmp_path, "verify", store=f"postgresql://postgres@127.0.0.1:{unused_port}/x")
    assert r.returncode == 2 and b"that PostgreSQL is running there" in r.stderr, r.stderr


def test_a_mistyped_store_directory_is_refused_not_created(tmp_path: Path) -> None:
    src = tmp_path / "f.jsonl"
    src.write_bytes(lines(fact("o-1")))
    env = {k: v for k, v in os.environ.items() if k not in ("JEJAK_STORE", "JEJAK_KEYS_DIR")}  # keys beside the store
    r = subprocess.run([*JEJAK, "--store", str(tmp_path / "typo" / "dir" / "s.db"), "ingest", str(src)],
                       cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert r.returncode == 1 and b"does not exist" in r.stderr, r.stderr
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("encode, says", [
    (gzip.compress, b"gzip-compressed"),
    (bz2.compress, b"bzip2-compressed"),
    (lambda data: data.decode().encode("utf-16"), b"UTF-16"),
    (lambda data: data.decode().encode("utf-16-le"), b"UTF-16"),
], ids=["gzip", "bzip2", "utf-16", "utf-16le-without-bom"])
def test_an_input_that_is_not_json_lines_is_unusable_and_records_nothing(tmp_path: Path, encode, says) -> None:
    store = str(tmp_path / "s.db")
    src = tmp_path / "f.jsonl"
    src.write_bytes(encode(lines(fact("o-1"), fact("o-2"))))
    r = cli(tmp_path, "ingest", str(src), store=store)
    assert r.returncode == 2 and says in r.stderr and b"nothing was recorded" in r.stderr, r.stderr
    assert r.stdout == b""
    r = cli(tmp_path, "export", store=store)
    assert r.returncode == 0 and r.stdout == b""
    # a first line that is merely bad JSON stays one rejected line (exit 3)
    src.write_bytes(b"BZ not json\n" + lines(fact("o-1")))
    r = cli(tmp_path, "ingest", str(src), store=store)
    assert r.returncode == 3 and json.loads(r.stdout) == {"accepted": 1, "duplicates": 0, "rejected": 1}


@pytest.mark.parametrize("where", [2, 7], ids=["first-batch-in-process", "later-batch-in-the-worker"])
def test_an_over_long_line_is_rejected_in_place_and_the_rest_recorded(tmp_path: Path, where: int) -> None:
    src = tmp_path / "f.jsonl"
    facts: list[Any] = [fact(f"o-{i}") for i in range(1, 10)]
    facts[where - 1] = fact("o-big", note="n" * (2 << 20))
    src.write_bytes(lines(*facts))
    env = dict(os.environ, JEJAK_KEYS_DIR=str(tmp_path / "keys"), JEJAK_BATCH_SIZE="2")
    r = subprocess.run([*JEJAK, "--store", str(tmp_path / "s.db"), "ingest", str(src)], cwd=tmp_path, env=env,
                       capture_output=True, timeout=120)
    assert r.returncode == 3, r.stderr[-2000:]
    assert json.loads(r.stdout) == {"accepted": 8, "duplicates": 0, "rejected": 1}
    [rejection] = jsonl(r.stderr)
    assert rejection["line"] == where and rejection["code"] == "line_too_long" and rejection["id"] is None
    assert len(r.stderr) < 1000  # the line is not echoed


def test_a_bad_setting_is_named_with_its_variable(tmp_path: Path) -> None:
    env = dict(os.environ, JEJAK_KEYS_DIR=str(tmp_path / "keys"), JEJAK_MAX_LINE_BYTES="lots",
               JEJAK_KEK="not hex at all")
    r = subprocess.run([*JEJAK, "--store", str(tmp_path / "s.db"), "balances"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert b"bad configuration: JEJAK_MAX_LINE_BYTES" in r.stderr and b"'lots'" in r.stderr
    assert b"Traceback" not in r.stderr and b"not hex at all" not in r.stderr
