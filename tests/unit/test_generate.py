"""Tests of the deterministic fact generator (jejak.generate)."""

from __future__ import annotations

import calendar
import collections
import datetime as dt
import itertools
import re
import types

import orjson
import pytest

from jejak.generate import RULES, Generation, generate, planted_expectations, write_files
from jejak.projections.engine import evaluate_anomalies

# ---------------------------------------------------------------------------
# strict SPEC §1 format checks (independent of the ingest code)

ID_RE = re.compile(r"[A-Za-z0-9._:/-]{1,128}\Z")
AT_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([+-]\d{2}:\d{2}|Z)\Z")
D16 = re.compile(r"[0-9]{16}\Z")
MONTH_RE = re.compile(r"(\d{4})-(0[1-9]|1[0-2])\Z")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
REGION_RE = re.compile(r"[0-9]{10}\Z")
COMPONENTS = {"ibu_hamil", "anak_usia_dini", "anak_sd", "anak_smp", "anak_sma",
              "disabilitas_berat", "lansia"}
CHANNELS = {"BRI", "BNI", "MANDIRI", "BTN", "BSI", "POS"}
SOURCE_KINDS = {"kemensos", "dinsos", "bank", "pos", "pendamping", "bkn", "dukcapil", "registry", "public"}
REGISTERS = {"asn": "barred", "tni_polri": "barred", "pendamping": "barred", "perangkat_desa": "barred",
             "guru_sertifikasi": "indicator", "pengurus_badan_usaha": "indicator", "upah_di_atas_ump": "indicator",
             "listrik_nonsubsidi": "indicator", "pemilik_mobil": "indicator"}
PROVINCES = {11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53,
             61, 62, 63, 64, 65, 71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96}

REQUIRED = {
    "rates.set": {"program", "year"},
    "eligibility.decided": {"kk", "nik", "program", "decision", "from", "region"},
    "companion.assigned": {"companion", "kk", "program", "from"},
    "disbursement.ordered": {"kk", "nik", "program", "period", "amount", "channel"},
    "disbursement.settled": {"disbursement", "status", "amount", "channel"},
    "pickup.recorded": {"disbursement", "nik", "amount", "by"},
    "funds.returned": {"disbursement", "amount"},
    "asn.registered": {"nik", "agency", "from"},
    "death.recorded": {"nik", "date"},
    "register.listed": {"register", "nik", "from"},
    "complaint.filed": {"channel", "category", "region"},
    "complaint.resolved": {"complaint", "outcome"},
}
OPTIONAL = {
    "rates.set": {"annual", "max_members", "monthly"},
    "eligibility.decided": {"components", "basis"},
    "pickup.recorded": {"companion"},
    "asn.registered": {"until"},
    "register.listed": {"until"},
    "complaint.filed": {"kk", "nik", "disbursement", "companion", "text"},
    "complaint.resolved": {"text"},
}


def _is_date(s) -> bool:
    if not isinstance(s, str) or not DATE_RE.match(s):
        return False
    try:
        dt.date.fromisoformat(s)
    except ValueError:
        return False
    return True


def _is_month(s) -> bool:
    return isinstance(s, str) and bool(MONTH_RE.match(s))


def _months(period: str) -> list[tuple[int, int]]:
    m = re.fullmatch(r"(\d{4})-T([1-4])", period)
    if m:
        y, n = int(m[1]), int(m[2])
        return [(y, k) for k in range(3 * n - 2, 3 * n + 1)]
    m = re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])", period)
    if m:
        return [(int(m[1]), int(m[2]))]
    m = re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])/(\d{4})-(0[1-9]|1[0-2])", period)
    assert m, period
    a, b = (int(m[1]), int(m[2])), (int(m[3]), int(m[4]))
    assert a <= b, period
    out, cur = [], a
    while cur <= b:
        out.append(cur)
        cur = (cur[0] + cur[1] // 12, cur[1] % 12 + 1)
    return out


def _is_amount(x) -> bool:
    return type(x) is int and x > 0


def nik_possible(nik: str) -> bool:
    if not D16.match(nik):
        return False
    p, r, d = int(nik[0:2]), int(nik[2:4]), int(nik[4:6])
    day, mon, yy, ser = int(nik[6:8]), int(nik[8:10]), int(nik[10:12]), int(nik[12:16])
    if p not in PROVINCES or r == 0 or d == 0 or ser == 0:
        return False
    if 41 <= day <= 71:
        day -= 40
    elif not 1 <= day <= 31:
        return False
    if not 1 <= mon <= 12:
        return False
    return day <= (29 if mon == 2 else calendar.monthrange(2001, mon)[1])


def check_fact(f: dict) -> None:
    assert isinstance(f, dict)
    assert isinstance(f.get("id"), str) and ID_RE.match(f["id"]), f
    t = f.get("type")
    assert t in REQUIRED, f
    m = AT_RE.match(f.get("at", ""))
    assert m and m[7] == "+07:00", f
    dt.datetime.fromisoformat(f["at"])
    src = f.get("source")
    assert isinstance(src, dict) and set(src) == {"kind", "id"}, f
    assert src["kind"] in SOURCE_KINDS and isinstance(src["id"], str) and src["id"], f
    extra = set(f) - {"id", "type", "at", "source"}
    assert REQUIRED[t] <= extra, f
    assert extra <= REQUIRED[t] | OPTIONAL.get(t, set()), f
    for k in ("nik", "kk"):
        if k in f:
            assert isinstance(f[k], str) and D16.match(f[k]), f
    if "program" in f:
        assert f["program"] in ("PKH", "BPNT"), f
    if "amount" in f:
        assert _is_amount(f["amount"]), f
    if "channel" in f and t != "complaint.filed":
        assert f["channel"] in CHANNELS, f
    if t == "rates.set":
        assert type(f["year"]) is int
        if f["program"] == "PKH":
            assert set(f["annual"]) <= COMPONENTS and all(_is_amount(v) for v in f["annual"].values())
            assert type(f["max_members"]) is int and f["max_members"] >= 1
        else:
            assert _is_amount(f["monthly"])
    elif t == "eligibility.decided":
        assert f["decision"] in ("eligible", "revoked")
        assert _is_month(f["from"]) and REGION_RE.match(f["region"])
        assert f["region"].startswith("1275")
        if f["program"] == "PKH" and f["decision"] == "eligible":
            c = f["components"]
            assert c and set(c) <= COMPONENTS and all(type(v) is int and v >= 1 for v in c.values())
        else:
            assert "components" not in f
        if "basis" in f:
            assert isinstance(f["basis"], str)
    elif t == "companion.assigned":
        assert re.fullmatch(r"pdp-1275-\d{3,}", f["companion"]) and _is_month(f["from"])
    elif t == "disbursement.ordered":
        _months(f["period"])
        if f["program"] == "PKH":
            assert re.fullmatch(r"\d{4}-T[1-4]", f["period"]), f
    elif t == "disbursement.settled":
        assert f["status"] in ("credited", "failed") and ID_RE.match(f["disbursement"])
    elif t == "pickup.recorded":
        assert f["by"] in ("recipient", "family", "companion") and ID_RE.match(f["disbursement"])
        assert ("companion" in f) == (f["by"] == "companion"), f
    elif t == "funds.returned":
        assert ID_RE.match(f["disbursement"])
    elif t == "asn.registered":
        assert _is_date(f["from"]) and isinstance(f["agency"], str) and f["agency"]
        if "until" in f:
            assert _is_date(f["until"]) and f["until"] > f["from"]
    elif t == "death.recorded":
        assert _is_date(f["date"])
    elif t == "register.listed":
        assert f["register"] in REGISTERS and _is_date(f["from"])
        if "until" in f:
            assert _is_date(f["until"])
    elif t == "complaint.filed":
        assert f["channel"] in ("slrt", "cekbansos", "lapor", "pendamping", "walk_in")
        assert f["category"] in ("not_received", "wrong_amount", "pungli", "inclusion_error", "exclusion_error",
                                 "other")
        assert REGION_RE.match(f["region"]) and isinstance(f.get("text", ""), str)
        assert ID_RE.match(f.get("disbursement", "x")) and isinstance(f.get("companion", ""), str)
    elif t == "complaint.resolved":
        assert ID_RE.match(f["complaint"])
        assert f["outcome"] in ("upheld", "partially_upheld", "rejected", "withdrawn", "referred")


# ---------------------------------------------------------------------------
# an independent, naive reference reading of SPEC §4 (small inputs only)


def reference_anomalies(facts: list[dict]) -> set[tuple[str, str]]:
    facts = [dict(f, seq=k) for k, f in enumerate(facts)]
    D = max(f["at"] for f in facts)[:10]   # all timestamps share +07:00 here
    facts = [f for f in facts if f["at"][:10] <= D]
    out: set[tuple[str, str]] = set()
    by = collections.defaultdict(list)
    for f in facts:
        by[f["type"]].append(f)
    orders = {}
    for o in by["disbursement.ordered"]:
        orders.setdefault(o["id"], o)
    stl = collections.defaultdict(list)
    picks = collections.defaultdict(list)
    rets = collections.defaultdict(list)
    for s in by["disbursement.settled"]:
        stl[s["disbursement"]].append(s)
    for p in by["pickup.recorded"]:
        picks[p["disbursement"]].append(p)
    for r in by["funds.returned"]:
        rets[r["disbursement"]].append(r)

    def credited(oid):
        return sum(s["amount"] for s in stl[oid] if s["status"] == "credited")

    def failed(oid):
        ss = stl[oid]
        return any(s["status"] == "failed" for s in ss) and not any(
            s["status"] == "credited" for s in ss)

    def mkey(ym):
        return ym[0] * 12 + ym[1] - 1

    def month_of(s):
        return mkey((int(s[:4]), int(s[5:7])))

    def in_force(timeline, M):
        best = None
        for f in timeline:
            k = (month_of(f["from"]), f["seq"])
            if k[0] <= M and (best is None or k > best[0]):
                best = (k, f)
        return best[1] if best else None

    dec = collections.defaultdict(list)
    for d in by["eligibility.decided"]:
        dec[(d["kk"], d["program"])].append(d)
    asg = collections.defaultdict(list)
    for a in by["companion.assigned"]:
        asg[(a["kk"], a["program"])].append(a)
    rates = {}
    for r in by["rates.set"]:
        rates[(r["program"], r["year"])] = r
    deaths = collections.defaultdict(list)
    for d in by["death.recorded"]:
        deaths[d["nik"]].append(d["date"])
    listed = collections.defaultdict(list)   # nik -> (register, from, until); asn.registered is asn
    for a in by["asn.registered"]:
        listed[a["nik"]].append(("asn", a["from"], a.get("until")))
    for a in by["register.listed"]:
        listed[a["nik"]].append((a["register"], a["from"], a.get("until")))

    def entitlement(o, d):
        ms = _months(o["period"])
        if o["program"] == "BPNT":
            return rates[("BPNT", ms[0][0])]["monthly"] * len(ms)
        r = rates[("PKH", ms[0][0])]
        members = sorted((r["annual"][c] for c, n in d["components"].items()
                          for _ in range(n)), reverse=True)[: r["max_members"]]
        stages = {(y, (m - 1) // 3) for y, m in ms}
        return sum(members) // 4 * len(stages)

    olist = sorted(orders.values(), key=lambda o: o["seq"])
    for o in olist:
        oid, ms = o["id"], {mkey(x) for x in _months(o["period"])}
        for o2 in olist:
            if o2["seq"] >= o["seq"]:
                break
            if (o2["kk"], o2["program"]) == (o["kk"], o["program"]) and not failed(o2["id"]) \
                    and ms & {mkey(x) for x in _months(o2["period"])}:
                out.add(("duplicate_payout", oid))
                break
        d = in_force(dec[(o["kk"], o["program"])], min(ms))
        if d is None or d["decision"] != "eligible":
            out.add(("no_eligibility", oid))
        elif o["amount"] > entitlement(o, d):
            out.add(("over_entitlement", oid))
        day = o["at"][:10]
        hits = {r for r, a, u in listed[o["nik"]] if a <= day and (u is None or day < u)}
        if "asn" in hits:
            out.add(("asn_recipient", oid))
        if any(REGISTERS[r] == "barred" and r != "asn" for r in hits):
            out.add(("barred_recipient", oid))
        if sum(REGISTERS[r] == "indicator" for r in hits) >= 2:
            out.add(("flagged_recipient", oid))
        if any(day > dd for dd in deaths[o["nik"]]):
            out.add(("deceased_recipient", oid))
        if not nik_possible(o["nik"]):
            out.add(("invalid_nik", oid))
    for p in by["pickup.recorded"]:
        if any(p["at"][:10] > dd for dd in deaths[p["nik"]]):
            out.add(("deceased_recipient", p["id"]))
    # nik_in_multiple_families
    months = range(min(month_of(d["from"]) for d in by["eligibility.decided"]), month_of(D) + 1)
    for prog in ("PKH", "BPNT"):
        for M in months:
            reps = collections.defaultdict(set)
            for (kk, pr), tl in dec.items():
                if pr != prog:
                    continue
                d = in_force(tl, M)
                if d is not None and d["decision"] == "eligible":
                    reps[d["nik"]].add(kk)
            for nik, kks in reps.items():
                if len(kks) >= 2:
                    out.add(("nik_in_multiple_families", f"nik:{nik}:{prog}"))
    for s in by["disbursement.settled"]:
        o = orders.get(s["disbursement"])
        if o is None:
            out.add(("ghost_settlement", s["id"]))
        elif s["status"] == "credited" and s["amount"] != o["amount"]:
            out.add(("settlement_mismatch", s["id"]))
    conc = collections.defaultdict(set)
    for p in by["pickup.recorded"]:
        o = orders.get(p["disbursement"])
        if o is None or failed(o["id"]):
            out.add(("pickup_without_disbursement", p["id"]))
        if o is not None and p["by"] == "companion":
            a = in_force(asg[(o["kk"], o["program"])], month_of(p["at"]))
            if a is None or a["companion"] != p["companion"]:
                out.add(("unassigned_companion_pickup", p["id"]))
            conc[(p["companion"], o["program"], o["period"])].add(o["kk"])
    for (c, prog, per), kks in conc.items():
        if len(kks) >= 5:
            out.add(("companion_concentration", f"companion:{c}:{prog}:{per}"))
    for oid, o in orders.items():
        ps = sorted(picks[oid], key=lambda p: (dt.datetime.fromisoformat(p["at"]), p["seq"]))
        limit = credited(oid) or o["amount"]
        run, passed = 0, False
        for p in ps:
            run += p["amount"]
            passed = passed or run > limit
            if passed:
                out.add(("over_withdrawal", p["id"]))
        c = credited(oid)
        if c > 0 and sum(p["amount"] for p in picks[oid]) + sum(
                r["amount"] for r in rets[oid]) < c:
            first = min(s["at"] for s in stl[oid] if s["status"] == "credited")
            if (dt.date.fromisoformat(D) - dt.date.fromisoformat(first[:10])).days > 90:
                out.add(("unclaimed_funds", oid))
    # SPEC v2 §6
    filed = {}
    for c in by["complaint.filed"]:
        filed.setdefault(c["id"], c)
    outcome = {}
    for r in by["complaint.resolved"]:
        if r["complaint"] in filed:
            outcome[r["complaint"]] = r["outcome"]
        else:
            out.add(("unknown_complaint", r["id"]))
    named = collections.defaultdict(int)
    for cid, c in filed.items():
        if cid not in outcome and (dt.date.fromisoformat(D) - dt.date.fromisoformat(c["at"][:10])).days > 14:
            out.add(("complaint_overdue", cid))
        if c["category"] == "not_received" and c.get("disbursement") in orders and any(
                p["at"][:10] <= c["at"][:10] for p in picks[c["disbursement"]]):
            out.add(("disputed_pickup", cid))
        if c["category"] == "pungli" and "companion" in c and outcome.get(cid) not in ("rejected", "withdrawn"):
            named[c["companion"]] += 1
    out.update(("companion_complaints", f"companion:{comp}") for comp, n in named.items() if n >= 3)
    return out


# ---------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def clean():
    g = Generation(300, 20240501, plant=False)
    return g, list(g.facts())


@pytest.fixture(scope="module")
def planted():
    g = Generation(300, 20240501, plant=True)
    return g, list(g.facts())


# ---------------------------------------------------------------------------
# determinism

def test_same_seed_identical_bytes(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    ea, eb = tmp_path / "a.exp", tmp_path / "b.exp"
    sa = write_files(150, 42, a, plant=True, expected_path=ea)
    sb = write_files(150, 42, b, plant=True, expected_path=eb)
    write_files(150, 43, c, plant=True)
    assert a.read_bytes() == b.read_bytes()
    assert ea.read_bytes() == eb.read_bytes()
    assert sa == sb
    assert a.read_bytes() != c.read_bytes()
    # clean data is deterministic too, and differs from the planted run
    d, e = tmp_path / "d.jsonl", tmp_path / "e.jsonl"
    write_files(150, 42, d)
    write_files(150, 42, e)
    assert d.read_bytes() == e.read_bytes() != a.read_bytes()


def test_write_files_lines_and_summary(tmp_path):
    out, exp = tmp_path / "f.jsonl", tmp_path / "f.exp"
    seen = []
    s = write_files(120, 7, out, plant=True, expected_path=exp, progress=seen.append)
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == s["facts"] == seen[-1]
    facts = [orjson.loads(x) for x in lines]
    assert facts == list(generate(120, 7, plant=True))
    assert s["as_of"] == max(f["at"] for f in facts)
    expected = [orjson.loads(x) for x in exp.read_bytes().splitlines()]
    assert expected == planted_expectations(120, 7) and len(expected) == s["expected"]
    assert all(set(e) == {"rule", "primary"} for e in expected)


# ---------------------------------------------------------------------------
# formats

@pytest.mark.parametrize("which", ["clean", "planted"])
def test_every_fact_matches_spec_formats(which, request):
    g, facts = request.getfixturevalue(which)
    ids = set()
    for f in facts:
        check_fact(f)
        assert f["id"] not in ids, f["id"]
        ids.add(f["id"])
        # ids are prefixed by their source
        assert f["id"].split(":")[0] in ("kemensos", "dinsos", "bkn", "dukcapil", "pos",
                                         "bri", "bni", "mandiri", "bsi", "btn", "registry",
                                         *f.get("channel", "").split()), f["id"]
    # recording order: timestamps never go back
    ats = [f["at"] for f in facts]
    assert ats == sorted(ats)
    assert g.as_of == ats[-1] and g.count == len(facts)
    # every KK starts with the regency code; every family in one kecamatan/region
    for f in facts:
        if "kk" in f:
            assert f["kk"].startswith("1275")


def test_content_shape(clean):
    _, facts = clean
    by = collections.Counter(f["type"] for f in facts)
    assert by["rates.set"] == 2
    rates = {f["program"]: f for f in facts if f["type"] == "rates.set"}
    assert rates["PKH"]["annual"]["anak_sd"] == 900_000 and rates["PKH"]["max_members"] == 4
    assert rates["BPNT"]["monthly"] == 200_000
    jan = [f for f in facts if f["type"] == "eligibility.decided" and f["from"] == "2024-01"]
    kks = {f["kk"] for f in jan}
    pkh = {f["kk"] for f in jan if f["program"] == "PKH"}
    bpnt = {f["kk"] for f in jan if f["program"] == "BPNT"}
    assert 0.5 < len(pkh) / len(kks) < 0.7 and 0.8 < len(bpnt) / len(kks) <= 1
    reps = [f["nik"] for f in jan]
    women = sum(1 for n in reps if int(n[6:8]) > 40)
    assert women / len(reps) > 0.8
    for f in facts:
        if f["type"] == "eligibility.decided":
            assert f["nik"][:4] == "1275" and f["nik"][4:6] == f["region"][4:6]
            assert 1 <= int(f["nik"][12:]) <= 999
    orders = [f for f in facts if f["type"] == "disbursement.ordered"]
    pos = sum(1 for o in orders if o["channel"] == "POS")
    assert 0.03 < pos / len(orders) < 0.2
    assert {o["period"] for o in orders if o["program"] == "BPNT"} == {
        f"2024-{m:02d}/2024-{m + 1:02d}" for m in (1, 3, 5, 7, 9, 11)}
    assert {o["period"] for o in orders if o["program"] == "PKH"} == {
        f"2024-T{k}" for k in (1, 2, 3, 4)}
    assert all(o["amount"] == 400_000 for o in orders if o["program"] == "BPNT")
    companions = collections.Counter(f["companion"] for f in facts
                                     if f["type"] == "companion.assigned")
    assert all(40 <= v <= 200 for v in list(companions.values())[:-1])
    stl = [f for f in facts if f["type"] == "disbursement.settled"]
    assert any(s["status"] == "failed" for s in stl)
    assert any(f["type"] == "funds.returned" for f in facts)
    assert any(f.get("by") == "companion" for f in facts)


# ---------------------------------------------------------------------------
# laziness / streaming

def test_generation_is_lazy():
    g = Generation(100_000, 3)
    it = g.facts()
    assert isinstance(it, types.GeneratorType) and iter(it) is it
    first = list(itertools.islice(it, 10))
    assert len(first) == 10 and g.count == 10 and not g.done
    # only the families needed for the first facts have been drawn
    assert sum(1 for x in g.flags if x) < 20
    it.close()
    gen = generate(100_000, 3)
    assert isinstance(gen, types.GeneratorType)
    assert list(itertools.islice(gen, 10)) == first


# ---------------------------------------------------------------------------
# internal consistency of clean data

def test_clean_references_and_limits(clean):
    _, facts = clean
    orders, credited, picked, returned = {}, collections.Counter(), collections.Counter(), \
        collections.Counter()
    failed = set()
    for f in facts:
        t = f["type"]
        if t == "disbursement.ordered":
            orders[f["id"]] = f
        elif t in ("disbursement.settled", "pickup.recorded", "funds.returned"):
            oid = f["disbursement"]
            assert oid in orders, f       # references an earlier order
            o = orders[oid]
            if "channel" in f:
                assert f["channel"] == o["channel"]
            if t == "disbursement.settled":
                if f["status"] == "credited":
                    assert f["amount"] == o["amount"]
                    credited[oid] += f["amount"]
                else:
                    failed.add(oid)
            elif t == "pickup.recorded":
                assert credited[oid] > 0 and f["nik"] == o["nik"]
                picked[oid] += f["amount"]
                assert picked[oid] + returned[oid] <= credited[oid]
            else:
                returned[oid] += f["amount"]
                assert picked[oid] + returned[oid] <= credited[oid]
    # every failed order is followed by a re-order for the same kk/program/period
    for oid in failed:
        o = orders[oid]
        assert credited[oid] == 0
        assert any(x["id"] != oid and (x["kk"], x["program"], x["period"]) ==
                   (o["kk"], o["program"], o["period"]) and credited[x["id"]]
                   for x in orders.values())
    nik_of_kk = {}
    for f in facts:
        if "kk" in f and "nik" in f:
            assert nik_of_kk.setdefault(f["kk"], f["nik"]) == f["nik"]
        if "nik" in f:
            assert nik_possible(f["nik"]), f
    assert len(set(nik_of_kk.values())) == len(nik_of_kk)


def test_clean_has_no_anomaly(clean):
    _, facts = clean
    assert reference_anomalies(facts) == set()


# ---------------------------------------------------------------------------
# planted

def test_planted_covers_every_rule_twice(planted):
    g, _ = planted
    assert g.done
    counts = collections.Counter(e["rule"] for e in g.expected)
    assert set(counts) == set(RULES) and len(RULES) == 20
    assert all(counts[r] >= 2 for r in RULES), counts
    assert len({(e["rule"], e["primary"]) for e in g.expected}) == len(g.expected)
    assert g.expected == sorted(g.expected, key=lambda e: (e["rule"], e["primary"]))


def test_planted_expected_matches_reference_reading(planted):
    g, facts = planted
    exp = {(e["rule"], e["primary"]) for e in g.expected}
    got = reference_anomalies(facts)
    assert got == exp, {"missing": sorted(exp - got), "unexpected": sorted(got - exp)}


def test_planted_needs_enough_families():
    with pytest.raises(ValueError):
        Generation(50, 1, plant=True)


# ---------------------------------------------------------------------------
# agreement with the anomaly engine

def test_engine_agrees_on_planted(planted):
    g, facts = planted
    got = {(a.rule, a.primary) for a in evaluate_anomalies([dict(f, seq=k) for k, f in enumerate(facts)])}
    exp = {(e["rule"], e["primary"]) for e in g.expected}
    assert got == exp, {"missing": sorted(exp - got), "unexpected": sorted(got - exp)}


def test_engine_silent_on_clean(clean):
    _, facts = clean
    got = evaluate_anomalies([dict(f, seq=k) for k, f in enumerate(facts)])
    assert [(a.rule, a.primary) for a in got] == []
