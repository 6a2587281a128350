from __future__ import annotations

from typing import Annotated, Callable, Literal, Optional

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from jejak.api import analytics
from jejak.api.common import (
    CSV_OK, PERIOD_PATTERN, PROGRAMS, PUBLIC_ERRORS, REGION_PATTERN, Cursor, Format, Limit,
    csv_response, flatten, page_by_offset, wants_csv,
)
from jejak.api.deps import PUBLIC_LAG_S, Fresh, public_fresh
from jejak.api.schemas import AggregateCell, AggregatesOut, Amounts, ProgramTotals, SummaryOut

router = APIRouter(prefix="/public/v1", tags=["public: aggregates"])

MIN = analytics.MIN_FAMILIES
COLUMNS = ["level", "region", "program", "period", "suppressed", "families", "orders", "amounts_ordered",
           "amounts_credited", "amounts_collected", "amounts_returned", "anomalies"]


def _amounts(cell: analytics.Cell) -> Amounts:
    return Amounts(ordered=cell.ordered, credited=cell.credited, collected=cell.collected, returned=cell.returned)


@router.get("/aggregates", response_model=AggregatesOut, responses={**PUBLIC_ERRORS, **CSV_OK})
async def aggregates(
    request: Request,
    f: Annotated[Fresh, Depends(public_fresh)],
    level: Annotated[Literal["kota", "kecamatan", "desa"], Query(description="kota = 4 digits, kecamatan = 6, desa = 10")] = "kecamatan",
    program: Optional[PROGRAMS] = None,
    period: Annotated[Optional[str], Query(pattern=PERIOD_PATTERN, max_length=15)] = None,
    region: Annotated[Optional[str], Query(pattern=REGION_PATTERN, description="only cells within this region code prefix")] = None,
    limit: Limit = 1000,
    cursor: Cursor = None,
    format: Format = None,
) -> AggregatesOut:
    """Families and amounts per (region, program, period). Cells of fewer than 5 families are suppressed, and
    enough others with them that no suppressed cell can be worked out from published totals."""
    if wants_csv(request, format):
        def render_csv() -> Response:
            page, nxt = _cells_page(f, level, program, period, region, limit, cursor)
            return csv_response((flatten(i.model_dump()) for i in page), COLUMNS, nxt, "aggregates")

        return await run_in_threadpool(render_csv)  # type: ignore[return-value]

    def render() -> bytes:
        page, nxt = _cells_page(f, level, program, period, region, limit, cursor)
        return AggregatesOut(level=level, min_families=MIN, items=page, next_cursor=nxt).model_dump_json().encode()

    return await cached_public(f, ("aggregates", level, program, period, region, limit, cursor), render)  # type: ignore[return-value]


async def cached_public(f: Fresh, key: tuple, render: Callable[[], bytes]) -> Response:
    """The same answer for everyone until a fact is added: serve the cached bytes,
    on the event loop when they are cached (no thread hop), else computed in a thread."""
    body = f.state.cached_response_hit(key, f.version)
    if body is None:
        body = await run_in_threadpool(f.state.cached_response, key, f.version, render)
    return Response(body, media_type="application/json")


def within_region(code: Optional[str], region: Optional[str]) -> bool:
    """Whether a cell of region `code` is asked for by the filter `region` (inside it, or containing it)."""
    return region is None or code is not None and (code.startswith(region) or region.startswith(code))


def _cells_page(f: Fresh, level: str, program: Optional[str], period: Optional[str], region: Optional[str],
                limit: int, cursor: Optional[str]) -> tuple[list[AggregateCell], Optional[str]]:
    cells = analytics.cells(f.state, f.version, level)
    hidden = analytics.hidden_cells(f.state, f.version)[level]
    names = f.state.region_names
    keys = sorted(cells, key=lambda k: (k[0] or "~", k[1], analytics.period_key(k[2])))
    items = []
    for key in keys:
        reg, prog, per = key
        if program and prog != program or period and per != period:
            continue
        if not within_region(reg, region):
            continue
        cell = cells[key]
        name = names.name(reg)
        if key in hidden:
            items.append(AggregateCell(level=level, region=reg, region_name=name, program=prog, period=per,
                                       suppressed=True, suppressed_because=analytics.suppressed_because(cell),
                                       families=None, orders=None, amounts=None, anomalies=None))
        else:
            items.append(AggregateCell(level=level, region=reg, region_name=name, program=prog, period=per,
                                       suppressed=False, families=len(cell.families), orders=cell.orders,
                                       amounts=_amounts(cell), anomalies=dict(sorted(cell.anomalies.items()))))
    return page_by_offset(items, cursor, limit)


@router.get("/summary", response_model=SummaryOut, responses=PUBLIC_ERRORS)
def summary(f: Annotated[Fresh, Depends(public_fresh)]) -> SummaryOut:
    """Totals per program, the periods and regions with data, anomaly counts by rule."""
    programs = []
    totals = analytics.program_totals(f.state, f.version)
    left_out = analytics.hidden_kota_cells(f.state, f.version)
    for program in sorted(set(totals) | set(left_out)):
        cell = totals.get(program) or analytics.Cell()
        small = len(cell.families) < MIN
        programs.append(ProgramTotals(
            program=program, suppressed=small, hidden_cells=left_out.get(program, 0),
            families=None if small else len(cell.families),
            orders=None if small else cell.orders, amounts=None if small else _amounts(cell),
        ))
    regions = analytics.regions_with_families(f.state, f.version)
    cp = f.state.latest_checkpoint(max_age=PUBLIC_LAG_S)
    return SummaryOut(
        log_size=f.size, checkpoint_size=None if cp is None else cp.size, min_families=MIN, programs=programs,
        periods=analytics.periods(f.state, f.version), regions=regions,
        region_names={r: n for r in regions if (n := f.state.region_names.name(r)) is not None},
        anomalies=analytics.anomaly_counts(f.state, f.version),
    )
