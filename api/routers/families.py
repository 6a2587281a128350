from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from jejak.api.common import CSV_OK, KK_PATTERN, V1_ERRORS, Cursor, Format, Limit, Reason, csv_response, decode, decode_cursor, encode_cursor, json_bytes_response, wants_csv
from jejak.api.deps import INSPECTOR, Fresh, audit_access, fresh, require, subjects_of
from jejak.api.schemas import TrailOut
from jejak.api.tokens import Principal
from jejak.api.trails import FAMILY, entry_dicts, trail_page

router = APIRouter(prefix="/v1/families", tags=["inspector: trails"])

TRAIL_COLUMNS = ["index", "fact_id", "type", "at", "chain", "fact", "proof"]


def trail_response(request, f: Fresh, who: Principal, reason: str, subject: str, kind, token: str, proof: bool,
                   limit: int, cursor, format, erased: dict | None = None):
    """One page of a trail (JSON bytes shaped as TrailOut, or CSV), recorded under the subject and
    every other family and person its facts name."""
    after = decode_cursor(cursor, "i") if cursor else -1
    rows, more = trail_page(f.state, kind, token, after, limit)
    audit_access(request, f.state, who, [token, *(t for row in rows for t in subjects_of(decode(row[3])))], reason)
    cp = f.checkpoint()
    items = entry_dicts(f.state, rows, with_proof=proof, checkpoint=cp)
    nxt = encode_cursor("i", rows[-1][0]) if more and rows else None
    if wants_csv(request, format):
        return csv_response(items, TRAIL_COLUMNS, nxt, f"{subject}-trail")
    return json_bytes_response({"subject": subject, "checkpoint_size": None if cp is None else cp.size,
                                "items": items, "next_cursor": nxt, "erased": erased})


@router.get("/{kk}/trail", response_model=TrailOut, responses={**V1_ERRORS, **CSV_OK})
def family_trail(
    request: Request,
    kk: Annotated[str, Path(pattern=KK_PATTERN, description="family card number, 16 digits")],
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*INSPECTOR))],
    proof: Annotated[bool, Query(description="add each fact's inclusion proof against the latest checkpoint")] = False,
    limit: Limit = 1000,
    cursor: Cursor = None,
    format: Format = None,
):
    """Every fact about a family (its own facts and those on its orders), in log order."""
    token = f.state.ledger.tokenizer.token("kk", kk)
    return trail_response(request, f, who, reason, "family", FAMILY, token, proof, limit, cursor, format)
