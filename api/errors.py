"""One JSON error shape for every 4xx/5xx answer: {"error", "message", "problems"?}."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("jejak.api")

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "too_large",
    415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
    500: "internal_error", 503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, problems: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "request"
    kind = {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body"}.get(str(loc[0]), str(loc[0]))
    rest = ".".join(str(p) for p in loc[1:])
    return f"{kind} '{rest}'" if rest else kind


def store_unavailable(retry_after: int) -> JSONResponse:
    return error_response(503, "unavailable", "the store is unreachable for the moment; retry later",
                          headers={"Retry-After": str(retry_after)})


def _store_unavailable_errors() -> tuple[type[BaseException], ...]:
    """Errors meaning the database cannot be reached right now (restart, failover, pool exhausted)."""
    import psycopg
    from eventsourcing import persistence

    return (psycopg.OperationalError, psycopg.InterfaceError, persistence.OperationalError,
            persistence.InterfaceError, persistence.ConnectionUnavailableError)


def install_error_handlers(app: FastAPI, retry_after: int = 5) -> None:
    unavailable = _store_unavailable_errors()

    async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The class only: a driver message may quote SQL parameters (tokens, ids).
        log.warning("store unavailable: %s", type(exc).__name__)
        state = getattr(request.app.state, "api", None)
        if state is not None:
            # Until then requests are answered 503 at once instead of each waiting for a connection.
            state.store_down_until = time.monotonic() + retry_after
        return store_unavailable(retry_after)

    for cls in unavailable:
        app.add_exception_handler(cls, _store_unavailable)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        message = exc.detail if isinstance(exc.detail, str) else _CODES.get(status, "error")
        if status == 404 and message == "Not Found":
            message = "no such resource"
        return error_response(status, _CODES.get(status, "error"), message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            # never echo the offending input back (it may be personal data)
            problems.append({"where": _where(loc), "message": str(err.get("msg", "invalid value"))})
        summary = "; ".join(f"{p['where']}: {p['message']}" for p in problems) or "invalid request"
        return error_response(422, "invalid_request", summary, problems)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - safety net
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error; the operator has the details in the server log")
