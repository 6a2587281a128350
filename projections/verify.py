"""Read models checked against the log: re-derive every model from the log into a
scratch SQLite database and compare it, table by table and row by row, with the
store's own tables.

The log is tamper-evident (chain, Merkle tree, signed checkpoints); read models
are not: a deleted anomaly row or a raised `picked_up` total changes answers
while `jejak verify` of the log stays intact. :func:`verify_read_models` closes
that gap: it raises :class:`ReadModelMismatch` naming the first table and key
that differ.

The store's tables are read in one snapshot (REPEATABLE READ on PostgreSQL,
one read transaction on SQLite) together with the models' position P, and the
log is replayed up to P, so facts recorded meanwhile never look like tampering.
`p_anomaly_cache` (answers of `anomalies --as-of`) is checked by evaluating
each cached query again with the pure engine over the re-derived facts.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import orjson

from jejak.audit.errors import VerificationError
from jejak.projections.base import LogRecord
from jejak.projections.engine import Thresholds, evaluate_anomalies
from jejak.projections.readmodels import READ_MODELS, ReadModel, load_fact_rows
from jejak.projections.runner import BATCH, Projector
from jejak.store.datastore import Store
from jejak.store.leaf import decode_leaf

#: Each read-model table's key (a row is named by it in a mismatch).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "p_facts": ("idx",),
    "p_orders": ("order_id",),
    "p_order_totals": ("order_id",),
    "p_anom_rows": ("scope", "rnk", "prim"),
    "p_anom_unclaimed": ("scope", "order_id"),
    "p_anom_overdue": ("scope", "complaint_id"),
    "p_anom_compl": ("idx",),
    "p_anom_dirty": ("kind", "key"),
    "p_anom_comp": ("idx",),
    "p_anom_reps": ("idx",),
    "p_anom_people": ("idx",),
    "p_anom_rates": ("idx",),
    "p_anom_meta": ("id",),
}
#: Tables checked by recomputing their answers, not by re-derivation.
RECOMPUTED = ("p_anomaly_cache",)
#: Exact sums kept as NUMERIC (PostgreSQL) or decimal text (SQLite).
_SUMS = frozenset({"credited", "picked_up", "returned"})
#: Tries to find a moment with no anomaly scope left to settle (writers settle as they go).
SETTLE_TRIES = 5


class ReadModelMismatch(VerificationError):
    """A read model's table differs from what the log derives. `table` and `key` name the first difference."""

    def __init__(self, message: str, *, table: str, key: tuple[Any, ...] | None) -> None:
        super().__init__(message)
        self.table = table
        self.key = key

    @classmethod
    def in_column(cls, what: str, column: str, expected: Any, got: Any, *, table: str,
                  key: tuple[Any, ...]) -> "ReadModelMismatch":
        show = lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else repr(v)  # noqa: E731
        return cls(f"{what}: {column} expected {show(expected)}, got {show(got)}", table=table, key=key)


class ReadModelsBusy(RuntimeError):
    """The anomaly model kept having scopes to settle (a writer is busy): try again later."""


@dataclass(frozen=True)
class Checked:
    position: int
    tables: int
    rows: int


def _value(column: str, value: Any) -> Any:
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if column in _SUMS and isinstance(value, str):
        return int(value)
    return value


def _rows(cursor: Any, store: Store, table: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """key -> the whole row, normalised across the two databases."""
    store.execute(cursor, f"SELECT * FROM {table}")
    keys = TABLE_KEYS[table]
    out = {}
    for row in cursor.fetchall():
        record = {column: _value(column, row[column]) for column in row.keys()}
        out[tuple(record[k] for k in keys)] = tuple(sorted(record.items()))
    return out


def _digest(row: tuple[Any, ...]) -> bytes:
    return hashlib.sha256(repr(row).encode()).digest()[:16]


def _snapshot(store: Store, models: Sequence[ReadModel]) -> tuple[int, dict[str, dict], list[Any], bool]:
    """(position, {table: {key: digest}}, cached anomaly answers, scopes left to settle) in one snapshot."""
    with store.transaction(commit=False) as cursor:
        if store.is_postgres:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        names = [m.position_name for m in models]
        store.execute(cursor, f"SELECT name, position FROM jejak_positions WHERE name IN ({', '.join('?' for _ in names)})",
                      names)
        positions = {r["name"]: int(r["position"]) for r in cursor.fetchall()}
        tables: dict[str, dict] = {}
        for model in models:
            for table in model.tables:
                if table in RECOMPUTED:
                    continue
                tables[table] = {k: _digest(v) for k, v in _rows(cursor, store, table).items()}
        store.execute(cursor, "SELECT key, body FROM p_anomaly_cache")
        cache = [(r["key"], bytes(r["body"])) for r in cursor.fetchall()]
    dirty = bool(tables.get("p_anom_dirty"))
    position = min(positions.get(n, 0) for n in names)
    if len(set(positions.get(n, 0) for n in names)) > 1:
        dirty = True  # models caught up unevenly: a catch-up is running
    return position, tables, cache, dirty


def rederive(source: Store, scratch: Store, position: int, models: Sequence[ReadModel] = READ_MODELS) -> None:
    """Replay log entries [0, position) of `source` into fresh read models in `scratch`, and settle them."""
    projector = Projector(scratch, models)
    projector.ensure_tables()
    for start in range(0, position, BATCH):
        stop = min(start + BATCH, position)
        records = [LogRecord(index, *decode_leaf(leaf))
                   for index, _fid, _chain, leaf, _topic in source.read_log(start, stop) if leaf is not None]
        projector.apply_records(records, stop)
    projector.settle()


def _first_difference(table: str, stored: dict[tuple, bytes], derived: dict[tuple, tuple],
                      stored_row: Callable[[tuple], Any]) -> ReadModelMismatch | None:
    """The first key (in key order) whose stored row differs from the derived one, as an error."""
    differing = [k for k in derived if stored.get(k) != _digest(derived[k])]
    differing += [k for k in stored if k not in derived]
    if not differing:
        return None
    key = min(differing, key=lambda k: tuple((type(v).__name__, v) for v in k))
    what = f"read model table {table}, row {dict(zip(TABLE_KEYS[table], key))}"
    if key not in derived:
        return ReadModelMismatch(f"{what}: expected no such row, got one (not derived from the log)", table=table, key=key)
    if key not in stored:
        return ReadModelMismatch(f"{what}: expected the row the log derives, got none (deleted?)", table=table, key=key)
    got = dict(stored_row(key) or ())
    for column, expected in derived[key]:
        if got.get(column) != expected:
            return ReadModelMismatch.in_column(what, column, expected, got.get(column), table=table, key=key)
    return ReadModelMismatch(f"{what}: expected the derived row, got another", table=table, key=key)


def _check_cache(scratch: Store, cache: Iterable[tuple[str, bytes]], version: str) -> None:
    """Every cached `anomalies --as-of` answer of the current facts equals the engine's answer."""
    facts = None
    for key, body in sorted(cache):
        engine_version, last, as_of, *limits = key.split("|")  # jejak.reports: the thresholds in field order
        if engine_version != version:
            continue
        if facts is None:
            facts = load_fact_rows(scratch)
        if last != str(facts[-1]["seq"] if facts else -1):
            continue  # an answer for an older log: never served again
        expected = [a.to_dict() for a in evaluate_anomalies(
            facts, None if as_of == "None" else date.fromisoformat(as_of), Thresholds(*map(int, limits)))]
        if orjson.loads(body) != expected:
            raise ReadModelMismatch(f"read model table p_anomaly_cache, row {{'key': {key!r}}}: expected the engine's "
                                    f"{len(expected)} anomalies, got {len(orjson.loads(body))} that differ",
                                    table="p_anomaly_cache", key=(key,))


def verify_read_models(store: Store, *, engine_version: str, work_dir: Path | None = None,
                       models: Sequence[ReadModel] = READ_MODELS) -> Checked:
    """Bring the models up to date, then compare them with a re-derivation from the log.

    Raises ReadModelMismatch at the first difference, ReadModelsBusy when writers never
    left the anomaly model settled."""
    projector = Projector(store, models)
    for _ in range(SETTLE_TRIES):
        projector.catch_up()
        projector.settle()
        position, stored, cache, busy = _snapshot(store, models)
        if not busy:
            break
    else:
        raise ReadModelsBusy("the read models kept changing while being checked; try again")
    with tempfile.TemporaryDirectory(prefix="jejak-rederive-", dir=work_dir) as tmp:
        scratch = Store.open(str(Path(tmp) / "rederived.db"))
        try:
            rederive(store, scratch, position, models)
            rows = 0
            for model in models:
                for table in model.tables:
                    if table in RECOMPUTED:
                        continue
                    with scratch.transaction(commit=False) as cursor:
                        derived = _rows(cursor, scratch, table)
                    rows += len(derived)

                    def stored_row(key: tuple, table: str = table) -> Any:
                        with store.transaction(commit=False) as cursor:
                            return _rows(cursor, store, table).get(key)

                    mismatch = _first_difference(table, stored[table], derived, stored_row)
                    if mismatch is not None:
                        raise mismatch
            _check_cache(scratch, cache, engine_version)
        finally:
            scratch.close()
    return Checked(position=position, tables=len(stored), rows=rows)
