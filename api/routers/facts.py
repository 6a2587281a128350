from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from jejak.api.common import FACT_ID_PATTERN, V1_ERRORS, Reason, decode, entries_at, json_bytes_response
from jejak.api.deps import ANY_ROLE, INSPECTOR, Fresh, audit_access, fresh, require
from jejak.api.errors import ApiError
from jejak.api.schemas import FactEntry
from jejak.api.tokens import Principal
from jejak.api.trails import entry_dicts

router = APIRouter(prefix="/v1/facts", tags=["inspector: facts"])

PAYMENT_TYPES = frozenset({"disbursement.ordered", "disbursement.settled", "pickup.recorded", "funds.returned"})


@router.get("/{fact_id:path}", response_model=FactEntry, responses=V1_ERRORS)
def fact(
    request: Request,
    fact_id: Annotated[str, Path(pattern=FACT_ID_PATTERN, description="the fact's id")],
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*ANY_ROLE))],
) -> FactEntry:
    """One fact by id, revealed, with its chain hash and inclusion proof against the latest checkpoint."""
    idx = f.state.store.index_of(f.state.ledger.stored_id(fact_id))
    if idx is None:
        raise ApiError(404, "no fact with this id")
    found = entries_at(f.state.store, [idx])
    if idx not in found:
        raise ApiError(404, "no fact with this id")
    protected = decode(found[idx][2])
    if who.role not in INSPECTOR and protected.get("type") not in PAYMENT_TYPES:
        # eligibility, deaths, civil-servant records: the inspectors' (a bank reconciles payments)
        raise ApiError(403, "this role may read payment facts only (orders, settlements, pickups, returns)",
                       "forbidden")
    subjects = [protected.get(name) for name in ("kk", "nik")]
    audit_access(request, f.state, who, [s for s in subjects if isinstance(s, str)], reason)
    entry = entry_dicts(f.state, [(idx, *found[idx])], with_proof=True, checkpoint=f.checkpoint())[0]
    return json_bytes_response(entry)  # type: ignore[return-value]
