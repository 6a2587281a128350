"""Shared request parameters, cursors, CSV rendering and log reads for the routers."""

from __future__ import annotations

import base64
import csv
import io
from typing import Annotated, Any, Iterable, Literal, Optional, Sequence

import orjson
from fastapi import Query, Request
from fastapi.responses import Response

from jejak.api.errors import ApiError
from jejak.api.schemas import ErrorBody, InclusionProof
from jejak.jsonout import json_bytes
from jejak.store.datastore import Store
from jejak.store.leaf import decode_leaf
from jejak.transparency import ProofRequestError, StoredCheckpoint, Transparency

MAX_LIMIT = 1000

KK_PATTERN = r"^[0-9]{16}$"
FACT_ID_PATTERN = r"^[A-Za-z0-9._:/-]{1,128}$"
PERIOD_PATTERN = r"^[0-9]{4}-(T[1-4]|[0-9]{2}(/[0-9]{4}-[0-9]{2})?)$"
REGION_PATTERN = r"^([0-9]{4}|[0-9]{6}|[0-9]{10})$"
PROGRAMS = Literal["PKH", "BPNT"]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, 1..{MAX_LIMIT}")]
Cursor = Annotated[Optional[str], Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description="next_cursor of the previous page")]
Format = Annotated[Optional[Literal["json", "csv"]], Query(description="csv: the same page as text/csv (or send Accept: text/csv)")]
Reason = Annotated[
    str,
    Query(min_length=3, max_length=500, pattern=r"\S",
          description="why you need this personal data; recorded in the access log"),
]


def _err(status: int, description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


PUBLIC_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _err(400, "bad request"),
    404: _err(404, "not found"),
    422: _err(422, "invalid parameters"),
}
V1_ERRORS: dict[int | str, dict[str, Any]] = {
    **PUBLIC_ERRORS,
    401: _err(401, "no valid bearer token"),
    403: _err(403, "the token's role may not use this"),
}
CSV_OK: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "OK (JSON, or CSV on request)"},
}


# ------------------------------------------------------------------- cursors


def encode_cursor(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode("ascii").rstrip("=")


MAX_CURSOR = 2**63 - 1


def decode_cursor(text: str | None, kind: str) -> int:
    if text is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        got_kind, _, number = raw.partition(":")
        value = int(number)
        # at most a 64-bit index: cursors are positions in stored lists, which the databases bind as BIGINT
        if got_kind != kind or not 0 <= value <= MAX_CURSOR or not number.isdigit():
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "cursor is malformed or belongs to another list; use the next_cursor of the previous page",
                       "invalid_cursor") from None
    return value


def page_by_offset(rows: Sequence[Any], cursor: str | None, limit: int, kind: str = "o") -> tuple[list[Any], str | None]:
    start = decode_cursor(cursor, kind)
    page = list(rows[start : start + limit])
    nxt = encode_cursor(kind, start + limit) if start + limit < len(rows) else None
    return page, nxt


# ------------------------------------------------------------------------ CSV


def wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = orjson.dumps(value).decode()
    elif isinstance(value, bool):
        value = "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text  # keep spreadsheets from running formulas
    return text


def csv_response(rows: Iterable[dict[str, Any]], columns: Sequence[str], next_cursor: str | None, filename: str) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    headers = {"Content-Disposition": f'attachment; filename="{filename}.csv"'}
    if next_cursor:
        headers["X-Next-Cursor"] = next_cursor
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict) and k in ("amounts",):
            out.update(flatten(v, f"{k}_"))
        else:
            out[prefix + k] = v
    return out


# ------------------------------------------------------------------- JSON


def json_bytes_response(body: Any) -> Response:
    """An answer serialised by orjson, skipping FastAPI's response-model validation.

    For routes whose handler builds exactly the shape of its declared
    `response_model` (which still documents it in the OpenAPI schema); the
    schemathesis tests check the two agree."""
    return Response(json_bytes(body), media_type="application/json")


# ---------------------------------------------------------------- log reads


def entries_at(store: Store, indices: Sequence[int]) -> dict[int, tuple[str, bytes, bytes | None]]:
    """{index: (fact_id, chain, leaf)} for the given log indices."""
    return {index: (fact_id, chain, leaf) for index, fact_id, chain, leaf, _topic in store.read_log_at(indices)}


def decode(leaf: bytes | None) -> dict[str, Any]:
    if leaf is None:
        return {}
    fact, _derived = decode_leaf(leaf)
    return fact


def proof_dict(transparency: Transparency, index: int, checkpoint: StoredCheckpoint | None) -> dict[str, Any] | None:
    """Inclusion proof of `index` against the checkpoint, as the `InclusionProof`
    dict (None if the checkpoint does not cover the index)."""
    if checkpoint is None or index >= checkpoint.size:
        return None
    try:
        return transparency.prove(index, checkpoint.size)
    except ProofRequestError:
        return None


def proof_for(transparency: Transparency, index: int, checkpoint: StoredCheckpoint | None) -> InclusionProof | None:
    """:func:`proof_dict` as the response model."""
    proof = proof_dict(transparency, index, checkpoint)
    return None if proof is None else InclusionProof(**proof)
