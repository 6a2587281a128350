"""Finding a fact's log index by its id (`Store.index_of`: the facts API, `jejak prove`).

On PostgreSQL jejak_log has no index on fact_id: the fact's event is found by
its primary key and its notification id is its log index + 1, an alignment
every insert path keeps (planned batches, batches replayed after a duplicate,
jejak's own facts, the plain library API). A store made before keeps its
fact-id index and is looked up by it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
from eventsourcing.persistence import StoredEvent

from jejak.generate import generate
from jejak.ledger import InternalFact, Ledger
from jejak.settings import Settings
from jejak.store.datastore import Store


def _ingest(ledger: Ledger, facts: list[dict]) -> None:
    ledger.ingest_lines(orjson.dumps(f) for f in facts)


def _sql(store: Store, text: str, params: tuple = ()) -> None:
    with store.transaction(commit=True) as cursor:
        store.execute(cursor, text, params)


def _aligned(store: Store) -> tuple[int, int]:
    """(events, events whose notification id is their log entry's index + 1)."""
    row = store.query_one(
        "SELECT COUNT(*) AS n, COALESCE(SUM((l.idx = e.notification_id - 1)::int), 0) AS aligned "
        "FROM stored_events e JOIN jejak_log l "
        "ON l.originator_id = e.originator_id AND l.originator_version = e.originator_version")
    return row["n"], row["aligned"]


def _every_path(pg_url: str, tmp_path: Path) -> tuple[Ledger, list[str]]:
    facts = list(generate(families=12, seed=5))
    ledger = Ledger.open(Settings(store=pg_url, keys_dir=tmp_path / "keys", batch_size=50))
    _ingest(ledger, facts[:120])  # planned batches
    _ingest(ledger, facts[:60] + facts[150:260])  # duplicates: batches replayed the ordinary way
    ledger.record_internal_many([InternalFact("jejak.access", f"jejak:access:{i}", {
        "actor": "a", "role": "inspector", "subject": "*", "reason": "r", "path": "/v1/x"}) for i in range(3)])
    generic = uuid.uuid4()
    ledger.store.recorder.insert_events([  # the plain library API: one aggregate, two versions
        StoredEvent(originator_id=generic, originator_version=v, topic="t:E", state=b"{}") for v in (1, 2)])
    _ingest(ledger, facts[120:150] + facts[260:300])
    return ledger, [f["id"] for f in facts[:300]]


def test_every_insert_path_keeps_notification_ids_aligned_and_each_fact_is_found(pg_url: str,
                                                                                 tmp_path: Path) -> None:
    ledger, ids = _every_path(pg_url, tmp_path)
    try:
        store = ledger.store
        size = store.log_size()
        assert _aligned(store) == (size, size)
        assert not any("fact_id" in r["indexdef"] for r in store.query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'jejak_log'"))
        by_id = {r["fact_id"]: r["idx"] for r in store.query("SELECT idx, fact_id FROM jejak_log")}
        assert set(ids) | {f"jejak:access:{i}" for i in range(3)} <= by_id.keys()
        for fact_id in [*ids, "jejak:access:1"]:
            assert store.index_of(fact_id) == by_id[fact_id], fact_id
        assert store.index_of("no:such:fact") is None
    finally:
        ledger.close()


def test_a_store_made_with_a_fact_id_index_is_looked_up_by_it(pg_url: str, tmp_path: Path) -> None:
    ledger, ids = _every_path(pg_url, tmp_path)
    try:
        # as before the change: its own index, and notification ids with gaps (rolled-back inserts)
        _sql(ledger.store, "CREATE UNIQUE INDEX jejak_log_fact_id_key ON jejak_log (fact_id)")
        for shift in (1_000_000, -999_950):  # a gap of 50 ids from the 101st event on (two steps: ids stay unique)
            _sql(ledger.store, "UPDATE stored_events SET notification_id = notification_id + ? "
                               "WHERE notification_id > ?", (shift, 100 if shift > 0 else 1_000_000))
    finally:
        ledger.close()
    # a new jejak on that store: it keeps writing (the ids keep their gaps) and finds every fact
    again = Ledger.open(Settings(store=pg_url, keys_dir=tmp_path / "keys", batch_size=50))
    try:
        more = list(generate(families=3, seed=6))
        _ingest(again, more)
        _ingest(again, more + list(generate(families=2, seed=7)))  # duplicates: the replay path too
        store = again.store
        rows = store.query("SELECT idx, fact_id FROM jejak_log ORDER BY idx")
        assert len(rows) > len(ids) + len(more)
        for row in rows[::7] + rows[-5:]:
            assert store.index_of(row["fact_id"]) == row["idx"]
    finally:
        again.close()


def test_renumbered_events_never_give_a_wrong_index(pg_url: str, tmp_path: Path) -> None:
    """An event renumbered behind the ledger's back (or written by an older jejak):
    its fact is found by a scan, never given another fact's index, and writing goes on."""
    ledger, ids = _every_path(pg_url, tmp_path)
    try:
        victim = ids[10]
        before = ledger.store.index_of(victim)
        oid = ledger.store.query("SELECT originator_id FROM jejak_log WHERE idx = ?", (before,))[0]["originator_id"]
        _sql(ledger.store, "UPDATE stored_events SET notification_id = -notification_id WHERE originator_id = ?", (oid,))
        assert ledger.store.index_of(victim) == before
        assert ledger.store.index_of(ids[11]) == before + 1
        assert ledger.store.index_of(ids[9]) == before - 1
        # ids beyond the log size in use (an older jejak's gaps): new events go above them
        _sql(ledger.store, "UPDATE stored_events SET notification_id = notification_id + 500 "
                           "WHERE notification_id = (SELECT MAX(notification_id) FROM stored_events)")
        size = ledger.store.log_size()
        late = list(generate(families=2, seed=8))
        _ingest(ledger, late)
        assert ledger.store.log_size() > size
        assert ledger.store.index_of(late[-1]["id"]) == ledger.store.log_size() - 1
    finally:
        ledger.close()
