"""Reconciliation of one channel's orders against its settlements and pickups.

Per channel and period: orders matched (credited for exactly the ordered
amount), failed, without any settlement (bucketed by age), settlements that
reference no order, amount mismatches, and credited-but-uncollected funds.
Works on the fact read model (tokens only: no personal data in a report).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any, Iterable

from jejak.projections.engine import default_as_of

AGE_BUCKETS = ((0, 30, "0-30"), (31, 60, "31-60"), (61, 90, "61-90"), (91, 10**9, ">90"))


def _age_bucket(days: int) -> str:
    for low, high, label in AGE_BUCKETS:
        if low <= days <= high:
            return label
    return AGE_BUCKETS[0][2]


def reconcile(facts: Iterable[dict[str, Any]], channel: str, period: str | None = None,
              as_of: date | None = None) -> list[dict[str, Any]]:
    facts = list(facts)
    as_of = as_of or default_as_of(facts) or date.today()
    orders = {f["id"]: f for f in facts if f["type"] == "disbursement.ordered"}
    settlements: dict[str, list[dict]] = {}
    collected: dict[str, int] = {}
    ghosts: list[dict] = []
    for f in facts:
        t = f["type"]
        if t == "disbursement.settled":
            if f["disbursement"] in orders:
                settlements.setdefault(f["disbursement"], []).append(f)
            elif f["channel"] == channel:
                ghosts.append(f)
        elif t in ("pickup.recorded", "funds.returned"):
            collected[f["disbursement"]] = collected.get(f["disbursement"], 0) + f["amount"]

    reports: dict[str, dict[str, Any]] = {}

    def report_for(per: str) -> dict[str, Any]:
        if per not in reports:
            reports[per] = {
                "channel": channel, "period": per, "as_of": as_of.isoformat(),
                "orders": 0, "ordered_amount": 0, "matched": 0, "failed": 0,
                "unsettled": {label: 0 for *_, label in AGE_BUCKETS}, "unsettled_orders": [],
                "mismatches": [], "uncollected": [], "settlements_without_order": [],
                "credited_amount": 0, "collected_amount": 0,
            }
        return reports[per]

    for oid, o in orders.items():
        if o["channel"] != channel or (period and o["period"] != period):
            continue
        r = report_for(o["period"])
        r["orders"] += 1
        r["ordered_amount"] += o["amount"]
        sts = settlements.get(oid, [])
        credited = sum(s["amount"] for s in sts if s["status"] == "credited")
        r["credited_amount"] += credited
        r["collected_amount"] += collected.get(oid, 0)
        if not sts:
            age = (as_of - date.fromisoformat(o["at"][:10])).days
            r["unsettled"][_age_bucket(max(age, 0))] += 1
            r["unsettled_orders"].append({"order": oid, "age_days": age})
        elif credited == 0:
            r["failed"] += 1
        elif credited == o["amount"]:
            r["matched"] += 1
        if credited and credited != o["amount"]:
            r["mismatches"].append({"order": oid, "ordered": o["amount"], "credited": credited})
        if credited > collected.get(oid, 0):
            r["uncollected"].append({"order": oid, "credited": credited, "collected": collected.get(oid, 0)})
    for g in ghosts:
        r = report_for(period or "unknown")
        r["settlements_without_order"].append({"settlement": g["id"], "disbursement": g["disbursement"], "amount": g["amount"]})
    return [reports[k] for k in sorted(reports)]


CSV_COLUMNS = (
    "channel", "period", "as_of", "orders", "ordered_amount", "matched", "failed",
    "unsettled_0_30", "unsettled_31_60", "unsettled_61_90", "unsettled_over_90",
    "mismatches", "uncollected", "settlements_without_order", "credited_amount", "collected_amount",
)


def to_csv(reports: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in reports:
        u = r["unsettled"]
        writer.writerow((
            r["channel"], r["period"], r["as_of"], r["orders"], r["ordered_amount"], r["matched"], r["failed"],
            u["0-30"], u["31-60"], u["61-90"], u[">90"], len(r["mismatches"]), len(r["uncollected"]),
            len(r["settlements_without_order"]), r["credited_amount"], r["collected_amount"],
        ))
    return out.getvalue()
