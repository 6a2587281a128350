"""The decomposition behind the incremental anomaly read model
(jejak.projections.anomalies), checked on the pure engine, no I/O:

evaluating each scope's *closed* subset of facts with ``evaluate_scope`` and
keeping the scope's own anomalies, plus unclaimed_funds from the candidates and
the latest instant, gives exactly ``evaluate_anomalies`` over the whole log,
in the same order. The closures below mirror the read model's SQL.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jejak.generate import generate
from jejak.projections.anomalies import _FAMILY_RULES, _ORPHAN_RULES, _latest
from jejak.projections.engine import (
    RULES,
    overdue_anomaly,
    Thresholds,
    default_as_of,
    evaluate_anomalies,
    evaluate_scope,
    instant_key,
    unclaimed_anomaly,
)
from tests.unit.test_engine_order_independence import groups, interleave, numbered

RANK = {r: i for i, r in enumerate(RULES)}
ORDER = "disbursement.ordered"
REF_TYPES = ("disbursement.settled", "pickup.recorded", "funds.returned")
PEOPLE = ("asn.registered", "death.recorded", "register.listed")
COMPLAINT, RESOLUTION = "complaint.filed", "complaint.resolved"


def by_scopes(facts: list[dict], t: Thresholds) -> list[dict]:
    """The anomaly list assembled scope by scope, as the read model does."""
    orders = {f["id"]: f for f in facts if f["type"] == ORDER}
    rates = [f for f in facts if f["type"] == "rates.set"]
    rows: list[tuple[int, str, dict]] = []
    cands = []
    # k:<kk>|<program>
    kk_types = (ORDER, "eligibility.decided", "companion.assigned")
    for kk, prog in sorted({(f["kk"], f["program"]) for f in facts if f["type"] in kk_types}):
        own = [f for f in facts if f["type"] in kk_types and f["kk"] == kk and f["program"] == prog]
        ids = {f["id"] for f in own if f["type"] == ORDER}
        refs = [f for f in facts if f["type"] in (*REF_TYPES, COMPLAINT) and f.get("disbursement") in ids]
        niks = {f["nik"] for f in own if f["type"] == ORDER} | {
            f["nik"] for f in refs if f["type"] == "pickup.recorded"}
        people = [f for f in facts if f["type"] in PEOPLE and f["nik"] in niks]
        found, c, overdue = evaluate_scope(own + refs + people + rates, t)
        for a in found:
            if a.rule in _FAMILY_RULES:
                assert a.subject == kk
                rows.append((RANK[a.rule], a.primary, a.to_dict()))
        cands += c
    # r:<ref> (orphans)
    for ref in sorted({f["disbursement"] for f in facts if f["type"] in REF_TYPES} - orders.keys()):
        sub = [f for f in facts if f["type"] in REF_TYPES and f["disbursement"] == ref]
        niks = {f["nik"] for f in sub if "nik" in f}
        sub += [f for f in facts if f["type"] == "death.recorded" and f["nik"] in niks]
        found, c, _ = evaluate_scope(sub, t)
        assert not c
        for a in found:
            assert a.rule in _ORPHAN_RULES
            rows.append((RANK[a.rule], a.primary, a.to_dict()))
    # n:<nik>
    decisions = [f for f in facts if f["type"] == "eligibility.decided"]
    for nik in sorted({f["nik"] for f in decisions}):
        kks = {f["kk"] for f in decisions if f["nik"] == nik}
        found, _, _ = evaluate_scope([f for f in decisions if f["kk"] in kks], t)
        rows += [(RANK[a.rule], a.primary, a.to_dict()) for a in found
                 if a.rule == "nik_in_multiple_families" and a.subject == nik]
    # c:<companion>
    comp_pickups = [f for f in facts if f["type"] == "pickup.recorded" and f.get("by") == "companion"]
    for comp in sorted({str(f.get("companion")) for f in comp_pickups}):
        mine = [f for f in comp_pickups if str(f.get("companion")) == comp]
        refs = {f["disbursement"] for f in mine}
        found, _, _ = evaluate_scope(mine + [o for i, o in orders.items() if i in refs], t)
        rows += [(RANK[a.rule], a.primary, a.to_dict()) for a in found
                 if a.rule == "companion_concentration" and a.subject == f"companion:{comp}"]
    # q:<complaint id>
    complaint_facts = [f for f in facts if f["type"] in (COMPLAINT, RESOLUTION)]

    def about(f):
        return f["id"] if f["type"] == COMPLAINT else f["complaint"]

    overdue = []
    for cid in sorted({about(f) for f in complaint_facts}):
        found, c, o = evaluate_scope([f for f in complaint_facts if about(f) == cid], t)
        assert not c
        overdue += o
        rows += [(RANK[a.rule], a.primary, a.to_dict()) for a in found if a.rule == "unknown_complaint"]
    # m:<companion>
    pungli = [f for f in complaint_facts if f["type"] == COMPLAINT and f["category"] == "pungli"
              and isinstance(f.get("companion"), str)]
    for comp in sorted({f["companion"] for f in pungli}):
        cids = {f["id"] for f in pungli if f["companion"] == comp}
        found, _, _ = evaluate_scope([f for f in complaint_facts if about(f) in cids], t)
        rows += [(RANK[a.rule], a.primary, a.to_dict()) for a in found
                 if a.rule == "companion_complaints" and a.primary == f"companion:{comp}"]
    # unclaimed_funds and complaint_overdue at the default as-of
    if facts:
        *_, day = _latest([(f["at"], f["seq"]) for f in facts])
        as_of = dt.date.fromisoformat(day)
        for cand in cands:
            a = unclaimed_anomaly(*cand, as_of, t.unclaimed_days)
            if a is not None:
                rows.append((RANK[a.rule], a.primary, a.to_dict()))
        for cand in overdue:
            a = overdue_anomaly(*cand, as_of, t.complaint_days)
            if a is not None:
                rows.append((RANK[a.rule], a.primary, a.to_dict()))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


def full(facts: list[dict], t: Thresholds) -> list[dict]:
    return [a.to_dict() for a in evaluate_anomalies(facts, None, t)]


THRESHOLDS = [Thresholds(), Thresholds(companion_families=2, unclaimed_days=30, complaint_days=5, indicator_registers=1,
                                        companion_complaints=2), Thresholds(1, 0, 0, 0, 0)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups(), st.randoms(use_true_random=False))
def test_scopes_equal_full_evaluation_random_logs(gs, rnd):
    facts = numbered(interleave(gs, rnd))
    for t in THRESHOLDS:
        assert by_scopes(facts, t) == full(facts, t)


@pytest.mark.parametrize("seed", [3, 4])
def test_scopes_equal_full_evaluation_planted_generation(seed):
    facts = list(generate(100, seed, plant=True))
    random.Random(seed).shuffle(facts)  # late facts of every kind, orders after their settlements
    facts = numbered(facts)
    for t in THRESHOLDS[:2]:
        want = full(facts, t)
        assert by_scopes(facts, t) == want
        assert {a["rule"] for a in want} >= {"duplicate_payout", "ghost_settlement", "deceased_recipient",
                                             "unclaimed_funds", "nik_in_multiple_families"}


OFFSETS = ["Z", "z", "+07:00", "+08:00", "-10:00", "+14:00", "-12:00", "+00:00"]


@st.composite
def stamps(draw):
    base = dt.datetime(2024, 3, 1) + dt.timedelta(minutes=draw(st.integers(0, 5 * 24 * 60)))
    frac = draw(st.sampled_from(["", ".0", ".5", ".50", ".123456789", ".9"]))
    return base.strftime("%Y-%m-%dT%H:%M:%S") + frac + draw(st.sampled_from(OFFSETS))


@settings(max_examples=300, deadline=None)
@given(st.lists(stamps(), min_size=1, max_size=30))
def test_latest_instant_is_the_engines(ats):
    facts = [{"at": at, "seq": i} for i, at in enumerate(ats)]
    secs, frac, seq, day = _latest([(f["at"], f["seq"]) for f in facts])
    want = max(facts, key=lambda f: (instant_key(f["at"]), f["seq"]))
    assert (secs, frac, seq) == (*instant_key(want["at"]), want["seq"])
    assert dt.date.fromisoformat(day) == default_as_of(facts)
