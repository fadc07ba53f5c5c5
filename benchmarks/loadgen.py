"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

Benchmarks share the machine with the server, so the client must be cheap: no HTTP library
per request, one persistent connection per simulated client, requests written as bytes.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Timings:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, seconds: float, status: int) -> None:
        self.latencies.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Connection:
    def __init__(self, url: str, auth: tuple[str, str], version: str = "1.0.3") -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.base = parts.path.rstrip("/")
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.fixed = (
            f"Host: {self.host}:{self.port}\r\nAuthorization: Basic {token}\r\n"
            f"X-Experience-API-Version: {version}\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
    ):
        head = f"{method} {self.base}{path} HTTP/1.1\r\n".encode() + self.fixed
        if body:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode()
        self.writer.write(head + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload


async def run_clients(url, auth, clients: int, work, version: str = "1.0.3") -> tuple[Timings, float]:
    """Run ``work(connection, index, timings)`` on ``clients`` connections; returns timings, elapsed s."""
    timings = Timings()
    connections = [Connection(url, auth, version) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in connections))
    start = time.perf_counter()
    await asyncio.gather(*(work(c, i, timings) for i, c in enumerate(connections)))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in connections))
    return timings, elapsed
