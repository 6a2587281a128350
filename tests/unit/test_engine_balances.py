"""SPEC §3 balances."""

from jejak.projections.engine import Balance, compute_balances
from tests.unit.test_engine_rules import KK1, KK2, NIK1, NIK2, L


def ledger():
    lg = L()
    o1 = lg.order(kk=KK1, program="PKH", amount=300_000, id="o1")
    o2 = lg.order(kk=KK1, program="PKH", period="2024-T2", amount=200_000, id="o2")
    o3 = lg.order(kk=KK1, program="BPNT", period="2024-01", amount=200_000, id="o3")
    o4 = lg.order(kk=KK2, program="PKH", nik=NIK2, amount=500_000, id="o4")
    lg.settle(o1, amount=300_000)
    lg.settle(o2, "failed", amount=200_000)
    lg.settle(o2, "credited", amount=150_000)
    lg.settle(o3, "failed", amount=200_000)
    lg.settle("ghost", amount=999_999)
    lg.pickup(o1, 100_000)
    lg.pickup(o2, 20_000)
    lg.pickup(o4, 7, nik=NIK2)  # picked up without credit: outstanding negative
    lg.pickup("ghost", 5_000)
    lg.ret(o1, 50_000)
    lg.ret("ghost", 1)
    lg.decide(KK2, "BPNT")  # no money facts → no line
    return lg


def test_balances_join_through_order():
    out = ledger().balances()
    assert out == [
        {"kk": KK1, "program": "BPNT", "ordered": 200_000, "credited": 0,
         "picked_up": 0, "returned": 0, "outstanding": 0},
        {"kk": KK1, "program": "PKH", "ordered": 500_000, "credited": 450_000,
         "picked_up": 120_000, "returned": 50_000, "outstanding": 280_000},
        {"kk": KK2, "program": "PKH", "ordered": 500_000, "credited": 0,
         "picked_up": 7, "returned": 0, "outstanding": -7},
    ]
    assert list(out[0]) == ["kk", "program", "ordered", "credited", "picked_up",
                            "returned", "outstanding"]


def test_balances_kk_filter():
    lg = ledger()
    assert [b["kk"] for b in lg.balances(kk=KK2)] == [KK2]
    assert lg.balances(kk=KK2)[0]["picked_up"] == 7
    assert lg.balances(kk="0000000000000000") == []


def test_balances_unknown_orders_count_nowhere():
    lg = L()
    lg.settle("nope", amount=1)
    lg.pickup("nope", 1)
    lg.ret("nope", 1)
    assert lg.balances() == []


def test_balances_ignore_as_of_and_input_order():
    lg = ledger()
    lg.pickup("o1", 1, at="2030-01-01")
    rev = list(reversed(lg.facts))
    a = [b.to_dict() for b in compute_balances(rev)]
    assert a == lg.balances()
    assert a[1]["picked_up"] == 120_001


def test_balance_dataclass():
    b = Balance("k", "PKH", 1, 2, 3, 4, -5)
    assert b.to_dict() == {"kk": "k", "program": "PKH", "ordered": 1, "credited": 2,
                           "picked_up": 3, "returned": 4, "outstanding": -5}


def test_balances_pseudonymised_kk():
    lg = L()
    o = lg.order(kk="tk_abc", nik="tk_def", id="o")
    lg.settle(o, amount=10)
    assert lg.balances() == [{"kk": "tk_abc", "program": "PKH", "ordered": 225000,
                              "credited": 10, "picked_up": 0, "returned": 0,
                              "outstanding": 10}]
