"""Engine rules of SPEC v2: §5 registers (asn_recipient fed by register.listed,
barred_recipient, flagged_recipient) and §6 complaints (complaint_overdue,
disputed_pickup, companion_complaints, unknown_complaint), each at its edges,
with §4's as-of rule applied first."""

from __future__ import annotations

import pytest

from jejak.projections.engine import Thresholds
from tests.unit.test_engine_rules import KK1, KK2, NIK1, NIK2, L, d


class V2(L):
    def listed(self, register, nik=NIK1, from_="2024-01-01", until=None, at="2023-06-01", id=None):
        f = {"register": register, "nik": nik, "from": from_}
        if until is not None:
            f["until"] = until
        return self.add("register.listed", at, id, **f)

    def complaint(self, category="not_received", at="2024-02-01", id=None, **fields):
        f = {"channel": "lapor", "category": category, "region": "1275010001", **fields}
        return self.add("complaint.filed", at, id, **f)

    def resolve(self, complaint, outcome="upheld", at="2024-02-10", id=None):
        return self.add("complaint.resolved", at, id, complaint=complaint, outcome=outcome)

    def v2(self, **kw):
        """(rule, primary) of the register and complaint rules (orders here have no eligibility)."""
        return [(a.rule, a.primary) for a in self.anomalies(**kw) if a.rule in V2_RULES]


V2_RULES = {"asn_recipient", "barred_recipient", "flagged_recipient", "complaint_overdue", "disputed_pickup",
            "companion_complaints", "unknown_complaint"}


# ---- registers -------------------------------------------------------------------


def test_barred_listing_in_force_from_its_first_day_until_the_day_before_until():
    lg = V2()
    lg.listed("tni_polri", from_="2024-02-01", until="2024-03-01", id="l1")
    before = lg.order(at="2024-01-31", id="before")
    first = lg.order(at="2024-02-01", id="first")
    last = lg.order(at="2024-02-29", id="last")
    at_until = lg.order(at="2024-03-01", id="at_until")
    assert lg.fired("barred_recipient") == {first, last}
    a = lg.get("barred_recipient", first)
    assert a.detail == "tni_polri" and a.subject == KK1 and a.facts == (first, "l1")
    assert before not in lg.fired("barred_recipient") and at_until not in lg.fired("barred_recipient")


def test_listing_date_is_the_orders_local_date():
    lg = V2()
    lg.listed("perangkat_desa", from_="2024-02-01")
    # 2024-01-31T23:30 at +07:00 is 2024-01-31 locally (16:30 UTC): before the listing
    early = lg.order(at="2024-01-31T23:30:00+07:00")
    # 2024-02-01T01:00+09:00 is 2024-01-31 in UTC, but 2024-02-01 locally: listed
    late = lg.order(at="2024-02-01T01:00:00+09:00")
    assert lg.fired("barred_recipient") == {late}
    assert early not in lg.fired("barred_recipient")


@pytest.mark.parametrize("until", ["2024-01-01", "2023-12-31"])
def test_until_not_after_from_is_never_in_force(until):
    lg = V2()
    lg.listed("pendamping", from_="2024-01-01", until=until)
    lg.listed("asn", from_="2024-01-01", until=until)
    lg.listed("pemilik_mobil", from_="2024-01-01", until=until)
    lg.listed("listrik_nonsubsidi", from_="2024-01-01", until=until)
    for day in ("2023-12-31", "2024-01-01", "2024-06-01"):
        lg.order(at=day)
    assert lg.v2() == []


def test_only_the_orders_nik_is_matched():
    lg = V2()
    lg.listed("tni_polri", nik=NIK2)
    lg.listed("asn", nik=NIK2)
    o = lg.order(nik=NIK1)
    # the pickup's nik and the family's other members do not count
    lg.settle(o)
    lg.pickup(o, nik=NIK2)
    assert lg.fired("barred_recipient") == set() and lg.fired("asn_recipient") == set()


def test_failed_orders_count():
    lg = V2()
    lg.listed("tni_polri")
    o = lg.order()
    lg.settle(o, status="failed")
    assert lg.fired("barred_recipient") == {o}


def test_barred_and_asn_on_one_order_fire_both():
    lg = V2()
    lg.listed("asn", id="la")
    lg.listed("perangkat_desa", id="lp")
    lg.listed("tni_polri", id="lt")
    o = lg.order(at="2024-03-05")
    assert lg.fired("asn_recipient") == {o}
    b = lg.get("barred_recipient", o)
    assert b.detail == "perangkat_desa,tni_polri" and b.facts == (o, "lp", "lt")
    # barred registers never count as indicators
    assert lg.fired("flagged_recipient") == set()


def test_register_listed_asn_is_asn_recipient_with_the_v1_detail():
    lg = V2()
    lg.listed("asn", from_="2024-01-01", until="2024-06-01", id="la")
    o = lg.order(at="2024-03-05")
    a = lg.get("asn_recipient", o)
    assert a.facts == (o, "la")
    assert a.detail == "recipient registered as civil servant from 2024-01-01 until 2024-06-01 when ordered on 2024-03-05"
    # asn is never a barred_recipient register
    assert lg.fired("barred_recipient") == set()


def test_asn_registered_and_listing_count_once():
    lg = V2()
    lg.asn(NIK1, "2023-01-01", id="a1")
    lg.listed("asn", from_="2024-01-01", id="la")
    o = lg.order(at="2024-03-05")
    a = lg.get("asn_recipient", o)
    assert a.facts == (o, "a1", "la")
    assert lg.v2() == [("asn_recipient", o)]


def test_flagged_needs_two_distinct_indicator_registers():
    lg = V2()
    lg.listed("guru_sertifikasi", id="g1")
    lg.listed("guru_sertifikasi", from_="2023-01-01", id="g2")  # the same register again: counts once
    o1 = lg.order(at="2024-02-01")
    assert lg.fired("flagged_recipient") == set()
    lg.listed("pemilik_mobil", from_="2024-03-01", id="m1")
    o2 = lg.order(at="2024-03-01")
    assert lg.fired("flagged_recipient") == {o2}
    a = lg.get("flagged_recipient", o2)
    assert a.detail == "guru_sertifikasi,pemilik_mobil" and a.facts == (o2, "g1", "g2", "m1")
    assert o1 not in lg.fired("flagged_recipient")


def test_barred_never_counts_as_indicator():
    lg = V2()
    lg.listed("upah_di_atas_ump")
    lg.listed("tni_polri")
    lg.listed("pendamping")
    o = lg.order()
    assert lg.fired("flagged_recipient") == set() and lg.fired("barred_recipient") == {o}


def test_indicator_threshold_is_configurable():
    lg = V2()
    lg.listed("listrik_nonsubsidi")
    o = lg.order()
    assert lg.fired("flagged_recipient") == set()
    assert lg.fired("flagged_recipient", thresholds=Thresholds(indicator_registers=1)) == {o}
    a = lg.get("flagged_recipient", o, thresholds=Thresholds(indicator_registers=1))
    assert a.detail == "listrik_nonsubsidi"


def test_listing_recorded_after_as_of_is_left_out():
    lg = V2()
    lg.listed("tni_polri", from_="2023-01-01", at="2024-05-01")
    o = lg.order(at="2024-02-01")
    assert lg.fired("barred_recipient") == {o}
    assert lg.fired("barred_recipient", as_of=d("2024-04-30")) == set()
    assert lg.fired("barred_recipient", as_of=d("2024-05-01")) == {o}


# ---- complaint_overdue -------------------------------------------------------------


def test_overdue_after_more_than_14_days():
    lg = V2()
    c = lg.complaint(at="2024-02-01T23:00:00+07:00", kk=KK1)
    assert lg.fired("complaint_overdue", as_of=d("2024-02-15")) == set()  # 14 days
    assert lg.fired("complaint_overdue", as_of=d("2024-02-16")) == {c}  # 15 days
    a = lg.get("complaint_overdue", c, as_of=d("2024-02-16"))
    assert a.subject == KK1 and a.facts == (c,) and a.detail == "complaint open for 15 days (> 14)"
    # the default as-of is the latest `at` of the log
    assert lg.fired("complaint_overdue") == set()
    lg.order(at="2024-02-16T00:30:00+07:00")
    assert lg.fired("complaint_overdue") == {c}


def test_overdue_threshold_is_configurable():
    lg = V2()
    c = lg.complaint(at="2024-02-01")
    assert lg.fired("complaint_overdue", as_of=d("2024-02-05"), thresholds=Thresholds(complaint_days=3)) == {c}
    assert lg.fired("complaint_overdue", as_of=d("2024-02-04"), thresholds=Thresholds(complaint_days=3)) == set()


@pytest.mark.parametrize("outcome", ["upheld", "partially_upheld", "rejected", "withdrawn", "referred"])
def test_any_resolution_closes_a_complaint(outcome):
    lg = V2()
    c = lg.complaint(at="2024-02-01")
    lg.resolve(c, outcome, at="2024-03-01")
    assert lg.fired("complaint_overdue", as_of=d("2024-03-20")) == set()
    # as of a date before the resolution it was still open
    assert lg.fired("complaint_overdue", as_of=d("2024-02-29")) == {c}


def test_resolution_dated_before_its_complaint_still_closes_it():
    lg = V2()
    lg.resolve("c1", "upheld", at="2024-01-20", id="r1")
    lg.complaint(at="2024-02-01", id="c1")
    assert lg.fired("complaint_overdue", as_of=d("2024-04-01")) == set()
    assert lg.fired("unknown_complaint", as_of=d("2024-04-01")) == set()
    # as of before the complaint was filed, the resolution names no known complaint
    assert lg.fired("unknown_complaint", as_of=d("2024-01-25")) == {"r1"}


def test_complaint_without_kk_has_its_region_as_subject():
    lg = V2()
    c = lg.complaint(at="2024-02-01")
    a = lg.get("complaint_overdue", c, as_of=d("2024-03-01"))
    assert a.subject == "region:1275010001"


# ---- disputed_pickup ---------------------------------------------------------------


def _paid(lg, pickup_at="2024-01-12", status="credited"):
    o = lg.order(id="o1")
    lg.settle(o, status=status)
    p = lg.pickup(o, at=pickup_at, id="p1")
    return o, p


def test_disputed_pickup_on_the_day_of_the_complaint_fires_the_day_after_does_not():
    lg = V2()
    o, p = _paid(lg, pickup_at="2024-02-01T20:00:00+07:00")
    same = lg.complaint(at="2024-02-01T09:00:00+07:00", disbursement=o, id="same")  # earlier that day
    before = lg.complaint(at="2024-01-31T23:59:00+07:00", disbursement=o, id="before")
    assert lg.fired("disputed_pickup") == {same}
    a = lg.get("disputed_pickup", same)
    assert a.facts == (same, o, p) and a.subject == KK1
    assert before not in lg.fired("disputed_pickup")


def test_disputed_compares_local_dates():
    lg = V2()
    # the pickup's local date 2024-02-02 (+09:00) is the complaint's instant's UTC day
    o, _ = _paid(lg, pickup_at="2024-02-02T01:00:00+09:00")
    c = lg.complaint(at="2024-02-01T20:00:00+00:00", disbursement=o)
    assert lg.fired("disputed_pickup") == set()
    c2 = lg.complaint(at="2024-02-02T00:00:00-10:00", disbursement=o)
    assert lg.fired("disputed_pickup") == {c2} and c not in lg.fired("disputed_pickup")


def test_disputed_pickup_of_a_failed_order_and_whatever_the_outcome():
    lg = V2()
    o, _ = _paid(lg, status="failed")
    c = lg.complaint(at="2024-02-01", disbursement=o)
    lg.resolve(c, "rejected")
    assert lg.fired("disputed_pickup") == {c}


def test_disputed_needs_not_received_a_known_order_and_a_pickup():
    lg = V2()
    o, _ = _paid(lg)
    other = lg.complaint("wrong_amount", disbursement=o)
    unknown = lg.complaint(disbursement="no-such-order")
    unpicked = lg.order(id="o2")
    no_pickup = lg.complaint(disbursement=unpicked)
    no_ref = lg.complaint()
    assert lg.fired("disputed_pickup") == set()
    assert {other, unknown, no_pickup, no_ref}.isdisjoint(lg.fired("disputed_pickup"))
    # the order arrives late (ledger order does not matter): now it disputes
    lg.order(id="no-such-order", at="2024-01-05")
    lg.pickup("no-such-order", at="2024-01-20")
    assert lg.fired("disputed_pickup") == {unknown}


def test_disputed_pickup_as_of_leaves_out_later_pickup_records():
    lg = V2()
    o = lg.order()
    c = lg.complaint(at="2024-02-01", disbursement=o)
    lg.pickup(o, at="2024-01-20")  # recorded late, dated before the complaint
    assert lg.fired("disputed_pickup") == {c}
    assert lg.fired("disputed_pickup", as_of=d("2024-01-19")) == set()  # neither the complaint nor the pickup
    assert lg.fired("disputed_pickup", as_of=d("2024-02-01")) == {c}


# ---- companion_complaints ----------------------------------------------------------


def test_three_pungli_complaints_of_which_one_rejected_do_not_fire():
    lg = V2()
    cs = [lg.complaint("pungli", companion="pd-1", at=f"2024-02-0{k}") for k in (1, 2, 3)]
    assert lg.fired("companion_complaints") == {"companion:pd-1"}
    lg.resolve(cs[0], "rejected")
    assert lg.fired("companion_complaints") == set()
    # a later resolution of the same complaint wins (ledger order)
    lg.resolve(cs[0], "upheld", at="2024-02-05")
    assert lg.fired("companion_complaints") == {"companion:pd-1"}


def test_withdrawn_does_not_count_open_and_upheld_do():
    lg = V2()
    a = lg.complaint("pungli", companion="pd-1")
    b = lg.complaint("pungli", companion="pd-1")
    c = lg.complaint("pungli", companion="pd-1")
    lg.resolve(a, "withdrawn")
    assert lg.fired("companion_complaints") == set()
    w = lg.complaint("pungli", companion="pd-1")
    lg.resolve(b, "partially_upheld")
    lg.resolve(c, "referred")
    an = lg.get("companion_complaints", "companion:pd-1")
    assert an.facts == (b, c, w) and an.subject == "companion:pd-1"
    assert an.detail == "3 pungli complaints name the companion (threshold 3)"


def test_only_pungli_naming_the_companion_counts():
    lg = V2()
    lg.complaint("pungli", companion="pd-1")
    lg.complaint("pungli", companion="pd-1")
    lg.complaint("other", companion="pd-1")
    lg.complaint("pungli", companion="pd-2")
    lg.complaint("pungli", text="pendamping pd-1 minta uang")  # named in the text only
    assert lg.fired("companion_complaints") == set()
    assert lg.fired("companion_complaints", thresholds=Thresholds(companion_complaints=2)) == {"companion:pd-1"}


# ---- unknown_complaint -------------------------------------------------------------


def test_unknown_complaint_references_no_filed_complaint():
    lg = V2()
    o = lg.order(id="o1")
    r_order = lg.resolve(o, "upheld", id="r1")  # an order id is not a complaint
    r_none = lg.resolve("nothing", "withdrawn", id="r2")
    c = lg.complaint(id="c1")
    ok = lg.resolve(c, "upheld", id="r3")
    assert lg.fired("unknown_complaint") == {r_order, r_none}
    a = lg.get("unknown_complaint", "r1")
    assert a.subject == "complaint:o1" and a.facts == ("r1",)
    assert ok not in lg.fired("unknown_complaint")


def test_rule_table_lists_v2_rules_after_v1():
    from jejak.projections.engine import RULES

    assert RULES[-6:] == ("barred_recipient", "flagged_recipient", "complaint_overdue", "disputed_pickup",
                          "companion_complaints", "unknown_complaint")
    lg = V2()
    lg.listed("tni_polri")
    o = lg.order()
    lg.resolve("x", id="r")
    assert lg.v2() == [("barred_recipient", o), ("unknown_complaint", "r")]


def test_complaints_do_not_enter_balances():
    lg = V2()
    o, _ = _paid(lg)
    before = lg.balances()
    lg.complaint(disbursement=o, kk=KK2)
    assert lg.balances() == before
