"""HTTP API benchmark (issue 5): `jejak serve` on a ~1M-fact PostgreSQL store.

    python bench/api.py --facts 1000000            # build (or reuse with --keep), load, profile, drop
    python bench/api.py --facts 300000 --keep      # smaller store, kept for the next run
    python bench/api.py --facts 1000000 --requests 500 --no-profile
    python bench/api.py --facts 1000000 --keep --workers 2 --client wrk,openloop --serial 100 --no-profile

Steps
  1. store: jejak_bench_api_po_<facts> built through the Ledger API
     (`Ledger.ingest_lines`), projections caught up, one checkpoint issued
     (reused when kept by an earlier --keep run of the same size); an
     inspector token made with `jejak token create` (CLI, pool workaround shim).
  2. server: `jejak serve --host 127.0.0.1 --port <free>` as a subprocess
     (uvicorn, one worker, default settings).
  3. load: per scenario a fixed number of requests (default 2,000) from
     `--concurrency` threads (default 8), each with its own keep-alive
     httpx.Client, capped at `--cap` seconds; warm-up first (the first
     aggregates request builds the in-memory fact view and the anomalies).
     A short serial run (concurrency 1) gives the service time without
     queueing. Scenarios:
       trail      GET /v1/families/{kk}/trail?reason=...   random kk with orders (inspector token)
       aggregates GET /public/v1/aggregates                level kecamatan|kota x program x period
       proof      GET /public/v1/proofs/inclusion?index=i  random index below the checkpoint
     Errors = transport errors + any non-200 answer (must be 0).
     --client wrk: the same scenarios from wrk (C), a closed loop of
     --concurrency connections for --wrk-seconds each. A closed loop at
     saturation measures throughput: its latency is about concurrency /
     throughput, and it sends less exactly when the server is slow.
     --client openloop: bench/openloop.py in its own process sends each
     scenario at fixed arrival rates (--rates, e.g. trail=25,50,100) for
     --ol-seconds after --ol-warmup, measuring latency from each request's
     scheduled send time (coordinated omission counted), then searches
     (--ol-search steps) for the highest rate whose p99 stays < 50 ms.
     Several clients: --client wrk,openloop (closed loop first).
  4. profile: cProfile around the app in-process (TestClient; sync endpoints run
     inline in the event-loop thread, which is the profiled thread) for ~200
     requests of the slowest scenario and of any scenario missing its target.
  5. cleanup: stop the server; drop the database (unless --keep).

The load generator shares the 2 cores with the server, PostgreSQL and other
engineers' test runs: client and server CPU seconds and the machine's busy share
are recorded with every scenario. Compare ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402


TARGETS = {
    "trail": {"p99_ms": 50.0},
    "proof": {"p99_ms": 50.0},
    "aggregates": {"rps": 500.0},
}
REASON = "bench issue 5 load test"
PROJECT_DIRS = ("api/", "jejak/", "store/", "projections/", "audit/", "domain/")


# ------------------------------------------------------------------- store
def marker_path(name: str) -> Path:
    return C.DATA / "stores" / f"{name}.bench-api.json"


def build_store(facts: int, rebuild: bool) -> tuple[C.BenchStore, dict[str, Any], Path]:
    path, n = C.facts_file(facts)
    name = f"api_po_{n}"
    marker = marker_path(name)
    if not rebuild and marker.exists() and C.store_exists("postgresql", name):
        store = C.store_for("postgresql", name, fresh=False)
        info = json.loads(marker.read_text())
        info["reused"] = True
        C.log(f"reusing {store.dbname} ({info['facts']} facts)")
        return store, info, path

    from jejak.ledger import Ledger
    from jejak.reports import Reports
    from jejak.transparency import Transparency

    store = C.store_for("postgresql", name, fresh=True)
    marker.unlink(missing_ok=True)
    info: dict[str, Any] = {"facts": n, "file": str(path.relative_to(C.ROOT)), "store": store.url, "reused": False}
    ledger = Ledger.open(store.settings())
    try:
        done = [0, 0]

        def progress(k: int) -> None:
            done[0] += k
            if done[0] - done[1] >= 100_000:
                done[1] = done[0]
                C.log(f"ingest {done[0]}/{n}")

        C.log(f"ingest {n} facts into {store.dbname} (Ledger.ingest_lines)")
        secs, summary = C.timed(lambda: ledger.ingest_lines(C.iter_lines(path), on_progress=progress))
        info["ingest"] = {"seconds": round(secs, 2), "facts_per_s": round(C.rate(n, secs)), **summary.to_dict()}
        C.log(f"ingest: {secs:.1f} s; projection catch-up")
        secs, replayed = C.timed(lambda: Reports(ledger).catch_up())
        info["catch_up"] = {"seconds": round(secs, 2), "entries": replayed}
        C.log(f"catch-up: {secs:.1f} s; checkpoint")
        secs, cp = C.timed(lambda: Transparency(ledger.store, store.settings()).issue_checkpoint())
        info["checkpoint"] = {"seconds": round(secs, 2), "size": cp.size}
    finally:
        ledger.close()
    info["store_bytes"] = store.size_bytes()
    marker.write_text(json.dumps(info))
    return store, info, path


def planner_stats(store: C.BenchStore) -> dict[str, Any]:
    """Whether the planner has statistics (autovacuum setting, p_facts last analyzed)."""
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        auto = conn.execute("SHOW autovacuum").fetchone()[0]
        row = conn.execute("SELECT GREATEST(last_analyze, last_autoanalyze) FROM pg_stat_user_tables "
                           "WHERE relname = 'p_facts'").fetchone()
    return {"autovacuum": auto, "p_facts_last_analyzed": None if row is None or row[0] is None else str(row[0])}


def analyze(store: C.BenchStore) -> None:
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def create_token(store: C.BenchStore) -> str:
    name = f"bench-api-{int(time.time())}-{os.getpid()}"
    out = C.run_child(C.jejak_cmd() + ["token", "create", "--role", "inspector", "--name", name], env=store.env())
    if out["returncode"] != 0:
        raise RuntimeError(f"token create failed: {out['stderr']}")
    return out["stdout"].strip().splitlines()[-1]


# ------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, store: C.BenchStore, log_path: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            C.jejak_cmd() + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            # no per-token limit and no background read-model checks: they would be what is measured
            env={**store.env(), "JEJAK_API_RATE_LIMIT": "1000000/second", "JEJAK_READ_MODEL_CHECK_INTERVAL": "0"},
            cwd=C.ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> float:
        import httpx

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=5).status_code == 200:
                    return time.perf_counter() - t0
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """utime + stime of the server process and its worker processes (uvicorn --workers)."""
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == self.proc.pid or int(fields[1]) == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float | None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# -------------------------------------------------------------------- load
def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies from /proc/stat (all CPUs)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def postgres_cpu_seconds() -> float:
    """utime + stime of every PostgreSQL process on the machine (backends and background workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class CpuShares:
    """Where the machine's CPU went during a load step: server, PostgreSQL, the load
    generator (a finished child process: wrk or openloop) and everything else
    (other people's work on a shared machine), per request and as shares."""

    def __init__(self, server: "Server") -> None:
        self.server = server
        self.s0, self.p0, self.c0, self.b0 = server.cpu_seconds(), postgres_cpu_seconds(), children_cpu(), machine_busy()

    def result(self, requests: int) -> dict[str, Any]:
        s1, p1, c1, b1 = self.server.cpu_seconds(), postgres_cpu_seconds(), children_cpu(), machine_busy()
        tick = os.sysconf("SC_CLK_TCK")
        busy, total = (b1[0] - self.b0[0]) / tick, max(1, b1[1] - self.b0[1]) / tick
        server, pg, client = s1 - self.s0, p1 - self.p0, c1 - self.c0
        n = max(1, requests)
        return {
            "server_cpu_ms_per_req": round(server * 1000 / n, 2),
            "postgres_cpu_ms_per_req": round(pg * 1000 / n, 2),
            "client_cpu_ms_per_req": round(client * 1000 / n, 2),
            "machine_busy_share": round(busy / total, 2),
            "other_processes_share": round(max(0.0, busy - server - pg - client) / total, 2),
        }


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


Request = tuple[str, dict[str, Any]]


def run_load(server: Server, requests: list[Request], headers: dict[str, str], concurrency: int, cap: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: Counter = Counter()
    samples: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()
    deadline = time.perf_counter() + cap
    capped = threading.Event()

    def worker() -> None:
        local: list[float] = []
        with httpx.Client(base_url=server.base, headers=headers, timeout=30) as client:
            while True:
                i = next(counter)
                if i >= len(requests):
                    break
                if time.perf_counter() > deadline:
                    capped.set()
                    break
                url, params = requests[i]
                t0 = time.perf_counter()
                try:
                    r = client.get(url, params=params)
                    r.read()
                    ok = r.status_code == 200
                    err = None if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    ok, err, r = False, type(exc).__name__, None
                dt = time.perf_counter() - t0
                if ok:
                    local.append(dt)
                else:
                    with lock:
                        errors[err] += 1
                        if len(samples) < 3:
                            samples.append(f"{url} {params}: {err} {r.text[:300] if r is not None else ''}")
        with lock:
            latencies.extend(local)

    cpu0, scpu0, busy0 = self_cpu(), server.cpu_seconds(), machine_busy()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu1, scpu1, busy1 = self_cpu(), server.cpu_seconds(), machine_busy()
    done = len(latencies) + sum(errors.values())
    ms = [x * 1000 for x in latencies]
    busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    return {
        "requests": done, "ok": len(latencies), "errors": sum(errors.values()), "error_kinds": dict(errors),
        "error_samples": samples, "capped": capped.is_set(), "concurrency": concurrency,
        "seconds": round(wall, 3), "rps": round(C.rate(done, wall), 1),
        "p50_ms": round(C.percentile(ms, 50), 2), "p90_ms": round(C.percentile(ms, 90), 2),
        "p99_ms": round(C.percentile(ms, 99), 2), "max_ms": round(max(ms), 2) if ms else None,
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else None,
        "server_cpu_ms_per_req": round((scpu1 - scpu0) * 1000 / max(1, done), 2),
        "client_cpu_ms_per_req": round((cpu1 - cpu0) * 1000 / max(1, done), 2),
        "machine_busy_share": round(busy, 2),
    }


def make_scenarios(path: Path, cp_size: int, periods: list[str], n: int, seed: int) -> dict[str, list[Request]]:
    rng = random.Random(seed)
    C.log("sampling family card numbers from the facts file")
    kks = C.sample_kks(path, 1000)
    trail = [(f"/v1/families/{rng.choice(kks)}/trail", {"reason": REASON}) for _ in range(n)]
    combos: list[dict[str, Any]] = []
    for level in ("kecamatan", "kota"):
        for program in (None, "PKH", "BPNT"):
            for period in (None, *periods):
                p = {"level": level}
                if program:
                    p["program"] = program
                if period:
                    p["period"] = period
                combos.append(p)
    aggregates = [("/public/v1/aggregates", dict(rng.choice(combos))) for _ in range(n)]
    proof = [("/public/v1/proofs/inclusion", {"index": rng.randrange(cp_size)}) for _ in range(n)]
    return {"trail": trail, "aggregates": aggregates, "proof": proof, "_combos": combos}  # type: ignore[dict-item]


def warm_up(server: Server, headers: dict[str, str], scenarios: dict[str, list[Request]]) -> dict[str, float]:
    """First request of each kind (aggregates: every level, builds the fact view)."""
    import httpx

    out: dict[str, float] = {}
    with httpx.Client(base_url=server.base, headers=headers, timeout=900) as client:
        for label, (url, params) in [
            ("trail_first", scenarios["trail"][0]),
            ("aggregates_kecamatan_first", ("/public/v1/aggregates", {"level": "kecamatan"})),
            ("aggregates_kota_first", ("/public/v1/aggregates", {"level": "kota"})),
            ("proof_first", scenarios["proof"][0]),
        ]:
            t0 = time.perf_counter()
            r = client.get(url, params=params)
            if r.status_code != 200:
                raise RuntimeError(f"warm-up {label}: HTTP {r.status_code} {r.text[:500]}")
            out[label + "_s"] = round(time.perf_counter() - t0, 3)
            C.log(f"warm-up {label}: {out[label + '_s']} s")
        for combo in scenarios["_combos"]:  # type: ignore[union-attr]
            client.get("/public/v1/aggregates", params=combo).raise_for_status()
    # Several workers: each builds its own fact view on its first aggregate. New
    # connections land on any worker; go on until a run of them all answer fast.
    fast, tries = 0, 0
    while fast < 12 and tries < 400:
        tries += 1
        t0 = time.perf_counter()
        with httpx.Client(base_url=server.base, headers=headers, timeout=900) as fresh_client:
            for level in ("kecamatan", "kota", "desa"):
                fresh_client.get("/public/v1/aggregates", params={"level": level}).raise_for_status()
        fast = fast + 1 if time.perf_counter() - t0 < 0.5 else 0
    out["workers_warm_tries"] = tries
    with httpx.Client(base_url=server.base, headers=headers, timeout=900) as client:
        for kind in ("trail", "proof"):
            for url, params in scenarios[kind][:20]:
                client.get(url, params=params).raise_for_status()
    return out


def periods_from_summary(server: Server) -> tuple[list[str], float]:
    """Periods with data, and the seconds of this first public request (it builds
    the in-memory fact view and the anomalies that /aggregates reuses)."""
    import httpx

    t0 = time.perf_counter()
    r = httpx.get(server.base + "/public/v1/summary", timeout=900)
    r.raise_for_status()
    first_s = round(time.perf_counter() - t0, 3)
    periods = r.json().get("periods") or []
    # first, middle and last period: the filter is a scan, the period value barely matters
    pick = [periods[0], periods[len(periods) // 2], periods[-1]] if len(periods) >= 3 else periods
    return list(dict.fromkeys(pick)), first_s


# ----------------------------------------------------------------- profile
def profile_scenario(store: C.BenchStore, requests: list[Request], headers: dict[str, str], n: int) -> dict[str, Any]:
    """cProfile of `n` requests through the app in-process (starlette TestClient).

    TestClient runs the app in its portal's event-loop thread and sync endpoints
    in a worker thread; cProfile sees one thread only, so the thread pool is
    replaced by an inline call and the profiler is switched on in the loop thread.
    """
    import cProfile
    import pstats

    import fastapi.dependencies.utils as fdu
    import fastapi.routing as fr
    from starlette.testclient import TestClient

    from jejak.api.app import create_app

    async def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    saved = (fr.run_in_threadpool, fdu.run_in_threadpool)
    fr.run_in_threadpool = fdu.run_in_threadpool = inline  # type: ignore[assignment]
    prof = cProfile.Profile()
    try:
        with TestClient(create_app(store.settings()), headers=headers) as client:
            for url, params in requests[:3]:  # warm-up outside the profile
                client.get(url, params=params).raise_for_status()
            t0 = time.perf_counter()
            client.portal.call(prof.enable)
            try:
                for url, params in requests[:n]:
                    r = client.get(url, params=params)
                    if r.status_code != 200:
                        raise RuntimeError(f"profile: HTTP {r.status_code} {r.text[:300]}")
            finally:
                client.portal.call(prof.disable)
            wall = time.perf_counter() - t0
    finally:
        fr.run_in_threadpool, fdu.run_in_threadpool = saved
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (file, line, fname), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = C._short(file)
        rows.append({"function": f"{short}:{line}({fname})", "calls": nc, "tottime_s": round(tt, 4),
                     "cumtime_s": round(ct, 4), "share_of_total": round(tt / total, 3) if total else 0,
                     "project": short.startswith(PROJECT_DIRS)})
    by_own = sorted(rows, key=lambda r: r["tottime_s"], reverse=True)[:12]
    by_cum_project = sorted((r for r in rows if r["project"]), key=lambda r: r["cumtime_s"], reverse=True)[:12]
    return {"requests": n, "wall_s_profiled": round(wall, 2), "ms_per_request_profiled": round(wall * 1000 / n, 2),
            "profiled_total_s": round(total, 3), "top_by_own_time": by_own, "project_top_by_cumulative": by_cum_project}


# -------------------------------------------------------------------- main
def verdict(name: str, res: dict[str, Any]) -> dict[str, Any]:
    t = TARGETS[name]
    if "p99_ms" in t:
        return {"target": f"p99 < {t['p99_ms']:g} ms", "ratio_target_over_measured": round(t["p99_ms"] / res["p99_ms"], 2),
                "meets": res["p99_ms"] < t["p99_ms"] and res["errors"] == 0}
    return {"target": f">= {t['rps']:g} requests/s", "ratio_measured_over_target": round(res["rps"] / t["rps"], 2),
            "meets": res["rps"] >= t["rps"] and res["errors"] == 0}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| scenario | requests | errors | req/s | p50 ms | p90 ms | p99 ms | server CPU ms/req | PostgreSQL CPU ms/req | "
             "client CPU ms/req | machine busy | other processes | target | meets |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result.get("scenarios", {}).items():
        v = r["verdict"]
        lines.append(f"| {name} | {r['requests']} | {r['errors']} | {r['rps']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
                     f"{r['server_cpu_ms_per_req']} | {r.get('postgres_cpu_ms_per_req')} | {r.get('client_cpu_ms_per_req')} | "
                     f"{r['machine_busy_share']} | {r.get('other_processes_share')} | {v['target']} | "
                     f"{'yes' if v['meets'] else 'no'} |")
    if result.get("openloop"):
        lines += ["", "| open loop (fixed rate) | offered req/s | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | errors | "
                  "server CPU ms/req | PostgreSQL CPU ms/req | machine busy | other processes | p99 < 50 ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, ladder in result["openloop"].items():
            for rate, r in ladder["steps"].items():
                lines.append(f"| {name} | {rate} | {r['achieved_rps']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
                             f"{r['max_ms']} | {r['errors']} | {r['server_cpu_ms_per_req']} | {r.get('postgres_cpu_ms_per_req')} | "
                             f"{r['machine_busy_share']} | {r.get('other_processes_share')} | {'yes' if r['meets_p99'] else 'no'} |")
            lines.append(f"| {name}: highest rate with p99 < {ladder['p99_limit_ms']:g} ms | "
                         f"{ladder['max_rate_p99_under_limit']} | (lowest failing: {ladder['lowest_rate_failing']}) | | | | | | | | | | |")
    if result.get("serial"):
        lines += ["", "| serial (concurrency 1) | requests | errors | req/s | p50 ms | p99 ms | server CPU ms/req |", "|---|---|---|---|---|---|---|"]
        for name, r in result["serial"].items():
            lines.append(f"| {name} | {r['requests']} | {r['errors']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['server_cpu_ms_per_req']} |")
    return "\n".join(lines)


WRK_SCRIPT = r"""
-- Cycles through the pre-generated request lines (one path?query per line), keep-alive per connection.
local paths = {}
local auth = os.getenv("WRK_AUTH")
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  counter = math.random(#paths)
end
request = function()
  counter = counter % #paths + 1
  local headers = {}
  if auth then headers["Authorization"] = auth end
  return wrk.format("GET", paths[counter], headers)
end
done = function(summary, latency, requests)
  io.write(string.format(
    "JSON {\"requests\": %d, \"errors\": %d, \"non2xx\": %d, \"seconds\": %f, "
    .. "\"p50_ms\": %f, \"p90_ms\": %f, \"p99_ms\": %f, \"max_ms\": %f, \"mean_ms\": %f}\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, latency.mean / 1e3))
end
"""


def run_wrk(server: Server, requests: list[Request], headers: dict[str, str], concurrency: int,
            seconds: float) -> dict[str, Any]:
    """Closed-loop load from wrk (C, one thread per core is too many here: 1 thread, N connections)."""
    from urllib.parse import urlencode

    paths = C.DATA / f"wrk-paths-{os.getpid()}.txt"
    script = C.DATA / "wrk-cycle.lua"
    paths.write_text("".join(f"{url}?{urlencode(params)}\n" if params else f"{url}\n" for url, params in requests))
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "WRK_AUTH": headers.get("Authorization", "")}
    shares = CpuShares(server)
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script),
         server.base, "--", str(paths)],
        capture_output=True, text=True, env=env, timeout=seconds + 60)
    paths.unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {proc.stderr[-500:]} {proc.stdout[-500:]}")
    r = json.loads(line[5:])
    done = r["requests"]
    return {
        "client": "wrk", "requests": done, "ok": done - r["non2xx"] - r["errors"], "errors": r["non2xx"] + r["errors"],
        "concurrency": concurrency, "seconds": round(r["seconds"], 3), "rps": round(C.rate(done, r["seconds"]), 1),
        "p50_ms": round(r["p50_ms"], 2), "p90_ms": round(r["p90_ms"], 2), "p99_ms": round(r["p99_ms"], 2),
        "max_ms": round(r["max_ms"], 2), "mean_ms": round(r["mean_ms"], 2),
        **shares.result(done),
    }


def write_paths(requests: list[Request], name: str) -> Path:
    from urllib.parse import urlencode

    paths = C.DATA / f"paths-{name}-{os.getpid()}.txt"
    paths.write_text("".join(f"{url}?{urlencode(params)}\n" if params else f"{url}\n" for url, params in requests))
    return paths


def run_openloop(server: Server, paths: Path, headers: dict[str, str], rate: float, seconds: float,
                 warmup: float, connections: int) -> dict[str, Any]:
    """One fixed-rate step of bench/openloop.py (its own process): latency from each request's scheduled time."""
    shares = CpuShares(server)
    proc = subprocess.run(
        [sys.executable, str(C.BENCH / "openloop.py"), "--base", server.base, "--paths", str(paths),
         "--rate", f"{rate:g}", "--seconds", f"{seconds:g}", "--warmup", f"{warmup:g}",
         "--connections", str(connections), "--auth", headers.get("Authorization", "")],
        capture_output=True, text=True, timeout=seconds + warmup + 120)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"openloop failed: {proc.stderr[-800:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # CPU figures cover warm-up and measured schedule alike
    r.update(shares.result(r["requests"] + int(warmup * rate)))
    return r


def openloop_ladder(server: Server, name: str, requests: list[Request], headers: dict[str, str], rates: list[float],
                    seconds: float, warmup: float, connections: int, search: int) -> dict[str, Any]:
    """Fixed-rate steps at the stated rates, then a search for the highest rate with p99 < the target
    (p99 < 50 ms for every scenario: the latency target of trail and proof, a tail bound for aggregates)."""
    limit = TARGETS.get(name, {}).get("p99_ms", 50.0)
    paths = write_paths(requests, name)
    steps: dict[float, dict[str, Any]] = {}

    def step(rate: float) -> bool:
        rate = float(rate)
        if rate not in steps:
            res = run_openloop(server, paths, headers, rate, seconds, warmup, connections)
            res["meets_p99"] = res["errors"] == 0 and res["p99_ms"] is not None and res["p99_ms"] < limit
            steps[rate] = res
            C.log(f"open loop {name} @ {rate:g}/s: p50 {res['p50_ms']} p90 {res['p90_ms']} p99 {res['p99_ms']} ms, "
                  f"achieved {res['achieved_rps']}/s, errors {res['errors']}, server CPU {res['server_cpu_ms_per_req']} ms/req, "
                  f"late sends {res['late_sends']}")
        return steps[rate]["meets_p99"]

    try:
        for rate in sorted(rates):
            step(rate)
        passing = [r for r, v in steps.items() if v["meets_p99"]]
        failing = [r for r, v in steps.items() if not v["meets_p99"]]
        lo = max(passing) if passing else 0.0
        hi = min((r for r in failing if r > lo), default=None)
        for _ in range(search):
            if hi is None:
                nxt = round(lo * 1.5 / 5) * 5 or 5.0
            else:
                nxt = round((lo + hi) / 2 / 5) * 5
                if nxt <= lo or nxt >= hi:
                    break
            if step(nxt):
                lo = nxt
            else:
                hi = nxt
    finally:
        paths.unlink(missing_ok=True)
    return {
        "p99_limit_ms": limit, "seconds_per_step": seconds, "warmup_s": warmup, "connections": connections,
        "max_rate_p99_under_limit": lo or None, "lowest_rate_failing": hi,
        "steps": {f"{rate:g}": steps[rate] for rate in sorted(steps)},
    }


def parse_rates(text: str) -> dict[str, list[float]]:
    """"trail=25,50,100;proof=100,200" -> {"trail": [25, 50, 100], "proof": [100, 200]}."""
    out: dict[str, list[float]] = {}
    for part in text.split(";"):
        if part.strip():
            name, _, values = part.partition("=")
            out[name.strip()] = [float(v) for v in values.split(",") if v.strip()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--facts", type=int, default=1_000_000, help="facts in the store (default 1,000,000; e.g. 300000 on a slow machine)")
    ap.add_argument("--requests", type=int, default=2000, help="requests per scenario")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--cap", type=float, default=120.0, help="time cap per scenario, seconds")
    ap.add_argument("--serial", type=int, default=200, help="requests per scenario at concurrency 1 (0: skip)")
    ap.add_argument("--profile-requests", type=int, default=200)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--scenarios", default="trail,aggregates,proof")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the database (reused by the next run of the same size)")
    ap.add_argument("--analyze", action="store_true",
                    help="run ANALYZE on the store before the load (what autovacuum would do; it is off on the bench server)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the store even if a kept one exists")
    ap.add_argument("--workers", type=int, default=1, help="jejak serve --workers (uvicorn worker processes)")
    ap.add_argument("--client", default="httpx",
                    help="load generator(s), comma-separated: httpx (closed loop, Python threads; costs about as much "
                         "CPU per request as the server, on the same 2 cores), wrk (closed loop, C, Debian package; "
                         "--wrk-seconds per scenario), openloop (fixed arrival rates, bench/openloop.py in its own "
                         "process; latency from each request's scheduled send time; --rates)")
    ap.add_argument("--wrk-seconds", type=float, default=15.0)
    ap.add_argument("--rates", default="trail=25,50,100;proof=100,200;aggregates=500,1000",
                    help="open loop: requests/s per scenario, 'name=r1,r2;name=...' (default: %(default)s)")
    ap.add_argument("--ol-seconds", type=float, default=20.0, help="open loop: measured seconds per rate")
    ap.add_argument("--ol-warmup", type=float, default=3.0, help="open loop: unmeasured seconds at the same rate first")
    ap.add_argument("--ol-connections", type=int, default=64, help="open loop: most connections open at once")
    ap.add_argument("--ol-search", type=int, default=3,
                    help="open loop: extra steps searching the highest rate with p99 < 50 ms (0: only --rates)")
    a = ap.parse_args()
    clients = [c.strip() for c in a.client.split(",") if c.strip()]
    unknown = set(clients) - {"httpx", "wrk", "openloop"}
    if unknown or not clients:
        ap.error(f"--client: unknown {', '.join(sorted(unknown)) or '(none)'}; use httpx, wrk and/or openloop")

    result: dict[str, Any] = {"benchmark": "api", "machine": C.machine(), "command": "python " + " ".join(sys.argv)}
    store, info, path = build_store(a.facts, a.rebuild)
    result["store"] = info
    result["store"]["planner_stats"] = planner_stats(store)
    if a.analyze:
        secs, _ = C.timed(lambda: analyze(store))
        C.log(f"ANALYZE: {secs:.1f} s")
        result["store"]["analyze_s"] = round(secs, 2)
    server: Server | None = None
    try:
        token = create_token(store)
        headers = {"Authorization": f"Bearer {token}"}
        log_path = C.DATA / f"api-server-{info['facts']}.log"
        server = Server(store, log_path, a.workers)
        result["server"] = {"command": f"jejak serve --host 127.0.0.1 --port N --workers {a.workers}",
                            "startup_s": round(server.wait_ready(), 2), "log": str(log_path.relative_to(C.ROOT))}
        import httpx

        health = httpx.get(server.base + "/healthz", timeout=30).json()
        cp_size = int(health["checkpoint_size"])
        result["server"]["health"] = health
        periods, summary_first_s = periods_from_summary(server)
        C.log(f"first /public/v1/summary (fact view + anomalies): {summary_first_s} s")
        scenarios = make_scenarios(path, cp_size, periods, a.requests, a.seed)
        result["aggregate_variations"] = scenarios["_combos"]
        C.log("warm-up")
        result["warm_up"] = {"summary_first_s": summary_first_s, **warm_up(server, headers, scenarios)}
        names = [s.strip() for s in a.scenarios.split(",") if s.strip()]
        closed = [c for c in clients if c != "openloop"]
        if closed:
            result["scenarios"] = {}
            result["closed_loop_client"] = closed[0]
        for name in names if closed else []:
            C.log(f"load: {name} ({a.requests} requests, concurrency {a.concurrency}, cap {a.cap:g} s)")
            if closed[0] == "wrk":
                res = run_wrk(server, scenarios[name], headers, a.concurrency, a.wrk_seconds)
            else:
                res = run_load(server, scenarios[name], headers, a.concurrency, a.cap)
            res["verdict"] = verdict(name, res)
            result["scenarios"][name] = res
            C.log(f"{name}: {res['rps']} req/s p50 {res['p50_ms']} ms p99 {res['p99_ms']} ms errors {res['errors']}")
        if "openloop" in clients:
            rates = parse_rates(a.rates)
            result["openloop"] = {}
            for name in names:
                if rates.get(name):
                    result["openloop"][name] = openloop_ladder(
                        server, name, scenarios[name], headers, rates[name], a.ol_seconds, a.ol_warmup,
                        a.ol_connections, a.ol_search)
        if a.serial:
            result["serial"] = {}
            for name in names:
                res = run_load(server, scenarios[name][: a.serial], headers, 1, a.cap)
                result["serial"][name] = res
                C.log(f"serial {name}: p50 {res['p50_ms']} ms p99 {res['p99_ms']} ms")
        result["server"]["peak_rss_mb"] = server.rss_mb()
        server.stop()
        server = None
        if not a.no_profile and result.get("scenarios"):
            slowest = max(names, key=lambda s: result["scenarios"][s]["mean_ms"] or 0)
            todo = [slowest] + [s for s in names if s != slowest and not result["scenarios"][s]["verdict"]["meets"]]
            result["profile"] = {"slowest": slowest}
            for name in todo:
                C.log(f"profile: {name} ({a.profile_requests} requests in-process)")
                result["profile"][name] = profile_scenario(store, scenarios[name], headers, a.profile_requests)
                for row in result["profile"][name]["top_by_own_time"][:3]:
                    C.log(f"  {row['function']} own {row['tottime_s']} s")
        result["markdown"] = markdown(result)
    finally:
        if server is not None:
            server.stop()
        if not a.keep:
            C.log(f"dropping {store.dbname}")
            store.drop()
            marker_path(store.name).unlink(missing_ok=True)
    C.emit(f"api-{info['facts']}" + ("-analyzed" if a.analyze else ""), result)
    print(result.get("markdown", ""), file=sys.stderr)


if __name__ == "__main__":
    main()
