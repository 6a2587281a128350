from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Depends, Query, Request

from jejak.api import analytics
from jejak.anomaly_text import detail_in, from_accept_language
from jejak.api.common import (
    CSV_OK, KK_PATTERN, PERIOD_PATTERN, PROGRAMS, REGION_PATTERN, V1_ERRORS, Cursor, Format, Limit, Reason,
    csv_response, json_bytes_response, page_by_offset, wants_csv,
)
from jejak.api.deps import ANY_ROLE, Fresh, audit_access, fresh, require
from jejak.api.errors import ApiError
from jejak.api.roles import may_see_rule
from jejak.api.schemas import AnomaliesOut, AnomalyRow
from jejak.api.tokens import Principal
from jejak.projections.engine import RULES

router = APIRouter(prefix="/v1/anomalies", tags=["inspector: anomalies"])

COLUMNS = ["rule", "primary", "subject", "facts", "detail", "program", "period", "region"]
Rule = Literal[RULES]  # type: ignore[valid-type]


@router.get("", response_model=AnomaliesOut, responses={**V1_ERRORS, **CSV_OK})
def anomalies(
    request: Request,
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*ANY_ROLE))],
    rule: Optional[Rule] = None,
    region: Annotated[Optional[str], Query(pattern=REGION_PATTERN, description="region code prefix: kota (4), kecamatan (6) or desa (10 digits)")] = None,
    program: Optional[PROGRAMS] = None,
    period: Annotated[Optional[str], Query(pattern=PERIOD_PATTERN, max_length=15, description="the order's period, exactly")] = None,
    kk: Annotated[Optional[str], Query(pattern=KK_PATTERN)] = None,
    nik: Annotated[Optional[str], Query(pattern=KK_PATTERN)] = None,
    as_of: Annotated[Optional[date], Query(description="evaluate as of this date (default: the latest fact's date)")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    format: Format = None,
):
    """SPEC §4 anomalies with filters; each with the program, period and region it concerns.
    A reconciler sees payment anomalies of its own channel only. `detail` is in
    Indonesian when `Accept-Language` prefers `id` to English (SPEC's text otherwise)."""
    if rule and not may_see_rule(who.role, rule):
        raise ApiError(403, f"role {who.role!r} may not see {rule} anomalies (they concern eligibility, "
                            "registers, deaths, companions or complaints)")
    state = f.state
    tokenizer = state.ledger.tokenizer
    wanted = set()
    if kk:
        wanted.add(tokenizer.token("kk", kk))
    if nik:
        wanted.add(tokenizer.token("nik", nik))
    view = analytics.fact_view(state, f.version)
    rows = []
    for a in analytics.raw_anomalies(state, f.version, as_of):
        if rule and a["rule"] != rule or not may_see_rule(who.role, a["rule"]):
            continue
        if who.channel is not None and analytics.anomaly_channel(a, view) != who.channel:
            continue
        ctx = analytics.context_of(a, view)
        if program and ctx["program"] != program or period and ctx["period"] != period:
            continue
        if region and not (ctx["region"] or "").startswith(region):
            continue
        if wanted and not wanted <= analytics.tokens_of(a, view):
            continue
        rows.append({**a, **ctx})
    page, nxt = page_by_offset(rows, cursor, limit)
    # the families and people asked for, and every one the page shows
    audit_access(request, state, who, sorted(wanted) + sorted({t for a in page for t in analytics.tokens_of(a, view)}),
                 reason)
    reports = state.reports
    if len(page) > 50:
        state.ledger.preload_reveals()
    lang = from_accept_language(request.headers.get("accept-language"))
    out = []
    for a in page:
        revealed = reports.reveal_anomaly(a)
        out.append({**revealed, "detail": detail_in(revealed["detail"], lang)})
    if wants_csv(request, format):
        response = csv_response(out, COLUMNS, nxt, "anomalies")
    else:
        response = json_bytes_response(AnomaliesOut(
            as_of=as_of.isoformat() if as_of else None, items=[AnomalyRow(**a) for a in out], next_cursor=nxt,
        ).model_dump(mode="json"))
    response.headers["Content-Language"] = lang
    response.headers["Vary"] = "Accept-Language"
    return response
