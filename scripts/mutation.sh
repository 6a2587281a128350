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
# diff, <target>.rate the survival rate; summary.txt one line per target.
# Environment: JEJAK_MUTATION_TIMEOUT (seconds per mutant, default 120).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
OUT="$(mkdir -p "${JEJAK_MUTATION_OUT:-$REPO/mutation-report}" && cd "${JEJAK_MUTATION_OUT:-$REPO/mutation-report}" && pwd)"
TIMEOUT="${JEJAK_MUTATION_TIMEOUT:-120}"
[ -x "$VENV/bin/cosmic-ray" ] || "$VENV/bin/python" -m pip install -q -e "$REPO[mutation]"

# target -> module file | functions to mutate (empty: all) | tests
declare -A MODULE FUNCS TESTS
MODULE[merkle]=audit/merkle.py;      TESTS[merkle]="tests/unit/test_merkle_vectors.py tests/unit/test_merkle_properties.py tests/unit/test_offline_verify.py"
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
(cd "$REPO" && tar --exclude=./.venv --exclude=./.git --exclude=./mutation-report --exclude='*.db' -cf - .) | (cd "$WORK" && tar -xf -)
for sub in domain store projections audit api feeds; do cp -r "$WORK/$sub" "$WORK/jejak/$sub"; done
export PYTHONPATH="$WORK"
cd "$WORK"
[ "$("$VENV/bin/python" -c 'import jejak.audit.merkle as m; print(m.__file__)')" = "$WORK/jejak/audit/merkle.py" ]

: > "$OUT/summary.txt.new"
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
    [ -z "${FUNCS[$t]:-}" ] || "$VENV/bin/cr-filter-lines" --config "$cfg" "$session"
    "$VENV/bin/cosmic-ray" baseline "$cfg"
    "$VENV/bin/cosmic-ray" exec "$cfg" "$session"
    "$VENV/bin/cr-report" --show-diff --surviving-only "$session" > "$OUT/$t.txt"
    "$VENV/bin/cr-rate" "$session" > "$OUT/$t.rate" || true
    echo "$t $module: $(tail -n 4 "$OUT/$t.txt" | tr '\n' ' ')" >> "$OUT/summary.txt.new"
  done
done
mv "$OUT/summary.txt.new" "$OUT/summary.txt"
cat "$OUT/summary.txt"
