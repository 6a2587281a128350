"""jejak's own facts (access records, erasures) are chained like any fact but
never change a read model, so a caught-up read model stays caught up."""

from __future__ import annotations

from jejak.ledger import Ledger
from jejak.projections.readmodels import READ_MODELS
from jejak.projections.runner import Projector
from jejak.transparency import Transparency


def _order(i: int) -> dict:
    return {
        "id": f"kemensos:ord:{i}", "type": "disbursement.ordered", "at": "2024-02-01T09:00:00+07:00",
        "source": {"kind": "kemensos", "id": "k"}, "kk": f"127501010101{i:04d}", "nik": f"127501410190{i:04d}",
        "program": "BPNT", "period": "2024-01/2024-02", "amount": 400000, "channel": "BRI",
    }


def positions(ledger: Ledger) -> list[int]:
    return [ledger.store.get_position(m.position_name) for m in READ_MODELS]


def test_access_fact_keeps_caught_up_models_caught_up(store_url: str, make_settings) -> None:
    with Ledger.open(make_settings(store_url)) as ledger:
        ledger.record([_order(i) for i in range(3)])
        projector = Projector(ledger.store)
        projector.catch_up()
        ledger.record_access(actor="inspektorat-1", role="inspector", subject_token="tk1_" + "a" * 32,
                             reason="audit", path="/v1/x")
        size = ledger.store.log_size()
        assert size == 4
        assert positions(ledger) == [size] * len(READ_MODELS)
        assert projector.catch_up() == 0
        assert Transparency(ledger.store, ledger.settings).verify()["intact"] is True


def test_a_model_behind_is_not_moved_past_unread_facts(store_url: str, make_settings) -> None:
    with Ledger.open(make_settings(store_url)) as ledger:
        projector = Projector(ledger.store)
        projector.catch_up()
        ledger.record([_order(i) for i in range(3)])  # not yet applied
        ledger.record_access(actor="inspektorat-1", role="inspector", subject_token="tk1_" + "a" * 32,
                             reason="audit", path="/v1/x")
        assert positions(ledger) == [0] * len(READ_MODELS)
        assert projector.catch_up() == 4
        assert ledger.store.query_one("SELECT COUNT(*) AS n FROM p_orders")["n"] == 3
