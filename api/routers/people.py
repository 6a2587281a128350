from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from jejak.api.common import CSV_OK, KK_PATTERN, V1_ERRORS, Cursor, Format, Limit, Reason
from jejak.api.deps import INSPECTOR, Fresh, fresh, require
from jejak.api.routers.families import trail_response
from jejak.api.schemas import TrailOut
from jejak.api.tokens import Principal
from jejak.api.trails import PERSON

router = APIRouter(prefix="/v1/people", tags=["inspector: trails"])


@router.get("/{nik}/trail", response_model=TrailOut, responses={**V1_ERRORS, **CSV_OK})
def person_trail(
    request: Request,
    nik: Annotated[str, Path(pattern=KK_PATTERN, description="NIK, 16 digits")],
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*INSPECTOR))],
    proof: Annotated[bool, Query(description="add each fact's inclusion proof against the latest checkpoint")] = False,
    limit: Limit = 1000,
    cursor: Cursor = None,
    format: Format = None,
):
    """Every fact naming a person (and the settlements and returns of orders to them), in log order."""
    token = f.state.ledger.tokenizer.token("nik", nik)
    erased = f.state.ledger.erasure_of(token)
    return trail_response(request, f, who, reason, "person", PERSON, token, proof, limit, cursor, format, erased)
