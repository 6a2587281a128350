from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from jejak.api.common import FACT_ID_PATTERN, V1_ERRORS, Reason, decode, entries_at, json_bytes_response
from jejak.api.deps import ANY_ROLE, Fresh, audit_access, fresh_log, require, subjects_of
from jejak.api.errors import ApiError
from jejak.api.schemas import FactEntry
from jejak.api.tokens import Principal
from jejak.api.roles import PAYMENT_TYPES, fact_channel
from jejak.api.trails import entry_dicts

router = APIRouter(prefix="/v1/facts", tags=["inspector: facts"])
NO_FACT = "no fact with this id"


@router.get("/{fact_id:path}", response_model=FactEntry, responses=V1_ERRORS)
def fact(
    request: Request,
    fact_id: Annotated[str, Path(pattern=FACT_ID_PATTERN, description="the fact's id")],
    reason: Reason,
    f: Annotated[Fresh, Depends(fresh_log)],
    who: Annotated[Principal, Depends(require(*ANY_ROLE))],
) -> FactEntry:
    """One fact by id, revealed, with its chain hash and inclusion proof against the latest checkpoint.
    A reconciler reads payment facts of its own channel only; any other id answers as an unknown one."""
    idx = f.state.store.index_of(f.state.ledger.stored_id(fact_id))
    found = {} if idx is None else entries_at(f.state.store, [idx])
    if idx not in found:
        raise ApiError(404, NO_FACT)
    protected = decode(found[idx][2])
    if who.channel is not None and not _payment_of(f, protected, who.channel):
        # the same answer as for an unknown id: a bank learns nothing of other channels or other kinds of fact
        raise ApiError(404, NO_FACT)
    audit_access(request, f.state, who, subjects_of(protected), reason)
    entry = entry_dicts(f.state, [(idx, *found[idx])], with_proof=True, checkpoint=f.checkpoint())[0]
    return json_bytes_response(entry)  # type: ignore[return-value]


def _payment_of(f: Fresh, protected: dict, channel: str) -> bool:
    """Whether a protected fact is a payment fact of `channel` (a pickup's or return's order read from the log)."""
    if protected.get("type") not in PAYMENT_TYPES:
        return False
    orders = {}
    ref = protected.get("disbursement")
    if isinstance(ref, str) and protected.get("type") != "disbursement.settled":
        idx = f.state.store.index_of(ref)
        order = decode(entries_at(f.state.store, [idx]).get(idx, ("", b"", None))[2]) if idx is not None else {}
        if order.get("type") == "disbursement.ordered":
            orders[ref] = order
    return fact_channel(protected, orders) == channel
