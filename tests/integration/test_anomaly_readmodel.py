"""The incremental anomaly read model (jejak.projections.anomalies) on real
stores: after every catch-up its default list is *exactly* (same anomalies,
order and fields) the full evaluation of the rule engine over all facts.

* A planted generation ingested in shuffled batches (late deaths, ASN
  registrations, revocations, settlements and pickups before their orders,
  rates last), compared after every batch; rebuild == incremental.
* Hand-made late facts: each step can create or clear anomalies, including a
  fact with a later `at` that moves the default as-of (unclaimed_funds).
* A catch-up or a settle that dies part-way resumes to the same answer.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.projections import anomalies as anomalies_mod
from jejak.projections import runner
from jejak.projections.anomalies import Anomalies
from jejak.projections.engine import Thresholds, evaluate_anomalies
from jejak.projections.readmodels import load_fact_rows
from jejak.projections.runner import Projector
from jejak.reports import Reports
from jejak.store.datastore import Store


def read_lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines() if ln.strip()]


def ingest(ledger: Ledger, lines: list[bytes]) -> None:
    rejections: list = []
    summary = ledger.ingest_lines(iter(lines), on_rejection=rejections.append)
    assert summary.rejected == 0, [r.to_dict() for r in rejections[:5]]


def full(store: Store, unclaimed_days: int = 90) -> list[dict[str, Any]]:
    t = Thresholds(unclaimed_days=unclaimed_days)
    return [a.to_dict() for a in evaluate_anomalies(load_fact_rows(store), None, t)]


def incremental(store: Store, unclaimed_days: int = 90) -> list[dict[str, Any]]:
    Projector(store).catch_up()
    Projector(store).settle()
    return Anomalies.query(store, unclaimed_days)


def assert_exact(store: Store) -> list[dict[str, Any]]:
    got = incremental(store)
    want = full(store)
    assert orjson.dumps(got) == orjson.dumps(want), _diff(got, want)
    # unclaimed_days is applied at read time: other values are exact too.
    for days in (0, 30):
        assert incremental(store, days) == full(store, days)
    return got


def _diff(got: list[dict], want: list[dict]) -> str:
    g = {(a["rule"], a["primary"]): a for a in got}
    w = {(a["rule"], a["primary"]): a for a in want}
    missing = [w[k] for k in w.keys() - g.keys()][:3]
    extra = [g[k] for k in g.keys() - w.keys()][:3]
    changed = [(g[k], w[k]) for k in g.keys() & w.keys() if g[k] != w[k]][:3]
    return f"missing {missing}\nextra {extra}\nchanged {changed}\n({len(got)} vs {len(want)})"


def table_dump(store: Store) -> dict[str, list]:
    out = {}
    for table, cols in (("p_anom_rows", "scope, rnk, prim, body"), ("p_anom_unclaimed", "scope, order_id, first_day, body"),
                        ("p_anom_dirty", "kind, key"), ("p_anom_meta", "secs, frac, seq, day")):
        out[table] = sorted(tuple(bytes(v) if isinstance(v, memoryview) else v for v in dict(r).values())
                            for r in store.query(f"SELECT {cols} FROM {table}"))
    return out


@pytest.fixture
def ledger(store_url: str, make_settings):
    led = Ledger.open(make_settings(store_url))
    yield led
    led.close()


@pytest.fixture(scope="module")
def planted_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    d = tmp_path_factory.mktemp("planted_rm")
    write_files(120, 23, d / "facts.jsonl", plant=True, expected_path=d / "expected.jsonl")
    return read_lines(d / "facts.jsonl")


def _late_first(lines: list[bytes], rng: random.Random) -> list[bytes]:
    """Shuffle, then push people's facts, revocations and rates to the end and
    some settlements/pickups before everything (orders arrive after them)."""
    facts = [(orjson.loads(ln), ln) for ln in lines]
    rng.shuffle(facts)
    early = [ln for f, ln in facts if f["type"] in ("disbursement.settled", "pickup.recorded") and rng.random() < 0.3]
    late_types = ("death.recorded", "asn.registered", "rates.set")
    late = [ln for f, ln in facts if f["type"] in late_types
            or (f["type"] == "eligibility.decided" and f.get("decision") == "revoked")]
    taken = set(map(id, early)) | set(map(id, late))
    middle = [ln for _, ln in facts if id(ln) not in taken]
    return early + middle + late


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_equals_full_in_shuffled_batches(ledger: Ledger, planted_lines, seed: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(runner, "BATCH", 450)
    monkeypatch.setattr(anomalies_mod, "CHUNK", {"k": 37, "r": 11, "n": 29, "c": 3, "q": 5, "m": 2})
    lines = planted_lines if seed == 1 else _late_first(planted_lines, rng)
    cuts = sorted({0, len(lines), *(rng.randrange(len(lines)) for _ in range(5))})
    for a, b in zip(cuts, cuts[1:]):
        ingest(ledger, lines[a:b])
        got = assert_exact(ledger.store)
    assert {a["rule"] for a in got} >= {"duplicate_payout", "deceased_recipient", "ghost_settlement",
                                        "companion_concentration", "unclaimed_funds"}
    # Reports (revealed) == the full evaluation revealed, in the same order.
    reports = Reports(ledger)
    assert [a["primary"] for a in reports.anomalies()] == [
        reports.reveal_text(a["primary"]) for a in full(ledger.store)]
    # rebuild == incremental, row for row
    before = table_dump(ledger.store)
    Projector(ledger.store).replay()
    # a replay only marks everything dirty; the next reader evaluates it
    assert table_dump(ledger.store)["p_anom_dirty"] == [("*", "")]
    Projector(ledger.store).settle()
    assert table_dump(ledger.store) == before
    # a rebuild is a replay and a settle
    Projector(ledger.store).rebuild()
    assert table_dump(ledger.store) == before
    assert incremental(ledger.store) == got


def _src(kind: str) -> dict[str, str]:
    return {"kind": kind, "id": f"{kind}-1"}


NIK = {i: f"12750167087700{i:02d}" for i in range(1, 20)}
KK = {i: f"12750111040500{i:02d}" for i in range(1, 20)}


def _elig(fid, i, at, decision="eligible", frm="2024-01", nik=None):
    f = {"id": fid, "type": "eligibility.decided", "at": at, "source": _src("dinsos"), "kk": KK[i],
         "nik": nik or NIK[i], "program": "PKH", "decision": decision, "from": frm, "region": "1275011008"}
    if decision == "eligible":
        f["components"] = {"anak_sd": 1}
    return f


def _order(fid, i, period, at, amount=225000):
    return {"id": fid, "type": "disbursement.ordered", "at": at, "source": _src("kemensos"), "kk": KK[i],
            "nik": NIK[i], "program": "PKH", "period": period, "amount": amount, "channel": "BRI"}


def _settle(fid, ref, at, status="credited", amount=225000):
    return {"id": fid, "type": "disbursement.settled", "at": at, "source": _src("bank"), "disbursement": ref,
            "status": status, "amount": amount, "channel": "BRI"}


def _pickup(fid, ref, i, at, amount=225000, companion=None):
    f = {"id": fid, "type": "pickup.recorded", "at": at, "source": _src("pos"), "disbursement": ref, "nik": NIK[i],
         "amount": amount, "by": "recipient"}
    if companion:
        f.update(by="companion", companion=companion)
    return f


RATES = {"id": "rates", "type": "rates.set", "at": "2024-01-02T09:00:00+07:00", "source": _src("kemensos"),
         "program": "PKH", "year": 2024, "max_members": 4,
         "annual": {"ibu_hamil": 3000000, "anak_usia_dini": 3000000, "anak_sd": 900000, "anak_smp": 1500000,
                    "anak_sma": 2000000, "disabilitas_berat": 2400000, "lansia": 2400000}}

# Each step is ingested and caught up on its own; every step changes the answer.
STEPS: list[list[dict]] = [
    # orders and pickups first: no eligibility, no rates yet; a ghost settlement and orphan pickups
    [_order(f"o{i}", i, "2024-T1", "2024-03-05T10:00:00+07:00", amount=300000 if i == 6 else 225000)
     for i in range(1, 8)]
    + [_settle("s9", "o9", "2024-03-06T10:00:00+07:00"), _pickup("p9", "o9", 9, "2024-03-07T10:00:00+07:00")]
    # a companion's pickups for five families whose orders arrive later
    + [_pickup(f"pq{i}", f"q{i}", i, "2024-07-10T10:00:00+07:00", companion="pd-2") for i in range(12, 17)]
    # an order nobody picks up; a pickup of an order never seen
    + [_order("o17", 17, "2024-T1", "2024-03-05T10:00:00+07:00"), _pickup("px", "zz", 18, "2024-03-07T10:00:00+07:00")],
    [_settle(f"s{i}", f"o{i}", "2024-03-06T10:00:00+07:00", amount={3: 200000, 6: 300000}.get(i, 225000))
     for i in range(1, 8)],
    [_pickup(f"p{i}", f"o{i}", i, "2024-03-10T10:00:00+07:00", companion="pd-1") for i in range(1, 6)],
    [_elig(f"e{i}", i, "2024-01-03T08:00:00+07:00") for i in range(1, 8)],
    [RATES],
    # the late order clears the ghost settlement and the orphan pickup
    [_order("o9", 9, "2024-T2", "2024-04-05T10:00:00+07:00")]
    + [_order(f"q{i}", i, "2024-T3", "2024-07-05T10:00:00+07:00") for i in range(12, 17)],
    # a death (before the pickups) and an ASN registration, recorded late
    [{"id": "d1", "type": "death.recorded", "at": "2024-04-01T09:00:00+07:00", "source": _src("dukcapil"),
      "nik": NIK[1], "date": "2024-03-08"},
     {"id": "asn2", "type": "asn.registered", "at": "2024-04-02T09:00:00+07:00", "source": _src("bkn"),
      "nik": NIK[2], "agency": "Pemko Medan", "from": "2024-01-01"}],
    # nik of family 3 becomes the representative of family 10 too; family 4 revoked
    [_elig("e10", 10, "2024-04-03T08:00:00+07:00", nik=NIK[3]),
     _elig("r4", 4, "2024-04-03T08:00:00+07:00", decision="revoked", frm="2024-01")],
    # a fact far later in time: the default as-of moves, funds become unclaimed
    [_order("o11", 11, "2024-T4", "2024-11-05T10:00:00+07:00")],
    # family 10's later decision names another nik: the multi-family anomaly clears
    [_elig("e10b", 10, "2024-11-06T08:00:00+07:00", frm="2024-01", nik=NIK[10]),
     _settle("s6f", "o6", "2024-11-06T09:00:00+07:00", status="failed"),
     _pickup("p7", "o7", 7, "2024-11-07T10:00:00+07:00")],
    # a duplicate order; a return; a fact whose `at` is the latest instant in another offset
    [_order("o5b", 5, "2024-T1", "2024-11-08T10:00:00+07:00"),
     {"id": "ret2", "type": "funds.returned", "at": "2024-11-08T11:00:00+07:00", "source": _src("bank"),
      "disbursement": "o2", "amount": 225000},
     {"id": "late-tz", "type": "death.recorded", "at": "2024-11-08T20:00:00-10:00", "source": _src("dukcapil"),
      "nik": NIK[8], "date": "2024-11-01"}],
    # registry facts about people who only appear in an order / in an orphan pickup
    [{"id": "asn17", "type": "asn.registered", "at": "2024-11-09T09:00:00+07:00", "source": _src("bkn"),
      "nik": NIK[17], "agency": "Pemko Medan", "from": "2024-01-01"},
     {"id": "d18", "type": "death.recorded", "at": "2024-11-09T09:00:00+07:00", "source": _src("dukcapil"),
      "nik": NIK[18], "date": "2024-03-01"},
     # extra fields (kept as sent) that name another family or order must not pull facts into its scope
     {**_settle("s3x", "o3", "2024-11-09T10:00:00+07:00", amount=1), "kk": KK[5]},
     {**_elig("e6x", 6, "2024-11-09T08:00:00+07:00", frm="2024-02"), "disbursement": "o7"}],
]


def test_late_facts_create_and_clear_anomalies(ledger: Ledger) -> None:
    seen: list[list[dict]] = []
    for step in STEPS:
        ingest(ledger, [orjson.dumps(f) for f in step])
        got = assert_exact(ledger.store)
        assert got not in seen, f"step {len(seen)} changed nothing"
        seen.append(got)
    rules = {a["rule"] for s in seen for a in s}
    assert rules >= {"no_eligibility", "ghost_settlement", "pickup_without_disbursement", "deceased_recipient",
                     "asn_recipient", "nik_in_multiple_families", "companion_concentration", "unclaimed_funds",
                     "unassigned_companion_pickup", "duplicate_payout"}, rules
    # the late order cleared the ghost settlement; the later decision cleared the multi-family one
    assert not any(a["rule"] == "ghost_settlement" for a in seen[-1])
    assert not any(a["rule"] == "nik_in_multiple_families" for a in seen[-1])
    assert any(a["rule"] == "nik_in_multiple_families" for a in seen[7])
    assert {("asn_recipient", "o17"), ("deceased_recipient", "px")} <= {(a["rule"], a["primary"]) for a in seen[-1]}
    # the late orders turned the orphan pickups into a companion concentration
    assert any(a["rule"] == "pickup_without_disbursement" and a["primary"] == "pq12" for a in seen[0])
    assert not any(a["rule"] == "pickup_without_disbursement" and a["primary"] == "pq12" for a in seen[5])
    assert any(a["primary"] == "companion:pd-2:PKH:2024-T3" for a in seen[5])


def test_non_default_queries_use_full_evaluation(ledger: Ledger, make_settings) -> None:
    from datetime import date

    for step in STEPS:
        ingest(ledger, [orjson.dumps(f) for f in step])
    reports = Reports(ledger)
    reports.catch_up()
    facts = load_fact_rows(ledger.store)
    as_of = date(2024, 7, 1)
    want = [a.to_dict() for a in evaluate_anomalies(facts, as_of, Thresholds())]
    assert reports.anomalies(as_of, reveal=False) == want
    # another companion threshold than the model's: full evaluation
    ledger.settings = ledger.settings.model_copy(update={"companion_families": 2})
    want = [a.to_dict() for a in evaluate_anomalies(facts, None, Thresholds(companion_families=2))]
    assert reports.anomalies(reveal=False) == want


class Boom(Exception):
    pass


def test_crash_in_apply_and_in_settle_resumes(ledger: Ledger, planted_lines, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "BATCH", 500)
    monkeypatch.setattr(anomalies_mod, "CHUNK", {"k": 20, "r": 5, "n": 20, "c": 2, "q": 3, "m": 2})
    ingest(ledger, planted_lines)
    store = ledger.store
    # 1. dies in the third batch's apply
    real_apply = Anomalies.apply
    calls = {"n": 0}

    def dying_apply(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Boom
        return real_apply(self, *a, **k)

    monkeypatch.setattr(Anomalies, "apply", dying_apply)
    with pytest.raises(Boom):
        Projector(store).catch_up()
    monkeypatch.setattr(Anomalies, "apply", real_apply)
    # 2. the first reader's settle dies after a few chunks
    real_eval = Anomalies._eval_k
    chunks = {"n": 0}

    def dying_eval(self, *a, **k):
        chunks["n"] += 1
        if chunks["n"] == 4:
            raise Boom
        return real_eval(self, *a, **k)

    Projector(store).catch_up()  # resumes after the dead batch
    monkeypatch.setattr(Anomalies, "_eval_k", dying_eval)
    with pytest.raises(Boom):
        Reports(ledger).anomalies()
    assert store.query_one("SELECT COUNT(*) AS n FROM p_anom_dirty")["n"] > 0
    monkeypatch.setattr(Anomalies, "_eval_k", real_eval)
    # 3. the next reader finishes the work: the answer is exact
    got = [a["primary"] for a in Reports(ledger).anomalies(reveal=False)]
    assert store.query_one("SELECT COUNT(*) AS n FROM p_anom_dirty")["n"] == 0
    assert got == [a["primary"] for a in full(store)]
    resumed = table_dump(store)
    Projector(store).rebuild()
    Projector(store).settle()
    assert table_dump(store) == resumed
