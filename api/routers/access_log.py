from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request

from jejak.api.common import CSV_OK, V1_ERRORS, Cursor, Format, Limit, csv_response, decode_cursor, encode_cursor, wants_csv
from jejak.api.deps import INSPECTOR, Fresh, fresh_log, require
from jejak.api.schemas import AccessLogOut, AccessRow
from jejak.api.tokens import Principal

router = APIRouter(prefix="/v1/access-log", tags=["inspector: accountability"])

COLUMNS = ["seq", "at", "token_name", "role", "subject_token", "reason", "path", "log_fact"]


@router.get("", response_model=AccessLogOut, responses={**V1_ERRORS, **CSV_OK})
def access_log(
    request: Request,
    f: Annotated[Fresh, Depends(fresh_log)],
    _who: Annotated[Principal, Depends(require(*INSPECTOR))],
    token_name: Annotated[Optional[str], Query(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="only this API user")] = None,
    subject_token: Annotated[Optional[str], Query(pattern=r"^tk1_[a-z2-7]{32}$", description="only this subject")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    format: Format = None,
):
    """Who looked at whose personal data, when and why (subjects as tokens), oldest first.

    Read from the `jejak.access` facts of the chained log; `seq` is each one's log index."""
    after = decode_cursor(cursor, "s") if cursor else -1
    f.state.access_index.update(f.size)
    rows = f.state.access_index.page(after, limit + 1, token_name, subject_token)
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor("s", rows[-1]["seq"]) if more and rows else None
    if wants_csv(request, format):
        return csv_response(rows, COLUMNS, nxt, "access-log")
    return AccessLogOut(items=[AccessRow(**r) for r in rows], next_cursor=nxt)
