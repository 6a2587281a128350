#!/usr/bin/env bash
# Mutation testing (cosmic-ray, PyPI) of the modules that decide trust. Not in CI.
#
#   bash scripts/mutation.sh [TARGET ...]     default: merkle note checkpoint verify
#   targets: merkle note checkpoint offline verify engine receipts aggregates
#
# Each target mutates one module in a private copy of the repository (the
# worktree is never touched) and runs the fast tests that cover it, stopping
# at the first failure. Results go to $JEJAK_MUTATION_OUT (default
# ./mutation-report): <target>.txt lists every surviving mutant with its
# diff; summary.txt the score (killed / (killed + survived)) per target.
# Environment: JEJAK_MUTATION_TIMEOUT (seconds per mutant, default 120).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
OUT="$(mkdir -p "${JEJAK_MUTATION_OUT:-$REPO/mutation-report}" && cd "${JEJAK_MUTATION_OUT:-$REPO/mutation-report}" && pwd)"
TIMEOUT="${JEJAK_MUTATION_TIMEOUT:-120}"
[ -x "$VENV/bin/cosmic-ray" ] || "$VENV/bin/python" -m pip install -q -e "$REPO[mutation]"

# target -> module file | functions to mutate (empty: all) | tests
declare -A MODULE FUNCS TESTS
MODULE[merkle]=audit/merkle.py
# what decides trust offline: hashing and proof verification (proof and tree
# building is checked through these by the store tests); MERKLE_ALL=1: every function
[ -n "${MERKLE_ALL:-}" ] || FUNCS[merkle]="leaf_hash node_hash _split root_from_leaf_hashes _check_len _chain_inner _chain_inner_right _chain_border_right _decomp_incl_proof verify_inclusion verify_consistency"
TESTS[merkle]="tests/unit/test_merkle_vectors.py tests/unit/test_merkle_properties.py tests/unit/test_offline_verify.py"
MODULE[note]=audit/note.py;          TESTS[note]="tests/unit/test_note_vectors.py tests/unit/test_checkpoint.py tests/unit/test_keys.py"
MODULE[checkpoint]=audit/checkpoint.py; TESTS[checkpoint]="tests/unit/test_checkpoint.py tests/unit/test_note_vectors.py tests/unit/test_offline_verify.py"
MODULE[offline]=audit/offline.py;    TESTS[offline]="tests/unit/test_offline_verify.py"
MODULE[verify]=jejak/transparency.py
FUNCS[verify]="verify _checked_entries _verify_chain _verify_tree _signed _verify_checkpoints _levels_from_leaf_hashes _LevelsReader"
TESTS[verify]="tests/integration/test_tamper.py tests/integration/test_tamper_checkpoints.py -k sqlite"
MODULE[engine]=projections/engine.py; TESTS[engine]="tests/unit/test_engine_rules.py tests/unit/test_engine_balances.py tests/unit/test_engine_scopes.py tests/unit/test_engine_order_independence.py"
MODULE[receipts]=api/routers/receipts.py; TESTS[receipts]="tests/e2e/test_api_figures.py -k sqlite"
MODULE[aggregates]=api/analytics.py;  TESTS[aggregates]="tests/e2e/test_api_figures.py -k sqlite"

# A private copy whose jejak/ holds the whole package (jejak.audit = audit/, …),
# first on sys.path (cwd and PYTHONPATH), so the copy, not the editable install, is imported.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/jejak-mutation.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 143' TERM INT
(cd "$REPO" && tar --exclude=./.venv --exclude=./.git --exclude=./mutation-report --exclude='*.db' -cf - .) | (cd "$WORK" && tar -xf -)
for sub in domain store projections audit api feeds; do cp -r "$WORK/$sub" "$WORK/jejak/$sub"; done
export PYTHONPATH="$WORK"
cd "$WORK"
[ "$("$VENV/bin/python" -c 'import jejak.audit.merkle as m; print(m.__file__)')" = "$WORK/jejak/audit/merkle.py" ]

: > "$OUT/summary.txt"
for target in "${@:-merkle note checkpoint verify}"; do
  for t in $target; do
    module="${MODULE[$t]:?unknown target $t}"
    path="$module"
    [ "${module%%/*}" = jejak ] || path="jejak/$module"
    cfg="$WORK/$t.toml" session="$WORK/$t.sqlite"
    {
      echo '[cosmic-ray]'
      echo "module-path = \"$path\""
      echo "timeout = $TIMEOUT"
      echo 'excluded-modules = []'
      echo "test-command = \"$VENV/bin/python -m pytest -x -q -p no:randomly -p no:cacheprovider ${TESTS[$t]}\""
      echo '[cosmic-ray.distributor]'
      echo 'name = "local"'
      # One or two replacements per operator instead of every one (11 per binary
      # operator): enough to show an untested operator, a fifth of the run time.
      echo '[cosmic-ray.filters.operators-filter]'
      echo "exclude-operators = ['core/ReplaceBinaryOperator_(?!Add_Sub|Sub_Add|Mul_Add|Div_Mul|FloorDiv_Mul|Mod_FloorDiv|Pow_Mul|LShift_RShift|RShift_LShift|BitAnd_BitOr|BitOr_BitAnd|BitXor_BitOr)', 'core/ReplaceComparisonOperator_(?!Eq_NotEq|NotEq_Eq|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In)']"
      if [ -n "${FUNCS[$t]:-}" ]; then
        echo '[cosmic-ray.filters.line-filter]'
        "$VENV/bin/python" - "$WORK/$path" "$path" ${FUNCS[$t]} <<'PY'
import ast, sys
file, key, *names = sys.argv[1:]
spans = []
for node in ast.walk(ast.parse(open(file).read())):
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
        spans.append(f'"{node.lineno}-{node.end_lineno}"')
print(f'lines = {{ "{key}" = [{", ".join(spans)}] }}')
PY
      fi
    } > "$cfg"
    "$VENV/bin/cosmic-ray" init "$cfg" "$session"
    "$VENV/bin/cr-filter-operators" "$session" "$cfg"
    # Type annotations are never evaluated (`from __future__ import annotations`):
    # a mutant inside one is equivalent, so it is skipped, not counted as a survivor.
    "$VENV/bin/python" - "$session" "$path" <<'PY'
import ast, sys
from cosmic_ray.work_db import use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult
session, path = sys.argv[1:]
tree = ast.parse(open(path).read())
if any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
       for n in tree.body):
    spans = []
    for node in ast.walk(tree):
        notes = [getattr(node, "returns", None), getattr(node, "annotation", None)]
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in notes if a is not None]
    with use_db(session) as db:
        skip = [item.job_id for item in db.pending_work_items
                if all(any(a <= tuple(m.start_pos) and tuple(m.end_pos) <= b for a, b in spans) for m in item.mutations)]
        if skip:
            db.set_multiple_results(skip, WorkResult(output="in a type annotation", worker_outcome=WorkerOutcome.SKIPPED))
PY
    [ -z "${FUNCS[$t]:-}" ] || "$VENV/bin/cr-filter-lines" --config "$cfg" "$session"
    "$VENV/bin/cosmic-ray" baseline "$cfg"
    "$VENV/bin/cosmic-ray" exec "$cfg" "$session"
    "$VENV/bin/cr-report" --show-diff --surviving-only "$session" > "$OUT/$t.txt"
    "$VENV/bin/python" - "$session" "$t" "$module" >> "$OUT/summary.txt" <<'PY'
import sqlite3, sys
session, target, module = sys.argv[1:]
rows = dict(sqlite3.connect(session).execute(
    "SELECT COALESCE(r.test_outcome, r.worker_outcome), COUNT(*) FROM work_results r GROUP BY 1").fetchall())
killed, survived = rows.get("KILLED", 0), rows.get("SURVIVED", 0)
tested = killed + survived
score = f"{100 * killed / tested:.1f}%" if tested else "n/a"
print(f"{target:10} {module:26} score {score:>6}  killed {killed}  survived {survived}  "
      f"incompetent {rows.get('INCOMPETENT', 0)}  skipped {rows.get('SKIPPED', 0)}")
PY
  done
done

cat "$OUT/summary.txt"
