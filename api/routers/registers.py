"""A person's register listings (SPEC v2 §5), for inspectors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from jejak.api.common import KK_PATTERN, V1_ERRORS, Reason
from jejak.api.complaints import register_listings
from jejak.api.deps import INSPECTOR, Fresh, audit_access, fresh, require
from jejak.api.schemas import RegisterListing, RegistersOut
from jejak.api.tokens import Principal

router = APIRouter(prefix="/v1/people", tags=["inspector: registers"])


@router.get("/{nik}/registers", response_model=RegistersOut, responses=V1_ERRORS)
def registers(
    request: Request,
    nik: Annotated[str, Path(pattern=KK_PATTERN, description="NIK, 16 digits")],
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*INSPECTOR))],
) -> RegistersOut:
    """Every register listing of the person (`asn.registered` counts as `asn`), whether in force on the as-of date."""
    state = f.state
    token = state.ledger.tokenizer.token("nik", nik)
    audit_access(request, state, who, token, reason)
    rows, as_of = register_listings(state, token)
    items = [RegisterListing(**{**r, "nik": nik}) for r in rows]
    return RegistersOut(as_of=as_of.isoformat() if as_of else None, items=items)
