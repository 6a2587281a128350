"""Whole-store verification and inclusion proofs, vs an in-memory hashing floor.

    python bench/verify.py --facts 1000000 --stores sqlite,postgresql

Uses the store kept by `bench/ingest.py --keep` (same --facts), else ingests the
file first. In one run, per store kind:
  verify     Transparency.verify() after one checkpoint is issued: every chain
             link, every Merkle node, the checkpoint signature and root;
  floor      Python hashlib chaining the same leaf bytes already in memory
             (chain[i] = SHA-256(chain[i-1] ‖ leaf_i)); also, for context, the
             full in-memory hashing verify does (chain + leaf hashes + tree levels);
  proofs     Transparency.prove(i) for 2,000 random indexes: p50 / p99 / max;
  profile    cProfile of verify() (top functions by own time).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402



def ensure_store(kind: str, facts: int) -> tuple[C.BenchStore, int, bool]:
    path, n = C.facts_file(facts)
    name = f"ingest_{kind[:2]}_{n}"
    if C.store_exists(kind, name):
        return C.store_for(kind, name, fresh=False), n, False
    from jejak.ledger import Ledger

    C.log(f"{kind}: no kept store {name}; ingesting {n} facts first")
    store = C.store_for(kind, name)
    with Ledger.open(store.settings()) as ledger:
        summary = ledger.ingest_lines(C.iter_lines(path))
    assert summary.accepted == n
    return store, n, True


def leaves_in_memory(st: Any) -> list[bytes]:
    return [leaf for _i, _fid, _chain, leaf, _topic in st.iter_log()]


def floor_chain(leaves: list[bytes]) -> bytes:
    sha = hashlib.sha256
    chain = bytes(32)
    for leaf in leaves:
        chain = sha(chain + leaf).digest()
    return chain


def floor_full(leaves: list[bytes]) -> bytes:
    """Chain + RFC 9162 leaf hashes + all tree levels, in memory (what verify hashes)."""
    sha = hashlib.sha256
    chain = bytes(32)
    level = []
    for leaf in leaves:
        chain = sha(chain + leaf).digest()
        level.append(sha(b"\x00" + leaf).digest())
    while len(level) > 1:
        level = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
    return chain


def bench_kind(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    from jejak.ledger import Ledger
    from jejak.transparency import Transparency

    store, n, built = ensure_store(kind, a.facts)
    res: dict[str, Any] = {"facts": n, "store": store.url, "store_built_here": built}
    ledger = Ledger.open(store.settings())
    try:
        st = ledger.store
        size = st.log_size()
        assert size >= n, (size, n)
        t = Transparency(st, ledger.settings)
        cp = t.issue_checkpoint()
        res["log_size"] = size
        res["checkpoint_size"] = cp.size

        C.log(f"{kind}: verify ({size} entries)")
        s, out = C.timed(t.verify)
        assert out["intact"] and out["size"] == size
        res["verify"] = {"seconds": round(s, 2), "facts_per_s": round(C.rate(size, s)), "result": out}

        C.log(f"{kind}: loading leaves into memory for the floor")
        leaves = leaves_in_memory(st)
        assert len(leaves) == size
        s_chain, head = C.timed(lambda: floor_chain(leaves))
        assert head == st.head()[1], "floor chain differs from the stored head"
        s_full, _ = C.timed(lambda: floor_full(leaves))
        res["floor_chain_only"] = {"seconds": round(s_chain, 3), "facts_per_s": round(C.rate(size, s_chain))}
        res["floor_full_hashing"] = {"seconds": round(s_full, 3), "facts_per_s": round(C.rate(size, s_full))}
        res["leaf_bytes_mean"] = round(sum(map(len, leaves)) / size, 1)
        del leaves
        res["ratios"] = {
            "verify_over_chain_floor": round(res["verify"]["facts_per_s"] / res["floor_chain_only"]["facts_per_s"], 3),
            "verify_over_full_hashing_floor": round(
                res["verify"]["facts_per_s"] / res["floor_full_hashing"]["facts_per_s"], 3),
            "target": "verify >= 0.5 x chain floor",
        }

        C.log(f"{kind}: {a.proofs} inclusion proofs")
        rng = random.Random(7)
        idxs = [rng.randrange(size) for _ in range(a.proofs)]
        t.prove(idxs[0])  # warm
        lat = []
        for i in idxs:
            s, proof = C.timed(lambda: t.prove(i))
            lat.append(s * 1000)
        res["prove_ms"] = {
            "n": len(lat), "p50": round(C.percentile(lat, 50), 3), "p99": round(C.percentile(lat, 99), 3),
            "max": round(max(lat), 3), "target_p99": "< 5 ms", "meets_target": C.percentile(lat, 99) < 5,
        }
        # the proof checks against the checkpoint root
        from jejak.audit.merkle import verify_inclusion

        p = t.prove(idxs[-1], cp.size)
        verify_inclusion(p["index"], p["size"], bytes.fromhex(p["leaf_hash"]),
                         [bytes.fromhex(h) for h in p["proof"]], cp.root)

        if a.profile:
            C.log(f"{kind}: cProfile of verify")
            _, top = C.profile_top(t.verify, top=12)
            res["profile_verify"] = top
    finally:
        ledger.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=1_000_000)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--proofs", type=int, default=2000)
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    a = ap.parse_args()
    result: dict[str, Any] = {
        "benchmark": "verify", "machine": C.machine(),
        "command": " ".join(["python", "bench/verify.py"] + sys.argv[1:]),
    }
    for kind in [k.strip() for k in a.stores.split(",") if k.strip()]:
        result[kind] = bench_kind(kind, a)
    C.emit(f"verify-{a.facts}", result)


if __name__ == "__main__":
    main()
