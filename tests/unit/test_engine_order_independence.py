"""The engine depends on ledger order (seq) only, never on input list order,
and independent families' facts can be interleaved freely."""

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jejak.projections.engine import Thresholds, compute_balances, evaluate_anomalies

NIKS = ["1275010101900001", "1275010202900002", "1275013104900003",
        "tk_pseudonym_a", "3171014503850005"]
COMPANIONS = ["c1", "c2", "c3"]
PERIODS = ["2024-T1", "2024-T2", "2024-01", "2024-02/2024-04", "2024-03", "2025-T1",
           "2024-12/2025-01"]
MONTHS = ["2023-12", "2024-01", "2024-02", "2024-03", "2024-05", "2025-01"]
OFFSETS = ["+07:00", "+08:00", "+09:00", "Z", "-05:00"]
REGISTERS = ["asn", "tni_polri", "perangkat_desa", "guru_sertifikasi", "pemilik_mobil", "listrik_nonsubsidi"]


def _at(draw):
    day = draw(st.integers(0, 420))
    hour = draw(st.integers(0, 23))
    date = dt.date(2023, 12, 1) + dt.timedelta(days=day)
    return f"{date.isoformat()}T{hour:02d}:00:00{draw(st.sampled_from(OFFSETS))}"


@st.composite
def family(draw, idx):
    """Facts touching only family idx (its kk, its orders), in ledger order."""
    kk = f"12750100000{idx:05d}"
    facts = []

    def add(type_, **fields):
        facts.append({"id": f"F{idx}-{len(facts)}", "type": type_, "at": _at(draw),
                      "source": {"kind": "kemensos", "id": "s"}, **fields})
        return facts[-1]["id"]

    for _ in range(draw(st.integers(0, 3))):
        prog = draw(st.sampled_from(["PKH", "BPNT"]))
        f = {"kk": kk, "nik": draw(st.sampled_from(NIKS)), "program": prog,
             "decision": draw(st.sampled_from(["eligible", "eligible", "revoked"])),
             "from": draw(st.sampled_from(MONTHS)), "region": "1275010001"}
        if prog == "PKH" and f["decision"] == "eligible":
            f["components"] = draw(st.dictionaries(
                st.sampled_from(["anak_sd", "ibu_hamil", "lansia", "anak_smp"]),
                st.integers(1, 3), min_size=1, max_size=3))
        add("eligibility.decided", **f)
    for _ in range(draw(st.integers(0, 2))):
        add("companion.assigned", companion=draw(st.sampled_from(COMPANIONS)), kk=kk,
            program=draw(st.sampled_from(["PKH", "BPNT"])),
            **{"from": draw(st.sampled_from(MONTHS))})
    orders = [f"ghost-{idx}"]
    for _ in range(draw(st.integers(0, 4))):
        extra = {}
        nik = draw(st.sampled_from(NIKS))
        if nik.startswith("tk_") and draw(st.booleans()):
            extra["nik_possible"] = draw(st.booleans())
        orders.append(add("disbursement.ordered", kk=kk, nik=nik,
                          program=draw(st.sampled_from(["PKH", "BPNT"])),
                          period=draw(st.sampled_from(PERIODS)),
                          amount=draw(st.sampled_from([200_000, 225_000, 600_000, 1_800_000])),
                          channel="BRI", **extra))
        for _ in range(draw(st.integers(0, 5))):
            kind = draw(st.sampled_from(["settle", "settle", "pickup", "pickup", "return"]))
            ref = draw(st.sampled_from(orders))
            amount = draw(st.sampled_from([1, 100_000, 200_000, 225_000]))
            if kind == "settle":
                add("disbursement.settled", disbursement=ref,
                    status=draw(st.sampled_from(["credited", "failed"])),
                    amount=amount, channel="BRI")
            elif kind == "pickup":
                by = draw(st.sampled_from(["recipient", "family", "companion", "companion"]))
                extra = {"companion": draw(st.sampled_from(COMPANIONS))} if by == "companion" else {}
                add("pickup.recorded", disbursement=ref, nik=draw(st.sampled_from(NIKS)),
                    amount=amount, by=by, **extra)
            else:
                add("funds.returned", disbursement=ref, amount=amount)
    complaints = [f"F{idx}-none"]
    for _ in range(draw(st.integers(0, 3))):
        f = {"channel": "lapor", "category": draw(st.sampled_from(["not_received", "not_received", "pungli", "other"])),
             "region": "1275010001"}
        if draw(st.booleans()):
            f["disbursement"] = draw(st.sampled_from(orders))
        if draw(st.booleans()):
            f["companion"] = draw(st.sampled_from(COMPANIONS))
        if draw(st.booleans()):
            f["kk"] = kk
        complaints.append(add("complaint.filed", **f))
    for _ in range(draw(st.integers(0, 2))):
        add("complaint.resolved", complaint=draw(st.sampled_from(complaints + orders[-1:])),
            outcome=draw(st.sampled_from(["upheld", "rejected", "withdrawn", "referred"])))
    return facts


@st.composite
def global_facts(draw):
    """Rates and person-level registry facts (their own 'family')."""
    facts = []

    def add(type_, **fields):
        facts.append({"id": f"G-{len(facts)}", "type": type_, "at": _at(draw),
                      "source": {"kind": "kemensos", "id": "s"}, **fields})

    for year in (2024, 2025):
        if draw(st.integers(0, 4)):
            add("rates.set", program="PKH", year=year, max_members=draw(st.integers(1, 4)),
                annual={"anak_sd": 900_000, "ibu_hamil": 3_000_000, "lansia": 2_400_000})
        if draw(st.integers(0, 4)):
            add("rates.set", program="BPNT", year=year,
                monthly=draw(st.sampled_from([200_000, 300_000])))
    for _ in range(draw(st.integers(0, 3))):
        f = {"nik": draw(st.sampled_from(NIKS)), "agency": "X",
             "from": draw(st.sampled_from(["2023-06-01", "2024-02-10", "2024-06-01"]))}
        if draw(st.booleans()):
            f["until"] = draw(st.sampled_from(["2024-03-01", "2024-09-01"]))
        add("asn.registered", **f)
    for _ in range(draw(st.integers(0, 4))):
        f = {"register": draw(st.sampled_from(REGISTERS)), "nik": draw(st.sampled_from(NIKS)),
             "from": draw(st.sampled_from(["2023-06-01", "2024-02-10", "2024-06-01"]))}
        if draw(st.booleans()):
            f["until"] = draw(st.sampled_from(["2024-02-10", "2024-03-01", "2024-09-01"]))
        add("register.listed", **f)
    for _ in range(draw(st.integers(0, 2))):
        add("death.recorded", nik=draw(st.sampled_from(NIKS)),
            date=draw(st.sampled_from(["2024-01-15", "2024-04-01"])))
    return facts


@st.composite
def groups(draw):
    n = draw(st.integers(1, 9))
    return [draw(global_facts())] + [draw(family(i)) for i in range(n)]


def numbered(facts):
    return [{**f, "seq": i} for i, f in enumerate(facts)]


def interleave(groups, rnd):
    cursors = [0] * len(groups)
    out = []
    live = [i for i, g in enumerate(groups) if g]
    while live:
        i = rnd.choice(live)
        out.append(groups[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(groups[i]):
            live.remove(i)
    return out


CROSS_FAMILY = {"nik_in_multiple_families", "companion_concentration", "companion_complaints"}


def norm(anomalies):
    # Cross-family rules list facts in ledger order, which interleaving may
    # legitimately permute; everything else must be byte-identical.
    out = []
    for a in anomalies:
        d = a.to_dict()
        if d["rule"] in CROSS_FAMILY:
            d["facts"] = sorted(d["facts"])
        out.append(d)
    return out


AS_OFS = [None, dt.date(2024, 2, 15), dt.date(2024, 6, 30)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups(), st.randoms(use_true_random=False))
def test_shuffling_input_list_keeps_output(gs, rnd):
    facts = numbered(interleave(gs, rnd))
    shuffled = list(facts)
    rnd.shuffle(shuffled)
    for as_of in AS_OFS:
        assert evaluate_anomalies(facts, as_of) == evaluate_anomalies(shuffled, as_of)
    assert compute_balances(facts) == compute_balances(shuffled)
    assert compute_balances(facts, kk="1275010000000000") == \
        compute_balances(shuffled, kk="1275010000000000")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups(), st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_interleaving_independent_families_keeps_output(gs, r1, r2):
    a = numbered(interleave(gs, r1))
    b = numbered(interleave(gs, r2))
    for as_of in AS_OFS:
        assert norm(evaluate_anomalies(a, as_of)) == norm(evaluate_anomalies(b, as_of))
    low = Thresholds(companion_families=2, unclaimed_days=30, complaint_days=3, indicator_registers=1,
                     companion_complaints=1)
    assert norm(evaluate_anomalies(a, None, low)) == norm(evaluate_anomalies(b, None, low))
    assert compute_balances(a) == compute_balances(b)
