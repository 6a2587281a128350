"""Complaints (SPEC v2 §6) and register listings (§5) as the inspector API shows them.

Read from the fact read model (`p_facts`, tokens), then revealed. A complaint's
status and outcome follow SPEC v2 §6: its latest resolution in ledger order
closes it, whatever the outcome and whenever it is dated; overdue is judged at
the log's default as-of date (the latest fact's date, `p_anom_meta`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jejak.api.deps import ApiState
from jejak.domain.facts import REGISTERS
from jejak.projections.readmodels import load_fact_rows

COMPLAINT = "complaint.filed"
RESOLUTION = "complaint.resolved"
OPTIONAL = ("kk", "nik", "disbursement", "companion", "text")


def default_as_of(state: ApiState) -> dt.date | None:
    row = state.store.query_one("SELECT day FROM p_anom_meta WHERE id = 1")
    return None if row is None else dt.date.fromisoformat(row["day"])


def complaint_rows(state: ApiState, *, complaint_id: str | None = None,
                   payment_channel: str | None = None) -> tuple[list[dict[str, Any]], dt.date | None]:
    """Every complaint (or the one of that id) in ledger order, with status, outcome and
    overdue; personal fields still tokens. Also the as-of date.

    With `payment_channel` (a reconciler's), only the complaints whose `disbursement`
    names an order of that channel."""
    where, params = ("type = ? OR type = ?", (COMPLAINT, RESOLUTION))
    if complaint_id is not None:
        where = "(type = ? AND fact_id = ?) OR (type = ? AND idx IN (SELECT idx FROM p_anom_compl WHERE complaint = ?))"
        params = (COMPLAINT, complaint_id, RESOLUTION, complaint_id)
    facts = load_fact_rows(state.store, f"({where})", params)
    as_of = default_as_of(state)
    limit = state.reports.thresholds.complaint_days
    resolutions: dict[str, list[dict]] = {}
    for f in facts:
        if f["type"] == RESOLUTION:
            resolutions.setdefault(f["complaint"], []).append(f)
    channels = None if payment_channel is None else _order_channels(state)
    rows = []
    for f in facts:
        if f["type"] != COMPLAINT:
            continue
        if channels is not None and channels.get(f.get("disbursement")) != payment_channel:
            continue
        mine = resolutions.get(f["id"], [])
        day = f["at"][:10]
        days = None if mine or as_of is None else (as_of - dt.date.fromisoformat(day)).days
        rows.append({
            "complaint_id": f["id"], "at": f["at"], "channel": f["channel"], "category": f["category"],
            "region": f["region"], **{name: f.get(name) for name in OPTIONAL},
            "status": "closed" if mine else "open", "outcome": mine[-1]["outcome"] if mine else None,
            "resolutions": [r["id"] for r in mine], "days_open": days,
            "overdue": days is not None and days > limit,
        })
    return rows, as_of


def _order_channels(state: ApiState) -> dict[str, str]:
    """The payment channel of every order a complaint names (by the first recording of the id)."""
    orders = load_fact_rows(state.store, "type = ? AND fact_id IN (SELECT ref FROM p_facts WHERE type = ?)",
                            ("disbursement.ordered", COMPLAINT))
    out: dict[str, str] = {}
    for order in orders:
        out.setdefault(order["id"], order["channel"])
    return out


def reveal_rows(state: ApiState, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ledger = state.ledger
    ledger.reveal_many(row[name] for row in rows for name in ("kk", "nik", "text") if row.get(name))
    return [{**row, **{name: ledger.reveal_value(row[name]) for name in ("kk", "nik", "text")}} for row in rows]


def register_listings(state: ApiState, nik_token: str) -> tuple[list[dict[str, Any]], dt.date | None]:
    """A person's register listings (`register.listed`, and `asn.registered` as `asn`), in ledger order."""
    facts = load_fact_rows(state.store, "nik = ? AND (type = ? OR type = ?)",
                           (nik_token, "register.listed", "asn.registered"))
    as_of = default_as_of(state)
    day = as_of.isoformat() if as_of else None
    out = []
    for f in facts:
        register = f.get("register", "asn")
        until = f.get("until")
        out.append({
            "fact_id": f["id"], "type": f["type"], "register": register, "kind": REGISTERS[register],
            "nik": f["nik"], "source": f["source"], "at": f["at"], "from": f["from"], "until": until,
            "in_force_on": None if day is None else f["from"] <= day and (until is None or day < until),
        })
    return out, as_of
