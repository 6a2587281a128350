from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request

from jejak.api import analytics
from jejak.api.common import (
    CSV_OK, KK_PATTERN, PROGRAMS, V1_ERRORS, Cursor, Format, Limit, Reason, csv_response, page_by_offset, wants_csv,
)
from jejak.api.deps import ANY_ROLE, Fresh, audit_access, fresh, require
from jejak.api.schemas import BalanceRow, BalancesOut
from jejak.api.tokens import Principal
from jejak.projections.readmodels import Balances

router = APIRouter(prefix="/v1/balances", tags=["inspector: balances"])

COLUMNS = ["kk", "program", "ordered", "credited", "picked_up", "returned", "outstanding"]


@router.get("", response_model=BalancesOut, responses={**V1_ERRORS, **CSV_OK})
def balances(
    request: Request,
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*ANY_ROLE))],
    kk: Annotated[Optional[str], Query(pattern=KK_PATTERN, description="only this family card")] = None,
    program: Optional[PROGRAMS] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    format: Format = None,
):
    """Balances per (kk, program) as in SPEC §3, sorted by kk and program. A reconciler's count only the
    orders of its channel (and the settlements, pickups and returns on them)."""
    state = f.state
    ledger = state.ledger
    token = ledger.tokenizer.token("kk", kk) if kk else None
    if who.channel is None:
        rows = Balances.query(state.store, token)
    else:
        every = state.cached(("channel_balances", who.channel), f.version,
                            lambda: analytics.channel_balances(analytics.fact_view(state, f.version), who.channel))
        rows = [dict(r) for r in every if token is None or r["kk"] == token]
    rows = [r for r in rows if program is None or r["program"] == program]
    if token is None:
        ledger.preload_reveals()
    for r in rows:
        r["token"] = r["kk"]
        r["kk"] = ledger.reveal_value(r["kk"])
    rows.sort(key=lambda r: (r["kk"], r["program"]))
    page, nxt = page_by_offset(rows, cursor, limit)
    # every family the page shows (and the one asked for, shown or not)
    audit_access(request, state, who, [token, *(r.pop("token") for r in page)], reason)
    if wants_csv(request, format):
        return csv_response(page, COLUMNS, nxt, "balances")
    return BalancesOut(items=[BalanceRow(**r) for r in page], next_cursor=nxt)
