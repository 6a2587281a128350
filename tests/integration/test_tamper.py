"""Tamper evidence on both stores: direct SQL edits are caught by `jejak verify`,
and the offline `jejak audit …` commands accept honest material and reject edits.

Setup (once per backend): facts recorded through the real Ledger, then
`jejak checkpoint` and `jejak key` as real subprocesses. Each test works on a
clone of that store (SQLite file copy / PostgreSQL `CREATE DATABASE … TEMPLATE`)
and tampers straight in the tables. The commands under test run the real
`jejak` CLI in-process (typer's CliRunner: same code path, exit code and
output, minus ~0.6 s of interpreter start-up per call).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from jejak.audit.note import Signer
from jejak.cli import app
from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.settings import Settings
from jejak.store.datastore import Store
from tests.conftest import PG_HOST, PG_PORT, PG_USER, _admin_connect

JEJAK = [sys.executable, "-m", "jejak.cli"]
TAMPERED = 37  # the log index we tamper with


@dataclass(frozen=True)
class Pristine:
    kind: str
    store_url: str
    keys_dir: Path
    facts: Path
    size: int
    checkpoint: str
    key: str


def _subprocess_jejak(keys_dir: Path, store_url: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("JEJAK_STORE", None)
    env["JEJAK_KEYS_DIR"] = str(keys_dir)
    res = subprocess.run([*JEJAK, "--store", store_url, *args], env=env, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    return res


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pristine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pristine]:
    base = tmp_path_factory.mktemp(f"tamper-{request.param}")
    facts = base / "facts.jsonl"
    write_files(families=4, seed=3, out_path=facts)
    keys_dir = base / "keys"
    dbname = None
    if request.param == "sqlite":
        url = str(base / "pristine.db")
    else:
        request.getfixturevalue("pg_server")
        dbname = f"jejak_tamper_{uuid.uuid4().hex[:10]}"
        with _admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"
    try:
        led = Ledger.open(Settings(store=url, keys_dir=keys_dir))
        try:
            with facts.open("rb") as f:
                summary = led.ingest_lines(f)
            assert summary.rejected == 0
            size = led.store.log_size()
        finally:
            led.close()
        assert size > TAMPERED + 10
        checkpoint = _subprocess_jejak(keys_dir, url, "checkpoint").stdout.decode()
        key = _subprocess_jejak(keys_dir, url, "key").stdout.decode()
        yield Pristine(request.param, url, keys_dir, facts, size, checkpoint, key)
    finally:
        if dbname:
            with _admin_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@dataclass
class Env:
    tmp: Path
    store_url: str
    keys_dir: Path
    facts: Path
    size: int
    checkpoint: Path
    keyfile: Path

    def jejak(self, *args: str, stdin: bytes | None = None) -> Any:
        runner = CliRunner()
        env = {"JEJAK_KEYS_DIR": str(self.keys_dir), "JEJAK_STORE": None}
        result = runner.invoke(app, ["--store", self.store_url, *args], input=stdin, env=env, catch_exceptions=False)
        result.returncode = result.exit_code
        return result

    def store(self) -> Store:
        return Store.open(self.store_url, create=False)

    def sql(self, text: str, params: tuple = ()) -> None:
        store = self.store()
        try:
            with store.transaction(commit=True) as cursor:
                store.execute(cursor, text, params)
        finally:
            store.close()

    def query(self, text: str, params: tuple = ()) -> list[Any]:
        store = self.store()
        try:
            return store.query(text, params)
        finally:
            store.close()

    def assert_intact(self) -> dict:
        res = self.jejak("verify")
        assert res.returncode == 0, res.stdout + res.stderr
        out = json.loads(res.stdout)
        assert out["intact"] is True
        return out

    def assert_tampered(self, index: int | None) -> dict:
        res = self.jejak("verify")
        assert res.returncode == 1, res.stdout + res.stderr
        out = json.loads(res.stdout.strip().splitlines()[-1])
        assert out["intact"] is False
        if index is not None:
            assert out["index"] == index, out
            assert f"log index {index}" in res.stderr
        return out


@pytest.fixture
def env(pristine: Pristine, tmp_path: Path) -> Iterator[Env]:
    dbname = None
    if pristine.kind == "sqlite":
        url = str(tmp_path / "jejak.db")
        for suffix in ("", "-wal", "-shm"):
            src = Path(pristine.store_url + suffix)
            if src.exists():
                shutil.copy2(src, url + suffix)
    else:
        dbname = f"jejak_tamper_{uuid.uuid4().hex[:10]}"
        source = pristine.store_url.rsplit("/", 1)[1]
        with _admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{source}"')
        url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"
    cp, key = tmp_path / "cp.txt", tmp_path / "key.txt"
    cp.write_text(pristine.checkpoint)
    key.write_text(pristine.key)
    keys_dir = tmp_path / "keys"  # a clone of the store with its keys (and signer state)
    shutil.copytree(pristine.keys_dir, keys_dir)
    try:
        yield Env(tmp_path, url, keys_dir, pristine.facts, pristine.size, cp, key)
    finally:
        if dbname:
            with _admin_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def _oid_of(e: Env, index: int) -> Any:
    return e.query("SELECT originator_id FROM jejak_log WHERE idx = ?", (index,))[0]["originator_id"]


def _state_of(e: Env, index: int) -> bytes:
    rows = e.query(
        "SELECT state FROM stored_events WHERE originator_id = (SELECT originator_id FROM jejak_log WHERE idx = ?)",
        (index,),
    )
    assert len(rows) == 1
    return bytes(rows[0]["state"])


# ---------------------------------------------------------------- jejak verify


def test_untouched_store_verifies(env: Env) -> None:
    out = env.assert_intact()
    assert out["size"] == env.size and out["checkpoints"] == 1


def test_changed_event_state_is_caught_at_its_index(env: Env) -> None:
    original = _state_of(env, TAMPERED)
    obj = json.loads(original)
    obj["fact"]["at"] = obj["fact"]["at"].replace("T", "t")  # one byte, still a valid fact
    forged = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert forged != original and len(forged) == len(original)
    sql = "UPDATE stored_events SET state = ? WHERE originator_id = (SELECT originator_id FROM jejak_log WHERE idx = ?)"
    env.sql(sql, (forged, TAMPERED))
    env.assert_tampered(TAMPERED)
    env.sql(sql, (original, TAMPERED))
    env.assert_intact()


def test_changed_last_entry_is_caught(env: Env) -> None:
    last = env.size - 1
    original = _state_of(env, last)
    env.sql(
        "UPDATE stored_events SET state = ? WHERE originator_id = (SELECT originator_id FROM jejak_log WHERE idx = ?)",
        (original + b" ", last),
    )
    env.assert_tampered(last)


def test_deleted_event_row_is_caught_at_its_index(env: Env) -> None:
    env.sql(
        "DELETE FROM stored_events WHERE originator_id = (SELECT originator_id FROM jejak_log WHERE idx = ?)",
        (TAMPERED,),
    )
    out = env.assert_tampered(TAMPERED)
    assert "missing" in out["error"]


def test_deleted_log_row_is_caught_at_its_index(env: Env) -> None:
    env.sql("DELETE FROM jejak_log WHERE idx = ?", (TAMPERED,))
    env.assert_tampered(TAMPERED)


def test_event_inserted_outside_the_ledger_is_caught(env: Env) -> None:
    from uuid import uuid4

    store = env.store()
    try:
        oid: Any = uuid4() if store.is_postgres else uuid4().hex
    finally:
        store.close()
    env.sql("INSERT INTO stored_events (originator_id, originator_version, topic, state) VALUES (?, 1, 't', ?)", (oid, b"{}"))
    env.assert_tampered(env.size)


@pytest.mark.parametrize("column", ["chain", "leaf_hash", "state"])
def test_text_written_over_a_blob_is_caught_at_its_index(env: Env, column: str) -> None:
    """SQLite lets SQL store TEXT in a BLOB column (`SET chain = 'abc'`, or
    `replace()` on an event's bytes): still a mismatch at that index, not a crash."""
    sqlite = "postgresql" not in env.store_url  # on PostgreSQL 'abc' is read as bytea: bytes either way
    if column == "state":
        if sqlite:  # same characters, now TEXT: the bytes still hash the same
            env.sql("UPDATE stored_events SET state = CAST(state AS TEXT) "
                    "WHERE originator_id = (SELECT originator_id FROM jejak_log WHERE idx = ?)", (TAMPERED,))
            assert env.query("SELECT typeof(state) AS t FROM stored_events WHERE originator_id = "
                             "(SELECT originator_id FROM jejak_log WHERE idx = ?)", (TAMPERED,))[0]["t"] == "text"
            env.assert_intact()
        env.sql("UPDATE stored_events SET state = state || ' ' WHERE originator_id = "
                "(SELECT originator_id FROM jejak_log WHERE idx = ?)", (TAMPERED,))
    else:
        env.sql(f"UPDATE jejak_log SET {column} = 'abc' WHERE idx = ?", (TAMPERED,))
    out = env.assert_tampered(TAMPERED)
    assert "Traceback" not in out["error"]
    assert env.jejak("export").returncode in (0, 1)  # exports or refuses, never crashes


def test_pristine_store_is_streamed_without_the_join(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_join(*_: Any) -> Any:
        raise AssertionError("the log and the events table should have zipped in order")

    monkeypatch.setattr(Store, "_scan_log_joined", no_join)
    store = env.store()
    try:
        assert [r[0] for r in store.scan_log(env.size)] == list(range(env.size))
    finally:
        store.close()


def test_event_reinserted_out_of_order_still_verifies(env: Env) -> None:
    """verify streams the log and the events table side by side (events are
    appended in log order); an event moved to the end of the table, same
    bytes, breaks that order but not the log, and the join takes over."""
    row = env.query(
        "SELECT originator_id, originator_version, topic, state FROM stored_events "
        "WHERE originator_id = (SELECT originator_id FROM jejak_log WHERE idx = ?)", (TAMPERED,))[0]
    env.sql("DELETE FROM stored_events WHERE originator_id = ?", (row["originator_id"],))
    env.sql("INSERT INTO stored_events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)",
            (row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])))
    store = env.store()
    try:
        streamed = list(store.scan_log(env.size))
        assert streamed == list(store._scan_log_joined(0, env.size, 7))
        assert [r[0] for r in streamed] == list(range(env.size))
    finally:
        store.close()
    out = env.assert_intact()
    assert out["size"] == env.size


def test_modified_leaf_hash_is_caught(env: Env) -> None:
    """Level-0 nodes (leaf hashes) live in the log rows."""
    rows = env.query("SELECT leaf_hash FROM jejak_log WHERE idx = ?", (TAMPERED,))
    original = bytes(rows[0]["leaf_hash"])
    env.sql("UPDATE jejak_log SET leaf_hash = ? WHERE idx = ?", (bytes(32), TAMPERED))
    env.assert_tampered(TAMPERED)
    env.sql("UPDATE jejak_log SET leaf_hash = ? WHERE idx = ?", (original, TAMPERED))
    env.assert_intact()


@pytest.mark.parametrize("level,idx", [(4, TAMPERED // 16), (5, 0)])
def test_modified_merkle_node_is_caught(env: Env, level: int, idx: int) -> None:
    rows = env.query("SELECT hash FROM jejak_nodes WHERE level = ? AND idx = ?", (level, idx))
    assert rows, "node must exist"
    original = bytes(rows[0]["hash"])
    env.sql("UPDATE jejak_nodes SET hash = ? WHERE level = ? AND idx = ?", (bytes(32), level, idx))
    env.assert_tampered(idx << level)
    env.sql("UPDATE jejak_nodes SET hash = ? WHERE level = ? AND idx = ?", (original, level, idx))
    env.assert_intact()


def test_modified_checkpoint_root_is_caught(env: Env) -> None:
    env.sql("UPDATE jejak_checkpoints SET root = ? WHERE seq = 0", (bytes(32),))
    out = env.assert_tampered(None)
    assert "checkpoint" in out["error"]


def test_modified_checkpoint_note_is_caught(env: Env) -> None:
    note = env.query("SELECT note FROM jejak_checkpoints WHERE seq = 0")[0]["note"]
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) - 1)  # claim a smaller tree under the old signature
    env.sql("UPDATE jejak_checkpoints SET note = ?, size = ? WHERE seq = 0", ("\n".join(lines), int(lines[1])))
    env.assert_tampered(None)


def test_checkpoint_signed_by_unknown_key_is_rejected(env: Env) -> None:
    from jejak.audit.checkpoint import Checkpoint, sign_checkpoint

    row = env.query("SELECT size, root, key_id, created FROM jejak_checkpoints WHERE seq = 0")[0]
    origin = env.checkpoint.read_text().split("\n")[0]
    rogue = Signer.generate(origin)  # same name, other key
    note = sign_checkpoint(Checkpoint(origin, row["size"], bytes(row["root"])), rogue)
    env.sql(
        "INSERT INTO jejak_checkpoints (seq, size, root, note, key_id, created) VALUES (1, ?, ?, ?, ?, ?)",
        (row["size"], bytes(row["root"]), note, f"{rogue.key_id:08x}", row["created"]),
    )
    out = env.assert_tampered(None)
    assert "checkpoint #1" in out["error"]
    # and offline: the rogue note does not verify with the published key
    rogue_cp = env.tmp / "rogue.txt"
    rogue_cp.write_text(note)
    export = env.tmp / "export.jsonl"
    export.write_text(env.jejak("export").stdout)
    res = env.jejak("audit", "verify-export", str(export), "--checkpoint", str(rogue_cp), "--key", str(env.keyfile))
    assert res.returncode == 1


# ------------------------------------------------------------- offline audits


def test_export_edits_fail_verify_export(env: Env) -> None:
    res = env.jejak("export")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert len(lines) == env.size
    good = env.tmp / "good.jsonl"
    good.write_text("\n".join(lines) + "\n")
    ok = env.jejak("audit", "verify-export", str(good), "--checkpoint", str(env.checkpoint), "--key", str(env.keyfile))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["intact"] is True

    def failing(mutate) -> dict:
        changed = list(lines)
        changed[TAMPERED] = mutate(json.loads(changed[TAMPERED]))
        bad = env.tmp / "bad.jsonl"
        bad.write_text("\n".join(changed) + "\n")
        r = env.jejak("audit", "verify-export", str(bad), "--checkpoint", str(env.checkpoint), "--key", str(env.keyfile))
        assert r.returncode == 1, r.stdout + r.stderr
        return json.loads(r.stdout)

    def edit_leaf(entry: dict) -> str:
        leaf = bytearray(base64.b64decode(entry["leaf"]))
        leaf[len(leaf) // 2] ^= 0x01
        entry["leaf"] = base64.b64encode(bytes(leaf)).decode()
        return json.dumps(entry)

    assert failing(edit_leaf)["intact"] is False

    def edit_leaf_drop_chain(entry: dict) -> str:  # no chain to trip over: the root must catch it
        entry.pop("chain", None)
        return edit_leaf(entry)

    assert failing(edit_leaf_drop_chain)["intact"] is False

    # a missing line (the rest shifted) fails too
    shifted = lines[:TAMPERED] + lines[TAMPERED + 1 :]
    bad = env.tmp / "short.jsonl"
    bad.write_text("\n".join(shifted) + "\n")
    r = env.jejak("audit", "verify-export", str(bad), "--checkpoint", str(env.checkpoint), "--key", str(env.keyfile))
    assert r.returncode == 1


def test_export_fact_edit_without_leaf_edit_fails_verify_export(env: Env) -> None:
    lines = env.jejak("export").stdout.splitlines()
    entry = json.loads(lines[TAMPERED])
    entry["fact"]["at"] = "1999-01-01T00:00:00+07:00"
    lines[TAMPERED] = json.dumps(entry)
    bad = env.tmp / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = env.jejak("audit", "verify-export", str(bad), "--checkpoint", str(env.checkpoint), "--key", str(env.keyfile))
    assert r.returncode == 1


def test_prove_verifies_offline_at_checkpoint_size(env: Env) -> None:
    for index in (TAMPERED, env.size - 1):
        res = env.jejak("prove", str(index), "--size", str(env.size))
        assert res.returncode == 0, res.stderr.decode()
        proof = json.loads(res.stdout)
        pf = env.tmp / f"proof{index}.json"
        pf.write_text(json.dumps(proof))
        ok = env.jejak("audit", "verify-proof", str(pf), "--checkpoint", str(env.checkpoint), "--key", str(env.keyfile))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert json.loads(ok.stdout)["valid"] is True
    # a forged proof fails
    proof["proof"][0] = "00" * 32
    pf.write_text(json.dumps(proof))
    bad = env.jejak("audit", "verify-proof", str(pf), "--checkpoint", str(env.checkpoint), "--key", str(env.keyfile))
    assert bad.returncode == 1
    # a proof for another tree size does not match the checkpoint
    res = env.jejak("prove", "3", "--size", str(env.size - 1))
    pf.write_text(res.stdout)
    bad = env.jejak("audit", "verify-proof", str(pf), "--checkpoint", str(env.checkpoint), "--key", str(env.keyfile))
    assert bad.returncode == 1


def test_consistency_between_checkpoints(env: Env) -> None:
    old_cp = env.checkpoint
    more = env.tmp / "more.jsonl"
    write_files(families=2, seed=99, out_path=more)
    # seed 99 reuses some ids with other content (conflicts) — keep only new ids
    known = {json.loads(l)["id"] for l in env.facts.read_text().splitlines() if l.strip()}
    fresh = [l for l in more.read_text().splitlines() if l.strip() and json.loads(l)["id"] not in known]
    assert fresh
    ing = env.jejak("ingest", "-", stdin=("\n".join(fresh) + "\n").encode())
    assert ing.returncode == 0, ing.stderr[-2000:]
    new = env.jejak("checkpoint")
    assert new.returncode == 0
    new_cp = env.tmp / "cp2.txt"
    new_cp.write_text(new.stdout)
    new_size = int(new.stdout.split("\n")[1])
    assert new_size == env.size + len(fresh)

    res = env.jejak("consistency", str(env.size), str(new_size))
    assert res.returncode == 0, res.stderr.decode()
    proof = json.loads(res.stdout)
    assert (proof["size1"], proof["size2"]) == (env.size, new_size)
    pf = env.tmp / "consistency.json"
    pf.write_text(json.dumps(proof))
    ok = env.jejak("audit", "verify-consistency", str(pf), "--old", str(old_cp), "--new", str(new_cp), "--key", str(env.keyfile))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["consistent"] is True
    # swapping old and new fails
    bad = env.jejak("audit", "verify-consistency", str(pf), "--old", str(new_cp), "--new", str(old_cp), "--key", str(env.keyfile))
    assert bad.returncode == 1
    # both checkpoints are stored and the whole store still verifies
    assert env.assert_intact()["checkpoints"] == 2


def test_export_with_chain_names_the_edited_line(env: Env) -> None:
    res = env.jejak("export", "--with-chain")
    lines = res.stdout.splitlines()
    entry = json.loads(lines[TAMPERED])
    assert len(bytes.fromhex(entry["chain"])) == 32
    leaf = bytearray(base64.b64decode(entry["leaf"]))
    leaf[len(leaf) // 2] ^= 0x01
    entry["leaf"] = base64.b64encode(bytes(leaf)).decode()
    lines[TAMPERED] = json.dumps(entry)
    bad = env.tmp / "bad-chain.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = env.jejak("audit", "verify-export", str(bad), "--checkpoint", str(env.checkpoint), "--key", str(env.keyfile))
    assert r.returncode == 1
    assert json.loads(r.stdout)["index"] == TAMPERED


# ------------------------------------------------------------ jejak checkpoint
# C2SP: a log never signs a checkpoint inconsistent with one it signed before.


def _fresh_facts(e: Env, seed: int) -> bytes:
    more = e.tmp / f"more-{seed}.jsonl"
    write_files(families=2, seed=seed, out_path=more)
    known = {json.loads(l)["id"] for l in e.facts.read_text().splitlines() if l.strip()}
    fresh = [l for l in more.read_text().splitlines() if l.strip() and json.loads(l)["id"] not in known]
    assert fresh
    return ("\n".join(fresh) + "\n").encode()


def _refused(e: Env, index: int | None) -> str:
    before = e.query("SELECT COUNT(*) AS n FROM jejak_checkpoints")[0]["n"]
    res = e.jejak("checkpoint")
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout == "" and "refusing to sign" in res.stderr and "Traceback" not in res.stderr, res.stderr
    if index is not None:
        assert f"first bad log index {index})" in res.stderr, res.stderr
    assert e.query("SELECT COUNT(*) AS n FROM jejak_checkpoints")[0]["n"] == before, "nothing signed"
    return res.stderr


def test_checkpoint_refuses_a_log_that_contradicts_the_last_checkpoint(env: Env) -> None:
    """A tree rewritten under the signed root (as a rewrite of an entry and of
    every hash above it would leave it): the stored tree no longer gives the
    signed root over the checkpoint's entries."""
    from jejak.audit.merkle import frontier_keys

    level, idx = max(k for k in frontier_keys(env.size) if k[0] >= 4)
    assert idx << level <= TAMPERED < (idx + 1) << level
    rows = env.query("SELECT hash FROM jejak_nodes WHERE level = ? AND idx = ?", (level, idx))
    env.sql("UPDATE jejak_nodes SET hash = ? WHERE level = ? AND idx = ?", (bytes(32), level, idx))
    err = _refused(env, env.size - 1)
    assert "checkpoint #0" in err
    env.sql("UPDATE jejak_nodes SET hash = ? WHERE level = ? AND idx = ?", (bytes(rows[0]["hash"]), level, idx))
    again = env.jejak("checkpoint")  # the same head: the same note again
    assert again.returncode == 0 and again.stdout == env.checkpoint.read_text()


def test_checkpoint_recomputes_every_entry_since_the_last_one(env: Env) -> None:
    ing = env.jejak("ingest", "-", stdin=_fresh_facts(env, 99))
    assert ing.returncode == 0, ing.stderr[-2000:]
    new_index = env.size + 1
    original = _state_of(env, new_index)
    forged = original.replace(b'"at":"', b'"at":"X', 1)
    sql = "UPDATE stored_events SET state = ? WHERE originator_id = (SELECT originator_id FROM jejak_log WHERE idx = ?)"
    env.sql(sql, (forged, new_index))
    _refused(env, new_index)
    env.sql(sql, (original, new_index))
    ok = env.jejak("checkpoint")
    assert ok.returncode == 0, ok.stderr
    assert int(ok.stdout.split("\n")[1]) > env.size
    assert env.assert_intact()["checkpoints"] == 2


def test_checkpoint_refuses_a_changed_tree_node_of_new_entries(env: Env) -> None:
    from jejak.audit.merkle import frontier_keys

    ing = env.jejak("ingest", "-", stdin=_fresh_facts(env, 98))
    assert ing.returncode == 0, ing.stderr[-2000:]
    size = env.query("SELECT size FROM jejak_head")[0]["size"]
    stored = [k for k in frontier_keys(size) if k[0] >= 4 and (k[1] + 1) << k[0] > env.size]
    assert stored, "a stored node over new entries"
    level, idx = stored[-1]
    env.sql("UPDATE jejak_nodes SET hash = ? WHERE level = ? AND idx = ?", (bytes(32), level, idx))
    _refused(env, size - 1)


def _jejak_with_keys(e: Env, keys_dir: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["--store", e.store_url, *args],
                                env={"JEJAK_KEYS_DIR": str(keys_dir), "JEJAK_STORE": None}, catch_exceptions=False)
    result.returncode = result.exit_code
    return result


def test_without_the_stores_keys_nothing_is_called_tampered_or_minted(env: Env) -> None:
    elsewhere = env.tmp / "other-keys"
    for args in (("verify",), ("checkpoint",), ("key",)):
        res = _jejak_with_keys(env, elsewhere, *args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "JEJAK_KEYS_DIR" in res.stderr or "key" in res.stderr, res.stderr
        assert "TAMPERED" not in res.stderr and "Traceback" not in res.stderr
    assert not (elsewhere / "checkpoint-keys.json").exists(), "no unrelated key was created"
    env.assert_intact()


def test_a_deleted_checkpoint_between_others_is_caught(env: Env) -> None:
    fresh = _fresh_facts(env, 97).splitlines(keepends=True)
    for part in (fresh[: len(fresh) // 2], fresh[len(fresh) // 2:]):
        ing = env.jejak("ingest", "-", stdin=b"".join(part))
        assert ing.returncode == 0, ing.stderr[-2000:]
        assert env.jejak("checkpoint").returncode == 0
    assert env.assert_intact()["checkpoints"] == 3
    env.sql("DELETE FROM jejak_checkpoints WHERE seq = 1")
    out = env.assert_tampered(None)
    assert "checkpoint number" in out["error"] and "expected 1, got 2" in out["error"], out
