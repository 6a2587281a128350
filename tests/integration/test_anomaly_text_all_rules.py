"""Every rule's findings read in Indonesian (issue 17, item 7), on a real store."""

from __future__ import annotations

import re
from pathlib import Path

from jejak.anomaly_text import detail_in
from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.projections.engine import RULES
from jejak.reports import Reports
from jejak.settings import Settings


def test_every_finding_of_every_rule_reads_in_indonesian(tmp_path: Path) -> None:
    """The generator plants every rule; each detail has an Indonesian form with the same values."""
    facts = tmp_path / "f.jsonl"
    write_files(families=150, seed=3, out_path=str(facts), plant=True)
    with Ledger.open(Settings(store=str(tmp_path / "s.db"), keys_dir=tmp_path / "keys")) as ledger:
        with facts.open("rb") as lines:
            ledger.ingest_lines(lines)
        found = Reports(ledger).anomalies()
    assert {a["rule"] for a in found} == set(RULES)
    for anomaly in found:
        english = anomaly["detail"]
        indonesian = detail_in(english, "id")
        assert indonesian != english, english
        assert sorted(re.findall(r"[0-9]+", indonesian)) == sorted(re.findall(r"[0-9]+", english)), (english, indonesian)
        assert detail_in(english, "en") == english
