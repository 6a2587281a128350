"""Brings read models up to date with the log (catch-up) or rebuilds them."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from jejak.projections.base import SettleProgress
from jejak.projections.readmodels import READ_MODELS, LogRecord, ReadModel
from jejak.store.datastore import Store
from jejak.store.leaf import decode_leaf

BATCH = 5000
#: jejak_positions row counting rebuilds (not a model position: no `projection.` prefix), so that a
#: long-running reader can tell its cached answers come from before a rebuild.
GENERATION = "rebuild.generation"
#: Refresh PostgreSQL planner statistics after a catch-up of at least this many entries.
ANALYZE_AFTER = 20000


class Projector:
    def __init__(self, store: Store, models: Sequence[ReadModel] = READ_MODELS) -> None:
        self.store = store
        self.models = tuple(models)
        self._created = False

    def ensure_tables(self) -> None:
        if self._created:
            return
        with self.store.schema_lock(), self.store.transaction(commit=True) as cursor:
            for model in self.models:
                for statement in model.create_statements(self.store):
                    cursor.execute(statement)
        self._created = True

    def lag(self) -> int:
        self.ensure_tables()
        size = self.store.log_size()
        return max(size - min(self.store.get_position(m.position_name) for m in self.models), 0)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply every log entry not yet applied; returns how many entries were read."""
        self.ensure_tables()
        size, start, _ = self.probe()
        if start >= size:
            return 0
        done = 0
        while start < size:
            stop = min(start + BATCH, size)
            records = [
                LogRecord(index, *decode_leaf(leaf))
                for index, _fid, _chain, leaf, _topic in self.store.read_log(start, stop)
                if leaf is not None
            ]
            self.apply_records(records, stop)
            done += stop - start
            if progress:
                progress(stop - start)
            start = stop
        if done >= ANALYZE_AFTER and self.store.is_postgres:
            # Bulk catch-up changes the read models' statistics a lot; without
            # fresh ones the planner picks parallel scans for one-family reads.
            with self.store.transaction(commit=True) as cursor:
                for model in self.models:
                    for table in model.tables:
                        cursor.execute(f"ANALYZE {table}")
        return done

    def settle(self, progress: SettleProgress | None = None) -> int:
        """Run the models' deferred work (re-evaluating the anomaly read
        model's dirty scopes); readers call it before reading such a model,
        and `jejak ingest` / `rebuild` after catching up, so the next reader
        finds nothing to do. Not part of catch_up, so a catch-up costs about
        what ingest does and work on a scope touched by many catch-ups is
        done once."""
        self.ensure_tables()
        return sum(model.settle(self.store, progress) for model in self.models)

    def probe(self, *extra: str) -> tuple[int, int, Any]:
        """(log size, lowest model position, extra scalar subqueries' row) in one query.

        The lowest position is 0 while any model has never run. `extra` are
        `(SELECT ...) AS name` columns a caller wants in the same round trip."""
        names = [m.position_name for m in self.models]
        marks = ", ".join("?" for _ in names)
        more = "".join(f", {column}" for column in extra)
        row = self.store.query_one(
            f"SELECT (SELECT size FROM jejak_head WHERE id = 1) AS size, "
            f"(SELECT COUNT(*) FROM jejak_positions WHERE name IN ({marks})) AS n, "
            f"(SELECT MIN(position) FROM jejak_positions WHERE name IN ({marks})) AS low{more}",
            (*names, *names),
        )
        low = row["low"] if row["n"] == len(names) and row["low"] is not None else 0
        return row["size"], low, row

    def apply_records(self, records: Sequence[LogRecord], stop: int) -> None:
        """Apply decoded log entries (up to index `stop`) to every model, each in its own transaction."""
        for model in self.models:
            self._apply(model, records, stop)

    def _apply(self, model: ReadModel, records: Sequence[LogRecord], stop: int) -> None:
        with self.store.transaction(commit=True) as cursor:
            position = self._lock_position(cursor, model)
            todo = [r for r in records if r.index >= position]
            if todo:
                model.apply(self.store, cursor, todo)
            if stop > position:
                self.store.set_position_in(cursor, model.position_name, stop)

    def _lock_position(self, cursor: Any, model: ReadModel) -> int:
        """Serialise appliers: two processes catching up never apply twice."""
        name = model.position_name
        self.store.execute(
            cursor,
            "INSERT INTO jejak_positions (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
            (name,),
        )
        if self.store.is_postgres:
            self.store.execute(cursor, "SELECT position FROM jejak_positions WHERE name = ? FOR UPDATE", (name,))
        else:
            self.store.execute(cursor, "UPDATE jejak_positions SET position = position WHERE name = ?", (name,))
            self.store.execute(cursor, "SELECT position FROM jejak_positions WHERE name = ?", (name,))
        return cursor.fetchone()["position"]

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Reset every model, replay the log from index 0 and settle, so the
        models read exactly as after an in-order catch-up; returns the number
        of entries replayed. (`jejak rebuild` calls the two steps itself, to
        show a progress bar for each.)"""
        replayed = self.replay(progress)
        self.settle()
        return replayed

    def replay(self, progress: Callable[[int], None] | None = None) -> int:
        """Reset every model and replay the log from index 0 (no settling)."""
        self.ensure_tables()
        with self.store.transaction(commit=True) as cursor:
            for model in self.models:
                self._lock_position(cursor, model)
                model.reset(self.store, cursor)
            self.store.execute(
                cursor,
                "INSERT INTO jejak_positions (name, position) VALUES (?, 1) ON CONFLICT (name) "
                "DO UPDATE SET position = jejak_positions.position + 1", (GENERATION,))
        return self.catch_up(progress)
