"""Group commit of API access records: concurrent requests share transactions, none is lost."""

from __future__ import annotations

import threading

import pytest

from jejak.api.access import AccessIndex, AccessLog
from jejak.ledger import Ledger
from jejak.transparency import Transparency


def test_concurrent_access_records_are_grouped_and_all_durable(store_url, make_settings):
    settings = make_settings(store_url)
    with Ledger.open(settings) as ledger:
        access = AccessLog(ledger)
        transactions: list[int] = []
        real = ledger.record_internal_many

        def counting(facts):
            transactions.append(len(facts))
            return real(facts)

        ledger.record_internal_many = counting  # type: ignore[method-assign]
        ids: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def inspector(n: int) -> None:
            start.wait()
            for k in range(15):
                fid = access.record(token_name=f"insp-{n}", role="inspector", subject_token="tk1_" + "b" * 32,
                                    reason=f"case {n}/{k}", path="/v1/families/{kk}/trail")
                with lock:
                    ids.append(fid)

        threads = [threading.Thread(target=inspector, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)

        assert len(ids) == len(set(ids)) == 120
        assert sum(transactions) == 120
        assert len(transactions) < 120, "no two requests ever shared a transaction"
        index = AccessIndex(ledger.store)
        index.update(ledger.store.log_size())
        logged = index.page(-1, 1000)
        assert sorted(r["log_fact"] for r in logged) == sorted(ids)
        in_log = [e.fact["id"] for e in ledger.read_entries(0, 1000, reveal=False)]
        assert sorted(in_log) == sorted(ids)
        Transparency(ledger.store, settings).verify()  # one intact chain and tree


def test_a_failed_group_fails_every_request_in_it_and_the_next_one_writes(store_url, make_settings):
    settings = make_settings(store_url)
    with Ledger.open(settings) as ledger:
        access = AccessLog(ledger)
        real = ledger.record_internal_many
        fail = [True]

        def flaky(facts):
            if fail[0]:
                fail[0] = False
                raise RuntimeError("database went away")
            return real(facts)

        ledger.record_internal_many = flaky  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="went away"):
            access.record(token_name="a", role="inspector", subject_token=None, reason="r", path="/v1/x")
        fid = access.record(token_name="a", role="inspector", subject_token=None, reason="r", path="/v1/x")
        index = AccessIndex(ledger.store)
        index.update(ledger.store.log_size())
        assert [r["log_fact"] for r in index.page(-1, 10)] == [fid]
