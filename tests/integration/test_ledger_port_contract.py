"""The ledger port's contract, shared by the real ledger and the unit tests' fake
(tests/fake_ledger.py): the same inputs give the same statuses, fact ids and
error codes, the same log order and the same positions, so the fake cannot
emit a code the real ledger never produces."""

from __future__ import annotations

import json
from typing import Any

from jejak.feeds.ports import LedgerPort
from jejak.ledger import Ledger
from tests.fake_ledger import FakeLedger
from tests.integration.test_feeds_kafka import order, settlement


def contract_batches() -> list[list[Any]]:
    s, o = settlement("contract-1"), {**order("BRI", n=1), "id": "ord-contract-1"}
    return [
        [o, s, dict(s), json.dumps(settlement("contract-2")).encode()],
        [dict(s, amount=5),                       # same id, other content
         b"not json", b"[1, 2]", {"hello": "world"}, {"id": "x1", "type": "nope.type"},
         settlement("contract-3", amount=-5), settlement("contract-4", amount=0),
         {**settlement("contract-5"), "amount": True}, dict(s)],
    ]


def run_contract(ledger: LedgerPort) -> dict[str, Any]:
    outcomes = [[(o.status, o.fact_id, o.code) for o in ledger.record(batch)] for batch in contract_batches()]
    entries = [(e.index, e.fact["id"], e.fact["type"]) for e in ledger.read_entries(0, 100)]
    tail = [e.index for e in ledger.read_entries(1, 2)]
    before = ledger.get_position("feed.contract")
    ledger.set_position("feed.contract", 3)
    return {"outcomes": outcomes, "entries": entries, "tail": tail, "positions": (before, ledger.get_position("feed.contract"))}


def test_the_fake_ledger_answers_as_the_real_one(store_url: str, make_settings) -> None:
    fake = FakeLedger()
    assert isinstance(fake, LedgerPort)
    with Ledger.open(make_settings(store_url)) as real:
        assert isinstance(real, LedgerPort)
        want = run_contract(real)
    assert run_contract(fake) == want
    # and the contract is not empty: every kind of answer occurs
    flat = [o for batch in want["outcomes"] for o in batch]
    assert {status for status, _, _ in flat} == {"accepted", "duplicate", "rejected"}
    assert {code for _, _, code in flat} >= {"conflict", "invalid_json", "not_an_object", "missing_field",
                                            "unknown_type", "non_positive_amount", "wrong_type"}
