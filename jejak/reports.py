"""Balances and anomalies for operators: read models + rule engine, revealed.

Read models and the rule engine work on tokens; an operator with the keys sees
the clear identifiers, in the exact SPEC §3/§4 shapes. Public outputs use the
`public=True` variants, which never reveal (see `api/public`).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Callable

import orjson

from jejak.ledger import Ledger
from jejak.projections.engine import Thresholds, evaluate_anomalies
from jejak.projections.anomalies import MODEL_THRESHOLDS, Anomalies
from jejak.projections.readmodels import Balances, load_fact_rows
from jejak.projections.runner import Projector
from jejak.store.leaf import TOKEN_IN_TEXT

#: Bump when the rule engine's output changes, so cached answers are dropped.
ENGINE_VERSION = "2"


class Reports:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.projector = Projector(ledger.store)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        return self.projector.catch_up(progress)

    @property
    def thresholds(self) -> Thresholds:
        s = self.ledger.settings
        return Thresholds(companion_families=s.companion_families, unclaimed_days=s.unclaimed_days,
                          complaint_days=s.complaint_days, indicator_registers=s.indicator_registers,
                          companion_complaints=s.companion_complaints)

    def facts_version(self) -> int:
        """Log index of the last SPEC fact in the read model (-1 if none).

        jejak's own facts grow the log but not this, so computations over
        facts can be cached under it."""
        row = self.ledger.store.query_one("SELECT MAX(idx) AS last FROM p_facts")
        return -1 if row is None or row["last"] is None else int(row["last"])

    def _evaluate(self, as_of: date | None) -> list[dict[str, Any]]:
        """All anomalies (tokens, not revealed).

        The default list (no as-of, the model's companion, indicator and
        pungli thresholds; any unclaimed_days and complaint_days) comes from the incremental anomaly read model
        (`jejak.projections.anomalies`), after its dirty scopes are settled.
        Any other query evaluates every rule, which takes seconds over a
        million facts; its answer only changes when a SPEC fact is added, so
        it is kept in `p_anomaly_cache` under (engine version, last fact
        index, as-of, thresholds) until then.
        """
        store = self.ledger.store
        t = self.thresholds
        if as_of is None and Anomalies.serves(t):
            # The default list: the incrementally kept read model (exact; the
            # as-of date, unclaimed_days and complaint_days are applied when reading).
            self.projector.settle()
            return Anomalies.query(store, t.unclaimed_days, t.complaint_days)
        last = self.facts_version()
        key = (f"{ENGINE_VERSION}|{last}|{as_of}|{t.companion_families}|{t.unclaimed_days}|{t.complaint_days}|"
               f"{t.indicator_registers}|{t.companion_complaints}")
        row = store.query_one("SELECT body FROM p_anomaly_cache WHERE key = ?", (key,))
        if row is not None:
            return orjson.loads(row["body"])
        found = [a.to_dict() for a in evaluate_anomalies(load_fact_rows(store), as_of, t)]
        with store.transaction(commit=True) as cursor:
            store.execute(cursor, "DELETE FROM p_anomaly_cache WHERE key NOT LIKE ?", (f"{ENGINE_VERSION}|{last}|%",))
            store.execute(
                cursor,
                "INSERT INTO p_anomaly_cache (key, body) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, orjson.dumps(found)),
            )
        return found

    def reveal_text(self, text: str) -> str:
        return self.ledger.reveal_text(text)

    def reveal_anomaly(self, anomaly: dict[str, Any]) -> dict[str, Any]:
        """An anomaly with every token in it opened: `primary`, `subject`, `detail` and each fact id."""
        reveal = self.ledger.reveal_text
        return {**anomaly, "primary": reveal(anomaly["primary"]), "subject": reveal(anomaly["subject"]),
                "facts": [reveal(fact_id) for fact_id in anomaly["facts"]], "detail": reveal(anomaly["detail"])}

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
        found = self._evaluate(as_of)
        if rule:
            found = [a for a in found if a["rule"] == rule]
        if kk or nik:
            wanted = set()
            if kk:
                wanted.add(self.ledger.tokenizer.token("kk", kk))
            if nik:
                wanted.add(self.ledger.tokenizer.token("nik", nik))
            marks = ", ".join("?" for _ in wanted)
            touching = {
                r["fact_id"]
                for r in self.ledger.store.query(
                    f"SELECT fact_id FROM p_facts WHERE kk IN ({marks}) OR nik IN ({marks})", (*wanted, *wanted)
                )
            }
            found = [a for a in found if wanted & _tokens_in_text(a) or touching.intersection(a["facts"])]
        if reveal:
            # Only the tokens these anomalies name, in one query (opening every
            # subject of a big store costs about a second).
            self.ledger.reveal_many({t for a in found for t in _tokens_in_text(a, with_facts=True)})
            found = [self.reveal_anomaly(a) for a in found]
        return found


def _tokens_in_text(anomaly: dict[str, Any], *, with_facts: bool = False) -> set[str]:
    texts = [anomaly["primary"], anomaly["subject"], anomaly["detail"], *(anomaly["facts"] if with_facts else ())]
    return set(TOKEN_IN_TEXT.findall(" ".join(texts)))
