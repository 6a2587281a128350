"""The demo's last part: findings an inspector would act on, each with its evidence.

For a civil servant paid, a companion collecting for many families and a
payment after death (the first of each `jejak anomalies` found): the facts
behind it, their log indexes, and an inclusion proof of each fact against the
signed checkpoint, checked offline by `jejak audit verify-proof` as an
inspector would on their own machine. NIKs and KKs are shown masked.

Usage (from scripts/demo.sh): python3 scripts/findings.py DEMO_DIR
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

WANTED = {
    "asn_recipient": "a civil servant (ASN) received aid",
    "companion_concentration": "one companion collected for many families",
    "deceased_recipient": "aid ordered or collected after the recipient's death",
}


#: Facts shown per finding (a companion's finding names every pickup).
SHOWN = 4


def mask(value: str) -> str:
    return re.sub(r"\b(\d{4})\d{8}(\d{4})\b", r"\1********\2", value)


def describe(fact: dict) -> str:
    shown = {k: fact[k] for k in ("type", "at", "program", "period", "amount", "channel", "by", "decision",
                                  "date", "from", "until") if k in fact}
    for k in ("nik", "kk"):
        if isinstance(fact.get(k), str):
            shown[k] = mask(fact[k])
    return mask(json.dumps(shown, ensure_ascii=False))


def jejak(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["jejak", *args], capture_output=True, text=True)


def main(demo: Path) -> int:
    anomalies = [json.loads(line) for line in (demo / "anomalies.jsonl").read_text().splitlines() if line]
    index_of: dict[str, tuple[int, dict]] = {}
    with (demo / "export.jsonl").open() as export:
        for line in export:
            entry = json.loads(line)
            fid = entry["fact"].get("id")
            if isinstance(fid, str):
                index_of[fid] = (entry["index"], entry["fact"])
    failures = 0
    for rule, what in WANTED.items():
        found = next((a for a in anomalies if a["rule"] == rule), None)
        if found is None:
            continue
        print(f"\n-- {what} ({rule})\n   {mask(found['detail'])}")
        shown = found["facts"][:SHOWN]
        for fid in shown:
            index, fact = index_of[fid]
            proof_file = demo / f"proof-{index}.json"
            proof = jejak("prove", str(index))
            proof_file.write_text(proof.stdout)
            check = jejak("audit", "verify-proof", str(proof_file), "--checkpoint", str(demo / "checkpoint.txt"),
                          "--key", str(demo / "key.txt"))
            verdict = json.loads(check.stdout) if check.stdout.strip() else {"valid": False, "error": check.stderr}
            ok = check.returncode == 0 and verdict.get("valid") is True
            failures += not ok
            size = verdict.get("size", "?")
            print(f"   log index {index}: {fid} {describe(fact)}")
            print(f"      inclusion proof against the signed checkpoint (size {size}), checked offline: "
                  + ("valid" if ok else f"INVALID {verdict.get('error')}"))
        if len(found["facts"]) > len(shown):
            print(f"   … and {len(found['facts']) - len(shown)} more facts (`jejak anomalies --rule {rule}`)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo")))
