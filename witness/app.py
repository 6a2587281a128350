"""The witness's HTTP interface (C2SP tlog-witness v1.0.0): `POST /add-checkpoint`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .protocol import MAX_BODY_BYTES, Answer, add_checkpoint
from .state import WitnessState


def create_app(state: WitnessState) -> Starlette:
    async def add(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _respond(Answer(400, f"request body over {MAX_BODY_BYTES} bytes\n"))
        from starlette.concurrency import run_in_threadpool

        return _respond(await run_in_threadpool(add_checkpoint, state, bytes(body)))

    async def key(_: Request) -> Response:
        return PlainTextResponse(state.signer.verifier_key_text() + "\n")

    return Starlette(routes=[Route("/add-checkpoint", add, methods=["POST"]), Route("/", key, methods=["GET"])])


def _respond(answer: Answer) -> Response:
    # The content type exactly as given (Starlette would add a charset to text/*): tlog-witness
    # clients compare `text/x.tlog.size` as it stands.
    return Response(answer.body.encode("utf-8"), status_code=answer.status,
                    headers={"content-type": answer.content_type})
