"""Ingest throughput of jejak vs two baselines measured in the same run.

    python bench/ingest.py --facts 1000000 --stores sqlite,postgresql

For each store kind, on the same generated file:
  floor      psycopg COPY (PG) / executemany (SQLite) of canonical JSON
             (orjson OPT_SORT_KEYS) + a SHA-256 chain into one table, 2,000 rows
             per transaction (jejak's batch size);
  plain_es   plain `eventsourcing` as a user would write it: one Aggregate per
             fact (the fact dict as a field), Application.save() 500 at a time,
             persistence chosen by the library's env vars;
  jejak_api  Ledger.open(...).ingest_lines(file) (validate, tokenise, seal,
             record, chain, Merkle nodes) — no projections;
  jejak_cli  `jejak ingest FILE` in a subprocess (includes projection catch-up),
             with its peak RSS; also at a smaller file to show RSS is flat.
Ablations (monkeypatches in this process; smaller file, alternating order, best of N):
  Merkle node writing off (append_to_frontier -> no nodes) vs on, as configured
  (the Merkle append runs in this process's planning stage);
  tokenisation + sealing off (identity tokenizer, no-op sealer) vs on, both with
  JEJAK_INGEST_WORKERS=0 (a worker process would not see the patches).
Plus a cProfile of the jejak_api hot path on a slice of the file.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402


BATCH = 2000


# ------------------------------------------------------------------ baselines
def floor_pg(path: Path, dbname: str) -> int:
    import orjson
    import psycopg

    dumps, loads, opt = orjson.dumps, orjson.loads, orjson.OPT_SORT_KEYS
    sha = hashlib.sha256
    n = 0
    chain = bytes(32)
    with psycopg.connect(host=C.PG_HOST, port=C.PG_PORT, user=C.PG_USER, dbname=dbname) as conn:
        conn.execute("CREATE TABLE floor_log (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL, chain BYTEA NOT NULL)")
        conn.commit()
        batch: list[tuple[int, bytes, bytes]] = []

        def flush() -> None:
            with conn.cursor() as cur:
                with cur.copy("COPY floor_log (idx, leaf, chain) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            conn.commit()
            batch.clear()

        for raw in C.iter_lines(path):
            if not raw.strip():
                continue
            leaf = dumps(loads(raw), option=opt)
            chain = sha(chain + leaf).digest()
            batch.append((n, leaf, chain))
            n += 1
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
    return n


def floor_sqlite(path: Path, db_path: Path) -> int:
    import sqlite3

    import orjson

    dumps, loads, opt = orjson.dumps, orjson.loads, orjson.OPT_SORT_KEYS
    sha = hashlib.sha256
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")  # as eventsourcing's SQLite datastore
    conn.execute("CREATE TABLE floor_log (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, chain BLOB NOT NULL)")
    n, chain, batch = 0, bytes(32), []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO floor_log (idx, leaf, chain) VALUES (?, ?, ?)", batch)
        conn.execute("COMMIT")
        batch.clear()

    for raw in C.iter_lines(path):
        if not raw.strip():
            continue
        leaf = dumps(loads(raw), option=opt)
        chain = sha(chain + leaf).digest()
        batch.append((n, leaf, chain))
        n += 1
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    conn.close()
    return n


_ES: tuple[Any, Any] | None = None


def _es_classes() -> tuple[Any, Any]:
    """Defined once per process (the library refuses to re-register a topic)."""
    global _ES
    if _ES is None:
        from eventsourcing.application import Application
        from eventsourcing.domain import Aggregate

        class Fact(Aggregate):
            def __init__(self, fact: dict) -> None:
                self.fact = fact

        class Facts(Application):
            name = "facts"

        _ES = (Fact, Facts)
    return _ES


def plain_eventsourcing(path: Path, env: dict[str, str]) -> int:
    """What a user of the library would write: one aggregate per fact."""
    import orjson

    Fact, Facts = _es_classes()
    app = Facts(env=env)
    n = 0
    pending: list[Fact] = []
    for raw in C.iter_lines(path):
        if not raw.strip():
            continue
        pending.append(Fact(fact=orjson.loads(raw)))
        n += 1
        if len(pending) >= 500:
            app.save(*pending)
            pending.clear()
    if pending:
        app.save(*pending)
    app.close()
    return n


def es_env(kind: str, where: str) -> dict[str, str]:
    if kind == "postgresql":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": where, "POSTGRES_HOST": C.PG_HOST, "POSTGRES_PORT": str(C.PG_PORT),
            "POSTGRES_USER": C.PG_USER, "POSTGRES_PASSWORD": "",
        }
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": where}


# ---------------------------------------------------------------------- jejak
def jejak_api(store: C.BenchStore, lines: Iterable[bytes], **settings: Any) -> tuple[float, Any]:
    from jejak.ledger import Ledger

    ledger = Ledger.open(store.settings(**settings))
    try:
        seconds, summary = C.timed(lambda: ledger.ingest_lines(lines))
    finally:
        ledger.close()
    return seconds, summary


class Patched:
    """In-process ablations (monkeypatches, undone on exit)."""

    def __init__(self, merkle: bool = True, protect: bool = True) -> None:
        self.merkle, self.protect = merkle, protect
        self._undo: list[tuple[Any, str, Any]] = []

    def _set(self, obj: Any, name: str, value: Any) -> None:
        self._undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def __enter__(self) -> "Patched":
        import jejak.store.recorders as R
        from jejak.store.vault import Sealer, SealedSubject, Tokenizer

        if not self.merkle:
            from jejak.audit.merkle import frontier_keys

            # every append (planned or not): no nodes, a stand-in frontier (no hashing at all)
            self._set(R, "append_to_frontier", lambda size, frontier, hashes, min_level=0: (
                [], {key: bytes(32) for key in frontier_keys(size + len(hashes))}))
        if not self.protect:
            self._set(Tokenizer, "token", lambda self, kind, value: value)
            self._set(Sealer, "seal", lambda self, token, kind, value: SealedSubject(token, kind, b"", b""))
        return self

    def __exit__(self, *exc: object) -> None:
        for obj, name, old in reversed(self._undo):
            setattr(obj, name, old)


def run_variant(kind: str, label: str, path: Path, n: int, patch: dict[str, bool],
                settings: dict[str, Any]) -> dict[str, Any]:
    store = C.store_for(kind, f"abl_{kind[:2]}_{label}")
    try:
        with Patched(**patch):
            seconds, summary = jejak_api(store, C.iter_lines(path), **settings)
        assert summary.accepted == n, (label, summary.to_dict())
        return {"seconds": seconds, "facts_per_s": C.rate(n, seconds)}
    finally:
        store.drop()


def ablations(kind: str, path: Path, n: int, repeats: int) -> dict[str, Any]:
    in_process = {"ingest_workers": 0}
    variants: dict[str, tuple[dict[str, bool], dict[str, Any]]] = {  # label: (patch, settings)
        "full": ({}, {}),
        "merkle_off": ({"merkle": False}, {}),
        "full_in_process": ({}, in_process),
        "protect_off_in_process": ({"protect": False}, in_process),
    }
    runs: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for label in order:
            C.log(f"{kind}: ablation {label} (round {r + 1}/{repeats}, {n} facts)")
            runs[label].append(run_variant(kind, label, path, n, *variants[label])["seconds"])
    best = {k: min(v) for k, v in runs.items()}
    rate = {k: C.rate(n, s) for k, s in best.items()}
    merkle_overhead = 1 - rate["full"] / rate["merkle_off"]
    protect_ratio = rate["full_in_process"] / rate["protect_off_in_process"]
    return {
        "facts": n, "repeats": repeats, "seconds_all_runs": runs, "facts_per_s_best": rate,
        "merkle_overhead": round(merkle_overhead, 3), "merkle_target": "< 0.15",
        "merkle_meets_target": merkle_overhead < 0.15,
        "protect_on_over_off": round(protect_ratio, 3), "protect_target": ">= 0.8",
        "protect_meets_target": protect_ratio >= 0.8,
    }


def cli_ingest(kind: str, name: str, path: Path, keep: bool = False) -> dict[str, Any]:
    store = C.store_for(kind, name)
    try:
        out = C.run_child(C.jejak_cmd() + ["ingest", str(path)], env=store.env())
        if out["returncode"] != 0:
            raise RuntimeError(f"jejak ingest failed: {out['stderr']}")
        return {"seconds": out["seconds"], "peak_rss_mb": round(out["peak_rss_mb"], 1), "summary": out["stdout"].strip()}
    finally:
        if not keep:
            store.drop()


def profile_api(kind: str, path: Path, facts: int) -> dict[str, Any]:
    store = C.store_for(kind, f"prof_{kind[:2]}")
    try:
        from jejak.ledger import Ledger

        ledger = Ledger.open(store.settings())
        lines = list(itertools.islice(C.iter_lines(path), facts))
        try:
            summary, top = C.profile_top(lambda: ledger.ingest_lines(lines), top=15)
        finally:
            ledger.close()
        return {"facts": summary.accepted, "top_by_own_time": top}
    finally:
        store.drop()


# ----------------------------------------------------------------------- main
FLOOR_WHAT = {
    "postgresql": "psycopg COPY of orjson OPT_SORT_KEYS + SHA-256 chain, 2000/txn",
    "sqlite": "sqlite3 executemany of orjson OPT_SORT_KEYS + SHA-256 chain, 2000/txn, WAL",
}


def floor_seconds(kind: str, path: Path, n: int) -> float:
    """(b) the floor on a fresh table, dropped afterwards."""
    if kind == "postgresql":
        db = C.create_db(f"floor_{n}")
        try:
            s, m = C.timed(lambda: floor_pg(path, db))
        finally:
            C.drop_db(db)
    else:
        db_path = C.DATA / "stores" / f"floor_{n}.db"
        db_path.parent.mkdir(parents=True, exist_ok=True)
        for p in db_path.parent.glob(db_path.name + "*"):
            p.unlink()
        try:
            s, m = C.timed(lambda: floor_sqlite(path, db_path))
        finally:
            for p in db_path.parent.glob(db_path.name + "*"):
                p.unlink()
    assert m == n
    return s


def alternating_pairs(kind: str, path: Path, n: int, pairs: int) -> dict[str, Any]:
    """jejak ÷ floor from `pairs` more runs of each, back to back, order
    alternating: on a machine whose speed drifts between minutes, a single
    floor run and a single jejak run can land in different weather."""
    ratios = []
    for i in range(pairs):
        seconds: dict[str, float] = {}
        for which in (("floor", "jejak") if i % 2 == 0 else ("jejak", "floor")):
            C.log(f"{kind}: pair {i + 1}/{pairs}: {which} ({n} facts)")
            if which == "floor":
                seconds[which] = floor_seconds(kind, path, n)
            else:
                seconds[which] = run_variant(kind, "pair", path, n, patch={}, settings={})["seconds"]
        ratios.append(round(seconds["floor"] / seconds["jejak"], 3))
    return {"pairs": pairs, "api_over_floor_each": ratios, "api_over_floor_median": statistics.median(ratios)}


def bench_kind(kind: str, a: argparse.Namespace, path: Path, n: int) -> dict[str, Any]:
    res: dict[str, Any] = {"facts": n}
    C.log(f"{kind}: floor ({n} facts)")
    s = floor_seconds(kind, path, n)
    res["floor"] = {"what": FLOOR_WHAT[kind], "seconds": round(s, 2), "facts_per_s": round(C.rate(n, s))}

    # (a) plain eventsourcing
    if not a.skip_plain:
        C.log(f"{kind}: plain eventsourcing ({n} facts)")
        if kind == "postgresql":
            db = C.create_db(f"plain_es_{n}")
            try:
                s, m = C.timed(lambda: plain_eventsourcing(path, es_env(kind, db)))
            finally:
                C.drop_db(db)
        else:
            db_path = C.DATA / "stores" / f"plain_es_{n}.db"
            for p in db_path.parent.glob(db_path.name + "*"):
                p.unlink()
            try:
                s, m = C.timed(lambda: plain_eventsourcing(path, es_env(kind, str(db_path))))
            finally:
                for p in db_path.parent.glob(db_path.name + "*"):
                    p.unlink()
        assert m == n
        res["plain_eventsourcing"] = {
            "what": "one Aggregate per fact, Application.save() 500 at a time", "seconds": round(s, 2),
            "facts_per_s": round(C.rate(n, s)),
        }

    # jejak via the Ledger API (store kept for bench/verify.py)
    C.log(f"{kind}: jejak Ledger.ingest_lines ({n} facts)")
    store = C.store_for(kind, f"ingest_{kind[:2]}_{n}")
    s, summary = jejak_api(store, C.iter_lines(path))
    assert summary.accepted == n, summary.to_dict()
    res["jejak_api"] = {"seconds": round(s, 2), "facts_per_s": round(C.rate(n, s)), "store_bytes": store.size_bytes(),
                        "store": store.url}
    if not a.keep:
        store.drop()

    # jejak CLI (ingest + projection catch-up), peak RSS at two sizes
    if not a.skip_cli:
        C.log(f"{kind}: jejak ingest CLI ({n} facts)")
        full = cli_ingest(kind, f"cli_{kind[:2]}_{n}", path)
        full["facts_per_s"] = round(C.rate(n, full["seconds"]))
        res["jejak_cli"] = full
        small_path, small_n = C.facts_file(a.rss_small)
        C.log(f"{kind}: jejak ingest CLI ({small_n} facts) for RSS")
        small = cli_ingest(kind, f"cli_{kind[:2]}_{small_n}", small_path)
        small["facts_per_s"] = round(C.rate(small_n, small["seconds"]))
        res["rss_flatness"] = {
            "small": {"facts": small_n, "peak_rss_mb": small["peak_rss_mb"], "seconds": round(small["seconds"], 2)},
            "full": {"facts": n, "peak_rss_mb": full["peak_rss_mb"]},
            "growth_ratio": round(full["peak_rss_mb"] / small["peak_rss_mb"], 3),
            "file_growth_ratio": round(n / small_n, 2),
        }

    # ratios
    r: dict[str, Any] = {}
    api = res["jejak_api"]["facts_per_s"]
    r["api_over_floor"] = round(api / res["floor"]["facts_per_s"], 3)
    if "plain_eventsourcing" in res:
        r["api_over_plain_eventsourcing"] = round(api / res["plain_eventsourcing"]["facts_per_s"], 2)
    if "jejak_cli" in res:
        cli = res["jejak_cli"]["facts_per_s"]
        r["cli_over_floor"] = round(cli / res["floor"]["facts_per_s"], 3)
        if "plain_eventsourcing" in res:
            r["cli_over_plain_eventsourcing"] = round(cli / res["plain_eventsourcing"]["facts_per_s"], 2)
    if kind == "postgresql":
        r["targets"] = {"over_plain_eventsourcing": ">= 4", "over_floor": ">= 0.5"}
    res["ratios"] = r
    if a.pairs:
        res["alternating"] = alternating_pairs(kind, path, n, a.pairs)

    if a.ablation_facts:
        apath, an = C.facts_file(a.ablation_facts)
        res["ablations"] = ablations(kind, apath, an, a.repeats)
    if a.profile_facts:
        C.log(f"{kind}: cProfile of ingest_lines ({a.profile_facts} facts)")
        res["profile"] = profile_api(kind, path, a.profile_facts)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=1_000_000, help="about this many facts (generated once)")
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--rss-small", type=int, default=100_000, help="smaller file for the RSS flatness check")
    ap.add_argument("--ablation-facts", type=int, default=100_000, help="file size for Merkle/protect ablations (0: skip)")
    ap.add_argument("--repeats", type=int, default=2, help="ablation rounds (best of)")
    ap.add_argument("--profile-facts", type=int, default=50_000, help="facts to profile (0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the jejak_api store for bench/verify.py")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--pairs", type=int, default=0,
                    help="then this many alternating floor/jejak pairs for a drift-robust ratio (0: none)")
    a = ap.parse_args()

    path, n = C.facts_file(a.facts)
    result: dict[str, Any] = {
        "benchmark": "ingest", "machine": C.machine(), "file": str(path.relative_to(C.ROOT)),
        "file_bytes": path.stat().st_size, "facts": n, "batch_size": BATCH,
        "command": " ".join(["python"] + [os.path.relpath(sys.argv[0], C.ROOT)] + sys.argv[1:]),
    }
    for kind in [k.strip() for k in a.stores.split(",") if k.strip()]:
        result[kind] = bench_kind(kind, a, path, n)
        C.save_result(f"ingest-{n}-partial", result)
    C.emit(f"ingest-{n}", result)


if __name__ == "__main__":
    main()
