#!/usr/bin/env bash
# Demo on the embedded default (SQLite ./jejak.db): generate a realistic kota
# with planted irregularities, ingest it, show what jejak finds, and end with
# example findings, each with its facts, log indexes and offline-checked proofs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/jejak ] || { python3 -m venv .venv && .venv/bin/pip install -q -e .; }
. .venv/bin/activate
export JEJAK_STORE="${JEJAK_STORE:-./jejak.db}"
mkdir -p demo
jejak generate --families "${FAMILIES:-2000}" --seed 42 --plant --out demo/facts.jsonl --expected demo/expected.jsonl
echo "== ingest (twice: the second run records nothing new)"
jejak ingest demo/facts.jsonl || true
jejak ingest demo/facts.jsonl || true
echo "== anomalies by rule"
jejak anomalies > demo/anomalies.jsonl
python3 - <<'PY'
import collections, json
got = [json.loads(l) for l in open("demo/anomalies.jsonl")]
want = [json.loads(l) for l in open("demo/expected.jsonl")]
for rule, n in sorted(collections.Counter(a["rule"] for a in got).items()):
    print(f"  {rule:30} {n}")
same = {(a["rule"], a["primary"]) for a in got} == {(a["rule"], a["primary"]) for a in want}
print(f"  planted anomalies all found and nothing else: {same}")
PY
echo "== SPEC v2: one anomaly of each register and complaint rule (as of the latest fact, then as of 1 July)"
for rule in barred_recipient flagged_recipient complaint_overdue disputed_pickup companion_complaints unknown_complaint; do
  jejak anomalies --rule "$rule" | head -1
done
echo "  complaint_overdue as of 2024-07-01: $(jejak anomalies --as-of 2024-07-01 --rule complaint_overdue | wc -l) open complaints"
echo "== one family's balances"
jejak balances | head -2
echo "== signed checkpoint, verifier key, inclusion proof of entry 0"
jejak checkpoint | tee demo/checkpoint.txt
jejak key | tee demo/key.txt
jejak prove 0
echo "== whole-log verification"
jejak verify
jejak export > demo/export.jsonl
jejak audit verify-export demo/export.jsonl --checkpoint demo/checkpoint.txt --key demo/key.txt
echo "== findings an inspector would act on, with their evidence"
python3 scripts/findings.py demo
