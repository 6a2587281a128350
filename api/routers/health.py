from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from jejak.api.deps import ApiState, get_state
from jejak.api.errors import ApiError
from jejak.api.schemas import ErrorBody, Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": ErrorBody}})
def healthz(state: Annotated[ApiState, Depends(get_state)]) -> Health:
    """Liveness and readiness: the store answers, and no read model was found to differ from the log
    (`read_models`: ok, unchecked, off; 503 naming the table on a mismatch)."""
    try:
        size = state.store.log_size()
        cp = state.latest_checkpoint()
    except Exception as exc:  # noqa: BLE001 - any store failure means not ready
        raise ApiError(503, f"store unavailable: {type(exc).__name__}",
                       headers={"Retry-After": str(state.settings.api_retry_after)}) from None
    table = state.watch.mismatch
    if table is not None:
        raise ApiError(503, f"read model table {table} differs from the log; run `jejak verify --read-models`, "
                            "then `jejak rebuild`", "read_models_mismatch")
    return Health(status="ok", log_size=size, checkpoint_size=None if cp is None else cp.size,
                  read_models=state.watch.status)
