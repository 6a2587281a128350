"""The incremental anomaly read model with the SPEC v2 rules (§5 registers,
§6 complaints) on real stores (SQLite and PostgreSQL).

* Random logs (hypothesis) holding register listings, complaints and
  resolutions beside every v1 fact, ingested in random batches in any order:
  after every catch-up the default list is exactly the pure engine's over all
  facts, and a rebuild gives the same rows.
* Hand-made late facts: a late ``register.listed``, ``complaint.filed`` or
  ``complaint.resolved`` changes the answer on the next read.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from pathlib import Path
from typing import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from jejak.ledger import Ledger
from jejak.projections import anomalies as anomalies_mod
from jejak.projections import runner
from jejak.projections.runner import Projector
from jejak.reports import Reports
from tests.conftest import fresh_pg_database
from tests.integration.test_anomaly_readmodel import (
    KK, NIK, _order, _pickup, _settle, _src, assert_exact, ingest, table_dump,
)
from tests.unit.test_engine_order_independence import groups, interleave

VALID_NIK = "1275010303900004"


def storable(fact: dict) -> dict:
    """A fact of the engine strategies as a source would send it (valid SPEC)."""
    f = {k: v for k, v in fact.items() if k not in ("seq", "nik_possible")}
    if f.get("nik", "").startswith("tk_"):
        f["nik"] = VALID_NIK
    return f


@contextlib.contextmanager
def fresh_ledger(kind: str, tmp: Path, make_settings) -> Iterator[Ledger]:
    if kind == "sqlite":
        url_cm = contextlib.nullcontext(str(tmp / f"s{uuid.uuid4().hex}.db"))
    else:
        url_cm = fresh_pg_database()
    with url_cm as url:
        led = Ledger.open(make_settings(url))
        try:
            yield led
        finally:
            led.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.getfixturevalue("pg_server")
    return request.param


@hsettings(max_examples=12, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(gs=groups(), rnd=st.randoms(use_true_random=False), cuts=st.integers(1, 4))
def test_incremental_equals_engine_on_random_logs(store_kind, tmp_path, make_settings, monkeypatch, gs, rnd, cuts):
    monkeypatch.setattr(runner, "BATCH", 7)
    monkeypatch.setattr(anomalies_mod, "CHUNK", {"k": 3, "r": 2, "n": 2, "c": 1, "q": 2, "m": 1})
    facts = [storable(f) for f in interleave(gs, rnd)]
    rnd.shuffle(facts)  # any order: resolutions before complaints, listings after orders
    lines = [orjson.dumps(f) for f in facts]
    if not lines:
        return
    with fresh_ledger(store_kind, tmp_path, make_settings) as led:
        step = -(-len(lines) // cuts)
        for a in range(0, len(lines), step):
            ingest(led, lines[a:a + step])
            got = assert_exact(led.store)
        before = table_dump(led.store)
        Projector(led.store).rebuild()
        Projector(led.store).settle()
        assert table_dump(led.store) == before
        assert assert_exact(led.store) == got


def _listed(fid, i, register, at, frm="2024-01-01", until=None):
    f = {"id": fid, "type": "register.listed", "at": at, "source": {"kind": "registry", "id": "bpjs-tk"},
         "register": register, "nik": NIK[i], "from": frm}
    if until:
        f["until"] = until
    return f


def _complaint(fid, at, category="not_received", **fields):
    return {"id": fid, "type": "complaint.filed", "at": at, "source": {"kind": "public", "id": "warga-1"},
            "channel": "cekbansos", "category": category, "region": "1275011008", **fields}


def _resolved(fid, complaint, at, outcome="upheld"):
    return {"id": fid, "type": "complaint.resolved", "at": at, "source": _src("dinsos"), "complaint": complaint,
            "outcome": outcome, "text": "ditindaklanjuti"}


T = "T10:00:00+07:00"

STEPS: list[list[dict]] = [
    # orders, settled and picked up; a resolution of a complaint not yet seen
    [_order(f"o{i}", i, "2024-T1", f"2024-03-05{T}") for i in range(1, 5)]
    + [_settle(f"s{i}", f"o{i}", f"2024-03-06{T}") for i in range(1, 5)]
    + [_resolved("r1", "c1", f"2024-03-07{T}")],
    # late register listings: barred (o1), asn + barred (o2), two indicators (o3), one indicator twice (o4)
    [_listed("l1", 1, "tni_polri", f"2024-03-08{T}"),
     _listed("l2a", 2, "asn", f"2024-03-08{T}"), _listed("l2b", 2, "perangkat_desa", f"2024-03-08{T}"),
     _listed("l3a", 3, "pemilik_mobil", f"2024-03-08{T}"), _listed("l3b", 3, "guru_sertifikasi", f"2024-03-08{T}"),
     _listed("l4a", 4, "pemilik_mobil", f"2024-03-08{T}"), _listed("l4b", 4, "pemilik_mobil", f"2024-03-08{T}")],
    # a listing that ended before the order clears nothing, one that is never in force neither; another
    # indicator for o4 makes it flagged
    [_listed("l4c", 4, "listrik_nonsubsidi", f"2024-03-09{T}", frm="2024-03-01")],
    # the complaint the early resolution named arrives: unknown_complaint clears; a not_received complaint
    # about o1 before its pickup; three pungli complaints naming pd-9
    [_complaint("c1", f"2024-03-09{T}", kk=KK[1], disbursement="o1"),
     _complaint("c2", f"2024-03-09{T}", category="pungli", companion="pd-9"),
     _complaint("c3", f"2024-03-09{T}", category="pungli", companion="pd-9"),
     _complaint("c4", f"2024-03-09{T}", category="pungli", companion="pd-9")],
    # a pickup of o1 recorded late, dated before the complaint: disputed
    [_pickup("p1", "o1", 1, f"2024-03-08T18:00:00+07:00")],
    # one pungli complaint rejected: companion_complaints clears
    [_resolved("r3", "c3", f"2024-03-10{T}", outcome="rejected")],
    # time passes (a later fact): c2 and c4 are overdue (15 days), c1 (resolved) is not
    [_order("o5", 5, "2024-T2", f"2024-03-24{T}")],  # 15 days after c2 and c4
    # c4 withdrawn, c2 referred: neither overdue any more
    [_resolved("r4", "c4", f"2024-03-26{T}", outcome="withdrawn"), _resolved("r2", "c2", f"2024-03-26{T}", "referred")],
    # c3's later resolution upholds it, a new open pungli complaint: three count again
    [_resolved("r3b", "c3", f"2024-03-27{T}", outcome="upheld"),
     _complaint("c5", f"2024-03-27{T}", category="pungli", companion="pd-9")],
]


def test_late_v2_facts_change_the_answer(store_url, make_settings):
    led = Ledger.open(make_settings(store_url))
    try:
        seen = []
        for step in STEPS:
            ingest(led, [orjson.dumps(f) for f in step])
            got = assert_exact(led.store)
            pairs = {(a["rule"], a["primary"]) for a in got}
            assert pairs not in seen, f"step {len(seen)} changed nothing"
            seen.append(pairs)
        assert ("unknown_complaint", "r1") in seen[0] and ("unknown_complaint", "r1") not in seen[3]
        assert {("barred_recipient", "o1"), ("barred_recipient", "o2"), ("asn_recipient", "o2"),
                ("flagged_recipient", "o3")} <= seen[1]
        assert ("flagged_recipient", "o4") not in seen[1] and ("flagged_recipient", "o4") in seen[2]
        assert ("companion_complaints", "companion:pd-9") in seen[3]
        assert ("disputed_pickup", "c1") not in seen[3] and ("disputed_pickup", "c1") in seen[4]
        assert ("companion_complaints", "companion:pd-9") not in seen[5]
        assert {("complaint_overdue", "c2"), ("complaint_overdue", "c4")} <= seen[6]
        assert ("complaint_overdue", "c1") not in seen[6]
        assert not any(rule == "complaint_overdue" for rule, _ in seen[7])
        assert ("companion_complaints", "companion:pd-9") in seen[8]
        # revealed for operators: the kk of the complaint, the listing's codes
        reports = Reports(led)
        shown = {(a["rule"], a["primary"]): a for a in reports.anomalies()}
        assert shown[("barred_recipient", "o2")]["detail"] == "perangkat_desa"
        assert shown[("flagged_recipient", "o4")]["detail"] == "listrik_nonsubsidi,pemilik_mobil"
        assert shown[("disputed_pickup", "c1")]["subject"] == KK[1]
        # --as-of goes through the full evaluation and leaves out later facts
        from datetime import date

        early = {(a["rule"], a["primary"]) for a in reports.anomalies(date(2024, 3, 8))}
        assert ("barred_recipient", "o1") in early and ("disputed_pickup", "c1") not in early
        assert ("unknown_complaint", "r1") in early
        # settings' thresholds reach the rules: complaint_days is applied to the read model at query time,
        # another indicator threshold needs the full evaluation
        led.settings = led.settings.model_copy(update={"complaint_days": 30, "indicator_registers": 1})
        other = {(a["rule"], a["primary"]) for a in Reports(led).anomalies()}
        assert not any(rule == "complaint_overdue" for rule, _ in other)
        assert ("flagged_recipient", "o4") in other and ("flagged_recipient", "o3") in other
        led.settings = led.settings.model_copy(update={"complaint_days": -1, "indicator_registers": 2})  # c5: 0 days
        other = {(a["rule"], a["primary"]) for a in Reports(led).anomalies()}
        assert ("complaint_overdue", "c5") in other
    finally:
        led.close()
