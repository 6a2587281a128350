"""The log as C2SP tlog-tiles over HTTP GET (/public/v1/tlog/): the latest
recorded checkpoint and every tile and entry bundle of its tree, read straight
from the store. Full tiles never change (cached for a year, immutable); the
checkpoint and partial tiles are cached for seconds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from jejak.api.common import PUBLIC_ERRORS
from jejak.api.deps import PUBLIC_LAG_S, ApiState, get_state
from jejak.api.errors import ApiError
from jejak.audit.tiles import TILE_HEIGHT, parse_tile_path
from jejak.tiles import StoreTiles

router = APIRouter(prefix="/public/v1/tlog", tags=["public: transparency"])

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIVED = "public, max-age=5"
OCTETS = {200: {"content": {"application/octet-stream": {}}}}


@router.get("/checkpoint", response_class=Response,
            responses={**PUBLIC_ERRORS, 200: {"content": {"text/plain": {}}}})
def checkpoint(state: Annotated[ApiState, Depends(get_state)]) -> Response:
    """The latest recorded checkpoint note, cosignatures included (C2SP tlog-checkpoint)."""
    cp = state.latest_checkpoint(max_age=PUBLIC_LAG_S)
    if cp is None:
        raise ApiError(404, "no checkpoint has been issued yet")
    return Response(cp.note.encode("utf-8"), media_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": SHORT_LIVED})


@router.get("/tile/{path:path}", response_class=Response, responses={**PUBLIC_ERRORS, **OCTETS})
def tile(path: str, state: Annotated[ApiState, Depends(get_state)]) -> Response:
    """A tile `tile/<L>/<N>[.p/<W>]` or entry bundle `tile/entries/<N>[.p/<W>]` (C2SP tlog-tiles)."""
    wanted = parse_tile_path(f"tile/{path}")
    if wanted is None:
        raise ApiError(404, f"no such tile path: tile/{path} (expected tile/<L>/<N>[.p/<W>] "
                            f"or tile/entries/<N>[.p/<W>], N in x-prefixed 3-digit groups)", "no_such_tile")
    cp = state.latest_checkpoint(max_age=PUBLIC_LAG_S)
    level = 0 if wanted.level is None else wanted.level
    count = 0 if cp is None else cp.size >> (TILE_HEIGHT * level)
    if wanted.start + wanted.width > count:
        raise ApiError(404, f"tile/{path} is beyond the tree of the latest checkpoint "
                            f"({0 if cp is None else cp.size} entries)", "no_such_tile")
    data = StoreTiles(state.store).tile_bytes(wanted)
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": IMMUTABLE if wanted.full else SHORT_LIVED})


witnesses_router = APIRouter(prefix="/public/v1", tags=["public: transparency"])


@witnesses_router.get("/witnesses", responses=PUBLIC_ERRORS)
def witnesses(state: Annotated[ApiState, Depends(get_state)]) -> dict:
    """The witness policy the log's checkpoints are cosigned under (C2SP tlog-policy):
    each witness's verifier key (type 0x04), the groups and the quorum, so that a
    browser or any client can check the cosignatures of a checkpoint note itself."""
    policy = state.policy
    if policy is None:
        return {"quorum": "none", "witnesses": [], "groups": []}
    return {
        "quorum": policy.quorum,
        "witnesses": [{"name": w.name, "vkey": w.verifier.key_text()} for w in policy.witnesses],
        "groups": [{"name": g.name, "threshold": g.threshold, "members": list(g.members)} for g in policy.groups],
    }
