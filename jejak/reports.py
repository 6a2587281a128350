"""Balances and anomalies for operators: read models + rule engine, revealed.

Read models and the rule engine work on tokens; an operator with the keys sees
the clear identifiers, in the exact SPEC §3/§4 shapes. Public outputs use the
`public=True` variants, which never reveal (see `api/public`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Callable

from jejak.ledger import Ledger
from jejak.projections.engine import Thresholds, evaluate_anomalies
from jejak.projections.readmodels import Balances, load_fact_rows
from jejak.projections.runner import Projector

TOKEN_RE = re.compile(r"tk1_[a-z2-7]{32}")


class Reports:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.projector = Projector(ledger.store)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        return self.projector.catch_up(progress)

    @property
    def thresholds(self) -> Thresholds:
        s = self.ledger.settings
        return Thresholds(companion_families=s.companion_families, unclaimed_days=s.unclaimed_days)

    def reveal_text(self, text: str) -> str:
        return TOKEN_RE.sub(lambda m: self.ledger.reveal_value(m.group(0)), text)

    # ------------------------------------------------------------------ balances
    def balances(self, kk: str | None = None, *, reveal: bool = True) -> list[dict[str, Any]]:
        self.catch_up()
        token = self.ledger.tokenizer.token("kk", kk) if kk else None
        rows = Balances.query(self.ledger.store, token)
        if reveal:
            if kk is None:
                self.ledger.preload_reveals()
            for row in rows:
                row["kk"] = self.ledger.reveal_value(row["kk"])
        rows.sort(key=lambda r: (r["kk"], r["program"]))
        return rows

    # ----------------------------------------------------------------- anomalies
    def anomalies(
        self,
        as_of: date | None = None,
        *,
        rule: str | None = None,
        kk: str | None = None,
        nik: str | None = None,
        reveal: bool = True,
    ) -> list[dict[str, Any]]:
        self.catch_up()
        facts = load_fact_rows(self.ledger.store)
        found = [a.to_dict() for a in evaluate_anomalies(facts, as_of, self.thresholds)]
        if rule:
            found = [a for a in found if a["rule"] == rule]
        if kk or nik:
            wanted = set()
            if kk:
                wanted.add(self.ledger.tokenizer.token("kk", kk))
            if nik:
                wanted.add(self.ledger.tokenizer.token("nik", nik))
            by_id = {f["id"]: f for f in facts}
            found = [a for a in found if wanted & _tokens_of(a, by_id)]
        if reveal:
            self.ledger.preload_reveals()
            for a in found:
                a["primary"] = self.reveal_text(a["primary"])
                a["subject"] = self.reveal_text(a["subject"])
                a["detail"] = self.reveal_text(a["detail"])
        return found


def _tokens_of(anomaly: dict[str, Any], facts_by_id: dict[str, dict[str, Any]]) -> set[str]:
    """Every family or person token an anomaly touches (its text and its facts)."""
    text = " ".join((anomaly["primary"], anomaly["subject"], anomaly["detail"]))
    tokens = set(TOKEN_RE.findall(text))
    for fact_id in anomaly["facts"]:
        fact = facts_by_id.get(fact_id)
        if fact:
            tokens.update(v for k in ("kk", "nik") if isinstance(v := fact.get(k), str))
    return tokens
