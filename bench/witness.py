"""Witness cosigning latency (issue 19): one `jejak checkpoint --policy` round
against three local `jejak witness serve` processes.

    python bench/witness.py                 # 300 rounds, 3 witnesses
    python bench/witness.py --rounds 1000 --grow 50

Each round grows an in-memory log by --grow entries, signs its checkpoint and
runs the log's witness client (`jejak.witnessing.PolicyCosigner`: parallel
POST /add-checkpoint with a consistency proof, cosignature checks, quorum of
all three) exactly as `jejak checkpoint --policy` does, minus the store.
Prints p50/p90/p99/max of the round time in milliseconds, as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jejak.audit.policy import Policy  # noqa: E402
from jejak.witnessing import PolicyCosigner, WitnessMemory  # noqa: E402
from tests.witness_support import ToyLog, WitnessProcess, init_witness, run_jejak  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--grow", type=int, default=20, help="entries appended between checkpoints")
    parser.add_argument("--witnesses", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        log = ToyLog.named("bench.jejak.local/bansos")
        procs, lines = [], []
        try:
            for i in range(args.witnesses):
                state = base / f"w{i}"
                vkey = init_witness(state, f"bench-witness-{i}.local")
                assert run_jejak("witness", "add-log", "--state", str(state),
                                 log.signer.verifier_key_text()).returncode == 0
                proc = WitnessProcess(state).start()
                procs.append(proc)
                lines.append(f"witness w{i} {vkey} {proc.url}\n")
            names = " ".join(f"w{i}" for i in range(args.witnesses))
            policy = Policy.parse(f"log {log.signer.verifier_key_text()}\n{''.join(lines)}group all-w all {names}\n"
                                  "quorum all-w\n")
            cosigner = PolicyCosigner(policy, WitnessMemory(base / "keys", log.signer.name), timeout=10)
            times = []
            for _ in range(args.rounds):
                log.grow(log.size + args.grow)
                note = log.note()
                start = time.perf_counter()
                cosigned = cosigner.cosign(note, log.size, lambda old: log.proof(old))
                times.append((time.perf_counter() - start) * 1000)
                assert len(policy.verify_quorum(cosigned)) == args.witnesses
        finally:
            for proc in procs:
                proc.stop()
    print(json.dumps({
        "witnesses": args.witnesses, "rounds": args.rounds, "grow": args.grow, "final_size": log.size,
        "p50_ms": round(percentile(times, 0.50), 2), "p90_ms": round(percentile(times, 0.90), 2),
        "p99_ms": round(percentile(times, 0.99), 2), "max_ms": round(max(times), 2),
        "mean_ms": round(statistics.fmean(times), 2),
    }))


if __name__ == "__main__":
    main()
