"""Issue 20's target: `jejak ingest` (read models and anomalies current) of a file
with 10% SPEC v2 facts stays within 10% of a v1-only file of the same size.

    python bench/v2_mix.py --facts 1000000 --stores sqlite,postgresql

The v1 file is the usual generated one of about N facts. The v2 file is the
generated one of about 0.9 N facts with one v2 fact after every 9 v1 facts,
dated as the fact before it: 40% `register.listed` (a quarter of them for a
recipient of a recent order, so register rules fire; the others for people
outside the programs), 40% `complaint.filed` about a recent order (its family's
region), 20% `complaint.resolved` of an earlier complaint (so most complaints
stay open and many become overdue). Both files are ingested with `jejak ingest`
in a subprocess on fresh stores, alternating, best of `--repeats`; the
comparison is facts per second.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402

from jejak.domain.facts import COMPLAINT_CATEGORIES, COMPLAINT_CHANNELS, COMPLAINT_OUTCOMES, REGISTERS  # noqa: E402

EVERY = 9  # one v2 fact after every 9 v1 facts: 10% of the file


def v2_file(facts: int, seed: int = 1) -> tuple[Path, int, int]:
    """Path of the mixed file of about `facts` facts (made once); its count and its v2 count."""
    base, _ = C.facts_file(round(facts * EVERY / (EVERY + 1)), seed)
    path = C.DATA / f"facts-v2mix-{facts}-s{seed}.jsonl"
    rng = random.Random(seed)
    registers, categories = sorted(REGISTERS), sorted(COMPLAINT_CATEGORIES)
    channels, outcomes = sorted(COMPLAINT_CHANNELS), sorted(COMPLAINT_OUTCOMES)
    region_of: dict[str, str] = {}
    orders: list[dict[str, Any]] = []
    complaints: list[str] = []
    n = v2 = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        for i, raw in enumerate(C.iter_lines(base)):
            if not raw.strip():
                continue
            out.write(raw if raw.endswith(b"\n") else raw + b"\n")
            n += 1
            f = orjson.loads(raw)
            if f["type"] == "eligibility.decided":
                region_of[f["kk"]] = f["region"]
            elif f["type"] == "disbursement.ordered" and f["kk"] in region_of:
                orders.append(f)
                del orders[:-1000]
            if n % EVERY or not orders:
                continue
            kind = rng.random()
            at, source = f["at"], {"kind": "public", "id": "bench-v2"}
            if kind < 0.4:
                nik = rng.choice(orders)["nik"] if rng.random() < 0.25 else f"{rng.randrange(10**15, 10**16)}"
                fact = {"type": "register.listed", "source": {"kind": "registry", "id": "bench-v2"},
                        "register": rng.choice(registers), "nik": nik, "from": at[:10]}
            elif kind < 0.8 or not complaints:
                order = rng.choice(orders)
                fact = {"type": "complaint.filed", "source": source, "channel": rng.choice(channels),
                        "category": rng.choice(categories), "region": region_of[order["kk"]], "kk": order["kk"],
                        "disbursement": order["id"], "text": "bantuan belum diterima"}
            else:
                fact = {"type": "complaint.resolved", "source": {"kind": "dinsos", "id": "bench-v2"},
                        "complaint": complaints.pop(rng.randrange(len(complaints))), "outcome": rng.choice(outcomes)}
            fact = {"id": f"bench:v2:{v2:08d}", "at": at, **fact}
            if fact["type"] == "complaint.filed":
                complaints.append(fact["id"])
            out.write(orjson.dumps(fact) + b"\n")
            v2 += 1
    tmp.replace(path)
    return path, n + v2, v2


def ingest(kind: str, name: str, path: Path) -> dict[str, Any]:
    store = C.store_for(kind, name)
    try:
        out = C.run_child(C.jejak_cmd() + ["ingest", str(path)], env=store.env())
        if out["returncode"] != 0:
            raise RuntimeError(f"jejak ingest failed: {out['stderr']}")
        return {"seconds": round(out["seconds"], 2), "peak_rss_mb": round(out["peak_rss_mb"], 1),
                "summary": out["stdout"].strip()[-400:]}
    finally:
        store.drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=1_000_000)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    v1_path, v1_n = C.facts_file(a.facts)
    v2_path, v2_n, v2_only = v2_file(a.facts)
    C.log(f"v1 file {v1_n} facts, v2 file {v2_n} facts ({v2_only} v2)")
    result: dict[str, Any] = {"facts": a.facts, "v1_facts": v1_n, "v2_facts": v2_n, "v2_share": round(v2_only / v2_n, 4),
                              "machine": C.machine(), "code": C.code_state()}
    for kind in a.stores.split(","):
        runs: dict[str, list[dict[str, Any]]] = {"v1": [], "v2": []}
        for r in range(a.repeats):
            order = (("v1", v1_path, v1_n), ("v2", v2_path, v2_n))
            for label, path, n in (order if r % 2 == 0 else order[::-1]):
                C.log(f"{kind}: round {r + 1}, {label}")
                run = ingest(kind, f"v2mix_{kind[:2]}_{label}", path)
                run["facts_per_s"] = round(C.rate(n, run["seconds"]))
                runs[label].append(run)
        best = {label: max(rs, key=lambda x: x["facts_per_s"]) for label, rs in runs.items()}
        result[kind] = {"runs": runs, "v2_over_v1": round(best["v2"]["facts_per_s"] / best["v1"]["facts_per_s"], 3),
                        "target": ">= 0.9"}
    C.emit(f"v2_mix_{a.facts}_{a.stores.replace(',', '_')}", result)


if __name__ == "__main__":
    main()
