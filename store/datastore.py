"""Opening a store: the eventsourcing datastore plus our chained recorder."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from jejak.store.recorders import ChainedPostgresRecorder, ChainedSQLiteRecorder, LogAppender, blob
from jejak.store.url import StoreURL, parse_store_url


class StoreError(RuntimeError):
    pass


class StoreMissing(StoreError):
    """No jejak store where one was named: only `ingest` and `init` create one."""

    def __init__(self, url: StoreURL, what: str) -> None:
        super().__init__(
            f"no jejak store at {url.path if url.kind == 'sqlite' else url.describe()} ({what}): "
            "check --store / JEJAK_STORE, or create it with `jejak ingest FILE` or `jejak init`")


def _sqlite_has_log(path: str) -> bool:
    """Whether an SQLite file holds jejak's log table (read-only: creates nothing)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jejak_log'"
                                ).fetchone() is not None
    except sqlite3.DatabaseError:
        return False


def _secure_delete_on(pool: Any) -> None:
    """Every SQLite connection of the pool overwrites deleted content with
    zeros (`PRAGMA secure_delete`), so a destroyed sealed key or value does
    not linger in the file's free pages (set explicitly: builds differ in
    their default)."""
    create = pool._create_connection

    def create_secure() -> Any:
        connection = create()
        connection._sqlite_conn.execute("PRAGMA secure_delete = ON")
        return connection

    pool._create_connection = create_secure


def check_store_location(store: str) -> StoreURL:
    """The parsed store URL, if an SQLite store's directory exists (nothing is created here)."""
    url = parse_store_url(store)
    if url.kind == "sqlite" and url.path != ":memory:":
        parent = Path(url.path).resolve().parent
        if not parent.is_dir():
            raise StoreError(f"cannot open store {url.path}: directory {parent} does not exist")
    return url


def _probe_postgres(url: StoreURL) -> bool:
    """Connect once, so that a wrong host, port, user or database is told at
    once in the server's words (the library's pool would only time out);
    returns whether the database holds jejak's log table."""
    import psycopg

    try:
        with psycopg.connect(
            dbname=url.dbname, host=url.host, port=url.port, user=url.user, password=url.password or None,
            connect_timeout=10, autocommit=True,
        ) as conn:
            return bool(conn.execute("SELECT to_regclass('jejak_log') IS NOT NULL").fetchone()[0])
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        fix = (f"create it first, e.g. `createdb {url.dbname}`" if f'database "{url.dbname}" does not exist' in reason
               else "check --store / JEJAK_STORE and that PostgreSQL is running there")
        raise StoreError(f"cannot open store {url.describe()}: {reason} ({fix})") from None


class Store:
    """One event store (SQLite file or PostgreSQL database) and its log tables."""

    def __init__(self, url: StoreURL, recorder: LogAppender, datastore: Any) -> None:
        self.url = url
        self.recorder = recorder
        self.datastore = datastore

    @property
    def is_postgres(self) -> bool:
        return self.url.kind == "postgresql"

    @classmethod
    def open(cls, store: str, *, create: bool = True, must_exist: bool = False) -> "Store":
        """Open a store (`create`: its tables, when missing). With `must_exist`, a
        store that does not exist yet (no file, or no jejak tables in the file or
        database) raises StoreMissing and nothing is created."""
        url = check_store_location(store)
        if url.kind == "sqlite" and must_exist and url.path != ":memory:":
            if not Path(url.path).is_file():
                raise StoreMissing(url, "no such file")
            if not _sqlite_has_log(url.path):
                raise StoreMissing(url, "the file holds no jejak tables")
        if url.kind == "sqlite":
            datastore: Any = SQLiteDatastore(url.path, lock_timeout=30)
            _secure_delete_on(datastore.pool)
            recorder: LogAppender = ChainedSQLiteRecorder(datastore)
        else:
            if not _probe_postgres(url) and must_exist:
                raise StoreMissing(url, "the database holds no jejak tables")
            datastore = PostgresDatastore(
                url.dbname, url.host, url.port, url.user, url.password,
                pool_size=2, max_overflow=4, connect_timeout=10,
                # No pool_open_timeout: with one set, every get_connection waits
                # until min_size connections are idle, which stalls any code
                # that holds a connection while asking for another.
            )
            recorder = ChainedPostgresRecorder(datastore)
        self = cls(url, recorder, datastore)
        if create:  # also the tables a newer jejak added to an existing store
            try:
                with self.schema_lock():
                    recorder.create_table()  # type: ignore[attr-defined]
            except Exception as exc:
                raise StoreError(f"cannot open store {url.describe()}: {exc}") from exc
        return self

    #: pg_advisory_lock key serialising schema creation (CREATE ... IF NOT EXISTS
    #: is not safe against a concurrent creator on PostgreSQL).
    SCHEMA_LOCK_KEY = 0x6A656A616B

    @contextlib.contextmanager
    def schema_lock(self) -> Iterator[None]:
        if not self.is_postgres:
            yield
            return
        import psycopg

        # A connection of its own: the datastore's pool waits for all its
        # min_size connections to be idle on first use, so holding one of its
        # connections here would stall create_table().
        u = self.url
        with psycopg.connect(
            dbname=u.dbname, host=u.host, port=u.port, user=u.user, password=u.password or None,
            autocommit=True, connect_timeout=10,
        ) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (self.SCHEMA_LOCK_KEY,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self.SCHEMA_LOCK_KEY,))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.datastore.close()

    # -- transactions ----------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor

    def sql(self, text: str) -> str:
        return self.recorder.sql(text)

    def execute(self, cursor: Any, text: str, params: Sequence[Any] = ()) -> Any:
        cursor.execute(self.sql(text), tuple(params))
        return cursor

    @contextlib.contextmanager
    def reading(self) -> Iterator[Any]:
        """A cursor for reads only.

        PostgreSQL: the pool's connections are in autocommit mode, so no
        BEGIN/ROLLBACK round trips (two of three for a one-statement read);
        each statement sees its own snapshot, exactly as inside a READ
        COMMITTED transaction. SQLite: a read transaction (one snapshot).
        """
        if not self.is_postgres:
            with self.transaction(commit=False) as cursor:
                yield cursor
            return
        with self.datastore.get_connection() as conn:
            if not conn.autocommit:  # not eventsourcing's pool setup: fall back to a transaction
                with conn.transaction(force_rollback=True), conn.cursor() as cursor:
                    yield cursor
                return
            with conn.cursor() as cursor:
                yield cursor

    def query(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.reading() as cursor:
            cursor.execute(self.sql(text), tuple(params))
            return list(cursor.fetchall())

    def query_one(self, text: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(text, params)
        return rows[0] if rows else None

    # -- log reads ---------------------------------------------------------------
    def head(self) -> tuple[int, bytes]:
        with self.transaction(commit=False) as cursor:
            return self.recorder.read_head(cursor)

    def log_size(self) -> int:
        return self.head()[0]

    LogRow = tuple[int, str, bytes, "bytes | None", "str | None"]

    def log_with_events_sql(self) -> str:
        """FROM clause: each log row (`l`) with its stored event (`e`), if any."""
        table = self.recorder.events_table_name  # type: ignore[attr-defined]
        return (f"FROM jejak_log l LEFT JOIN {table} e "
                f"ON e.originator_id = l.originator_id AND e.originator_version = l.originator_version")

    def _select_log(self, where: str, params: Sequence[Any]) -> list[LogRow]:
        rows = self.query(
            f"SELECT l.idx AS idx, l.fact_id AS fact_id, l.chain AS chain, e.state AS state, e.topic AS topic "
            f"{self.log_with_events_sql()} WHERE {where} ORDER BY l.idx",
            params,
        )
        return [
            (r["idx"], r["fact_id"], blob(r["chain"]), blob(r["state"]) if r["state"] is not None else None, r["topic"])
            for r in rows
        ]

    def read_log(self, start: int, stop: int) -> list[LogRow]:
        """Entries [start, stop): (index, fact_id, chain, leaf or None if missing, topic)."""
        return self._select_log("l.idx >= ? AND l.idx < ?", (start, stop))

    def read_log_at(self, indices: Sequence[int]) -> list[LogRow]:
        """The entries at the given indices, in log order."""
        if not indices:
            return []
        return self._select_log(f"l.idx IN ({', '.join('?' for _ in indices)})", [int(i) for i in indices])

    def iter_log(self, start: int = 0, stop: int | None = None, batch: int = 5000) -> Iterator[LogRow]:
        stop = self.log_size() if stop is None else stop
        pos = start
        while pos < stop:
            rows = self.read_log(pos, min(pos + batch, stop))
            if not rows:
                return
            yield from rows
            pos = rows[-1][0] + 1

    ScanRow = tuple[int, str, bytes, bytes, "bytes | None"]

    def scan_log(self, size: int, batch: int = 10000) -> Iterator[ScanRow]:
        """Entries [0, size) in log order, streamed, for a full check:
        (index, fact_id, chain, leaf hash, leaf or None if its event is missing).

        Events are appended in log order, so two sequential scans zipped
        (jejak_log by index, the events table by insertion order) stand in for
        a join that would probe the events index once per entry (about half
        of a full verify's time at 1M entries on PostgreSQL). From the first
        pair that does not match (a row deleted or inserted behind the
        ledger's back) the rest comes from the join, which names exactly what
        is missing."""
        table = self.recorder.events_table_name  # type: ignore[attr-defined]
        order = "notification_id" if self.is_postgres else "rowid"
        resume = 0
        with self.transaction(commit=False) as cursor:
            log_rows, events = self._scan_cursors(cursor, batch)
            log_rows.execute(self.sql(
                "SELECT idx, fact_id, chain, leaf_hash, originator_id, originator_version FROM jejak_log "
                "WHERE idx < ? ORDER BY idx"), (size,))
            events.execute(f"SELECT originator_id, originator_version, state FROM {table} ORDER BY {order}")
            next_event = iter(events).__next__
            try:
                for idx, fact_id, chain, leaf_hash, oid, version in log_rows:
                    oid_e, version_e, state = next_event()
                    if oid_e != oid or version_e != version:
                        break
                    resume = idx + 1
                    yield idx, fact_id, blob(chain), blob(leaf_hash), None if state is None else blob(state)
                else:
                    return
            except StopIteration:  # fewer events than entries
                pass
        yield from self._scan_log_joined(resume, size, batch)

    def scan_log_from(self, start: int, size: int, batch: int = 10000) -> Iterator[ScanRow]:
        """Entries [start, size), as `scan_log` gives them."""
        if start == 0:
            return self.scan_log(size, batch)
        return self._scan_log_joined(start, size, batch)

    def chain_at(self, index: int) -> bytes | None:
        """The stored chain hash of log entry `index`, if the entry is there."""
        row = self.query_one("SELECT chain FROM jejak_log WHERE idx = ?", (index,))
        return None if row is None else blob(row["chain"])

    def _scan_cursors(self, cursor: Any, batch: int) -> tuple[Any, Any]:
        """Two cursors streaming rows as tuples in the transaction of ``cursor``."""
        if self.is_postgres:
            conn = cursor.connection
            from psycopg.rows import tuple_row

            pair = (conn.cursor(name="jejak_scan_log", row_factory=tuple_row),
                    conn.cursor(name="jejak_scan_events", row_factory=tuple_row))
            for c in pair:
                c.itersize = batch
            return pair
        conn = cursor.sqlite_cursor.connection  # eventsourcing's SQLiteCursor wraps sqlite3's
        pair = (conn.cursor(), conn.cursor())
        for c in pair:
            c.row_factory = None
            c.arraysize = batch
        return pair

    def _scan_log_joined(self, start: int, size: int, batch: int) -> Iterator[ScanRow]:
        while start < size:
            rows = self.query(
                f"SELECT l.idx AS idx, l.fact_id AS fact_id, l.chain AS chain, l.leaf_hash AS leaf_hash, "
                f"e.state AS state {self.log_with_events_sql()} "
                f"WHERE l.idx >= ? AND l.idx < ? ORDER BY l.idx LIMIT {batch}",
                (start, size),
            )
            if not rows:
                return
            for r in rows:
                state = r["state"]
                yield r["idx"], r["fact_id"], blob(r["chain"]), blob(r["leaf_hash"]), \
                    None if state is None else blob(state)
            start = rows[-1]["idx"] + 1

    def leaves_naming(self, cursor: Any, needles: Sequence[str]) -> list[bytes]:
        """Every stored leaf holding one of `needles` (tokens), by a full scan: an erasure's search."""
        table = self.recorder.events_table_name  # type: ignore[attr-defined]
        test = "position(%s::bytea in state) > 0" if self.is_postgres else "instr(state, ?) > 0"
        cursor.execute(f"SELECT state FROM {table} WHERE " + " OR ".join(test for _ in needles),
                       [needle.encode() for needle in needles])
        return [blob(row["state"]) for row in cursor.fetchall()]

    def count_log_rows(self) -> int:
        return self.query_one("SELECT COUNT(*) AS n FROM jejak_log")["n"]

    def count_events(self) -> int:
        table = self.recorder.events_table_name  # type: ignore[attr-defined]
        return self.query_one(f"SELECT COUNT(*) AS n FROM {table}")["n"]

    def node_reader(self) -> "StoreNodeReader":
        return StoreNodeReader(self)

    def index_of(self, fact_id: str) -> int | None:
        with self.reading() as cursor:
            return self.recorder.index_of(cursor, fact_id)

    # -- meta and positions ------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.query_one("SELECT value FROM jejak_meta WHERE key = ?", (key,))
        return None if row is None else row["value"]

    def set_meta_once(self, key: str, value: str) -> str:
        """Store value unless one is stored; returns the stored value."""
        with self.transaction(commit=True) as cursor:
            self.execute(cursor, "INSERT INTO jejak_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            self.execute(cursor, "SELECT value FROM jejak_meta WHERE key = ?", (key,))
            return cursor.fetchone()["value"]

    def get_position(self, name: str) -> int:
        row = self.query_one("SELECT position FROM jejak_positions WHERE name = ?", (name,))
        return 0 if row is None else row["position"]

    def set_position_in(self, cursor: Any, name: str, position: int) -> None:
        self.execute(
            cursor,
            "INSERT INTO jejak_positions (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (name, position),
        )

    def set_position(self, name: str, position: int) -> None:
        with self.transaction(commit=True) as cursor:
            self.set_position_in(cursor, name, position)


class StoreNodeReader:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        with self.store.transaction(commit=False) as cursor:
            return self.store.recorder.read_nodes(cursor, keys)


def oid_key(oid: UUID | str) -> str:
    return oid.hex if isinstance(oid, UUID) else UUID(str(oid)).hex
