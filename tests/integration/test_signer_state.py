"""The checkpoint signer's state beside its key: an insider who rolls the
database back (log rows, tree nodes, head and the newest checkpoint, all made
to agree) cannot get the key to sign the shorter log, and `jejak verify`
reports the rollback. On SQLite and PostgreSQL, through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jejak.cli import app
from jejak.generate import write_files
from jejak.signer_state import STATE_FILE
from jejak.store.datastore import Store

CUT = 3  # entries the insider removes from the end of the log


def _jejak(store_url: str, keys_dir: Path, *args: str, stdin: bytes | None = None):
    return CliRunner().invoke(app, ["--store", store_url, *args], input=stdin,
                              env={"JEJAK_KEYS_DIR": str(keys_dir), "JEJAK_STORE": None}, catch_exceptions=False)


def _sql(store_url: str, *statements: tuple[str, tuple]) -> None:
    store = Store.open(store_url, create=False)
    try:
        with store.transaction(commit=True) as cursor:
            for text, params in statements:
                store.execute(cursor, text, params)
    finally:
        store.close()


def _roll_back(store_url: str, keep: int) -> None:
    """Cut the log to its first `keep` entries and drop the newest checkpoint, leaving
    a database that agrees with itself."""
    store = Store.open(store_url, create=False)
    try:
        chain = store.chain_at(keep - 1)
        newest = store.query_one("SELECT MAX(seq) AS seq FROM jejak_checkpoints")["seq"]
    finally:
        store.close()
    _sql(store_url,
         ("DELETE FROM stored_events WHERE originator_id IN (SELECT originator_id FROM jejak_log WHERE idx >= ?)",
          (keep,)),
         ("DELETE FROM jejak_log WHERE idx >= ?", (keep,)),
         ("DELETE FROM jejak_nodes WHERE (idx + 1) * (1 << level) > ?", (keep,)),
         ("UPDATE jejak_head SET size = ?, chain = ? WHERE id = 1", (keep, chain)),
         ("DELETE FROM jejak_checkpoints WHERE seq = ?", (newest,)))


def _head(note: str) -> tuple[int, str]:
    lines = note.split("\n")
    return int(lines[1]), lines[2]


def test_rolled_back_database_is_neither_signed_nor_verified(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    facts = tmp_path / "facts.jsonl"
    write_files(families=3, seed=11, out_path=facts)
    lines = facts.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    assert _jejak(store_url, keys, "ingest", "-", stdin=b"".join(lines[:half])).exit_code == 0
    first = _jejak(store_url, keys, "checkpoint")
    assert first.exit_code == 0, first.stderr
    assert _jejak(store_url, keys, "ingest", "-", stdin=b"".join(lines[half:])).exit_code == 0
    second = _jejak(store_url, keys, "checkpoint")
    assert second.exit_code == 0, second.stderr
    (size1, _root1), (size2, root2) = _head(first.stdout), _head(second.stdout)
    assert size2 - CUT > size1
    state = json.loads((keys / STATE_FILE).read_text())
    assert {k: v["size"] for k, v in state.items()} == {"jejak.local/bansos": size2}

    _roll_back(store_url, size2 - CUT)

    # the database on its own agrees with itself: without the state, nothing would show
    hidden = tmp_path / "hidden-state.json"
    shutil.move(keys / STATE_FILE, hidden)
    alone = _jejak(store_url, keys, "verify")
    assert alone.exit_code == 0, alone.stdout + alone.stderr
    shutil.move(hidden, keys / STATE_FILE)

    refused = _jejak(store_url, keys, "checkpoint")
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert refused.stdout == ""
    err = refused.stderr
    assert "rolled back" in err and f"size {size2} root" in err and f"size {size2 - CUT} root" in err, err
    import base64
    assert base64.b64decode(root2).hex() in err, err  # both roots are named
    store = Store.open(store_url, create=False)
    try:
        assert store.query_one("SELECT COUNT(*) AS n FROM jejak_checkpoints")["n"] == 1, "nothing was signed"
    finally:
        store.close()

    verify = _jejak(store_url, keys, "verify")
    assert verify.exit_code == 1, verify.stdout + verify.stderr
    out = json.loads(verify.stdout.strip().splitlines()[-1])
    assert out["intact"] is False and "rolled back" in out["error"] and out["index"] == size2 - CUT, out
    assert "TAMPERED" in verify.stderr


def test_a_store_from_before_the_state_starts_it_from_its_latest_checkpoint(sqlite_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    facts = tmp_path / "facts.jsonl"
    write_files(families=2, seed=5, out_path=facts)
    assert _jejak(sqlite_url, keys, "ingest", str(facts)).exit_code == 0
    first = _jejak(sqlite_url, keys, "checkpoint")
    assert first.exit_code == 0
    (keys / STATE_FILE).unlink()  # as a keys dir made before the state existed
    assert _jejak(sqlite_url, keys, "verify").exit_code == 0
    again = _jejak(sqlite_url, keys, "checkpoint")
    assert again.exit_code == 0 and again.stdout == first.stdout
    size, root = _head(first.stdout)
    state = json.loads((keys / STATE_FILE).read_text())["jejak.local/bansos"]
    assert (state["size"], state["root"]) == (size, root)
    # a rollback below that checkpoint is now refused even though the database agrees with itself
    _roll_back(sqlite_url, size - CUT)
    refused = _jejak(sqlite_url, keys, "checkpoint")
    assert refused.exit_code == 1 and "rolled back" in refused.stderr, refused.stderr


def test_state_file_is_replaced_atomically(sqlite_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    facts = tmp_path / "facts.jsonl"
    write_files(families=1, seed=2, out_path=facts)
    assert _jejak(sqlite_url, keys, "ingest", str(facts)).exit_code == 0
    assert _jejak(sqlite_url, keys, "checkpoint").exit_code == 0
    assert not [p.name for p in keys.iterdir() if p.name.endswith((".tmp", ".new"))]
    assert json.loads((keys / STATE_FILE).read_text())


def test_unreadable_state_is_never_silently_replaced(sqlite_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    facts = tmp_path / "facts.jsonl"
    write_files(families=1, seed=2, out_path=facts)
    assert _jejak(sqlite_url, keys, "ingest", str(facts)).exit_code == 0
    assert _jejak(sqlite_url, keys, "checkpoint").exit_code == 0
    (keys / STATE_FILE).write_text("{not json")
    res = _jejak(sqlite_url, keys, "checkpoint")
    assert res.exit_code == 1 and "restore it from backup" in res.stderr, res.stderr
    assert (keys / STATE_FILE).read_text() == "{not json"


def test_unwritable_state_signs_nothing_and_names_the_fix(sqlite_url: str, tmp_path: Path) -> None:
    import os

    keys = tmp_path / "keys"
    facts = tmp_path / "facts.jsonl"
    write_files(families=1, seed=2, out_path=facts)
    assert _jejak(sqlite_url, keys, "ingest", str(facts)).exit_code == 0
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state directory should be")
    res = CliRunner().invoke(app, ["--store", sqlite_url, "checkpoint"], catch_exceptions=False,
                             env={"JEJAK_KEYS_DIR": str(keys), "JEJAK_STORE": None,
                                  "JEJAK_SIGNER_STATE_DIR": str(blocked / "state")})
    assert res.exit_code == 2 and "JEJAK_SIGNER_STATE_DIR" in res.stderr, res.stderr
    store = Store.open(sqlite_url, create=False)
    try:
        assert store.query_one("SELECT COUNT(*) AS n FROM jejak_checkpoints")["n"] == 0
    finally:
        store.close()
    elsewhere = tmp_path / "state"
    ok = CliRunner().invoke(app, ["--store", sqlite_url, "checkpoint"], catch_exceptions=False,
                            env={"JEJAK_KEYS_DIR": str(keys), "JEJAK_STORE": None,
                                 "JEJAK_SIGNER_STATE_DIR": str(elsewhere)})
    assert ok.exit_code == 0 and (elsewhere / STATE_FILE).exists() and not (keys / STATE_FILE).exists()
    assert os.stat(elsewhere / STATE_FILE).st_mode & 0o077 == 0
