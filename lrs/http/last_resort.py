"""The last resort: no exception escapes the application as a bare 500 or a dropped connection.

Every request gets an id (``request.state.request_id``). An exception nothing else handled is
logged once, with its traceback and that id, and answered with a JSON error naming the id (the
id is also in ``X-Request-Id``, so an operator can find the traceback). The answer carries
``Connection: close``: after an unexpected error the server cannot know how much of the request
body was read, so the client is told to open a new connection rather than finding the old one
dropped. None of this is meant to run: hostile input is answered 4xx where it is read.
"""

from __future__ import annotations

import logging
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .responses import json_response

log = logging.getLogger(__name__)


def request_id(scope: Scope) -> str:
    """The id of the request ``scope`` describes, given it on first use."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = secrets.token_hex(8)
    return state["request_id"]


def internal_error(scope: Scope) -> Response:
    """The answer to an unexpected error: JSON naming the request id; the connection closes."""
    rid = request_id(scope)
    message = f"internal error (request id {rid}); the request changed nothing it had not committed"
    return json_response(
        {"error": {"status": 500, "message": message, "request_id": rid}},
        500,
        {"X-Request-Id": rid, "Connection": "close"},
    )


def log_unexpected(scope: Scope) -> None:
    """Log the exception being handled, once, with the request's id, method and path."""
    log.exception(
        "unexpected error (request id %s) answering %s %s", request_id(scope), scope["method"], scope["path"]
    )


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """For FastAPI/Starlette's ``exception_handlers[Exception]``: their error middleware answers
    with this, then re-raises to ``LastResort``, which logs."""
    return internal_error(request.scope)


class LastResort:
    """The outermost ASGI layer of the LRS (xAPI and operations apps alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id(scope)
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log_unexpected(scope)
            if not started:
                await internal_error(scope)(scope, receive, send)
            # else the answer began before the failure (an error handler's 500, or a body cut
            # short): returning, not raising, lets the server finish or close it cleanly
