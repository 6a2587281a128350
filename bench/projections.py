"""Projection catch-up and report latency, vs ingest measured in the same run.

    python bench/projections.py --facts 1000000 --stores sqlite,postgresql

Per store kind, on a fresh store:
  ingest     Ledger.ingest_lines(file) (no projections) — the baseline;
  catch_up   first Projector.catch_up() over the whole log;
  replay     Projector.replay() (reset + catch-up from index 0) — catch-up
             throughput, ratio to ingest (target >= 1.0);
  settle     Projector.settle() right after: evaluates every anomaly scope
             once (Projector.rebuild() = replay + settle);
  cli        `jejak rebuild` in a subprocess (replay + settle), peak RSS;
  anomalies  Reports.anomalies() full list, revealed (target < 2 s): the first
             call after ingesting --new-facts more facts and catching up
             (the incremental anomaly read model; no result cache), cold
             (p_anomaly_cache emptied), warm; the first call after
             `jejak rebuild` (which settles); and the full rule-engine
             evaluation for comparison (checked equal). The new facts stay
             in the store (mind this with --reuse);
  balances   Reports.balances(kk=...) for one family, p50/p99 over random
             families (target p99 < 20 ms), after a catch-up;
  profile    cProfile of a catch-up over the first --profile-facts entries and
             of one anomalies() call.
With --reuse, the store kept by `bench/ingest.py --keep` is used and the ingest
figure is taken from that run's saved result (marked as such).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402



def bench_kind(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    from jejak.ledger import Ledger
    from jejak.projections.runner import Projector
    from jejak.reports import Reports

    path, n = C.facts_file(a.facts)
    res: dict[str, Any] = {"facts": n}
    if a.reuse:
        store = C.store_for(kind, f"ingest_{kind[:2]}_{n}", fresh=False)
        saved = json.loads((C.RESULTS_DIR / f"ingest-{n}.json").read_text())
        res["ingest"] = dict(saved[kind]["jejak_api"], note="from bench/ingest.py run (not this run)")
    else:
        store = C.store_for(kind, f"proj_{kind[:2]}_{n}")
        C.log(f"{kind}: ingest {n} facts (baseline)")
        with Ledger.open(store.settings()) as ledger:
            s, summary = C.timed(lambda: ledger.ingest_lines(C.iter_lines(path)))
        assert summary.accepted == n
        res["ingest"] = {"seconds": round(s, 2), "facts_per_s": round(C.rate(n, s))}
    ingest_rate = res["ingest"]["facts_per_s"]

    try:
        ledger = Ledger.open(store.settings())
        try:
            st = ledger.store
            size = st.log_size()
            proj = Projector(st)

            if a.profile_facts:
                C.log(f"{kind}: cProfile of catch-up over {a.profile_facts} entries")
                limited = Projector(st)
                real_size = st.log_size
                st.log_size = lambda: min(real_size(), a.profile_facts)  # type: ignore[method-assign]
                try:
                    _, top = C.profile_top(limited.rebuild, top=12)
                finally:
                    del st.log_size  # back to the class method
                res["profile_catch_up"] = {"entries": min(size, a.profile_facts), "top_by_own_time": top}

            C.log(f"{kind}: replay ({size} entries)")
            s, replayed = C.timed(proj.replay)
            assert replayed == size
            res["rebuild"] = {"seconds": round(s, 2), "facts_per_s": round(C.rate(size, s)),
                              "what": "Projector.replay(): reset + catch-up from 0, no settle"}
            C.log(f"{kind}: settle after the replay")
            s, scopes = C.timed(proj.settle)
            res["settle_after_replay"] = {"seconds": round(s, 2), "scopes": scopes}

            C.log(f"{kind}: jejak rebuild CLI")
            out = C.run_child(C.jejak_cmd() + ["rebuild"], env=store.env())
            assert out["returncode"] == 0, out["stderr"]
            res["rebuild_cli"] = {"seconds": round(out["seconds"], 2), "facts_per_s": round(C.rate(size, out["seconds"])),
                                  "peak_rss_mb": round(out["peak_rss_mb"], 1), "stdout": out["stdout"].strip()}
            res["ratios"] = {
                "rebuild_over_ingest": round(res["rebuild"]["facts_per_s"] / ingest_rate, 3),
                "rebuild_cli_over_ingest": round(res["rebuild_cli"]["facts_per_s"] / ingest_rate, 3),
                "target": "rebuild >= 1.0 x ingest",
            }

            reports = Reports(ledger)
            reports.catch_up()  # caught up before timing
            # The default anomaly list comes from the incremental anomaly read
            # model (jejak.projections.anomalies); p_anomaly_cache only serves
            # non-default queries (--as-of, other thresholds).
            # new_facts: ingest --new-facts more facts (copies of random facts of
            #       the file under new ids: new orders, settlements and pickups of
            #       existing orders, deaths, ... touching existing families),
            #       then catch_up() (applies them and re-evaluates the dirty
            #       scopes), then the first anomalies() — no result cache anywhere.
            # cold: anomalies() with p_anomaly_cache emptied (read model: the cache
            #       is not used for the default list);
            # warm: repeat calls on the same state.
            # full_evaluation: the rule engine over every fact (what cold cost before).
            def clear_cache() -> None:
                with st.transaction(commit=True) as cursor:
                    st.execute(cursor, "DELETE FROM p_anomaly_cache", ())

            # `jejak rebuild` (just above) replays and settles: the first reader
            # has nothing left to evaluate.
            C.log(f"{kind}: first anomalies() after the rebuild")
            s_first, found = C.timed(reports.anomalies)
            first_after_rebuild = {"seconds": round(s_first, 3), "anomalies": len(found)}
            C.log(f"{kind}: anomalies() after {a.new_facts} new facts x{a.anomaly_runs}")
            new_runs = []
            for run in range(a.anomaly_runs):
                extra = new_fact_lines(path, a.new_facts, run)
                s_ing, summary = C.timed(lambda: ledger.ingest_lines(iter(extra)))
                assert summary.rejected == 0
                s_cu, _ = C.timed(reports.catch_up)
                s_an, found = C.timed(reports.anomalies)
                new_runs.append({"ingest_s": round(s_ing, 3), "catch_up_s": round(s_cu, 3),
                                 "anomalies_s": round(s_an, 3), "anomalies": len(found)})
            C.log(f"{kind}: anomalies() cold x{a.anomaly_runs}, warm x{a.warm_runs}")
            cold = []
            count = None
            for _ in range(a.anomaly_runs):
                clear_cache()
                s, found = C.timed(reports.anomalies)
                cold.append(round(s, 3))
                count = len(found)
            warm = []
            for _ in range(a.warm_runs):
                s, found = C.timed(reports.anomalies)
                warm.append(s * 1000)
                assert len(found) == count
            s, _ = C.timed(lambda: reports.anomalies(reveal=False))
            cold_unrevealed = round(s, 3)
            from jejak.projections.engine import evaluate_anomalies
            from jejak.projections.readmodels import load_fact_rows

            s_full, full = C.timed(lambda: [x.to_dict() for x in evaluate_anomalies(
                load_fact_rows(st), None, reports.thresholds)])
            exact = full == reports.anomalies(reveal=False)
            res["anomalies"] = {
                "anomalies": count, "target": "< 2 s",
                "first_after_rebuild": first_after_rebuild,
                "after_new_facts": {"new_facts": a.new_facts, "runs": new_runs,
                                    "anomalies_best_s": min(r["anomalies_s"] for r in new_runs),
                                    "catch_up_plus_anomalies_best_s": min(r["catch_up_s"] + r["anomalies_s"]
                                                                          for r in new_runs)},
                "cold_seconds_runs": cold, "cold_best_s": min(cold), "cold_unrevealed_s": cold_unrevealed,
                "warm_ms": {"n": len(warm), "p50": round(C.percentile(warm, 50), 3),
                            "p99": round(C.percentile(warm, 99), 3), "max": round(max(warm), 3)},
                "full_evaluation_s": round(s_full, 3), "read_model_equals_full_evaluation": exact,
                "cold_meets_target": min(r["anomalies_s"] for r in new_runs) < 2,
                "warm_meets_target": C.percentile(warm, 99) < 2000,
            }
            assert exact, "anomaly read model != full evaluation"

            kks = C.sample_kks(path, a.balances)
            C.log(f"{kind}: balances(kk=...) x{len(kks)}")
            reports.balances(kks[0])  # warm
            lat = []
            for kk in kks:
                s, rows = C.timed(lambda: reports.balances(kk))
                assert rows, kk
                lat.append(s * 1000)
            res["balances_one_family_ms"] = {
                "n": len(lat), "p50": round(C.percentile(lat, 50), 3), "p99": round(C.percentile(lat, 99), 3),
                "max": round(max(lat), 3), "target_p99": "< 20 ms", "meets_target": C.percentile(lat, 99) < 20,
            }
            # balances without the catch-up check (the query + reveal alone)
            from jejak.projections.readmodels import Balances

            lat2 = []
            for kk in kks[:200]:
                tok = ledger.tokenizer.token("kk", kk)
                s, _ = C.timed(lambda: Balances.query(st, tok))
                lat2.append(s * 1000)
            res["balances_query_only_ms"] = {"p50": round(C.percentile(lat2, 50), 3),
                                             "p99": round(C.percentile(lat2, 99), 3)}

            if a.profile_facts:
                C.log(f"{kind}: cProfile of anomalies() (cold)")
                clear_cache()
                _, top = C.profile_top(reports.anomalies, top=12)
                res["profile_anomalies"] = top
        finally:
            ledger.close()
    finally:
        if not a.reuse and not a.keep:
            store.drop()
    return res


def new_fact_lines(path: Path, n: int, run: int) -> list[bytes]:
    """n facts for an existing store: random facts of the file under fresh ids
    (references to orders are kept, so they land in existing families)."""
    import random
    import time

    import orjson

    rng = random.Random(run)
    with path.open("rb") as f:
        lines = [ln for ln in f if ln.strip()]
    tag = f"b{int(time.time())}r{run}"
    out = []
    for ln in rng.sample(lines, n):
        fact = orjson.loads(ln)
        if fact["type"] == "rates.set":
            continue
        fact["id"] = f"{fact['id']}:{tag}"
        out.append(orjson.dumps(fact))
    return out


def rss_check(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of `jejak rebuild` at a small size and at --facts (is it flat?)."""
    from jejak.ledger import Ledger

    out: dict[str, Any] = {}
    for facts in (a.rss_small, a.facts):
        path, n = C.facts_file(facts)
        name = f"ingest_{kind[:2]}_{n}"
        fresh = not C.store_exists(kind, name)
        store = C.store_for(kind, name, fresh=fresh)
        if fresh:
            C.log(f"{kind}: ingesting {n} facts for the RSS check")
            with Ledger.open(store.settings()) as ledger:
                assert ledger.ingest_lines(C.iter_lines(path)).accepted == n
        C.log(f"{kind}: jejak rebuild ({n}) for peak RSS")
        r = C.run_child(C.jejak_cmd() + ["rebuild"], env=store.env())
        assert r["returncode"] == 0, r["stderr"]
        out[str(n)] = {"seconds": round(r["seconds"], 2), "peak_rss_mb": round(r["peak_rss_mb"], 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=1_000_000)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--reuse", action="store_true", help="use the store kept by bench/ingest.py --keep")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--anomaly-runs", type=int, default=2, help="cold anomalies() calls (cache emptied before each)")
    ap.add_argument("--new-facts", type=int, default=1000, help="facts ingested before each timed anomalies()")
    ap.add_argument("--warm-runs", type=int, default=20, help="warm (cache-hit) anomalies() calls")
    ap.add_argument("--balances", type=int, default=500, help="families to query")
    ap.add_argument("--profile-facts", type=int, default=100_000, help="0: no profile")
    ap.add_argument("--rss-check", action="store_true", help="only: peak RSS of `jejak rebuild` at two sizes")
    ap.add_argument("--rss-small", type=int, default=100_000)
    a = ap.parse_args()
    if a.rss_check:
        res: dict[str, Any] = {"benchmark": "rebuild-rss", "machine": C.machine(),
                               "command": " ".join(["python", "bench/projections.py"] + sys.argv[1:])}
        for kind in [k.strip() for k in a.stores.split(",") if k.strip()]:
            res[kind] = rss_check(kind, a)
        C.emit(f"rebuild-rss-{a.facts}", res)
        return
    result: dict[str, Any] = {
        "benchmark": "projections", "machine": C.machine(),
        "command": " ".join(["python", "bench/projections.py"] + sys.argv[1:]),
    }
    for kind in [k.strip() for k in a.stores.split(",") if k.strip()]:
        result[kind] = bench_kind(kind, a)
    C.emit(f"projections-{a.facts}", result)


if __name__ == "__main__":
    main()
