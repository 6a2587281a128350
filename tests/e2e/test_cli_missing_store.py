"""Only `ingest` and `init` create a store or keys (issue 17, item 2).

A mistyped store path or keys directory must never read as an empty, intact
store: every other command exits 2 naming what is missing and creates nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fresh_pg_database

JEJAK = [sys.executable, "-m", "jejak.cli"]
FACT = {"id": "o-1", "type": "disbursement.ordered", "at": "2024-03-05T10:00:00+07:00",
        "source": {"kind": "kemensos", "id": "sp2d"}, "kk": "1275011104052510", "nik": "1275016708770229",
        "program": "PKH", "period": "2024-T1", "amount": 750000, "channel": "BRI"}
READERS = [("verify",), ("balances",), ("anomalies",), ("export",), ("checkpoint",), ("prove", "0"),
           ("rebuild",), ("token", "list")]


def run(cwd: Path, *args: str, keys: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("JEJAK_STORE", "JEJAK_KEYS_DIR")}
    if keys is not None:
        env["JEJAK_KEYS_DIR"] = str(keys)
    return subprocess.run([*JEJAK, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=False,
                          timeout=120)


def assert_refused(r: subprocess.CompletedProcess, *names: str) -> None:
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, r.stdout, err)
    assert r.stdout == b"" and "Traceback" not in err, err
    for name in names:
        assert name in err, err


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_a_mistyped_sqlite_store_is_named_and_not_created(tmp_path: Path, args: tuple[str, ...]) -> None:
    typo = tmp_path / "jejk2.db"
    r = run(tmp_path, "--store", str(typo), *args)
    assert_refused(r, str(typo), "jejak init", "jejak ingest")
    assert sorted(tmp_path.iterdir()) == [], "nothing was created: neither the store nor its keys"


def test_a_command_from_another_folder_creates_no_default_store(tmp_path: Path) -> None:
    r = run(tmp_path, "balances")
    assert_refused(r, "jejak.db")
    assert not (tmp_path / "jejak.db").exists() and not (tmp_path / "jejak.db.keys").exists()


def test_init_creates_an_empty_store_that_verifies_and_is_kept(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    r = run(tmp_path, "--store", store, "init")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["size"] == 0
    made = {p.name for p in (tmp_path / "s.db.keys").iterdir()}
    vault = {name for name in made if name.startswith("vault-") and name.endswith(".key")}  # docs/privacy.md
    assert made - vault == {"pseudonym.key", "kek.key", "checkpoint-keys.json"} and len(vault) == 1, made
    v = run(tmp_path, "--store", store, "verify")
    assert v.returncode == 0 and json.loads(v.stdout) == {"intact": True, "size": 0, "checkpoints": 0}
    assert run(tmp_path, "--store", store, "ingest", "-", stdin=json.dumps(FACT).encode() + b"\n").returncode == 0
    again = run(tmp_path, "--store", store, "init")
    assert again.returncode == 0 and json.loads(again.stdout)["size"] == 1


def test_key_on_a_missing_store_makes_it_as_init_and_says_so(tmp_path: Path) -> None:
    """A witness is given the log's key before the log has entries (SPEC §7): `key` makes
    the store as `init` would, loudly, and the key then stays the store's."""
    store = tmp_path / "new.db"
    r = run(tmp_path, "--store", str(store), "key")
    assert r.returncode == 0, r.stderr
    assert "created an empty one" in r.stderr.decode() and str(store) in r.stderr.decode()
    vkey = r.stdout.decode().strip()
    assert vkey.startswith("jejak.local/bansos+") and store.is_file()
    again = run(tmp_path, "--store", str(store), "key")
    assert again.returncode == 0 and again.stdout.decode().strip() == vkey and again.stderr == b""
    assert run(tmp_path, "--store", str(store), "verify").returncode == 0


def test_a_missing_keys_directory_is_named_and_not_created(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    keys, typo = tmp_path / "keys", tmp_path / "kyes"
    assert run(tmp_path, "--store", store, "ingest", "-", keys=keys,
               stdin=json.dumps(FACT).encode() + b"\n").returncode == 0
    for args in (("balances",), ("checkpoint",), ("key",), ("token", "list")):
        assert_refused(run(tmp_path, "--store", store, *args, keys=typo), str(typo), "JEJAK_KEYS_DIR")
    assert not typo.exists()
    assert run(tmp_path, "--store", store, "balances", keys=keys).returncode == 0


def test_a_postgresql_database_without_jejak_tables_counts_as_missing(pg_server: str, tmp_path: Path) -> None:
    with fresh_pg_database() as url:
        for args in (("verify",), ("balances",)):
            assert_refused(run(tmp_path, "--store", url, *args, keys=tmp_path / "keys"), "no jejak tables", "jejak init")
        import psycopg

        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('jejak_log')").fetchone()[0] is None, "nothing was created"
        assert run(tmp_path, "--store", url, "init", keys=tmp_path / "keys").returncode == 0
        v = run(tmp_path, "--store", url, "verify", keys=tmp_path / "keys")
        assert v.returncode == 0 and json.loads(v.stdout)["size"] == 0


def test_a_missing_checkpoint_key_exits_2_for_checkpoint_and_key_alike(tmp_path: Path) -> None:
    store, keys = str(tmp_path / "s.db"), tmp_path / "keys"
    assert run(tmp_path, "--store", store, "ingest", "-", keys=keys,
               stdin=json.dumps(FACT).encode() + b"\n").returncode == 0
    assert not (keys / "checkpoint-keys.json").exists()
    env_prod = {"JEJAK_PROFILE": "prod"}
    outputs = []
    for args in (("checkpoint",), ("key",)):
        env = {**{k: v for k, v in os.environ.items() if k != "JEJAK_STORE"}, **env_prod, "JEJAK_KEYS_DIR": str(keys)}
        r = subprocess.run([*JEJAK, "--store", store, *args], cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert_refused(r, "jejak key --rotate")
        outputs.append(r.stderr)
    assert outputs[0] == outputs[1]
