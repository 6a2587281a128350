from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query

from jejak.api.common import PUBLIC_ERRORS, json_bytes_response
from jejak.api.deps import PUBLIC_LAG_S, ApiState, get_state
from jejak.api.errors import ApiError
from jejak.api.schemas import ConsistencyProof, InclusionProof
from jejak.transparency import ProofRequestError

router = APIRouter(prefix="/public/v1/proofs", tags=["public: transparency"])

Size = Annotated[Optional[int], Query(ge=1, le=2**63 - 1, description="tree size (default: the latest checkpoint's)")]


def _default_size(state: ApiState, size: int | None, index: int = 0) -> int | None:
    """`size`, else the latest checkpoint's when it covers `index`, else None (the log size)."""
    if size is not None:
        return size
    cp = state.latest_checkpoint(max_age=PUBLIC_LAG_S)
    return cp.size if cp is not None and index < cp.size else None


@router.get("/inclusion", response_model=InclusionProof, responses=PUBLIC_ERRORS)
def inclusion(
    state: Annotated[ApiState, Depends(get_state)],
    index: Annotated[int, Query(ge=0, le=2**63 - 1, description="0-based log index")],
    size: Annotated[Optional[int], Query(ge=1, le=2**63 - 1, description=(
        "tree size (default: the latest checkpoint's when it covers the index, else the log size)"))] = None,
) -> InclusionProof:
    """RFC 9162 inclusion proof of one log entry in the tree of `size` entries (404 beyond the log)."""
    try:
        return json_bytes_response(state.transparency.prove(index, _default_size(state, size, index)))  # type: ignore[return-value]
    except ProofRequestError as exc:
        raise ApiError(404, str(exc), "no_such_proof") from None


@router.get("/consistency", response_model=ConsistencyProof, responses=PUBLIC_ERRORS)
def consistency(
    state: Annotated[ApiState, Depends(get_state)],
    size1: Annotated[int, Query(ge=1, le=2**63 - 1, description="older tree size")],
    size2: Size = None,
) -> ConsistencyProof:
    """RFC 9162 consistency proof: the tree of `size2` extends the tree of `size1`."""
    try:
        return json_bytes_response(state.transparency.consistency(size1, _default_size(state, size2)))  # type: ignore[return-value]
    except ProofRequestError as exc:
        raise ApiError(404, str(exc), "no_such_proof") from None
