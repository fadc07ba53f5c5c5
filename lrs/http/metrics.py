"""Prometheus metrics of the HTTP layer, and the middleware that records them."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("lrs_http_requests_total", "HTTP requests answered", ["resource", "method", "status"])
LATENCY = Histogram(
    "lrs_http_request_seconds",
    "Time to answer an HTTP request",
    ["resource", "method"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
STATEMENTS_STORED = Counter("lrs_statements_stored_total", "Statements accepted by the LRS")


class MetricsMiddleware:
    """Counts and times requests per resource (the path below the xAPI base, never ids)."""

    def __init__(self, app: ASGIApp, base_path: str) -> None:
        self.app = app
        self.base = base_path.rstrip("/")
        self._known = {"/statements", "/activities", "/activities/state", "/activities/profile", "/agents",
                       "/agents/profile", "/about"}  # fmt: skip

    def _resource(self, path: str) -> str:
        if path.startswith(self.base):
            resource = path[len(self.base) :].rstrip("/")
            return resource if resource in self._known else "other"
        return path if path in ("/health", "/ready", "/metrics") else "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            resource, method = self._resource(scope["path"]), scope["method"]
            REQUESTS.labels(resource, method, str(status[0])).inc()
            LATENCY.labels(resource, method).observe(time.perf_counter() - start)
