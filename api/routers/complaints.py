"""Complaints (SPEC v2 §6): a filtered list (JSON or CSV) and one complaint with
its resolutions, the payment it names and its family's trail.

A reconciler (a bank's or Pos's team, bound to one payment channel) sees only
the complaints whose `disbursement` names an order of its channel; any other
complaint is absent from its list and answers 404 like an unknown id. It never
gets the family trail (reconcilers never see trails)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Depends, Path, Query, Request

from jejak.api.common import (
    CSV_OK, FACT_ID_PATTERN, KK_PATTERN, REGION_PATTERN, V1_ERRORS, Cursor, Format, Limit, Reason, csv_response,
    decode, encode_cursor, entries_at, json_bytes_response, page_by_offset, wants_csv,
)
from jejak.api.complaints import complaint_rows, reveal_rows
from jejak.api.deps import ANY_ROLE, Fresh, audit_access, fresh, require
from jejak.api.errors import ApiError
from jejak.api.schemas import ComplaintOut, ComplaintRow, ComplaintsOut
from jejak.api.tokens import Principal
from jejak.api.trails import FAMILY, entry_dicts, trail_page
from jejak.domain.facts import COMPLAINT_CATEGORIES, COMPLAINT_CHANNELS

router = APIRouter(prefix="/v1/complaints", tags=["inspector: complaints"])

COLUMNS = list(ComplaintRow.model_fields)
Channel = Literal[tuple(sorted(COMPLAINT_CHANNELS))]  # type: ignore[valid-type]
Category = Literal[tuple(sorted(COMPLAINT_CATEGORIES))]  # type: ignore[valid-type]
TRAIL_PAGE = 200


@router.get("", response_model=ComplaintsOut, responses={**V1_ERRORS, **CSV_OK})
def complaints(
    request: Request,
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*ANY_ROLE))],
    channel: Optional[Channel] = None,
    category: Optional[Category] = None,
    region: Annotated[Optional[str], Query(pattern=REGION_PATTERN, description="region code prefix: kota (4), kecamatan (6) or desa (10 digits)")] = None,
    status: Optional[Literal["open", "closed"]] = None,
    overdue: Annotated[Optional[bool], Query(description="only overdue (true) or only not overdue (false) complaints")] = None,
    kk: Annotated[Optional[str], Query(pattern=KK_PATTERN)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    format: Format = None,
):
    """Complaints in ledger order with their status (open until a resolution names them) and whether they are overdue."""
    state = f.state
    token = state.ledger.tokenizer.token("kk", kk) if kk else None
    rows, as_of = complaint_rows(state, payment_channel=who.channel)
    rows = [r for r in rows
            if (channel is None or r["channel"] == channel) and (category is None or r["category"] == category)
            and (region is None or r["region"].startswith(region)) and (status is None or r["status"] == status)
            and (overdue is None or r["overdue"] == overdue) and (token is None or r["kk"] == token)]
    page, nxt = page_by_offset(rows, cursor, limit)
    audit_access(request, state, who, [token, *(r[n] for r in page for n in ("kk", "nik") if r[n])], reason)
    out = reveal_rows(state, page)
    if wants_csv(request, format):
        return csv_response(out, COLUMNS, nxt, "complaints")
    return ComplaintsOut(as_of=as_of.isoformat() if as_of else None, items=[ComplaintRow(**r) for r in out],
                         next_cursor=nxt)


@router.get("/{complaint_id:path}", response_model=ComplaintOut, responses=V1_ERRORS)
def complaint(
    request: Request,
    complaint_id: Annotated[str, Path(pattern=FACT_ID_PATTERN, description="the complaint's fact id")],
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*ANY_ROLE))],
):
    """One complaint, revealed: its resolutions, the order it names with every fact on that order, and the first
    page of its family's trail (the complaint's kk, else the order's)."""
    state = f.state
    store = state.store
    rows, _ = complaint_rows(state, complaint_id=complaint_id, payment_channel=who.channel)
    if not rows:
        raise ApiError(404, "no complaint with this id")
    row = rows[0]
    indices = {store.index_of(i) for i in (complaint_id, *row["resolutions"])}
    payment: list[int] = []
    family = row["kk"]
    if row["disbursement"]:
        payment = [r["idx"] for r in store.query(
            "SELECT idx FROM p_facts WHERE (fact_id = ? AND type = ?) OR (ref = ? AND type <> ?) ORDER BY idx",
            (row["disbursement"], "disbursement.ordered", row["disbursement"], "complaint.filed"))]
    found = entries_at(store, sorted(indices | set(payment)))
    if family is None and payment and payment[0] in found:
        order = decode(found[payment[0]][2])
        family = order.get("kk") if order.get("type") == "disbursement.ordered" else None
    audit_access(request, state, who, [family, row["nik"]], reason)
    cp = f.checkpoint()

    def entries(idxs):
        return entry_dicts(state, [(i, *found[i]) for i in idxs if i in found], with_proof=False, checkpoint=cp)

    with_trail = family and who.channel is None
    trail, more = trail_page(state, FAMILY, family, -1, TRAIL_PAGE) if with_trail else ([], False)

    own = store.index_of(complaint_id)
    return json_bytes_response({
        "complaint": reveal_rows(state, [row])[0],
        "entry": entries([own])[0],
        "resolutions": entries(sorted(i for i in indices if i != own)),
        "payment": entries(payment),
        "family": state.ledger.reveal_value(family) if family else None,
        "family_trail": entry_dicts(state, trail, with_proof=False, checkpoint=cp),
        "family_trail_next_cursor": encode_cursor("i", trail[-1][0]) if more and trail else None,
    })
