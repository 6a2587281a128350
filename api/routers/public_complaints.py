"""Public figures of complaints and register matches (no auth, GET only), suppressed like the aid aggregates."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Depends, Query

from jejak.api import analytics
from jejak.api.common import PROGRAMS, PUBLIC_ERRORS, REGION_PATTERN, Cursor, Limit, page_by_offset
from jejak.api.complaints import default_as_of
from jejak.api.deps import Fresh, public_fresh
from jejak.api.public_complaints import complaint_cells, hidden_complaint_cells, register_matches
from jejak.api.routers.aggregates import cached_public, within_region
from jejak.api.routers.complaints import Category
from jejak.api.schemas import (
    ComplaintAggregatesOut, ComplaintCellOut, RegisterMatchesOut, RegisterMatchRow,
)

router = APIRouter(prefix="/public/v1", tags=["public: aggregates"])

LevelQuery = Annotated[Literal["kota", "kecamatan", "desa"], Query(description="kota = 4 digits, kecamatan = 6, desa = 10")]
RegionQuery = Annotated[Optional[str], Query(pattern=REGION_PATTERN, description="only cells within this region code prefix")]
MONTH_PATTERN = r"^[0-9]{4}-[0-9]{2}$"


@router.get("/complaints/aggregates", response_model=ComplaintAggregatesOut, responses=PUBLIC_ERRORS)
async def complaint_aggregates(
    f: Annotated[Fresh, Depends(public_fresh)],
    level: LevelQuery = "kecamatan",
    category: Optional[Category] = None,
    month: Annotated[Optional[str], Query(pattern=MONTH_PATTERN, description="YYYY-MM")] = None,
    region: RegionQuery = None,
    limit: Limit = 1000,
    cursor: Cursor = None,
):
    """Complaints filed, resolved, open and overdue, and the median days to resolve, per (region, category,
    month). Cells of fewer than 5 complaints are suppressed, and enough others with them that no suppressed cell
    can be worked out from published totals."""
    def render() -> bytes:
        state = f.state
        cells = complaint_cells(state, f.version, level)
        hidden = hidden_complaint_cells(state, f.version)[level]
        items = []
        for key in sorted(cells):
            reg, cat, mon = key
            if category and cat != category or month and mon != month or not within_region(reg, region):
                continue
            cell = cells[key]
            shown = key not in hidden
            filed = len(cell.complaints)
            items.append(ComplaintCellOut(
                level=level, region=reg, region_name=state.region_names.name(reg), category=cat, month=mon,
                suppressed=not shown, suppressed_because=None if shown else analytics.suppressed_because(cell),
                filed=filed if shown else None, resolved=cell.resolved if shown else None,
                open=filed - cell.resolved if shown else None, overdue=cell.overdue if shown else None,
                median_days_to_resolve=cell.median_days_to_resolve if shown else None))
        page, nxt = page_by_offset(items, cursor, limit)
        as_of = default_as_of(state)
        return ComplaintAggregatesOut(
            level=level, min_complaints=analytics.MIN_FAMILIES, as_of=as_of.isoformat() if as_of else None,
            complaint_days=state.reports.thresholds.complaint_days, items=page, next_cursor=nxt,
        ).model_dump_json().encode()

    return await cached_public(f, ("complaint_aggregates", level, category, month, region, limit, cursor), render)


@router.get("/register-matches", response_model=RegisterMatchesOut, responses=PUBLIC_ERRORS)
async def register_match_counts(
    f: Annotated[Fresh, Depends(public_fresh)],
    level: LevelQuery = "kecamatan",
    program: Optional[PROGRAMS] = None,
    region: RegionQuery = None,
    limit: Limit = 1000,
    cursor: Cursor = None,
):
    """How many orders fired `asn_recipient`, `barred_recipient` and `flagged_recipient` per (region, program),
    summed over the published aid cells (periods) of /public/v1/aggregates; hidden ones are left out and counted.
    Never who."""
    def render() -> bytes:
        rows = register_matches(f.state, f.version, level)
        items = []
        for (reg, prog), row in sorted(rows.items(), key=lambda kv: (kv[0][0] or "~", kv[0][1])):
            if program and prog != program or not within_region(reg, region):
                continue
            shown = row.published_cells > 0
            items.append(RegisterMatchRow(
                level=level, region=reg, region_name=f.state.region_names.name(reg), program=prog,
                suppressed=not shown, published_cells=row.published_cells, hidden_cells=row.hidden_cells,
                matches=dict(sorted(row.matches.items())) if shown else None))
        page, nxt = page_by_offset(items, cursor, limit)
        return RegisterMatchesOut(level=level, min_families=analytics.MIN_FAMILIES, items=page,
                                  next_cursor=nxt).model_dump_json().encode()

    return await cached_public(f, ("register_matches", level, program, region, limit, cursor), render)
