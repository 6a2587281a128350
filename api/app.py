"""The HTTP application: the inspector API (/v1, bearer tokens), the public
transparency API (/public/v1, read-only, no personal data) and the public page (/)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jejak.api.deps import ApiState
from jejak.api.errors import error_response, install_error_handlers
from jejak.api.routers import (
    access_log, aggregates, anomalies, balances, checkpoints, complaints, facts, families, health, people, proofs,
    public_complaints, receipts, registers, tlog, web,
)
from jejak.api.routers.web import STATIC
from jejak.settings import Settings

DESCRIPTION = """
**Inspector API** (`/v1/…`): bearer tokens with roles (`jejak token create --role inspector|reconciler --name N`).
Every query that reveals personal data needs a `reason` and is recorded in `/v1/access-log`.

**Public transparency API** (`/public/v1/…`): no authentication, read-only, never any NIK, KK, name or
companion id. Signed checkpoints, RFC 9162 proofs, suppressed aggregates (cells of fewer than 5 families),
and receipt checks for recipients.
"""


class PublicReadOnly:
    """Nothing under /public accepts a write, whatever routes exist; safety headers on every answer.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs a task and a
    stream per request, a noticeable share of a cached public answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/public") and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            response = error_response(405, "method_not_allowed", "the public API is read-only",
                                      headers={"Allow": "GET"})
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            await response(scope, receive, send)
            return
        extra = [(b"x-content-type-options", b"nosniff")]
        if path.startswith("/v1"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ApiState(settings)
        app.state.api = state
        state.start()
        try:
            yield
        finally:
            app.state.api = None
            state.close()

    # FastAPIOffline serves the /docs assets from the package itself: the
    # machines that run jejak have no route to a CDN.
    app = FastAPIOffline(title="jejak", version="1", description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app, settings.api_retry_after)
    app.add_middleware(PublicReadOnly)
    for module in (health, checkpoints, proofs, tlog, aggregates, public_complaints, web):
        app.include_router(module.router)
    app.include_router(tlog.witnesses_router)
    app.include_router(receipts.public)
    for module in (families, people, registers, facts, balances, anomalies, complaints, access_log):
        app.include_router(module.router)
    app.include_router(receipts.inspector)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def create_app_from_environment() -> FastAPI:
    """App factory for `jejak serve --workers N`: each worker process reads the JEJAK_* settings."""
    return create_app(Settings())
