"""Projections on real stores (SQLite file and PostgreSQL database).

* A planted generation: the anomalies are exactly the planted ones, the
  balances are exactly the pure engine's over the same (clear) facts.
* Rebuild == incremental catch-up, byte for byte.
* Late and out-of-order facts through the store give the anomalies of the
  in-order log, except where SPEC §4 makes ledger order decide.
* Order independence across families (hypothesis, SQLite).
* A projection killed mid-way resumes without double counting; two concurrent
  catch-ups never double count.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.projections import runner
from jejak.projections.engine import Thresholds, compute_balances, evaluate_anomalies
from jejak.projections.anomalies import Anomalies
from jejak.projections.readmodels import Balances, load_fact_rows
from jejak.projections.runner import Projector
from jejak.reports import Reports
from jejak.settings import Settings
from jejak.store.datastore import Store

PLANT_FAMILIES = 150
PLANT_SEED = 11


# --------------------------------------------------------------------- helpers


def read_lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines() if ln.strip()]


def clear_facts(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    out = []
    for seq, raw in enumerate(lines):
        f = orjson.loads(raw)
        f["seq"] = seq
        out.append(f)
    return out


def ingest_all(ledger: Ledger, lines: list[bytes]) -> None:
    rejections: list = []
    summary = ledger.ingest_lines(iter(lines), on_rejection=rejections.append)
    assert summary.rejected == 0, [r.to_dict() for r in rejections[:5]]
    assert summary.accepted + summary.duplicates == len(lines)


def key_of(a: dict[str, Any]) -> tuple[str, str]:
    return (a["rule"], a["primary"])


def normalised(anomalies: list[dict[str, Any]]) -> list[tuple]:
    """Full anomaly content, independent of output order and of the order of `facts`."""
    return sorted((a["rule"], a["primary"], a["subject"], tuple(sorted(a["facts"])), a["detail"]) for a in anomalies)


def report_dump(ledger: Ledger, as_of=None) -> bytes:
    reports = Reports(ledger)
    return orjson.dumps({"balances": reports.balances(), "anomalies": reports.anomalies(as_of)})


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], set[tuple[str, str]], dict]:
    d = tmp_path_factory.mktemp("planted")
    info = write_files(PLANT_FAMILIES, PLANT_SEED, d / "facts.jsonl", plant=True, expected_path=d / "expected.jsonl")
    expected = [orjson.loads(ln) for ln in read_lines(d / "expected.jsonl")]
    keys = {(e["rule"], e["primary"]) for e in expected}
    assert len(keys) == len(expected), "the expected file lists a (rule, primary) twice"
    return read_lines(d / "facts.jsonl"), keys, info


@pytest.fixture
def ledger(store_url: str, make_settings):
    led = Ledger.open(make_settings(store_url))
    yield led
    led.close()


# ------------------------------------------------------------ planted generation


def test_planted_anomalies_and_balances_through_the_store(ledger: Ledger, planted) -> None:
    lines, expected, info = planted
    assert {r for r, _ in expected} >= {"duplicate_payout", "deceased_recipient", "ghost_settlement"}
    ingest_all(ledger, lines)
    reports = Reports(ledger)

    found = reports.anomalies()
    got = [key_of(a) for a in found]
    assert len(got) == len(set(got)), f"a rule reports a primary twice: {[k for k, n in Counter(got).items() if n > 1]}"
    missing, extra = expected - set(got), set(got) - expected
    assert not missing and not extra, f"missing {sorted(missing)}; unexpected {sorted(extra)}"

    facts = clear_facts(lines)
    # Balances: the read models + reveal == the pure engine over the clear facts.
    assert reports.balances() == [b.to_dict() for b in compute_balances(facts)]
    # Anomalies, in full: store path (tokens, revealed) == engine over clear facts.
    engine = [a.to_dict() for a in evaluate_anomalies(facts, None, Thresholds())]
    assert normalised(found) == normalised(engine)


# --------------------------------------------------------- rebuild == incremental


def test_rebuild_equals_incremental(ledger: Ledger, planted, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import date

    lines = planted[0]
    monkeypatch.setattr(runner, "BATCH", 700)  # several batches per catch-up, boundaries inside chunks
    projector = Projector(ledger.store)
    cuts = [0, 1, 333, 1500, 1501, 2900, len(lines)]
    for a, b in zip(cuts, cuts[1:]):
        ingest_all(ledger, lines[a:b])
        projector.catch_up()
        Reports(ledger).balances()  # reads in between must not disturb anything
    incremental = report_dump(ledger)
    incremental_asof = report_dump(ledger, date(2024, 7, 31))
    tables_before = dump_tables(ledger.store)

    replayed = projector.rebuild()
    assert replayed == ledger.store.log_size() == len(lines)
    assert report_dump(ledger) == incremental
    assert report_dump(ledger, date(2024, 7, 31)) == incremental_asof
    assert dump_tables(ledger.store) == tables_before
    # A second rebuild in a fresh Projector changes nothing either.
    Projector(ledger.store).rebuild()
    assert report_dump(ledger) == incremental


def dump_tables(store: Store) -> dict[str, list[tuple]]:
    out = {}
    for table, order in (("p_facts", "idx"), ("p_orders", "order_id"), ("p_order_totals", "order_id")):
        out[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in dict(r).values())
                      for r in store.query(f"SELECT * FROM {table} ORDER BY {order}")]
    out["positions"] = sorted(
        (r["name"], r["position"]) for r in store.query("SELECT name, position FROM jejak_positions WHERE name LIKE ?", ("projection.%",))
    )
    return out


# ------------------------------------------------------- late and out-of-order facts

NIK = {i: f"12750167087700{i:02d}" for i in range(1, 8)}  # valid NIKs (Medan, female, 27-08-1977)
KK = {i: f"12750111040500{i:02d}" for i in range(1, 8)}


def _src(kind: str) -> dict[str, str]:
    return {"kind": kind, "id": f"{kind}-1"}


def _elig(fid: str, i: int, at: str, decision: str = "eligible", frm: str = "2024-01") -> dict:
    f = {"id": fid, "type": "eligibility.decided", "at": at, "source": _src("dinsos"), "kk": KK[i], "nik": NIK[i],
         "program": "PKH", "decision": decision, "from": frm, "region": "1275011008"}
    if decision == "eligible":
        f["components"] = {"anak_sd": 1}
    return f


def _order(fid: str, i: int, period: str, at: str, amount: int = 225000) -> dict:
    return {"id": fid, "type": "disbursement.ordered", "at": at, "source": _src("kemensos"), "kk": KK[i], "nik": NIK[i],
            "program": "PKH", "period": period, "amount": amount, "channel": "BRI"}


SCENARIO: dict[str, dict] = {f["id"]: f for f in [
    {"id": "rates", "type": "rates.set", "at": "2024-01-02T09:00:00+07:00", "source": _src("kemensos"),
     "program": "PKH", "year": 2024, "max_members": 4,
     "annual": {"ibu_hamil": 3000000, "anak_usia_dini": 3000000, "anak_sd": 900000, "anak_smp": 1500000,
                "anak_sma": 2000000, "disabilitas_berat": 2400000, "lansia": 2400000}},
    *(_elig(f"e{i}", i, "2024-01-03T08:00:00+07:00") for i in (1, 2, 3, 4)),
    # family 1: order, settlement, pickup; the recipient died before the pickup (death recorded late)
    _order("o1", 1, "2024-T1", "2024-03-05T10:00:00+07:00"),
    {"id": "s1", "type": "disbursement.settled", "at": "2024-03-06T10:00:00+07:00", "source": _src("bank"),
     "disbursement": "o1", "status": "credited", "amount": 225000, "channel": "BRI"},
    {"id": "p1", "type": "pickup.recorded", "at": "2024-03-10T10:00:00+07:00", "source": _src("bank"),
     "disbursement": "o1", "nik": NIK[1], "amount": 225000, "by": "recipient"},
    {"id": "d1", "type": "death.recorded", "at": "2024-04-01T09:00:00+07:00", "source": _src("dukcapil"),
     "nik": NIK[1], "date": "2024-03-08"},
    # family 2: the recipient is an ASN (registration arrives late)
    _order("o2", 2, "2024-T1", "2024-03-05T10:00:00+07:00"),
    {"id": "asn2", "type": "asn.registered", "at": "2024-04-02T09:00:00+07:00", "source": _src("bkn"),
     "nik": NIK[2], "agency": "Pemko Medan", "from": "2024-01-01"},
    # family 3: revoked from April (revocation arrives late)
    _order("o3a", 3, "2024-T1", "2024-03-05T10:00:00+07:00"),
    _order("o3b", 3, "2024-T2", "2024-06-05T10:00:00+07:00"),
    _elig("r3", 3, "2024-03-20T08:00:00+07:00", decision="revoked", frm="2024-04"),
    # family 4: two orders of one stage -> the later in ledger order is the duplicate
    _order("o4a", 4, "2024-T1", "2024-03-05T10:00:00+07:00"),
    _order("o4b", 4, "2024-T1", "2024-03-05T11:00:00+07:00"),
    # family 5: two decisions with the same `from`; the later in ledger order is in force
    _elig("e5x", 5, "2024-01-03T08:00:00+07:00"),
    _elig("e5y", 5, "2024-01-04T08:00:00+07:00", decision="revoked", frm="2024-01"),
    _order("o5", 5, "2024-T1", "2024-03-05T10:00:00+07:00"),
]}

IN_ORDER = list(SCENARIO)
# Settlement and pickup before their order, the order last; death, ASN and revocation late
# (they already are); the duplicate pair and the same-`from` pair swapped in ledger order.
OUT_OF_ORDER_CHUNKS = [
    ["d1", "s1", "p1", "asn2", "r3", "rates"],
    ["o4b", "e5y", "o3b", "o2"],
    ["e1", "e2", "e3", "e4", "o3a", "o4a", "e5x", "o5"],
    ["o1"],
]

EXPECTED_IN_ORDER = {
    ("deceased_recipient", "p1"), ("asn_recipient", "o2"), ("no_eligibility", "o3b"),
    ("duplicate_payout", "o4b"), ("no_eligibility", "o5"),
}
# Ledger order decides two rules (SPEC §4): which order of the pair is the duplicate,
# and which of two decisions with the same `from` is in force.
EXPECTED_OUT_OF_ORDER = (EXPECTED_IN_ORDER - {("duplicate_payout", "o4b"), ("no_eligibility", "o5")}) | {
    ("duplicate_payout", "o4a")
}


def _lines(ids: Iterable[str]) -> list[bytes]:
    return [orjson.dumps(SCENARIO[i]) for i in ids]


def test_late_and_out_of_order_facts(ledger: Ledger, tmp_path: Path) -> None:
    assert sorted(i for c in OUT_OF_ORDER_CHUNKS for i in c) == sorted(IN_ORDER)

    # Reference: the same facts in order, in a store of their own (SQLite).
    with Ledger.open(Settings(store=str(tmp_path / "ref.db"), keys_dir=tmp_path / "refkeys")) as ref:
        ingest_all(ref, _lines(IN_ORDER))
        in_order = Reports(ref).anomalies()
        in_order_balances = Reports(ref).balances()
    assert {key_of(a) for a in in_order} == EXPECTED_IN_ORDER

    reports = Reports(ledger)
    seen = []
    for chunk in OUT_OF_ORDER_CHUNKS:
        ingest_all(ledger, _lines(chunk))
        seen.append({key_of(a) for a in reports.anomalies()})
    # Before its order arrives the settlement is a ghost and the pickup has no disbursement ...
    assert {("ghost_settlement", "s1"), ("pickup_without_disbursement", "p1")} <= seen[0]
    assert ("ghost_settlement", "s1") in seen[2]
    # ... the late order clears both (a late fact can clear an anomaly).
    final = reports.anomalies()
    assert {key_of(a) for a in final} == EXPECTED_OUT_OF_ORDER

    # Everything that does not depend on ledger order is identical, in full.
    keep = EXPECTED_IN_ORDER & EXPECTED_OUT_OF_ORDER
    assert normalised([a for a in final if key_of(a) in keep]) == normalised([a for a in in_order if key_of(a) in keep])
    assert reports.balances() == in_order_balances
    # Balances of family 1 count the settlement and pickup that arrived before the order.
    b1 = Reports(ledger).balances(KK[1])
    assert b1 == [{"kk": KK[1], "program": "PKH", "ordered": 225000, "credited": 225000, "picked_up": 225000,
                   "returned": 0, "outstanding": 0}]


# --------------------------------------------------------------- order independence

ORDER_FAMILIES = 100
ORDER_SEED = 5


def _family_groups(facts: list[dict[str, Any]]) -> list[list[int]]:
    """Indexes of facts grouped into connected families (kk, nik and order ids linked)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    keys = []
    for f in facts:
        k = [f"id:{f['id']}"]
        if f["type"] == "rates.set":
            k.append("rates")
        for name, prefix in (("kk", "kk:"), ("nik", "nik:"), ("disbursement", "id:")):
            if isinstance(f.get(name), str):
                k.append(prefix + f[name])
        for other in k[1:]:
            union(k[0], other)
        keys.append(k[0])
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(find(k), []).append(i)
    return list(groups.values())


@pytest.fixture(scope="module")
def order_data(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("order")
    write_files(ORDER_FAMILIES, ORDER_SEED, d / "facts.jsonl", plant=True)
    lines = read_lines(d / "facts.jsonl")
    facts = [orjson.loads(ln) for ln in lines]
    groups = _family_groups(facts)
    assert len(groups) > ORDER_FAMILIES // 2
    with Ledger.open(Settings(store=str(d / "ref.db"), keys_dir=d / "keys")) as ref:
        ingest_all(ref, lines)
        reference = (normalised(Reports(ref).anomalies()), Reports(ref).balances())
    return lines, groups, reference


@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), chunks=st.integers(min_value=1, max_value=4))
def test_order_independence_across_families(order_data, seed: int, chunks: int) -> None:
    lines, groups, reference = order_data
    rnd = random.Random(seed)
    # Random interleaving of the families that keeps each family's own order.
    queues = [list(g) for g in groups]
    remaining = [len(q) for q in queues]
    order: list[int] = []
    pos = [0] * len(queues)
    total = sum(remaining)
    while len(order) < total:
        g = rnd.choices(range(len(queues)), weights=remaining)[0]
        order.append(queues[g][pos[g]])
        pos[g] += 1
        remaining[g] -= 1
    shuffled = [lines[i] for i in order]
    with tempfile.TemporaryDirectory() as d:
        with Ledger.open(Settings(store=str(Path(d) / "s.db"), keys_dir=Path(d) / "keys")) as led:
            step = -(-len(shuffled) // chunks)
            for a in range(0, len(shuffled), step):
                ingest_all(led, shuffled[a:a + step])
                Projector(led.store).catch_up()
            got = (normalised(Reports(led).anomalies()), Reports(led).balances())
    assert got[1] == reference[1]
    assert got[0] == reference[0]


# ------------------------------------------------------------- crash and concurrency

CATCH_UP_CHILD = """
import sys
from jejak.projections import runner
from jejak.store.datastore import Store
runner.BATCH = int(sys.argv[2])
store = Store.open(sys.argv[1])
print(runner.Projector(store).catch_up(), flush=True)
store.close()
"""

BIG_FAMILIES = 1500  # ~41k facts


@pytest.fixture(scope="module")
def big_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    info = write_files(BIG_FAMILIES, 17, path)
    assert info["facts"] >= 40000
    return read_lines(path)


def start_catch_up(store_url: str, batch: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CATCH_UP_CHILD, store_url, str(batch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
    )


def positions(store_url: str) -> dict[str, int]:
    store = Store.open(store_url, create=False)
    try:
        return {r["name"]: r["position"] for r in store.query(
            "SELECT name, position FROM jejak_positions WHERE name LIKE ?", ("projection.%",))}
    except Exception:  # noqa: BLE001 - projection tables not created yet
        return {}
    finally:
        store.close()


def projection_state(store: Store) -> tuple[list[dict], int, int, list[tuple], list[dict]]:
    balances = sorted(Balances.query(store), key=lambda r: (r["kk"], r["program"]))
    Projector(store).settle()
    anomalies = Anomalies.query(store, Thresholds().unclaimed_days)
    # the incremental anomaly read model == the full evaluation, exactly
    assert anomalies == [a.to_dict() for a in evaluate_anomalies(load_fact_rows(store), None, Thresholds())]
    n_facts = store.query_one("SELECT COUNT(*) AS n FROM p_facts")["n"]
    n_orders = store.query_one("SELECT COUNT(*) AS n FROM p_orders")["n"]
    totals = sorted(tuple(dict(r).values()) for r in store.query("SELECT * FROM p_order_totals"))
    return balances, n_facts, n_orders, totals, anomalies


def test_killed_catch_up_resumes_without_double_counting(ledger: Ledger, big_lines: list[bytes]) -> None:
    store_url = ledger.settings.store
    ingest_all(ledger, big_lines)
    size = ledger.store.log_size()
    projector = Projector(ledger.store)
    projector.ensure_tables()

    proc = start_catch_up(store_url, 2000)
    killed_at = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            pos = positions(store_url)
            if pos and 0 < max(pos.values()) < size - 4000:
                proc.send_signal(signal.SIGKILL)
                killed_at = pos
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait(timeout=30)
    assert killed_at is not None, f"catch-up finished (rc {proc.returncode}) before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    after_kill = positions(store_url)
    assert 0 < max(after_kill.values()) < size, after_kill

    projector.catch_up()
    assert set(positions(store_url).values()) == {size}
    resumed = projection_state(ledger.store)
    projector.rebuild()
    rebuilt = projection_state(ledger.store)
    assert resumed == rebuilt
    assert rebuilt[1] == size  # every fact once in p_facts
    assert Reports(ledger).balances() == [b.to_dict() for b in compute_balances(clear_facts(big_lines))]


def _two_concurrent_catch_ups(store_url: str, make_settings, lines: list[bytes]) -> None:
    with Ledger.open(make_settings(store_url)) as ledger:
        ingest_all(ledger, lines)
        size = ledger.store.log_size()
        Projector(ledger.store).ensure_tables()
        procs = [start_catch_up(store_url, 500) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err.decode().strip().splitlines()[-1]
        read = [int(out.decode().split()[-1]) for out, _ in outs]
        # each read at most the log (never applied twice); under load one may
        # start after the other finished and read nothing
        assert all(0 <= r <= size for r in read) and max(read) > 0, read
        assert set(positions(store_url).values()) == {size}
        concurrent = projection_state(ledger.store)
        Projector(ledger.store).rebuild()
        assert concurrent == projection_state(ledger.store)
        assert concurrent[1] == size
        assert Reports(ledger).balances() == [b.to_dict() for b in compute_balances(clear_facts(lines))]


def test_concurrent_catch_ups_postgresql(pg_url: str, make_settings, big_lines: list[bytes]) -> None:
    _two_concurrent_catch_ups(pg_url, make_settings, big_lines[:12000])


def test_concurrent_catch_ups_sqlite(sqlite_url: str, make_settings, big_lines: list[bytes]) -> None:
    _two_concurrent_catch_ups(sqlite_url, make_settings, big_lines[:12000])


def test_sqlite_open_waits_for_a_writer(sqlite_url: str, make_settings) -> None:
    """Deterministic form of the race above: a writer holds the lock for 1.5 s; a
    second process opening the store (as every `jejak` command does) must wait, not fail."""
    import sqlite3
    import threading

    with Ledger.open(make_settings(sqlite_url)) as ledger:
        Projector(ledger.store).ensure_tables()
    holder = sqlite3.connect(sqlite_url, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE jejak_head SET size = size")
    release = threading.Timer(1.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        res = subprocess.run([sys.executable, "-c", CATCH_UP_CHILD, sqlite_url, "500"], capture_output=True, timeout=60)
    finally:
        release.join()
        holder.close()
    assert res.returncode == 0, res.stderr.decode().strip().splitlines()[-1]
