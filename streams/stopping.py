"""A worker that stops in bounded time and says so while it stops.

Faust's graceful stop waits for things that may never come when the broker is gone: offset
commits and the producer's flush are retried by aiokafka for minutes. Nothing in that wait is
needed for correctness: every sink records its position in the same write as its data, so what
the worker had not acknowledged is consumed again and skipped by the sinks. So the stop gets a
deadline (``LRS_WORKER_STOP_TIMEOUT``), after which the process exits at once.

While it stops, its sinks' connections close under the web server: every page answers 503 with
a JSON body saying so (not a 500 from a closed pool), so that a client can tell "come back
later" from a failure.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiohttp import web

log = logging.getLogger(__name__)

STOPPING_BODY = {"error": "the pipeline worker is shutting down", "retry": True}


def exit_now(timeout: float) -> None:
    log.error(
        "the worker did not stop within %g s (LRS_WORKER_STOP_TIMEOUT); exiting now: what it had not"
        " acknowledged is consumed again",
        timeout,
    )
    logging.shutdown()
    os._exit(1)


class BoundedWorker(faust.Worker):
    """``faust.Worker`` whose stop, however it began (SIGTERM, SIGINT, a crash), lasts
    ``stop_timeout`` seconds at most; ``on_stopping`` is called first (the pipeline starts
    answering 503)."""

    def __init__(self, app: faust.App, *, stop_timeout: float, on_stopping: Callable[[], None], **options):
        super().__init__(app, **options)
        self._stop_timeout = stop_timeout
        self._on_stopping = on_stopping
        self._deadline: threading.Timer | None = None

    async def stop(self) -> None:
        self._on_stopping()
        if self._deadline is None:
            self._deadline = threading.Timer(self._stop_timeout, exit_now, args=(self._stop_timeout,))
            self._deadline.daemon = True
            self._deadline.start()
        await super().stop()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unavailable_while_stopping(stopping: Callable[[], bool]) -> Any:
    """An aiohttp middleware: 503 for every request once ``stopping()``, also for one that was
    already running when the stop closed what it used."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if stopping():
            return shutting_down()
        try:
            return await handler(request)
        except Exception:
            if stopping():
                return shutting_down()
            raise

    return middleware


def shutting_down() -> web.Response:
    return web.json_response(STOPPING_BODY, status=503, headers={"Retry-After": "1"})
