"""The eventsourcing library's own application-recorder test cases, run against
our chained recorders (ChainedSQLiteRecorder, ChainedPostgresRecorder).

Our recorders must stay drop-in eventsourcing recorders: every library test
passes, and every event they stored through the plain library API
(`insert_events`) is also in our verifiable log — after each test the log is
checked end to end (hash chain over the stored states, Merkle nodes, gap-free
indexes, no event outside the log) with `Transparency.verify()`.

`eventsourcing.tests.postgres_utils` cannot be imported from the installed
wheel (it imports the repository-only `examples` package), so PostgreSQL setup
is done here: one fresh database per test, dropped afterwards.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

try:  # the test module imports eventsourcing.cipher, which needs pycryptodome
    import Crypto.Cipher  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover - only the cipher tests (not run here) use it
    import sys
    import types

    _crypto = types.ModuleType("Crypto")
    _cipher = types.ModuleType("Crypto.Cipher")
    _cipher.AES = None  # type: ignore[attr-defined]
    _crypto.Cipher = _cipher  # type: ignore[attr-defined]
    sys.modules.setdefault("Crypto", _crypto)
    sys.modules.setdefault("Crypto.Cipher", _cipher)

from eventsourcing.tests.persistence import (  # noqa: E402
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)

from jejak.settings import Settings
from jejak.store.datastore import Store
from jejak.store.recorders import ChainedPostgresRecorder, ChainedSQLiteRecorder
from jejak.transparency import Transparency
from tests.conftest import PG_HOST, PG_PORT, PG_USER, _admin_connect, postgres_available

REQUIRE_SERVICES = os.environ.get("JEJAK_REQUIRE_SERVICES") == "1"


def join_test_threads(before: set[threading.Thread]) -> None:
    """The library's concurrency tests leave reader threads finishing their last
    query after the test method returns; closing a datastore under them crashes
    the sqlite3/psycopg C code. Wait for them first."""
    for thread in threading.enumerate():
        if thread not in before and thread is not threading.current_thread() and not thread.daemon:
            thread.join(timeout=30)


def assert_log_intact(store_url: str, keys_dir: Path) -> dict[str, Any]:
    store = Store.open(store_url, create=False)
    try:
        result = Transparency(store, Settings(store=store_url, keys_dir=keys_dir)).verify()
        assert result["intact"] is True
        events = store.count_events()
        assert result["size"] == events == store.count_log_rows(), "every stored event must be in the log"
        idx = [r["idx"] for r in store.query("SELECT idx FROM jejak_log ORDER BY idx")]
        assert idx == list(range(events))
        if store.is_postgres:  # fact look-ups rely on it: notification id = log index + 1, whatever the path
            aligned = store.query_one(
                "SELECT COUNT(*) AS n FROM stored_events e JOIN jejak_log l ON l.idx = e.notification_id - 1 "
                "AND l.originator_id = e.originator_id AND l.originator_version = e.originator_version")["n"]
            assert aligned == events
        return result
    finally:
        store.close()


# ---------------------------------------------------------------------- SQLite


class _SQLiteSetup:
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.db_path = str(Path(self._tmp.name) / "events.db")
        self.datastores: list[SQLiteDatastore] = []
        self.threads_before = set(threading.enumerate())
        super().setUp()

    def create_recorder(self) -> ChainedSQLiteRecorder:
        datastore = SQLiteDatastore(db_name=self.db_path, lock_timeout=30)
        self.datastores.append(datastore)
        recorder = ChainedSQLiteRecorder(datastore)
        recorder.create_table()
        return recorder

    def tearDown(self) -> None:
        try:
            super().tearDown()
            join_test_threads(self.threads_before)
            for datastore in self.datastores:
                datastore.close()
            if Path(self.db_path).exists():
                self.verified = assert_log_intact(self.db_path, Path(self._tmp.name) / "keys")
        finally:
            self._tmp.cleanup()


class TestChainedSQLiteApplicationRecorder(_SQLiteSetup, ApplicationRecorderTestCase):
    pass


class TestChainedSQLiteNonInterleaving(_SQLiteSetup, NonInterleavingNotificationIDsBaseCase):
    insert_num = 500


# ------------------------------------------------------------------ PostgreSQL


class _PostgresSetup:
    def setUp(self) -> None:
        problem = postgres_available()
        if problem:
            if REQUIRE_SERVICES:
                self.fail(problem)
            self.skipTest(problem)
        self.dbname = f"jejak_es_{uuid.uuid4().hex[:12]}"
        with _admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        self.store_url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.dbname}"
        self._tmp = tempfile.TemporaryDirectory()
        self.datastores: list[PostgresDatastore] = []
        self.threads_before = set(threading.enumerate())
        super().setUp()

    def create_recorder(self) -> ChainedPostgresRecorder:
        datastore = PostgresDatastore(
            self.dbname, PG_HOST, PG_PORT, PG_USER, "", pool_size=4, max_overflow=10,
        )
        self.datastores.append(datastore)
        recorder = ChainedPostgresRecorder(datastore)
        recorder.create_table()
        return recorder

    def tearDown(self) -> None:
        try:
            super().tearDown()
            join_test_threads(self.threads_before)
            for datastore in self.datastores:
                datastore.close()
            self.verified = assert_log_intact(self.store_url, Path(self._tmp.name) / "keys")
        finally:
            self._tmp.cleanup()
            with _admin_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')


class TestChainedPostgresApplicationRecorder(_PostgresSetup, ApplicationRecorderTestCase):
    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestChainedPostgresNonInterleaving(_PostgresSetup, NonInterleavingNotificationIDsBaseCase):
    insert_num = 500


# ------------------------------------------- plain library API → our log, explicitly


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_plain_insert_events_are_chained(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Events with several versions per originator, inserted by the library API, are all in the log."""
    if backend == "sqlite":
        url = str(tmp_path / "plain.db")
        datastore: Any = SQLiteDatastore(db_name=url)
        recorder: Any = ChainedSQLiteRecorder(datastore)
    else:
        url = request.getfixturevalue("pg_url")
        dbname = url.rsplit("/", 1)[1]
        datastore = PostgresDatastore(dbname, PG_HOST, PG_PORT, PG_USER, "")
        recorder = ChainedPostgresRecorder(datastore)
    recorder.create_table()
    a, b = uuid.uuid4(), uuid.uuid4()
    batches = [
        [StoredEvent(a, 1, "t1", b"a1"), StoredEvent(a, 2, "t2", b"a2")],
        [StoredEvent(b, 1, "t1", b"b1")],
        [StoredEvent(a, 3, "t3", b"a3"), StoredEvent(b, 2, "t2", b"b2"), StoredEvent(b, 3, "t3", b"b3")],
    ]
    for batch in batches:
        recorder.insert_events(batch)
    datastore.close()
    result = assert_log_intact(url, tmp_path / "keys")
    assert result["size"] == 6
    store = Store.open(url, create=False)
    try:
        leaves = [leaf for _i, _fid, _chain, leaf, _topic in store.iter_log()]
    finally:
        store.close()
    assert leaves == [b"a1", b"a2", b"b1", b"a3", b"b2", b"b3"]
