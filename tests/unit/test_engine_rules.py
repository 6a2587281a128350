"""Engine anomaly rules: one hand-written scenario per rule, with edges."""

from __future__ import annotations

import datetime as dt

from jejak.projections.engine import compute_balances, evaluate_anomalies

NIK1 = "1275010101900001"
NIK2 = "1275010202900002"
NIK3 = "3171014503850003"
KK1 = "1275010000000001"
KK2 = "1275010000000002"
KK3 = "1275010000000003"


def ts(d: str, time: str = "10:00:00", off: str = "+07:00") -> str:
    return f"{d}T{time}{off}"


class L:
    """A ledger under construction: every added fact gets the next seq."""

    def __init__(self):
        self.facts: list[dict] = []
        self._n = 0

    def add(self, type_, at="2024-01-01", id=None, **fields):
        self._n += 1
        if "T" not in at:
            at = ts(at)
        f = {"id": id or f"f{self._n}", "type": type_, "at": at,
             "source": {"kind": "kemensos", "id": "x"}, "seq": len(self.facts)}
        f.update(fields)
        self.facts.append(f)
        return f["id"]

    # builders -----------------------------------------------------------
    def rates_pkh(self, year, annual, max_members, at="2023-12-01", id=None):
        return self.add("rates.set", at, id, program="PKH", year=year,
                        annual=annual, max_members=max_members)

    def rates_bpnt(self, year, monthly, at="2023-12-01", id=None):
        return self.add("rates.set", at, id, program="BPNT", year=year, monthly=monthly)

    def decide(self, kk, program, decision="eligible", from_="2024-01", nik=NIK1,
               components=None, at="2023-12-15", id=None):
        f = dict(kk=kk, nik=nik, program=program, decision=decision, region="1275010001")
        f["from"] = from_
        if program == "PKH" and decision == "eligible":
            f["components"] = components if components is not None else {"anak_sd": 1}
        return self.add("eligibility.decided", at, id, **f)

    def assign(self, companion, kk, program="PKH", from_="2024-01", at="2023-12-20", id=None):
        return self.add("companion.assigned", at, id, companion=companion, kk=kk,
                        program=program, **{"from": from_})

    def order(self, kk=KK1, program="PKH", period="2024-T1", amount=225000, nik=NIK1,
              at="2024-01-10", id=None, **extra):
        return self.add("disbursement.ordered", at, id, kk=kk, nik=nik, program=program,
                        period=period, amount=amount, channel="BRI", **extra)

    def settle(self, ref, status="credited", amount=225000, at="2024-01-11", id=None):
        return self.add("disbursement.settled", at, id, disbursement=ref, status=status,
                        amount=amount, channel="BRI")

    def pickup(self, ref, amount=225000, nik=NIK1, by="recipient", companion=None,
               at="2024-01-12", id=None):
        f = dict(disbursement=ref, nik=nik, amount=amount, by=by)
        if companion is not None:
            f["companion"] = companion
        return self.add("pickup.recorded", at, id, **f)

    def ret(self, ref, amount, at="2024-06-01", id=None):
        return self.add("funds.returned", at, id, disbursement=ref, amount=amount)

    def asn(self, nik, from_, until=None, at="2023-01-01", id=None):
        f = {"nik": nik, "agency": "BKN", "from": from_}
        if until is not None:
            f["until"] = until
        return self.add("asn.registered", at, id, **f)

    def death(self, nik, date, at="2023-01-01", id=None):
        return self.add("death.recorded", at, id, nik=nik, date=date)

    # evaluation ---------------------------------------------------------
    def anomalies(self, **kw):
        return evaluate_anomalies(list(self.facts), **kw)

    def fired(self, rule, **kw):
        return {a.primary for a in self.anomalies(**kw) if a.rule == rule}

    def get(self, rule, primary, **kw):
        for a in self.anomalies(**kw):
            if a.rule == rule and a.primary == primary:
                return a
        return None

    def balances(self, **kw):
        return [b.to_dict() for b in compute_balances(list(self.facts), **kw)]


def d(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


PKH_ANNUAL = {
    "ibu_hamil": 3_000_000, "anak_usia_dini": 3_000_000, "anak_sd": 900_000,
    "anak_smp": 1_500_000, "anak_sma": 2_000_000, "disabilitas_berat": 2_400_000,
    "lansia": 2_400_000,
}


# ==========================================================================
# Tests

import pytest  # noqa: E402

from jejak.projections.engine import RULES, Anomaly, Thresholds  # noqa: E402


def base(pkh=True, bpnt=False):
    """Ledger with rates for 2024/2025 and KK1 eligible from 2024-01."""
    lg = L()
    lg.rates_pkh(2024, PKH_ANNUAL, 4, id="r-pkh-2024")
    lg.rates_pkh(2025, PKH_ANNUAL, 4, id="r-pkh-2025")
    lg.rates_bpnt(2024, 200_000, id="r-bpnt-2024")
    lg.rates_bpnt(2025, 200_000, id="r-bpnt-2025")
    if pkh:
        lg.decide(KK1, "PKH", id="dec-pkh")
    if bpnt:
        lg.decide(KK1, "BPNT", id="dec-bpnt")
    return lg


# ---- general ---------------------------------------------------------------

def test_empty_input():
    assert evaluate_anomalies([]) == []
    assert compute_balances([]) == []


def test_clean_scenario_has_no_anomalies():
    lg = base()
    o = lg.order(id="o1")
    lg.settle(o, id="s1")
    lg.pickup(o, id="p1")
    assert lg.anomalies() == []


def test_anomaly_to_dict_shape():
    a = Anomaly("ghost_settlement", "s1", "disbursement:x", ("s1",), "d")
    assert a.to_dict() == {"rule": "ghost_settlement", "primary": "s1",
                           "subject": "disbursement:x", "facts": ["s1"], "detail": "d"}
    assert list(a.to_dict()) == ["rule", "primary", "subject", "facts", "detail"]


def test_output_sorted_by_rule_table_order_then_primary():
    lg = L()
    lg.order(id="o-b", nik="0000000000000000")
    lg.order(id="o-a", nik="0000000000000000")
    lg.settle("ghost-2", id="s-z")
    lg.settle("ghost-1", id="s-a")
    out = [(a.rule, a.primary) for a in lg.anomalies()]
    assert out == sorted(out, key=lambda x: (RULES.index(x[0]), x[1]))
    assert ("no_eligibility", "o-a") in out and ("invalid_nik", "o-b") in out


def test_unknown_extra_keys_ignored():
    lg = base()
    o = lg.order(id="o1", extra_field={"x": 1})
    lg.settle(o, id="s1")
    lg.facts[-1]["weird"] = [1, 2]
    assert lg.anomalies() == []


# ---- duplicate_payout --------------------------------------------------------

def test_duplicate_payout_fires_on_later_order():
    lg = base()
    o1 = lg.order(id="o1")
    o2 = lg.order(id="o2", at="2024-01-05")  # earlier `at`, later in ledger
    a = lg.get("duplicate_payout", o2)
    assert a is not None and a.facts == (o2, o1) and a.subject == KK1
    assert lg.fired("duplicate_payout") == {o2}


def test_duplicate_payout_earlier_failed_order_does_not_count():
    lg = base()
    o1 = lg.order(id="o1")
    lg.settle(o1, "failed", id="s1")
    lg.order(id="o2")
    assert lg.fired("duplicate_payout") == set()


def test_duplicate_payout_failed_then_credited_counts():
    lg = base()
    o1 = lg.order(id="o1")
    lg.settle(o1, "failed", id="s1", at="2024-01-11")
    o2 = lg.order(id="o2", at="2024-01-12")
    lg.settle(o1, "credited", id="s2", at="2024-02-01")  # late credit clears "failed"
    assert lg.fired("duplicate_payout") == {o2}
    # as of before the credit, o1 is failed → no duplicate
    assert lg.fired("duplicate_payout", as_of=d("2024-01-31")) == set()


def test_duplicate_payout_own_status_irrelevant():
    lg = base()
    lg.order(id="o1")
    o2 = lg.order(id="o2")
    lg.settle(o2, "failed", id="s2")
    assert lg.fired("duplicate_payout") == {o2}


def test_duplicate_payout_earliest_previous_and_chain():
    lg = base(pkh=False, bpnt=True)
    o1 = lg.order(program="BPNT", period="2024-01/2024-03", amount=600000, id="o1")
    o2 = lg.order(program="BPNT", period="2024-03/2024-05", amount=600000, id="o2")
    o3 = lg.order(program="BPNT", period="2024-02/2024-04", amount=600000, id="o3")
    assert lg.fired("duplicate_payout") == {o2, o3}
    assert lg.get("duplicate_payout", o3).facts == (o3, o1)


def test_duplicate_payout_adjacent_ranges_do_not_overlap():
    lg = base(pkh=False, bpnt=True)
    lg.order(program="BPNT", period="2024-01/2024-02", amount=400000, id="o1")
    lg.order(program="BPNT", period="2024-03/2024-04", amount=400000, id="o2")
    lg.order(program="BPNT", period="2024-05", amount=200000, id="o3")
    assert lg.fired("duplicate_payout") == set()


def test_duplicate_payout_stage_vs_month():
    lg = base()
    lg.order(id="o1", period="2024-T1")
    o2 = lg.order(id="o2", period="2024-03", amount=100)
    lg.order(id="o3", period="2024-04", amount=100)
    assert lg.fired("duplicate_payout") == {o2}


def test_duplicate_payout_other_kk_or_program_not_duplicate():
    lg = base(bpnt=True)
    lg.decide(KK2, "PKH", nik=NIK2)
    lg.order(id="o1", period="2024-T1")
    lg.order(id="o2", period="2024-T1", kk=KK2, nik=NIK2)
    lg.order(id="o3", program="BPNT", period="2024-01", amount=200000)
    assert lg.fired("duplicate_payout") == set()


def test_duplicate_payout_failed_earlier_skipped_for_later_non_failed():
    lg = base()
    o1 = lg.order(id="o1")
    lg.settle(o1, "failed", id="s1")
    o2 = lg.order(id="o2")
    o3 = lg.order(id="o3")
    assert lg.fired("duplicate_payout") == {o3}
    assert lg.get("duplicate_payout", o3).facts == (o3, o2)


# ---- no_eligibility ------------------------------------------------------------

def test_no_eligibility_without_decision():
    lg = base(pkh=False)
    o = lg.order(id="o1")
    assert lg.fired("no_eligibility") == {o}
    assert lg.get("no_eligibility", o).subject == KK1


def test_no_eligibility_revoked():
    lg = base(pkh=False)
    lg.decide(KK1, "PKH", "revoked", from_="2024-01")
    o = lg.order(id="o1")
    assert lg.fired("no_eligibility") == {o}


def test_no_eligibility_uses_first_month():
    lg = base(pkh=False)
    lg.decide(KK1, "PKH", from_="2024-02")  # covers Feb, Mar but not Jan
    o = lg.order(id="o1", period="2024-T1")
    ok = lg.order(id="o2", period="2024-02/2024-03", amount=100)
    assert lg.fired("no_eligibility") == {o}
    assert ok not in lg.fired("no_eligibility")


def test_no_eligibility_greatest_from_wins():
    lg = base(pkh=False)
    lg.decide(KK1, "PKH", "revoked", from_="2024-07")
    lg.decide(KK1, "PKH", "eligible", from_="2023-01")  # later seq, but earlier from
    ok = lg.order(id="o1", period="2024-T2")
    bad = lg.order(id="o2", period="2024-T3")
    assert lg.fired("no_eligibility") == {bad}
    assert ok not in lg.fired("no_eligibility")


@pytest.mark.parametrize("first,second,fires", [
    ("eligible", "revoked", True),
    ("revoked", "eligible", False),
])
def test_no_eligibility_ledger_order_breaks_tie(first, second, fires):
    lg = base(pkh=False)
    lg.decide(KK1, "PKH", first, from_="2024-01", at="2023-12-20")
    lg.decide(KK1, "PKH", second, from_="2024-01", at="2023-12-01")  # earlier at, later seq
    o = lg.order(id="o1")
    assert (o in lg.fired("no_eligibility")) is fires


def test_no_eligibility_other_program_decision_does_not_count():
    lg = base(pkh=False, bpnt=True)
    o = lg.order(id="o1")
    assert lg.fired("no_eligibility") == {o}


# ---- over_entitlement ----------------------------------------------------------

COMPS5 = {"anak_sd": 3, "ibu_hamil": 1, "lansia": 1}  # 5 members, max 4 kept
# kept: 3,000,000 + 2,400,000 + 900,000 + 900,000 = 7,200,000 / 4 = 1,800,000 per stage


def test_over_entitlement_pkh_max_members_cut():
    lg = base(pkh=False)
    lg.decide(KK1, "PKH", components=COMPS5, id="dec")
    ok = lg.order(id="ok", period="2024-T1", amount=1_800_000)
    bad = lg.order(id="bad", period="2024-T2", amount=1_800_001)
    assert lg.fired("over_entitlement") == {bad}
    a = lg.get("over_entitlement", bad)
    assert a.facts[0] == bad and "1800001" in a.detail and "1800000" in a.detail
    assert ok not in lg.fired("over_entitlement")


def test_over_entitlement_pkh_no_cut_when_cap_large():
    lg = base(pkh=False)
    lg.rates_pkh(2024, PKH_ANNUAL, 5)  # later seq overrides max_members 4
    lg.decide(KK1, "PKH", components=COMPS5)
    ok = lg.order(id="ok", period="2024-T1", amount=2_025_000)
    bad = lg.order(id="bad", period="2024-T2", amount=2_025_001)
    assert lg.fired("over_entitlement") == {bad}
    assert ok not in lg.fired("over_entitlement")


def test_over_entitlement_pkh_multiple_stages_and_years():
    lg = base(pkh=False)
    lg.rates_pkh(2025, {**PKH_ANNUAL, "anak_sd": 1_300_000}, 4)
    lg.decide(KK1, "PKH", components={"anak_sd": 1}, from_="2024-01")
    # 2024-03/2024-04 covers stages 2024-T1 and 2024-T2 → 2 × 225,000
    a = lg.order(id="a", period="2024-03/2024-04", amount=450_000)
    b = lg.order(id="b", period="2024-05/2024-06", amount=225_001)
    # 2024-12/2025-01: 2024-T4 (225,000) + 2025-T1 (325,000) = 550,000
    c = lg.order(id="c", period="2024-12/2025-01", amount=550_000)
    dd = lg.order(id="dd", period="2025-02", amount=325_001)
    assert lg.fired("over_entitlement") == {b, dd}
    assert not {a, c} & lg.fired("over_entitlement")


def test_over_entitlement_components_of_decision_at_first_month():
    lg = base(pkh=False)
    lg.decide(KK1, "PKH", components={"anak_sd": 1}, from_="2024-01")
    lg.decide(KK1, "PKH", components={"ibu_hamil": 1}, from_="2024-03")
    a = lg.order(id="a", period="2024-T1", amount=750_000)  # first month Jan → anak_sd
    b = lg.order(id="b", period="2024-03/2024-04", amount=1_500_000)  # Mar → ibu_hamil ×2 stages
    assert lg.fired("over_entitlement") == {a}
    assert b not in lg.fired("over_entitlement")


def test_over_entitlement_unknown_component_counts_zero():
    lg = base(pkh=False)
    lg.decide(KK1, "PKH", components={"astronaut": 2, "anak_sd": 1})
    bad = lg.order(id="bad", period="2024-T1", amount=225_001)
    ok = lg.order(id="ok", period="2024-T2", amount=225_000)
    assert lg.fired("over_entitlement") == {bad}
    assert ok not in lg.fired("over_entitlement")


def test_over_entitlement_missing_rates_cannot_judge():
    lg = base()
    lg.order(id="o", period="2026-T1", amount=10**12)
    lg.decide(KK1, "BPNT")
    lg.order(id="b", program="BPNT", period="2025-12/2026-01", amount=10**12)
    assert lg.fired("over_entitlement") == set()


def test_over_entitlement_bpnt():
    lg = base(pkh=False, bpnt=True)
    lg.rates_bpnt(2025, 300_000)  # later seq wins for 2025
    ok = lg.order(id="ok", program="BPNT", period="2024-01/2024-03", amount=600_000)
    bad = lg.order(id="bad", program="BPNT", period="2024-04/2024-06", amount=600_001)
    x = lg.order(id="x", program="BPNT", period="2024-12/2025-01", amount=500_000)
    y = lg.order(id="y", program="BPNT", period="2025-02/2025-03", amount=600_000)
    z = lg.order(id="z", program="BPNT", period="2025-04/2025-05", amount=600_001)
    assert lg.fired("over_entitlement") == {bad, z}
    assert not {ok, x, y} & lg.fired("over_entitlement")


def test_over_entitlement_not_when_ineligible():
    lg = base(pkh=False)
    o = lg.order(id="o", amount=10**10)
    assert lg.fired("over_entitlement") == set()
    assert lg.fired("no_eligibility") == {o}


# ---- asn_recipient ---------------------------------------------------------------

def test_asn_recipient_window():
    lg = base()
    lg.asn(NIK1, "2024-01-01", "2024-03-01", id="asn1")
    before = lg.order(id="before", at="2023-12-31", period="2024-01", amount=1)
    first = lg.order(id="first", at="2024-01-01", period="2024-02", amount=1)
    last = lg.order(id="last", at="2024-02-29", period="2024-03", amount=1)
    at_until = lg.order(id="at_until", at="2024-03-01", period="2024-04", amount=1)
    assert lg.fired("asn_recipient") == {first, last}
    a = lg.get("asn_recipient", first)
    assert a.facts == (first, "asn1") and a.subject == KK1
    assert before not in lg.fired("asn_recipient") and at_until not in lg.fired("asn_recipient")


def test_asn_recipient_uses_local_date_of_at():
    lg = base()
    lg.asn(NIK1, "2024-01-01", "2024-03-01")
    # 2024-03-01 local (UTC is still 29 Feb): until is exclusive → no fire
    lg.order(id="o1", at="2024-03-01T01:00:00+07:00", period="2024-04", amount=1)
    # 2024-02-29 local in -05:00 (UTC is 1 March) → fires
    o2 = lg.order(id="o2", at="2024-02-29T22:00:00-05:00", period="2024-05", amount=1)
    assert lg.fired("asn_recipient") == {o2}


def test_asn_recipient_open_ended():
    lg = base()
    lg.asn(NIK1, "2020-01-01")
    o = lg.order(id="o", at="2030-06-01", period="2024-01", amount=1)
    lg.asn(NIK2, "2020-01-01")
    assert lg.fired("asn_recipient") == {o}


# ---- deceased_recipient ------------------------------------------------------------

def test_deceased_order_and_pickup():
    lg = base()
    lg.death(NIK1, "2024-02-01", id="death1")
    same_day = lg.order(id="same", at="2024-02-01", period="2024-01", amount=1)
    after = lg.order(id="after", at="2024-02-02", period="2024-02", amount=1)
    p_same = lg.pickup(same_day, amount=1, at="2024-02-01T23:59:59+07:00", id="p-same")
    p_after = lg.pickup(same_day, amount=1, at="2024-02-02", id="p-after")
    assert lg.fired("deceased_recipient") == {after, p_after}
    assert lg.get("deceased_recipient", after).facts == (after, "death1")
    assert lg.get("deceased_recipient", p_after).facts == (p_after, same_day, "death1")
    assert same_day not in lg.fired("deceased_recipient")
    assert p_same not in lg.fired("deceased_recipient")


def test_deceased_pickup_nik_is_pickups_own():
    lg = base()
    o = lg.order(id="o", at="2024-01-10")
    lg.death(NIK2, "2024-01-01")
    p = lg.pickup(o, nik=NIK2, at="2024-01-12", id="p")
    q = lg.pickup("unknown-order", nik=NIK2, amount=5, at="2024-01-12", id="q")
    assert lg.fired("deceased_recipient") == {p, q}
    assert lg.get("deceased_recipient", q).subject == NIK2


def test_deceased_earliest_death_date_wins():
    lg = base()
    lg.death(NIK1, "2024-05-01", id="late")
    lg.death(NIK1, "2024-01-15", id="early")
    o = lg.order(id="o", at="2024-02-01")
    assert lg.get("deceased_recipient", o).facts == (o, "early")


def test_deceased_death_recorded_after_as_of_does_not_count():
    lg = base()
    o = lg.order(id="o", at="2024-02-01")
    lg.death(NIK1, "2024-01-01", at="2024-06-01", id="death")
    assert lg.fired("deceased_recipient", as_of=d("2024-05-31")) == set()
    assert lg.fired("deceased_recipient", as_of=d("2024-06-01")) == {o}
    assert lg.fired("deceased_recipient") == {o}


# ---- invalid_nik -----------------------------------------------------------------------

def test_invalid_nik_orders():
    lg = base()
    good = lg.order(id="good", nik=NIK1, period="2024-01", amount=1)
    bad = lg.order(id="bad", nik="1275013104900001", period="2024-02", amount=1)  # 31 April
    prov = lg.order(id="prov", nik="2075010101900001", period="2024-03", amount=1)
    fem = lg.order(id="fem", nik="1275016902900001", period="2024-04", amount=1)  # 29 Feb, woman
    assert lg.fired("invalid_nik") == {bad, prov}
    assert good not in lg.fired("invalid_nik") and fem not in lg.fired("invalid_nik")
    assert lg.get("invalid_nik", bad).facts == (bad,)


def test_invalid_nik_pseudonymised():
    lg = base()
    lg.order(id="tok", nik="tk_ab12cd34", period="2024-01", amount=1)  # cannot judge
    f = lg.order(id="flag_false", nik="tk_ff00", nik_possible=False, period="2024-02", amount=1)
    lg.order(id="flag_true", nik="0000000000000000", nik_possible=True, period="2024-03", amount=1)
    assert lg.fired("invalid_nik") == {f}


# ---- nik_in_multiple_families ------------------------------------------------------------

def test_nik_multiple_families_overlap():
    lg = L()
    a = lg.decide(KK1, "PKH", from_="2024-01", nik=NIK1, id="a")
    b = lg.decide(KK2, "PKH", from_="2024-06", nik=NIK1, id="b")
    lg.decide(KK3, "PKH", from_="2024-01", nik=NIK2, id="c")
    an = lg.get("nik_in_multiple_families", f"nik:{NIK1}:PKH")
    assert an is not None and an.facts == (a, b) and an.subject == NIK1
    assert lg.fired("nik_in_multiple_families") == {f"nik:{NIK1}:PKH"}


def test_nik_multiple_families_sequential_not_overlapping():
    lg = L()
    lg.decide(KK1, "PKH", from_="2024-01", nik=NIK1)
    lg.decide(KK1, "PKH", "revoked", from_="2024-03", nik=NIK1)
    lg.decide(KK2, "PKH", from_="2024-03", nik=NIK1)  # starts exactly when KK1 ends
    assert lg.fired("nik_in_multiple_families") == set()


def test_nik_multiple_families_one_month_overlap():
    lg = L()
    a = lg.decide(KK1, "PKH", from_="2024-01", nik=NIK1, id="a")
    lg.decide(KK1, "PKH", "revoked", from_="2024-04", nik=NIK1, id="r")
    b = lg.decide(KK2, "PKH", from_="2024-03", nik=NIK1, id="b")
    an = lg.get("nik_in_multiple_families", f"nik:{NIK1}:PKH")
    assert an is not None and an.facts == (a, b)


def test_nik_multiple_families_other_program_or_same_kk():
    lg = L()
    lg.decide(KK1, "PKH", from_="2024-01", nik=NIK1)
    lg.decide(KK2, "BPNT", from_="2024-01", nik=NIK1)
    lg.decide(KK1, "PKH", from_="2024-05", nik=NIK1)
    assert lg.fired("nik_in_multiple_families") == set()


def test_nik_multiple_families_revoked_or_superseded_tie():
    lg = L()
    lg.decide(KK1, "PKH", "eligible", from_="2024-01", nik=NIK1)
    lg.decide(KK1, "PKH", "revoked", from_="2024-01", nik=NIK1)  # tie, later wins
    lg.decide(KK2, "PKH", from_="2024-01", nik=NIK1)
    lg.decide(KK3, "PKH", "revoked", from_="2024-01", nik=NIK1)
    assert lg.fired("nik_in_multiple_families") == set()


def test_nik_multiple_families_only_involved_decisions_listed():
    lg = L()
    early = lg.decide(KK1, "PKH", from_="2023-01", nik=NIK1, id="early")
    lg.decide(KK1, "PKH", "revoked", from_="2023-06", nik=NIK1, id="rev")
    late = lg.decide(KK1, "PKH", from_="2024-06", nik=NIK1, id="late")
    b = lg.decide(KK2, "PKH", from_="2024-01", nik=NIK1, id="b")
    an = lg.get("nik_in_multiple_families", f"nik:{NIK1}:PKH")
    assert an.facts == (late, b)
    assert early not in an.facts


# ---- settlements ------------------------------------------------------------------------

def test_ghost_settlement_and_as_of():
    lg = base()
    g = lg.settle("nope", id="g")
    late = lg.settle("o-late", id="s-late", at="2024-01-11")
    lg.order(id="o-late", at="2024-02-01")
    assert lg.fired("ghost_settlement") == {g}
    assert lg.get("ghost_settlement", g).subject == "disbursement:nope"
    assert lg.get("ghost_settlement", g).facts == (g,)
    assert lg.fired("ghost_settlement", as_of=d("2024-01-31")) == {g, late}


def test_settlement_mismatch():
    lg = base()
    o = lg.order(id="o", amount=225_000)
    ok = lg.settle(o, amount=225_000, id="ok")
    bad = lg.settle(o, amount=200_000, id="bad")
    lg.settle(o, "failed", amount=1, id="failed-diff")
    assert lg.fired("settlement_mismatch") == {bad}
    assert lg.get("settlement_mismatch", bad).facts == (bad, o)
    assert ok not in lg.fired("settlement_mismatch")


# ---- pickups -----------------------------------------------------------------------------

def test_pickup_without_disbursement():
    lg = base()
    unknown = lg.pickup("missing", nik=NIK2, id="unknown")
    failed_o = lg.order(id="fo", period="2024-01", amount=1)
    lg.settle(failed_o, "failed", amount=1, id="fs")
    on_failed = lg.pickup(failed_o, amount=1, id="on_failed")
    pending = lg.order(id="pending", period="2024-02", amount=1)
    lg.pickup(pending, amount=1, id="on_pending")
    both = lg.order(id="both", period="2024-03", amount=1)
    lg.settle(both, "failed", amount=1)
    lg.settle(both, "credited", amount=1)
    lg.pickup(both, amount=1, id="on_both")
    assert lg.fired("pickup_without_disbursement") == {unknown, on_failed}
    assert lg.get("pickup_without_disbursement", unknown).subject == NIK2
    a = lg.get("pickup_without_disbursement", on_failed)
    assert a.subject == KK1 and a.facts == (on_failed, failed_o, "fs")


def test_pickup_without_disbursement_cleared_by_late_credit():
    lg = base()
    o = lg.order(id="o")
    lg.settle(o, "failed", id="f", at="2024-01-11")
    p = lg.pickup(o, id="p", at="2024-01-12")
    lg.settle(o, "credited", id="c", at="2024-03-01")
    assert lg.fired("pickup_without_disbursement") == set()
    assert lg.fired("pickup_without_disbursement", as_of=d("2024-02-29")) == {p}


def test_over_withdrawal_credited_limit():
    lg = base()
    o = lg.order(id="o", amount=300_000)
    lg.settle(o, amount=250_000)
    a = lg.pickup(o, amount=200_000, id="a", at="2024-01-12")
    b = lg.pickup(o, amount=50_000, id="b", at="2024-01-13")
    c = lg.pickup(o, amount=1, id="c", at="2024-01-14")
    e = lg.pickup(o, amount=1, id="e", at="2024-01-15")
    assert lg.fired("over_withdrawal") == {c, e}
    assert not {a, b} & lg.fired("over_withdrawal")
    assert lg.get("over_withdrawal", c).facts == (c, o)


def test_over_withdrawal_order_amount_limit_and_instant_order():
    lg = base()
    o = lg.order(id="o", amount=300_000)
    # ledger order: late first; instant order: early (+07:00 10:00 = 03:00Z) first
    late = lg.pickup(o, amount=200_000, id="late", at="2024-01-12T10:00:00+00:00")
    early = lg.pickup(o, amount=200_000, id="early", at="2024-01-12T10:00:00+07:00")
    assert lg.fired("over_withdrawal") == {late}


def test_over_withdrawal_same_instant_ledger_order():
    lg = base()
    o = lg.order(id="o", amount=300_000)
    first = lg.pickup(o, amount=200_000, id="first", at="2024-01-12T10:00:00+07:00")
    second = lg.pickup(o, amount=200_000, id="second", at="2024-01-12T03:00:00Z")
    assert lg.fired("over_withdrawal") == {second}


def test_over_withdrawal_exact_limit_ok_and_unknown_order_ignored():
    lg = base()
    o = lg.order(id="o", amount=300_000)
    lg.pickup(o, amount=300_000)
    lg.pickup("nope", amount=10**9)
    assert lg.fired("over_withdrawal") == set()


def test_unassigned_companion_pickup():
    lg = base()
    lg.assign("c1", KK1, from_="2024-02")
    o = lg.order(id="o")
    before = lg.pickup(o, 1, by="companion", companion="c1", at="2024-01-31", id="before")
    ok = lg.pickup(o, 1, by="companion", companion="c1", at="2024-02-01", id="ok")
    other = lg.pickup(o, 1, by="companion", companion="c2", at="2024-02-01", id="other")
    lg.pickup(o, 1, by="recipient", at="2024-01-15", id="self")
    lg.pickup("nope", 1, by="companion", companion="c9", id="unknown")
    assert lg.fired("unassigned_companion_pickup") == {before, other}
    assert ok not in lg.fired("unassigned_companion_pickup")


def test_unassigned_companion_ledger_tie_and_program():
    lg = base(bpnt=True)
    lg.assign("c1", KK1, from_="2024-01", at="2023-12-20")
    lg.assign("c2", KK1, from_="2024-01", at="2023-12-01")  # later seq wins the tie
    lg.assign("c1", KK1, program="BPNT", from_="2024-01")
    o = lg.order(id="o")
    c1 = lg.pickup(o, 1, by="companion", companion="c1", id="c1p")
    c2 = lg.pickup(o, 1, by="companion", companion="c2", id="c2p")
    assert lg.fired("unassigned_companion_pickup") == {c1}
    assert c2 not in lg.fired("unassigned_companion_pickup")


def _concentration(n_families, threshold=None):
    lg = L()
    ids = []
    for i in range(n_families):
        kk = f"12750100000000{i:02d}"
        o = lg.order(kk=kk, id=f"o{i}")
        ids.append(lg.pickup(o, 1, by="companion", companion="c1", id=f"p{i}"))
        lg.assign("c1", kk)
    # same companion, same family again: no extra family
    o = lg.order(kk="1275010000000000", id="again", period="2024-T1")
    ids.append(lg.pickup(o, 1, by="companion", companion="c1", id="p-again"))
    # other period string, and an unknown order: not counted
    o = lg.order(kk="1275010000009999", id="other", period="2024-01/2024-03")
    lg.pickup(o, 1, by="companion", companion="c1", id="p-other")
    lg.pickup("nope", 1, by="companion", companion="c1", id="p-nope")
    kw = {} if threshold is None else {"thresholds": Thresholds(companion_families=threshold)}
    return lg, lg.fired("companion_concentration", **kw), ids


def test_companion_concentration_threshold():
    _, fired, _ = _concentration(4)
    assert fired == set()
    lg, fired, ids = _concentration(5)
    key = "companion:c1:PKH:2024-T1"
    assert fired == {key}
    a = lg.get("companion_concentration", key)
    assert a.subject == "companion:c1" and a.facts == tuple(ids)
    _, fired, _ = _concentration(3, threshold=3)
    assert fired == {key}


# ---- unclaimed_funds ---------------------------------------------------------------------

def _unclaimed_ledger():
    lg = base()
    o = lg.order(id="o", amount=300_000, at="2023-12-20")
    lg.settle(o, amount=300_000, at="2024-01-01T08:00:00+07:00", id="s1")
    return lg, o


@pytest.mark.parametrize("as_of,fires", [("2024-03-31", False), ("2024-04-01", True)])
def test_unclaimed_funds_more_than_90_days(as_of, fires):
    lg, o = _unclaimed_ledger()
    assert (o in lg.fired("unclaimed_funds", as_of=d(as_of))) is fires


def test_unclaimed_funds_default_as_of_and_threshold():
    lg, o = _unclaimed_ledger()
    lg.asn(NIK3, "2020-01-01", at="2024-04-01T00:00:00+07:00")  # moves latest `at`
    assert lg.fired("unclaimed_funds") == {o}
    assert lg.fired("unclaimed_funds", thresholds=Thresholds(unclaimed_days=91)) == set()


def test_unclaimed_funds_cleared_by_pickups_and_returns():
    lg, o = _unclaimed_ledger()
    lg.pickup(o, 100_000, at="2024-02-01")
    assert lg.fired("unclaimed_funds", as_of=d("2024-05-01")) == {o}
    lg.ret(o, 200_000, at="2024-04-15")
    assert lg.fired("unclaimed_funds", as_of=d("2024-05-01")) == set()
    # ...but the return is after an earlier as-of
    assert lg.fired("unclaimed_funds", as_of=d("2024-04-10")) == {o}


def test_unclaimed_funds_first_credited_settlement():
    lg = base()
    o = lg.order(id="o", amount=300_000, at="2023-12-20")
    lg.settle(o, amount=100_000, at="2024-02-01", id="s2")
    lg.settle(o, amount=200_000, at="2024-01-01", id="s1")  # earlier instant, later seq
    lg.settle(o, "failed", amount=300_000, at="2023-12-21", id="sf")
    assert lg.fired("unclaimed_funds", as_of=d("2024-04-01")) == {o}
    a = lg.get("unclaimed_funds", o, as_of=d("2024-04-01"))
    assert a.facts[:2] == (o, "s1")


def test_unclaimed_funds_needs_credit():
    lg = base()
    o = lg.order(id="o", at="2023-01-01")
    lg.settle(o, "failed", at="2023-01-02")
    assert lg.fired("unclaimed_funds", as_of=d("2024-12-31")) == set()


# ---- as-of -------------------------------------------------------------------------------

def test_as_of_excludes_later_orders():
    lg = base(pkh=False)
    lg.order(id="o1", at="2024-01-10")
    lg.order(id="o2", at="2024-03-10")
    assert lg.fired("no_eligibility", as_of=d("2024-01-10")) == {"o1"}
    assert lg.fired("no_eligibility", as_of=d("2024-01-09")) == set()
    assert lg.fired("no_eligibility") == {"o1", "o2"}


def test_as_of_eligibility_decided_later_counts_when_in_log():
    lg = base(pkh=False)
    o = lg.order(id="o", at="2024-01-10")
    lg.decide(KK1, "PKH", from_="2024-01", at="2024-02-01")
    assert lg.fired("no_eligibility", as_of=d("2024-01-31")) == {o}
    assert lg.fired("no_eligibility") == set()


def test_default_as_of_is_date_of_latest_instant():
    from jejak.projections.engine import default_as_of
    lg = L()
    lg.add("death.recorded", "2024-03-06T01:00:00+07:00", nik=NIK3, date="2020-01-01")  # 03-05 18:00Z
    lg.add("death.recorded", "2024-03-05T20:00:00-10:00", nik=NIK2, date="2020-01-01")  # 03-06 06:00Z
    assert default_as_of(lg.facts) == d("2024-03-05")
    assert default_as_of(list(reversed(lg.facts))) == d("2024-03-05")
    assert default_as_of([]) is None


def test_default_as_of_includes_every_fact():
    lg = base(pkh=False)
    o = lg.order(id="o", at="2024-03-06T01:00:00+07:00")  # local date after D
    lg.add("death.recorded", "2024-03-05T20:00:00-10:00", nik=NIK2, date="2020-01-01")
    assert lg.fired("no_eligibility") == {o}


def test_accepts_any_iterable_and_generator():
    lg = base(pkh=False)
    o = lg.order(id="o")
    assert {a.primary for a in evaluate_anomalies(iter(lg.facts))} == {o}
    assert [b.to_dict() for b in compute_balances(f for f in lg.facts)] == lg.balances()


def test_duplicate_payout_reports_each_primary_once_and_is_deterministic():
    lg = base()
    for i in range(4):
        lg.order(id=f"o{i}")
    out = lg.anomalies()
    assert [a.primary for a in out if a.rule == "duplicate_payout"] == ["o1", "o2", "o3"]
    assert all(a.facts[1] == "o0" for a in out if a.rule == "duplicate_payout")
    assert out == lg.anomalies()
