"""A whole pipeline for tests: its own database, a real tansu broker, the LRS over HTTP, and
`lrs worker` as a subprocess (Faust, chdb, PostgreSQL). Waits are conditions with deadlines:
"every sink has recorded a position at or past the last stored statement"."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from lrs.http.app import create_app
from lrs.settings import AnalyticsSettings, AuthSettings, ServerSettings, StoreSettings
from lrs.store import open_outbox
from sinks import positions
from streams.broker import EmbeddedBroker

from .conftest import ADMIN, RunningServer, free_port


def run(coroutine) -> Any:
    return asyncio.run(coroutine)


async def create_database(dsn: str, prefix: str) -> str:
    """A new, empty database next to ``dsn``'s, named ``prefix_<random>``; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    head, _, query = dsn.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}?{query}"


def mongo_database(url: str, prefix: str) -> str:
    """``url`` with a new database name (``prefix_<random>``) as its path."""
    head, _, query = url.partition("?")
    base = head.split("://", 1)[1].split("/", 1)[0]
    return f"mongodb://{base}/{prefix}_{uuid.uuid4().hex[:8]}" + (f"?{query}" if query else "")


class PipelineStack:
    """``store``: ``None`` for PostgreSQL (a new database next to ``pg_dsn`` holds statements and
    the LMS tables), or a MongoDB URL (a new database there for the statements; the LMS tables in
    a new PostgreSQL database)."""

    def __init__(
        self, pg_dsn: str, data_dir: Path, store: str | None = None, sinks: str | None = None
    ) -> None:
        self.data_dir = data_dir
        self.sinks = sinks
        """``LRS_STREAM_SINKS`` of the workers (``None``: the default)."""
        self.dsn = run(create_database(pg_dsn, "pipe"))
        """The LMS database (and the statement store on PostgreSQL)."""
        self.store = mongo_database(store, "pipe") if store else self.dsn
        self.broker = EmbeddedBroker(free_port(), data_dir / "broker.log")
        self.broker.start()
        self.web_port = free_port()
        self.worker: subprocess.Popen | None = None
        self.server = RunningServer(
            create_app(
                self.store,
                ServerSettings(),
                StoreSettings(),
                AuthSettings(admin_key=ADMIN[0], admin_secret=ADMIN[1]),
                analytics=AnalyticsSettings(analytics_url=f"http://127.0.0.1:{self.web_port}"),
                lms_dsn=self.dsn,
            ),
            free_port(),
        ).__enter__()
        self.base = f"http://127.0.0.1:{self.server.port}"
        self.xapi = httpx.Client(base_url=self.base + "/xapi", auth=ADMIN, timeout=60,
                                 headers={"X-Experience-API-Version": "1.0.3"})  # fmt: skip
        self.start_worker()

    # --- processes ---------------------------------------------------------------------------------

    def start_worker(self) -> None:
        self.worker = self.spawn_worker(self.data_dir, self.web_port)

    def spawn_worker(self, data_dir: Path, web_port: int) -> subprocess.Popen:
        """An ``lrs worker`` process on this stack (its own data directory and web port), once its
        web server answers."""
        store = "LRS_STORE" if self.store != self.dsn else "LRS_DATABASE_URL"
        env = {
            **os.environ,
            store: self.store,
            "LRS_LMS_DATABASE_URL": self.dsn,
            "LRS_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "LRS_WORKER_WEB_PORT": str(web_port),
            "LRS_LOG_LEVEL": "warning",
            **({"LRS_STREAM_SINKS": self.sinks} if self.sinks else {}),
        }
        data_dir.mkdir(parents=True, exist_ok=True)
        worker = subprocess.Popen([sys.executable, "-m", "lrs", "worker", "--data-dir", str(data_dir)],
                                  env=env, stderr=open(data_dir / "worker.log", "ab"))  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{web_port}/watermarks", timeout=2).status_code == 200:
                    return worker
            except httpx.TransportError:
                pass
            if worker.poll() is not None:
                raise AssertionError(f"worker exited: {(data_dir / 'worker.log').read_text()[-3000:]}")
            assert time.monotonic() < deadline, "worker did not become ready"
            time.sleep(0.1)

    def stop_worker(self, sig: int = signal.SIGTERM) -> None:
        worker, self.worker = self.worker, None
        if worker is not None and worker.poll() is None:
            worker.send_signal(sig)
            worker.wait(60)

    def restart_broker(self) -> None:
        """Stop tansu (losing every message), start a fresh one on the same port, restart the worker."""
        self.stop_worker()
        port = self.broker.port
        self.broker.stop()
        self.broker = EmbeddedBroker(port, self.data_dir / "broker.log")
        self.broker.start()
        self.start_worker()

    def close(self) -> None:
        self.stop_worker()
        self.xapi.close()
        self.server.__exit__(None, None, None)
        self.broker.stop()

    # --- talking to it ---------------------------------------------------------------------------

    def worker_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def load_catalog(self, document: dict) -> dict:
        """Upload a catalog and wait until the worker has reloaded it (it does on a NOTIFY)."""
        response = httpx.post(self.base + "/catalog", json=document, auth=ADMIN, timeout=60)
        assert response.status_code == 200, response.text
        courses = {c["id"] for c in document.get("courses", [])}
        deadline = time.monotonic() + 30
        while not courses <= set(httpx.get(self.worker_url("/catalog"), timeout=10).json()["courses"]):
            assert time.monotonic() < deadline, "the worker did not reload the catalog"
            time.sleep(0.05)
        return response.json()

    def post(self, statements: list[dict], batch: int = 50) -> None:
        for start in range(0, len(statements), batch):
            response = self.xapi.post("/statements", json=statements[start : start + batch])
            assert response.status_code == 200, response.text

    def last_position(self) -> str:
        """Position of the newest stored statement (through the store's outbox port)."""

        async def newest() -> str:
            outbox = await open_outbox(self.store)
            try:
                found = await outbox.newest()
            finally:
                await outbox.close()
            return positions.encode(*found) if found else ""

        return run(newest())

    def stored(self) -> int:
        """How many statements the store holds (through its outbox port)."""

        async def count() -> int:
            outbox = await open_outbox(self.store)
            try:
                return await outbox.count(None, None)
            finally:
                await outbox.close()

        return run(count())

    def wait_synced(self, timeout: float = 120) -> None:
        """Until every sink recorded, in every partition, a position at or past the last statement."""
        target = self.last_position()
        deadline = time.monotonic() + timeout
        while True:
            marks = httpx.get(self.worker_url("/watermarks"), timeout=10).json()
            sinks = {k: v for k, v in marks.items() if k != "relay"}
            if all(min(v) >= target for v in sinks.values()):
                return
            assert time.monotonic() < deadline, f"sinks did not reach {target}: {marks}"
            time.sleep(0.05)

    def analytics(self, view: str, course: int | None = None) -> list[dict]:
        params = {"course_id": course} if course is not None else None
        response = httpx.get(self.worker_url(f"/analytics/{view}"), params=params, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def replay(self, since: str | None = None, sinks: list[str] | None = None) -> None:
        """Start a replay and wait until every rebuild is swapped in and every sink is synced."""
        response = httpx.post(self.worker_url("/replay"), json={"since": since, "sinks": sinks}, timeout=120)
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 300
        while httpx.get(self.worker_url("/replay"), timeout=10).json()["replaying"]:
            assert time.monotonic() < deadline, "the replay did not complete"
            time.sleep(0.05)
        self.wait_synced()

    def wait_published(self, timeout: float = 30) -> None:
        """Until every domain event in the outbox is on Kafka ``lms.events``."""
        deadline = time.monotonic() + timeout
        while self.fetch("SELECT 1 FROM lms.domain_events WHERE published_at IS NULL LIMIT 1"):
            assert time.monotonic() < deadline, "domain events were not published to lms.events"
            time.sleep(0.05)

    def fetch(self, sql: str, *args) -> list[asyncpg.Record]:
        async def query():
            conn = await asyncpg.connect(self.dsn)
            try:
                return await conn.fetch(sql, *args)
            finally:
                await conn.close()

        return run(query())
