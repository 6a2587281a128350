"""Read models kept from the log, each with its own tracked position.

One class per read model. `apply` writes a batch of log entries' rows and the
model's position in the *same* transaction, so a crash never double-counts or
skips: on restart the model resumes from its committed position. Rebuild =
delete the rows, reset the position, replay from index 0.

All rows hold tokens, never clear personal data.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import orjson

from jejak.domain.facts import FACT_TYPES as SPEC_FACT_TYPES
from jejak.store.datastore import Store
from jejak.projections.base import LogRecord, ReadModel


class FactIndex(ReadModel):
    """Every fact in typed, indexed form: the input of the anomaly rules and of
    the audit trails (by family, by person, by referenced order)."""

    name = "facts"
    #: p_anomaly_cache holds rule-engine answers derived from p_facts (see
    #: jejak.reports); it goes when p_facts is rebuilt.
    tables = ("p_facts", "p_anomaly_cache")

    def create_statements(self, store: Store) -> list[str]:
        blob = store.recorder.BLOB
        big = store.recorder.BIGINT
        return [
            f"CREATE TABLE IF NOT EXISTS p_facts (idx {big} PRIMARY KEY, fact_id TEXT NOT NULL, type TEXT NOT NULL, "
            f"day TEXT NOT NULL, kk TEXT, nik TEXT, ref TEXT, program TEXT, region TEXT, body {blob} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_facts_kk ON p_facts (kk)",
            "CREATE INDEX IF NOT EXISTS p_facts_nik ON p_facts (nik)",
            "CREATE INDEX IF NOT EXISTS p_facts_ref ON p_facts (ref)",
            "CREATE INDEX IF NOT EXISTS p_facts_fact_id ON p_facts (fact_id)",
            f"CREATE TABLE IF NOT EXISTS p_anomaly_cache (key TEXT PRIMARY KEY, body {blob} NOT NULL)",
        ]

    def apply(self, store: Store, cursor: Any, records: Sequence[LogRecord]) -> None:
        rows = []
        for r in records:
            f = r.fact
            if f["type"] not in SPEC_FACT_TYPES:
                continue  # jejak's own facts (erasures) are not evidence about aid
            body = dict(f)
            body.update(r.derived)
            rows.append(
                (
                    r.index, f["id"], f["type"], f["at"][:10], f.get("kk"), f.get("nik"),
                    f.get("disbursement"), f.get("program"), f.get("region"), orjson.dumps(body),
                )
            )
        store.recorder.bulk_insert(
            cursor, "p_facts",
            ("idx", "fact_id", "type", "day", "kk", "nik", "ref", "program", "region", "body"), rows,
        )


class Balances(ReadModel):
    """Per order: who (kk, program) and how much ordered; per referenced order id:
    running sums of credited settlements, pickups and returns. Facts may arrive
    before their order; the join at read time attributes them once it exists."""

    name = "balances"
    tables = ("p_orders", "p_order_totals")

    def create_statements(self, store: Store) -> list[str]:
        big = store.recorder.BIGINT
        # A total sums any number of amounts, so it may pass 64 bits: kept exact,
        # as NUMERIC on PostgreSQL and as decimal text on SQLite (no wider integer there).
        total = "NUMERIC" if store.is_postgres else "TEXT"
        return [
            f"CREATE TABLE IF NOT EXISTS p_orders (order_id TEXT PRIMARY KEY, kk TEXT NOT NULL, "
            f"program TEXT NOT NULL, amount {big} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_orders_kk ON p_orders (kk, program)",
            f"CREATE TABLE IF NOT EXISTS p_order_totals (order_id TEXT PRIMARY KEY, credited {total} NOT NULL, "
            f"picked_up {total} NOT NULL, returned {total} NOT NULL)",
        ]

    def apply(self, store: Store, cursor: Any, records: Sequence[LogRecord]) -> None:
        orders = []
        totals: dict[str, list[int]] = {}
        for r in records:
            f = r.fact
            t = f["type"]
            if t == "disbursement.ordered":
                orders.append((f["id"], f["kk"], f["program"], f["amount"]))
                continue
            if t == "disbursement.settled":
                if f["status"] != "credited":
                    continue
                slot = 0
            elif t == "pickup.recorded":
                slot = 1
            elif t == "funds.returned":
                slot = 2
            else:
                continue
            sums = totals.setdefault(f["disbursement"], [0, 0, 0])
            sums[slot] += f["amount"]
        if orders:
            store.recorder.bulk_insert(cursor, "p_orders", ("order_id", "kk", "program", "amount"), orders)
        if totals:
            # added here, in Python integers, rather than in SQL, where a sum past 64 bits
            # fails (PostgreSQL bigint) or silently turns into a float (SQLite)
            for row in store.recorder.select_in(
                    cursor, "SELECT order_id, credited, picked_up, returned FROM p_order_totals", "order_id", list(totals)):
                sums = totals[row["order_id"]]
                sums[0] += int(row["credited"])
                sums[1] += int(row["picked_up"])
                sums[2] += int(row["returned"])
            bind = int if store.is_postgres else str
            cursor.executemany(
                store.sql(
                    "INSERT INTO p_order_totals (order_id, credited, picked_up, returned) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (order_id) DO UPDATE SET credited = excluded.credited, "
                    "picked_up = excluded.picked_up, returned = excluded.returned"
                ),
                [(ref, bind(c), bind(p), bind(r)) for ref, (c, p, r) in totals.items()],
            )

    @staticmethod
    def query(store: Store, kk_token: str | None = None) -> list[dict[str, Any]]:
        where = " WHERE o.kk = ?" if kk_token else ""
        rows = store.query(
            "SELECT o.kk AS kk, o.program AS program, o.amount AS amount, t.credited AS credited, "
            "t.picked_up AS picked_up, t.returned AS returned "
            f"FROM p_orders o LEFT JOIN p_order_totals t ON t.order_id = o.order_id{where}",
            (kk_token,) if kk_token else (),
        )
        # summed here in Python integers: exact past 64 bits (see `apply`)
        sums: dict[tuple[str, str], list[int]] = {}
        for r in rows:
            s = sums.setdefault((r["kk"], r["program"]), [0, 0, 0, 0])
            s[0] += int(r["amount"])
            if r["credited"] is not None:
                s[1] += int(r["credited"])
                s[2] += int(r["picked_up"])
                s[3] += int(r["returned"])
        out = []
        for (kk, program), (ordered, credited, picked, returned) in sums.items():
            out.append(
                {
                    "kk": kk, "program": program, "ordered": ordered, "credited": credited,
                    "picked_up": picked, "returned": returned, "outstanding": credited - picked - returned,
                }
            )
        return out


from jejak.projections.anomalies import Anomalies  # noqa: E402  (it builds on FactIndex's p_facts)

#: Applied in this order per batch: Anomalies reads p_facts, so FactIndex comes first.
READ_MODELS: tuple[ReadModel, ...] = (FactIndex(), Balances(), Anomalies())

__all__ = ["LogRecord", "ReadModel", "FactIndex", "Balances", "Anomalies", "READ_MODELS", "load_fact_rows"]


def load_fact_rows(store: Store, where: str = "", params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Facts for the rule engine: protected fact + derived attributes + seq."""
    out = []
    batch = 50000
    start = 0
    params = tuple(params)
    while True:
        rows = store.query(
            f"SELECT idx, body FROM p_facts WHERE idx >= ? {('AND ' + where) if where else ''} ORDER BY idx LIMIT {batch}",
            (start, *params),
        )
        for r in rows:
            body = orjson.loads(r["body"])
            body["seq"] = r["idx"]
            out.append(body)
        if len(rows) < batch:
            return out
        start = rows[-1]["idx"] + 1
