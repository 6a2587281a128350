#!/usr/bin/env bash
# The test suite: installs into .venv, then runs every test (unit, integration
# on real PostgreSQL and a real Kafka-protocol broker, e2e CLI/HTTP/browser).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e ".[test]"
exec .venv/bin/python -m pytest -q "$@"
