"""The witness is its own small program: it loads none of the ledger's store,
projections, application or API, whatever entry point starts it."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("jejak.store", "jejak.projections", "jejak.ledger", "jejak.api", "jejak.transparency", "eventsourcing",
             "psycopg", "jejak.domain")


def test_witness_modules_load_nothing_of_the_ledger() -> None:
    code = (
        "import sys, jejak.witness.cli, jejak.witness.app, jejak.witness.protocol, jejak.witness.state\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
