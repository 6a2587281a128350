from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from jejak.api.common import PUBLIC_ERRORS
from jejak.api.deps import ApiState, get_state
from jejak.api.errors import ApiError
from jejak.api.schemas import CheckpointOut, VerifierKeys
from jejak.audit.checkpoint import Checkpoint
from jejak.transparency import load_keyring

router = APIRouter(prefix="/public/v1", tags=["public: transparency"])


def _latest(state: ApiState):
    cp = state.latest_checkpoint()
    if cp is None:
        raise ApiError(404, "no checkpoint has been issued yet")
    return cp


@router.get("/checkpoint", response_model=CheckpointOut, responses=PUBLIC_ERRORS)
def checkpoint(state: Annotated[ApiState, Depends(get_state)]) -> CheckpointOut:
    """The latest signed checkpoint: the note verbatim and its parsed fields."""
    cp = _latest(state)
    parsed = Checkpoint.parse(cp.note.split("\n\n", 1)[0] + "\n")
    return CheckpointOut(
        origin=parsed.origin, size=cp.size, root_hex=cp.root.hex(),
        root_base64=base64.b64encode(cp.root).decode("ascii"), note=cp.note, key_id=cp.key_id,
        seq=cp.seq, created=cp.created,
    )


@router.get(
    "/checkpoint.txt", response_class=PlainTextResponse, responses={**PUBLIC_ERRORS, 200: {"content": {"text/plain": {}}}},
)
def checkpoint_text(state: Annotated[ApiState, Depends(get_state)]) -> PlainTextResponse:
    """The latest signed checkpoint note as text (C2SP tlog-checkpoint)."""
    return PlainTextResponse(_latest(state).note)


@router.get("/keys", response_model=VerifierKeys, responses=PUBLIC_ERRORS)
def keys(state: Annotated[ApiState, Depends(get_state)]) -> VerifierKeys:
    """Checkpoint verifier keys (C2SP signed-note verifier key form)."""
    try:
        ring = load_keyring(state.settings, create=False)
    except FileNotFoundError:
        return VerifierKeys(current=None, keys=[])
    try:
        current = ring.current_signer().verifier_key_text()
    except LookupError:
        current = None
    return VerifierKeys(current=current, keys=ring.verifier_key_texts())
