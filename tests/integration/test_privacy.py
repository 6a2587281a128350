"""Personal data protection on real stores (SQLite file and PostgreSQL database).

* No NIK or KK of the input is in clear in the SQLite file (and its WAL) or in
  a `pg_dump` of the PostgreSQL database.
* Erasure (crypto-shredding): the log stays verifiable, the NIK is gone from
  every output and from the store, the erasure fact is exported without it,
  anomalies stay countable, a re-delivery does not bring the NIK back.
* Wrong keys and missing keys fail clearly and write nothing.
* Rejections and error messages mask NIKs; `export --public` has no 16-digit number.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

import orjson
import pytest

from jejak.generate import write_files
from jejak.ledger import Ledger, LedgerError
from jejak.settings import Settings
from jejak.store.datastore import Store

FAMILIES = 150
SEED = 23
DIGITS16 = re.compile(r"\d{16}")
MASKED = re.compile(r"\d{4}\*{8}\d{4}")

_script = Path(sys.executable).parent / "jejak"
JEJAK = [str(_script)] if _script.exists() else [sys.executable, "-m", "jejak.cli"]


# --------------------------------------------------------------------- helpers


def cli_env(keys: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
    env["JEJAK_KEYS_DIR"] = str(keys)
    env.update(extra)
    return env


def jejak(cwd: Path, keys: Path, *args: str, stdin: bytes | None = None, env: dict | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*JEJAK, *args], cwd=cwd, env=env or cli_env(keys), input=stdin,
                          capture_output=True, timeout=timeout)


def identifiers(lines: Iterable[bytes]) -> tuple[set[str], set[str]]:
    niks, kks = set(), set()
    for raw in lines:
        f = orjson.loads(raw)
        if isinstance(f.get("nik"), str):
            niks.add(f["nik"])
        if isinstance(f.get("kk"), str):
            kks.add(f["kk"])
    return niks, kks


def leaks(data: bytes, secrets: set[str]) -> set[str]:
    """Which of the 16-digit secrets appear in data: as ASCII digits, or as the
    hex of their ASCII bytes (how `pg_dump` prints bytea)."""
    found = set()
    hexed = {s.encode().hex(): s for s in secrets}
    for m in re.finditer(rb"[0-9]{16,}", data):
        run = m.group().decode()
        for i in range(len(run) - 15):
            if run[i:i + 16] in secrets:
                found.add(run[i:i + 16])
        for i in range(len(run) - 31):
            if run[i:i + 32] in hexed:
                found.add(hexed[run[i:i + 32]])
    # UTF-16 (just in case a column were stored that way)
    for s in secrets:
        if s.encode("utf-16-le") in data:
            found.add(s)
    return found


def pg_dump(url: str) -> bytes:
    u = urlparse(url)
    res = subprocess.run(
        ["pg_dump", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
         "--no-owner", u.path.lstrip("/")],
        capture_output=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def store_bytes(store_url: str) -> bytes:
    if store_url.startswith("postgresql://"):
        return pg_dump(store_url)
    data = b""
    for suffix in ("", "-wal", "-journal"):
        p = Path(store_url + suffix)
        if p.exists():
            data += p.read_bytes()
    return data


def jsonl(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in out.decode().splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("privacy")
    path = d / "facts.jsonl"
    write_files(FAMILIES, SEED, path, plant=True, expected_path=d / "expected.jsonl")
    lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
    niks, kks = identifiers(lines)
    assert len(niks) >= FAMILIES - 10 and len(kks) >= FAMILIES - 10
    return path, lines, niks, kks


# ---------------------------------------------------------------- store at rest


def test_no_clear_identifier_at_rest(store_url: str, make_settings, generated) -> None:
    path, lines, niks, kks = generated
    with Ledger.open(make_settings(store_url)) as ledger:
        summary = ledger.ingest_lines(iter(lines))
        assert summary.rejected == 0
        from jejak.reports import Reports

        Reports(ledger).anomalies()  # projections written too
        data = store_bytes(store_url)  # while open: the SQLite WAL still holds recent pages
    regions = {orjson.loads(ln).get("region") for ln in lines} - {None}
    # The scan can see fact content (non-personal fields are in clear) ...
    if store_url.startswith("postgresql://"):
        assert any(r.encode().hex().encode() in data or r.encode() in data for r in regions)
    else:
        assert any(r.encode() in data for r in regions)
    # ... and no NIK or KK of the input is there.
    assert not leaks(data, niks), "NIK in clear in the store"
    assert not leaks(data, kks), "KK in clear in the store"
    if not store_url.startswith("postgresql://"):
        after = store_bytes(store_url)  # after close (checkpointed)
        assert not leaks(after, niks | kks)


# ---------------------------------------------------------------------- erasure


def _victim(lines: list[bytes], expected_path: Path) -> str:
    """A NIK that is the recipient of a planted deceased/asn anomaly order."""
    facts = {f["id"]: f for f in map(orjson.loads, lines)}
    for raw in expected_path.read_bytes().splitlines():
        e = orjson.loads(raw)
        if e["rule"] in ("asn_recipient", "deceased_recipient") and facts.get(e["primary"], {}).get("nik"):
            return facts[e["primary"]]["nik"]
    raise AssertionError("no planted anomaly with a recipient NIK")


def test_erasure_crypto_shreds_one_person(store_url: str, tmp_path: Path, generated) -> None:
    path, lines, niks, kks = generated
    keys = tmp_path / "keys"
    nik = _victim(lines, path.parent / "expected.jsonl")
    s = ["--store", store_url]

    ing = jejak(tmp_path, keys, *s, "ingest", str(path))
    assert ing.returncode == 0, ing.stderr.decode()[-2000:]
    before = jsonl(jejak(tmp_path, keys, *s, "anomalies").stdout)
    assert before
    assert any(nik in json.dumps(a) or a["rule"] in ("asn_recipient", "deceased_recipient") for a in before)

    er = jejak(tmp_path, keys, *s, "erase", nik, "--order", "PN-Medan/2024/123")
    assert er.returncode == 0, er.stderr.decode()
    result = json.loads(er.stdout)
    assert result["already"] is False and result["erased"].startswith("tk1_")
    assert nik not in (er.stdout + er.stderr).decode()

    def check_gone(commands: list[list[str]]) -> dict[str, bytes]:
        ver = jejak(tmp_path, keys, *s, "verify")
        assert ver.returncode == 0, ver.stdout.decode() + ver.stderr.decode()
        outputs = {}
        for cmd in commands:
            res = jejak(tmp_path, keys, *s, *cmd)
            assert res.returncode == 0, (cmd, res.stderr.decode())
            assert nik.encode() not in res.stdout + res.stderr, f"erased NIK in `jejak {' '.join(cmd)}`"
            outputs[" ".join(cmd)] = res.stdout
        assert not leaks(store_bytes(store_url), {nik}), "erased NIK still in the store"
        # the erasure fact is in the export, naming only the token and the order
        erasures = [e for e in jsonl(outputs["export"]) if e["fact"]["type"] == "jejak.erasure"]
        assert len(erasures) == 1
        fact = erasures[0]["fact"]
        assert fact["subject"] == result["erased"] and fact["order"] == "PN-Medan/2024/123"
        assert nik.encode() not in base64.b64decode(erasures[0]["leaf"])
        # anomalies remain countable, rule by rule, and about the same primaries
        after = jsonl(outputs["anomalies"])
        assert Counter(a["rule"] for a in after) == Counter(a["rule"] for a in before)
        assert {a["primary"] for a in after if not a["primary"].startswith("nik:")} == {
            a["primary"] for a in before if not a["primary"].startswith("nik:")}
        return outputs

    check_gone([["export"], ["export", "--public"], ["balances"], ["anomalies"], ["anomalies", "--nik", nik]])
    # Re-delivery of the very same facts: all duplicates, the NIK does not come back.
    again = jejak(tmp_path, keys, *s, "ingest", str(path))
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert json.loads(again.stdout.decode().splitlines()[-1]) == {"accepted": 0, "duplicates": len(lines), "rejected": 0}
    assert nik.encode() not in again.stdout + again.stderr
    # ... nor does a rebuild of the projections.
    assert jejak(tmp_path, keys, *s, "rebuild").returncode == 0
    check_gone([["export"], ["anomalies"]])
    # Erasing again is idempotent.
    twice = jejak(tmp_path, keys, *s, "erase", nik, "--order", "PN-Medan/2024/123")
    assert twice.returncode == 0 and json.loads(twice.stdout)["already"] is True


# --------------------------------------------------------------------- wrong key


def _snapshot(store_url: str) -> dict[str, Any]:
    store = Store.open(store_url, create=False)
    try:
        out = {}
        for table, order in (("jejak_meta", "key"), ("jejak_subjects", "token"), ("jejak_log", "idx"),
                             ("jejak_positions", "name")):
            out[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in dict(r).values())
                          for r in store.query(f"SELECT * FROM {table} ORDER BY {order}")]
        return out
    finally:
        store.close()


SMALL = [
    {"id": "o-1", "type": "disbursement.ordered", "at": "2024-03-05T10:00:00+07:00",
     "source": {"kind": "kemensos", "id": "sp2d"}, "kk": "1275011104052510", "nik": "1275016708770229",
     "program": "PKH", "period": "2024-T1", "amount": 750000, "channel": "BRI"},
]
NEW_FACT = {**SMALL[0], "id": "o-2", "nik": "1275016708770230"}


def test_wrong_key_fails_clearly_and_writes_nothing(store_url: str, tmp_path: Path, make_settings) -> None:
    with Ledger.open(make_settings(store_url)) as ledger:
        ledger.record(SMALL)
    keys = tmp_path / "keys"
    before = _snapshot(store_url)

    other_keys = tmp_path / "other-keys"
    with pytest.raises(LedgerError, match="pseudonym key"):
        Ledger.open(Settings(store=store_url, keys_dir=other_keys))
    good_pseudonym = (keys / "pseudonym.key").read_bytes().hex()
    good_kek = (keys / "kek.key").read_bytes().hex()
    with pytest.raises(LedgerError, match="kek"):
        Ledger.open(Settings(store=store_url, keys_dir=other_keys, pseudonym_key=good_pseudonym, kek="11" * 32))
    assert _snapshot(store_url) == before

    facts = tmp_path / "new.jsonl"
    facts.write_bytes(orjson.dumps(NEW_FACT) + b"\n")
    for args, env in (
        (["ingest", str(facts)], cli_env(other_keys)),
        (["ingest", str(facts)], cli_env(tmp_path / "k3", JEJAK_PSEUDONYM_KEY=good_pseudonym, JEJAK_KEK="22" * 32)),
        (["export"], cli_env(other_keys)),
        (["erase", "1275016708770229", "--order", "x"], cli_env(other_keys)),
    ):
        res = jejak(tmp_path, keys, "--store", store_url, *args, env=env)
        err = res.stderr.decode()
        assert res.returncode == 1, (args, res.returncode, err)
        assert "Traceback" not in err and err.startswith("jejak: "), err
        assert "does not belong to this store" in err, err
        assert res.stdout == b"", res.stdout
        assert "1275016708770229" not in err
    assert _snapshot(store_url) == before
    # the right keys still work
    ok = jejak(tmp_path, keys, "--store", store_url, "balances")
    assert ok.returncode == 0 and b"1275011104052510" in ok.stdout


def test_prod_profile_without_keys(tmp_path: Path) -> None:
    empty = tmp_path / "empty-keys"
    empty.mkdir()
    db = tmp_path / "prod.db"
    res = jejak(tmp_path, empty, "--store", str(db), "ingest", "-", stdin=orjson.dumps(SMALL[0]),
                env=cli_env(empty, JEJAK_PROFILE="prod"))
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert "JEJAK_PSEUDONYM_KEY" in err and "Traceback" not in err, err
    assert not db.exists(), "nothing may be created without the keys"
    assert list(empty.iterdir()) == [], "the prod profile never creates secrets"
    res = jejak(tmp_path, empty, "--store", str(db), "ingest", "-", stdin=orjson.dumps(SMALL[0]),
                env=cli_env(empty, JEJAK_PROFILE="prod", JEJAK_PSEUDONYM_KEY="ab" * 32))
    err = res.stderr.decode()
    assert res.returncode == 1 and "JEJAK_KEK" in err and "Traceback" not in err, err
    assert not db.exists()
    assert list(empty.iterdir()) == []


# ------------------------------------------------------------- masked messages


def test_rejections_and_errors_never_print_a_full_nik(sqlite_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    nik, kk = "1275016708770229", "1275011104052510"
    base = SMALL[0]
    bad = [
        {**base, "id": "r1", "nik": nik[:15]},                       # 15 digits
        {**base, "id": "r2", "nik": nik + "1"},                      # 17 digits
        {**base, "id": "r3", "nik": nik[:-1] + "X"},                 # not digits
        {**base, "id": "r4", "kk": kk[:-1] + "Y"},                   # bad kk, good nik
        {**base, "id": "r5", "amount": 0},                           # good nik, bad amount
        {k: v for k, v in base.items() if k != "period"} | {"id": "r6"},   # missing field
        {**base, "id": "r7", "type": "disbursement.cancelled"},      # unknown type
        {**base, "id": "r8", "nik": int(nik)},                       # wrong type
        {**base, "id": "r9", "nik": " " + nik},                      # padded
        {**base, "id": "o-1", "amount": 1},                          # conflict with line 1
    ]
    text = b"".join(orjson.dumps(x) + b"\n" for x in [base, *bad]) + b'{"id": "j1", "nik": "' + nik.encode() + b'", \n'
    res = jejak(tmp_path, keys, "--store", sqlite_url, "ingest", "-", stdin=text)
    assert res.returncode == 3, res.stderr.decode()
    rejections = jsonl(res.stderr)
    assert len(rejections) == len(bad) + 1
    for r in rejections:
        assert set(r) >= {"line", "id", "error"}
    err = res.stderr.decode()
    assert not DIGITS16.search(err), f"a 16-digit run in the rejection report: {err}"
    assert nik[:15] not in err and kk[:15] not in err

    # Error messages of the commands mask the NIK too.
    unknown = "1275016708770001"
    e = jejak(tmp_path, keys, "--store", sqlite_url, "erase", unknown, "--order", "x")
    assert e.returncode == 1
    assert unknown not in e.stderr.decode() and "1275********0001" in e.stderr.decode(), e.stderr.decode()
    for arg in ("12345", nik + "9"):
        e = jejak(tmp_path, keys, "--store", sqlite_url, "erase", arg, "--order", "x")
        assert e.returncode == 1 and not DIGITS16.search(e.stderr.decode()) and "Traceback" not in e.stderr.decode()


# ------------------------------------------------------------------ public export


def test_public_export_has_no_16_digit_number(store_url: str, tmp_path: Path, generated) -> None:
    path, lines, niks, kks = generated
    keys = tmp_path / "keys"
    s = ["--store", store_url]
    assert jejak(tmp_path, keys, *s, "ingest", str(path)).returncode == 0
    res = jejak(tmp_path, keys, *s, "export", "--public")
    assert res.returncode == 0, res.stderr.decode()
    rows = jsonl(res.stdout)
    assert len(rows) == len(lines)

    def walk(v: Any) -> Iterable[str]:
        if isinstance(v, dict):
            for k, x in v.items():
                yield str(k)
                yield from walk(x)
        elif isinstance(v, list):
            for x in v:
                yield from walk(x)
        else:
            yield str(v)

    for row in rows:
        leaf = base64.b64decode(row["leaf"])
        assert not DIGITS16.search(leaf.decode()), row["index"]
        for text in walk(row["fact"]):
            assert not DIGITS16.search(text), (row["index"], text)
        assert orjson.loads(leaf)["fact"] == row["fact"]
    # index and chain hashes aside, nothing that looks like a 16-digit number stands alone
    assert not re.search(rb"(?<![0-9A-Za-z+/])[0-9]{16,}(?![0-9A-Za-z+/=])", res.stdout)
    assert not leaks(res.stdout, niks | kks)
    # the personal fields are tokens
    orders = [r["fact"] for r in rows if r["fact"]["type"] == "disbursement.ordered"]
    assert orders and all(o["nik"].startswith("tk1_") and o["kk"].startswith("tk1_") for o in orders)
