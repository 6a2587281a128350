"""Candidate fixes, tried by monkeypatch only (no non-bench code is edited).

    python bench/experiments.py prove     --facts 1000000 --stores postgresql,sqlite
    python bench/experiments.py balances  --facts 1000000 --stores postgresql,sqlite
    python bench/experiments.py ingest    --facts 100000  --stores postgresql

Each experiment runs the current code and the patched variant alternately in
the same run (best of --rounds) and prints a JSON comparison. The prove and
balances experiments use the store kept by `bench/ingest.py --keep`.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402

C.apply_pool_workaround()


# --------------------------------------------------------------------- prove
def prove_one_transaction(self: Any, index: int, size: int | None = None) -> dict[str, Any]:
    """Transparency.prove with one transaction and one node read (was 4 and 3)."""
    from jejak.audit.merkle import _fold, _inclusion_ranges, _range_keys, frontier_keys
    from jejak.transparency import ProofRequestError

    st = self.store
    with st.transaction(commit=False) as cursor:
        log_size, _chain = st.recorder.read_head(cursor)
        if size is None:
            size = log_size
        elif not 1 <= size <= log_size:
            raise ProofRequestError(f"size must be between 1 and the log size {log_size}, got {size}")
        if not 0 <= index < size:
            raise ProofRequestError(f"index must be between 0 and {size - 1} for a tree of size {size}, got {index}")
        per_range = [_range_keys(b, e) for b, e in _inclusion_ranges(index, 0, size)]
        root_keys = frontier_keys(size)
        keys = [(0, index)] + [k for ks in per_range for k in ks] + root_keys
        nodes = st.recorder.read_nodes(cursor, keys)
    if (0, index) not in nodes:
        raise ProofRequestError(f"leaf hash {index} is missing from the store; run `jejak verify`")
    missing = [k for k in keys if k not in nodes]
    if missing:
        from jejak.audit.errors import MissingNode

        raise MissingNode(f"tree node {missing[0]} is missing from storage", index=missing[0][1] << missing[0][0])
    return {
        "index": index, "size": size, "leaf_hash": nodes[(0, index)].hex(),
        "proof": [_fold(ks, nodes).hex() for ks in per_range], "root": _fold(root_keys, nodes).hex(),
    }


def exp_prove(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    from jejak.ledger import Ledger
    from jejak.transparency import Transparency

    path, n = C.facts_file(a.facts)
    store = C.store_for(kind, f"ingest_{kind[:2]}_{n}", fresh=False)
    with Ledger.open(store.settings()) as ledger:
        t = Transparency(ledger.store, ledger.settings)
        size = ledger.store.log_size()
        rng = random.Random(11)
        idxs = [rng.randrange(size) for _ in range(a.samples)]
        for i in idxs[:50]:  # same answer
            assert prove_one_transaction(t, i) == t.prove(i), i
        fns = {"current": t.prove, "one_transaction": lambda i: prove_one_transaction(t, i)}
        return _latency_compare(fns, idxs, a.rounds)


# ------------------------------------------------------------------ balances
def fast_catch_up_factory(original: Callable[..., int]) -> Callable[..., int]:
    def catch_up(self: Any, progress: Callable[[int], None] | None = None) -> int:
        """Skip the work in one round trip when every model is at the head."""
        self.ensure_tables()
        names = [m.position_name for m in self.models]
        marks = ", ".join("?" for _ in names)
        row = self.store.query_one(
            f"SELECT (SELECT size FROM jejak_head WHERE id = 1) AS size, "
            f"(SELECT COUNT(*) FROM jejak_positions WHERE name IN ({marks})) AS n, "
            f"(SELECT MIN(position) FROM jejak_positions WHERE name IN ({marks})) AS low",
            (*names, *names),
        )
        if row["n"] == len(names) and row["low"] is not None and row["low"] >= row["size"]:
            return 0
        return original(self, progress)

    return catch_up


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def exp_balances(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    from jejak.ledger import Ledger
    from jejak.projections.runner import Projector
    from jejak.reports import Reports

    path, n = C.facts_file(a.facts)
    store = C.store_for(kind, f"ingest_{kind[:2]}_{n}", fresh=False)
    kks = C.sample_kks(path, a.samples)
    fast = fast_catch_up_factory(Projector.catch_up)
    with Ledger.open(store.settings()) as ledger:
        reports = Reports(ledger)
        reports.catch_up()

        def with_fast(kk: str) -> Any:
            with patched(Projector, "catch_up", fast):
                return reports.balances(kk)

        for kk in kks[:20]:
            assert with_fast(kk) == reports.balances(kk)
        fns = {"current": reports.balances, "one_query_catch_up_check": with_fast}
        return _latency_compare(fns, kks, a.rounds)


def exp_analyze(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    """PostgreSQL: balances(kk) with the read-model tables never analysed (as right
    after a rebuild / bulk catch-up, before autovacuum gets to them) vs after ANALYZE."""
    import psycopg

    from jejak.ledger import Ledger
    from jejak.reports import Reports

    assert kind == "postgresql"
    path, n = C.facts_file(a.facts)
    store = C.store_for(kind, f"ingest_{kind[:2]}_{n}", fresh=False)
    tables = ("p_orders", "p_order_totals", "p_facts")
    kks = C.sample_kks(path, a.samples)
    admin = psycopg.connect(host=C.PG_HOST, port=C.PG_PORT, user=C.PG_USER, dbname=store.dbname, autocommit=True)

    def forget_stats() -> None:  # back to the never-analysed state
        for t in tables:
            admin.execute("DELETE FROM pg_statistic WHERE starelid = %s::regclass", (t,))
            admin.execute("UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid = %s::regclass", (t,))

    def analyze() -> None:
        for t in tables:
            admin.execute(f"ANALYZE {t}")

    with Ledger.open(store.settings()) as ledger:
        reports = Reports(ledger)
        reports.catch_up()
        lat: dict[str, list[float]] = {"no_stats": [], "analyzed": []}
        s_an, _ = C.timed(analyze)
        for r in range(a.rounds):
            for name in (["no_stats", "analyzed"] if r % 2 == 0 else ["analyzed", "no_stats"]):
                forget_stats() if name == "no_stats" else analyze()
                for kk in kks:
                    s, _ = C.timed(lambda: reports.balances(kk))
                    lat[name].append(s * 1000)
        analyze()
    admin.close()
    out = {name: {"n": len(v), "p50_ms": round(C.percentile(v, 50), 3), "p99_ms": round(C.percentile(v, 99), 3),
                  "mean_ms": round(sum(v) / len(v), 3)} for name, v in lat.items()}
    out["analyze_seconds"] = round(s_an, 2)
    return out


def _latency_compare(fns: dict[str, Callable[[Any], Any]], args: list[Any], rounds: int) -> dict[str, Any]:
    lat: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))
        for name in order:
            for x in args:
                s, _ = C.timed(lambda: fns[name](x))
                lat[name].append(s * 1000)
    return {
        name: {"n": len(v), "p50_ms": round(C.percentile(v, 50), 3), "p99_ms": round(C.percentile(v, 99), 3),
               "mean_ms": round(sum(v) / len(v), 3)}
        for name, v in lat.items()
    }


# -------------------------------------------------------------------- ingest
def exp_ingest(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    """Ingest variants (Ledger API, fresh store each), alternating, best of rounds."""
    from jejak.ledger import Ledger

    path, n = C.facts_file(a.facts)
    variants: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
        "current": contextlib.nullcontext,
    }
    if a.batch_variant:
        variants["batch_size_10000"] = contextlib.nullcontext
    settings_over = {"batch_size_10000": {"batch_size": 10000}}
    for extra in a.variants.split(","):
        extra = extra.strip()
        if extra and extra in INGEST_PATCHES:
            variants[extra] = INGEST_PATCHES[extra]
    best: dict[str, float] = {}
    for r in range(a.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            store = C.store_for(kind, f"exp_{kind[:2]}_{name}"[:40])
            try:
                with variants[name](), Ledger.open(store.settings(**settings_over.get(name, {}))) as ledger:
                    s, summary = C.timed(lambda: ledger.ingest_lines(C.iter_lines(path)))
                assert summary.accepted == n, (name, summary.to_dict())
            finally:
                store.drop()
            C.log(f"{kind}: {name} round {r + 1}: {s:.2f}s")
            best[name] = min(best.get(name, float("inf")), s)
    base = best["current"]
    return {name: {"best_s": round(s, 2), "facts_per_s": round(C.rate(n, s)), "speedup": round(base / s, 3)}
            for name, s in best.items()}


@contextlib.contextmanager
def _fast_uuid5() -> Iterator[None]:
    """uuid5 without the stdlib's generic path (same bytes); mapper imports it by name."""
    import hashlib
    from uuid import UUID

    import jejak.store.mapper as M
    from jejak.domain.events import FACTS_NAMESPACE

    ns = FACTS_NAMESPACE.bytes
    sha1 = hashlib.sha1

    def fact_originator_id(fact_id: str) -> UUID:
        return UUID(bytes=sha1(ns + fact_id.encode()).digest()[:16], version=5)

    assert fact_originator_id("x:1") == M.fact_originator_id("x:1")
    with patched(M, "fact_originator_id", fact_originator_id):
        yield


@contextlib.contextmanager
def _fast_b32() -> Iterator[None]:
    """store.vault._b32 (stdlib base64.b32encode is pure Python) via a 10-bit table."""
    import os

    import jejak.store.vault as V

    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    table = [alphabet[i >> 5] + alphabet[i & 31] for i in range(1024)]
    original = V._b32

    def _b32(data: bytes) -> str:
        if len(data) % 5:
            return original(data)
        n = int.from_bytes(data, "big")
        return "".join([table[(n >> s) & 1023] for s in range(len(data) * 8 - 10, -1, -10)])

    for k in (5, 10, 20, 40):
        for _ in range(200):
            d = os.urandom(k)
            assert _b32(d) == original(d)
    with patched(V, "_b32", _b32):
        yield


@contextlib.contextmanager
def _sqlite_cache_64mb() -> Iterator[None]:
    """PRAGMA cache_size = -65536 (64 MiB; SQLite's default is 2 MiB) on every connection."""
    from eventsourcing.sqlite import SQLiteConnectionPool

    original = SQLiteConnectionPool._create_connection

    def _create_connection(self: Any) -> Any:
        conn = original(self)
        conn._sqlite_conn.execute("PRAGMA cache_size = -65536")
        return conn

    with patched(SQLiteConnectionPool, "_create_connection", _create_connection):
        yield


INGEST_PATCHES: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
    "fast_uuid5": _fast_uuid5,
    "fast_b32": _fast_b32,
    "sqlite_cache_64mb": _sqlite_cache_64mb,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=["prove", "balances", "ingest", "analyze"])
    ap.add_argument("--facts", type=int, default=1_000_000)
    ap.add_argument("--stores", default="postgresql,sqlite")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-batch-variant", dest="batch_variant", action="store_false")
    ap.add_argument("--variants", default="", help="extra ingest patches: " + ",".join(INGEST_PATCHES))
    a = ap.parse_args()
    fn = {"prove": exp_prove, "balances": exp_balances, "ingest": exp_ingest, "analyze": exp_analyze}[a.experiment]
    result: dict[str, Any] = {"experiment": a.experiment, "machine": C.machine(),
                              "command": " ".join(["python", "bench/experiments.py"] + sys.argv[1:])}
    for kind in [k.strip() for k in a.stores.split(",") if k.strip()]:
        result[kind] = fn(kind, a)
    C.emit(f"experiment-{a.experiment}-{a.facts}", result)


if __name__ == "__main__":
    main()
