"""Fewer database round trips on the API's hot paths, with the same answers and guarantees.

* reads on PostgreSQL run on the pool's autocommit connections (no BEGIN/ROLLBACK);
* an inclusion proof of a given size is one query, and every error it can
  give is still the one it gave when it read the head first;
* jejak's own facts are written in one pipelined transaction on PostgreSQL:
  all or nothing, read models moved along only past what was appended.
"""

from __future__ import annotations

import random

import psycopg
import pytest

from jejak.audit.merkle import verify_inclusion
from jejak.ledger import InternalFact, Ledger
from jejak.projections.readmodels import READ_MODELS
from jejak.projections.runner import Projector
from jejak.transparency import ProofRequestError, Transparency
from tests.integration.test_internal_facts import _order, positions


def test_postgres_reads_run_without_an_explicit_transaction(pg_url: str, make_settings) -> None:
    with Ledger.open(make_settings(pg_url)) as ledger:
        # In an implicit (single-statement) transaction the transaction and the
        # statement start together; after a BEGIN they do not.
        row = ledger.store.query_one(
            "SELECT xact_start = query_start AS implicit FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        assert row["implicit"] is True
        with ledger.store.transaction(commit=False) as cursor:
            cursor.execute("SELECT xact_start = query_start AS implicit FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            assert cursor.fetchone()["implicit"] is False


def test_sqlite_reads_keep_one_snapshot(sqlite_url: str, make_settings) -> None:
    with Ledger.open(make_settings(sqlite_url)) as ledger:
        ledger.record([_order(0)])
        with ledger.store.reading() as cursor:
            cursor.execute("SELECT size FROM jejak_head WHERE id = 1")
            before = cursor.fetchone()["size"]
            with Ledger.open(ledger.settings) as other:  # another writer, committed meanwhile
                other.record([_order(1)])
            cursor.execute("SELECT size FROM jejak_head WHERE id = 1")
            assert cursor.fetchone()["size"] == before
        assert ledger.store.log_size() == before + 1


def _count_statements(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = psycopg.Cursor.execute

    def execute(self, query, params=None, **kw):
        seen.append(str(query))
        return real(self, query, params, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return seen


def test_inclusion_proofs_verify_and_errors_are_unchanged(store_url: str, make_settings) -> None:
    with Ledger.open(make_settings(store_url)) as ledger:
        ledger.record([_order(i) for i in range(53)])
        t = Transparency(ledger.store, ledger.settings)
        rng = random.Random(5)
        for _ in range(60):
            size = rng.randint(1, 53)
            index = rng.randrange(size)
            for given in (size, None) if size == 53 else (size,):
                p = t.prove(index, given)
                assert (p["index"], p["size"]) == (index, size)
                verify_inclusion(index, size, bytes.fromhex(p["leaf_hash"]), [bytes.fromhex(h) for h in p["proof"]],
                                 bytes.fromhex(p["root"]))
                assert bytes.fromhex(p["root"]) == t.root(size)
        for index, size, message in [
            (0, 54, "size must be between 1 and the log size 53, got 54"),
            (60, 54, "size must be between 1 and the log size 53, got 54"),  # the size is named first, as before
            (53, None, "index must be between 0 and 52 for a tree of size 53, got 53"),
            (10, 10, "index must be between 0 and 9 for a tree of size 10, got 10"),
            (-1, 10, "index must be between 0 and 9 for a tree of size 10, got -1"),
            (0, 0, "size must be between 1 and the log size 53, got 0"),
        ]:
            with pytest.raises(ProofRequestError) as info:
                t.prove(index, size)
            assert str(info.value) == message


def test_a_proof_of_a_given_size_is_one_query(pg_url: str, make_settings, monkeypatch) -> None:
    with Ledger.open(make_settings(pg_url)) as ledger:
        ledger.record([_order(i) for i in range(40)])
        t = Transparency(ledger.store, ledger.settings)
        seen = _count_statements(monkeypatch)
        t.prove(17, 37)
        assert len(seen) == 1, seen
        seen.clear()
        with pytest.raises(ProofRequestError):
            t.prove(17, 41)  # beyond the log: the head is read to say so
        assert len(seen) == 2, seen


def test_a_failed_internal_write_leaves_nothing_behind(store_url: str, make_settings) -> None:
    with Ledger.open(make_settings(store_url)) as ledger:
        ledger.record([_order(i) for i in range(3)])
        Projector(ledger.store).catch_up()
        size = ledger.store.log_size()

        def broken(cursor):
            ledger.store.execute(cursor, "INSERT INTO no_such_table (x) VALUES (?)", (1,))

        facts = [InternalFact("jejak.access", f"jejak:access:t{i}",
                              {"actor": "a", "role": "inspector", "subject": "*", "reason": "r", "path": "/v1/x"},
                              also=broken if i == 1 else None) for i in range(3)]
        with pytest.raises(Exception, match="no_such_table|no such table|does not exist") as info:
            ledger.record_internal_many(facts)
        assert "no_such_table" in str(info.value), info.value  # the planted failure, not another one
        assert ledger.store.log_size() == size
        assert ledger.store.index_of("jejak:access:t0") is None
        assert positions(ledger) == [size] * len(READ_MODELS)
        # and the connection is usable again
        ledger.record_internal_many(facts[:1])
        assert ledger.store.log_size() == size + 1
        assert positions(ledger) == [size + 1] * len(READ_MODELS)
        assert Transparency(ledger.store, ledger.settings).verify()["intact"] is True


def test_internal_duplicates_move_models_only_past_what_was_appended(store_url: str, make_settings) -> None:
    with Ledger.open(make_settings(store_url)) as ledger:
        ledger.record([_order(i) for i in range(3)])
        projector = Projector(ledger.store)
        projector.catch_up()
        first = InternalFact("jejak.access", "jejak:access:dup",
                             {"actor": "a", "role": "inspector", "subject": "*", "reason": "r", "path": "/v1/x"})
        second = InternalFact("jejak.access", "jejak:access:new",
                              {"actor": "a", "role": "inspector", "subject": "*", "reason": "r", "path": "/v1/y"})
        ledger.record_internal_many([first])
        ledger.record_internal_many([first, second])  # one already recorded, one new
        size = ledger.store.log_size()
        assert size == 5
        assert positions(ledger) == [size] * len(READ_MODELS)
        assert projector.catch_up() == 0
        assert Transparency(ledger.store, ledger.settings).verify()["intact"] is True


@pytest.mark.parametrize("batch", [1, 16, 17, 40])
def test_small_and_large_batches_record_the_same_verifiable_log(store_url: str, make_settings, batch: int) -> None:
    """PostgreSQL writes up to 16 rows with one INSERT and more with COPY: either way one intact log."""
    with Ledger.open(make_settings(store_url)) as ledger:
        facts = [_order(i) for i in range(45)]
        for start in range(0, len(facts), batch):
            assert {o.status for o in ledger.record(facts[start:start + batch])} == {"accepted"}
        assert ledger.store.log_size() == 45
        assert [e.fact["id"] for e in ledger.read_entries(0, 45)] == [f["id"] for f in facts]
        assert ledger.read_entries(7, 8)[0].fact["nik"] == facts[7]["nik"]  # sealed and revealed
        assert Transparency(ledger.store, ledger.settings).verify()["intact"] is True


def test_proofs_of_any_index_and_size_share_one_statement(pg_url: str, make_settings, monkeypatch) -> None:
    """Keys go as arrays, so PostgreSQL can prepare the proof query once instead of planning each proof."""
    with Ledger.open(make_settings(pg_url)) as ledger:
        ledger.record([_order(i) for i in range(70)])
        t = Transparency(ledger.store, ledger.settings)
        seen = _count_statements(monkeypatch)
        rng = random.Random(9)
        for _ in range(40):
            size = rng.randint(17, 70)
            t.prove(rng.randrange(size), size)
        assert len(seen) == 40 and len(set(seen)) == 1, set(seen)
