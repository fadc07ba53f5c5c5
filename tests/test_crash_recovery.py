"""`lrs up` after crashes: kill -9 of the whole process tree, of `lrs up` alone, of the broker;
stale PostgreSQL lock files after a host crash. Each test runs the real command in a
subprocess on its own data directory, with its ports fixed across the restart as an operator's
would be. Waits are conditions polled with deadlines.

The drain time after a broker kill is asserted against a generous bound here; the figure itself
is measured by ``python -m benchmarks.faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import psutil
import pytest

from lrs.runtime import live_process
from lrs.store.postgres.embedded import EmbeddedPostgres
from lrs.xapi.formats import parse_timestamp
from sinks import positions

from .cohort import Cohort, catalog
from .conftest import free_port, statement

pytestmark = pytest.mark.timeout(300)

AUTH = ("ops", "ops-secret")
HEADERS = {"X-Experience-API-Version": "1.0.3"}
_PR_SET_CHILD_SUBREAPER = 36


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.05)
    return found


def _cmdline(process: psutil.Process) -> str:
    """A process's command line; empty for one that is a zombie or gone."""
    try:
        return " ".join(process.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return ""


class Stack:
    """`lrs up` on one data directory; ``start()`` may be called again after a crash."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.data_dir = tmp_path / "lrs-data"
        self.logs = tmp_path
        self.port, self.kafka_port, self.web_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ, "LRS_LOG_LEVEL": "info", "LRS_ADMIN_KEY": AUTH[0], "LRS_ADMIN_SECRET": AUTH[1],
            "LRS_KAFKA_PORT": str(self.kafka_port), "LRS_WORKER_WEB_PORT": str(self.web_port), **env,
        }  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.logs / f"up-{self.starts}.log"

    def start(self, timeout: float = 90, own_group: bool = False) -> None:
        """Start `lrs up` and wait until it is ready; ``own_group``: in a process group of its own,
        so that ``killpg`` reaches the whole tree at once."""
        self.starts += 1
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lrs", "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=own_group,
            )  # fmt: skip
        wait_for(self._ready, timeout, f"lrs up did not become ready; log:\n{self.log_text()[-3000:]}")

    def _ready(self) -> bool:
        assert self.process.poll() is None, (
            f"lrs up exited with {self.process.returncode}:\n{self.log_text()}"
        )
        try:
            return httpx.get(self.base + "/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def child(self, name: str) -> psutil.Process:
        """The broker (``tansu``), the worker (``worker``) or PostgreSQL (``postgres``); a killed
        child not yet reaped (a zombie) is not one of them. ``StopIteration`` when there is none."""
        return next(p for p in psutil.Process(self.process.pid).children() if name in _cmdline(p))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(60) == 0, self.log_text()[-3000:]

    def xapi(self) -> httpx.Client:
        return httpx.Client(base_url=self.base + "/xapi", auth=AUTH, headers=HEADERS, timeout=60)

    def worker(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.web_port}{path}", timeout=5)

    def learning_facts(self, course: int) -> int:
        """Statements the progress sink holds for a course (one row per statement, by id)."""

        async def count() -> int:
            conn = await asyncpg.connect(EmbeddedPostgres(self.data_dir).dsn)
            try:
                return await conn.fetchval(
                    "SELECT count(*) FROM lms.learning_facts f JOIN lms.enrollments e ON e.id = f.enrollment_id"
                    " WHERE e.course_id = $1",
                    course,
                )
            finally:
                await conn.close()

        return asyncio.run(count())

    def synced_through(self, stored: str) -> bool:
        """Whether every sink's watermark, in every partition, passed ``stored``."""
        try:
            response = self.worker("/watermarks")
        except httpx.TransportError:
            return False
        if response.status_code != 200:
            return False
        sinks = {k: v for k, v in response.json().items() if k != "relay"}
        target = parse_timestamp(stored)
        return bool(sinks) and all(min(v) and positions.decode(min(v))[0] >= target for v in sinks.values())


@pytest.fixture()
def stacks() -> Iterator[list[Stack]]:
    made: list[Stack] = []
    yield made
    for stack in made:
        if stack.process is not None and stack.process.poll() is None:
            for process in stack.tree():  # a failed test: do not leave the tree running
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            stack.process.wait(30)


@contextlib.contextmanager
def orphans_kept_as_zombies() -> Iterator[set[int]]:
    """Make this process the subreaper of what it starts, and reap late: killed processes stay
    zombies meanwhile, as under a PID 1 that reaps late or never. Yields the set to put PIDs in
    that must be reaped at the end."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)
    pids: set[int] = set()
    try:
        yield pids
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0)
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def post_one(stack: Stack) -> str:
    with stack.xapi() as client:
        response = client.post("/statements", json=statement())
        assert response.status_code == 200, response.text
        return response.json()[0]


def test_up_starts_at_once_after_kill_9_of_the_whole_tree(tmp_path: Path, stacks: list[Stack]):
    """SIGKILL to every process of a running `lrs up` at once (its process group: LRS, PostgreSQL,
    broker, worker); the dead postmaster is still a zombie when `lrs up` is started again at
    once: it comes up, keeps what was stored, and serves statements."""
    stack = Stack(tmp_path)
    stacks.append(stack)
    stack.start(own_group=True)
    kept = post_one(stack)
    postmaster = stack.child("postgres").pid
    with orphans_kept_as_zombies() as zombies:
        zombies.update(p.pid for p in stack.tree())
        os.killpg(stack.process.pid, signal.SIGKILL)
        stack.process.wait(10)
        wait_for(lambda: psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE, 10, "postmaster dead")

        stack.start()
        assert psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE  # what made it fail before
        assert "removing the stale lock file" in stack.log_text()
    with stack.xapi() as client:
        assert client.get("/statements", params={"statementId": kept}).status_code == 200
    fresh = post_one(stack)
    with stack.xapi() as client:
        assert client.get("/statements", params={"statementId": fresh}).status_code == 200
    stack.stop()


def test_up_starts_although_the_lock_files_name_a_live_unrelated_process(tmp_path: Path, stacks: list[Stack]):
    """After a host crash the PID in postmaster.pid (and in the socket's lock file) may belong to
    an unrelated live process: `lrs up` removes the stale files and comes up; that process is
    left alone."""
    stack = Stack(tmp_path, LRS_PIPELINE="false")
    stacks.append(stack)
    stack.start()
    kept = post_one(stack)
    pgdata = stack.data_dir / "postgres"
    locks = {path: path.read_text() for path in (pgdata / "postmaster.pid", pgdata / ".s.PGSQL.5432.lock")}
    stack.stop()
    unrelated = subprocess.Popen(["sleep", "300"])
    try:
        for path, text in locks.items():  # as the crashed server left them, but with a PID now in use
            path.write_text("\n".join([str(unrelated.pid), *text.splitlines()[1:]]) + "\n")
        stack.start()
        assert f"pid {unrelated.pid}: an unrelated process (sleep)" in stack.log_text()
        assert unrelated.poll() is None
        with stack.xapi() as client:
            assert client.get("/statements", params={"statementId": kept}).status_code == 200
        post_one(stack)
        stack.stop()
    finally:
        unrelated.kill()
        unrelated.wait()


def test_up_stops_the_broker_and_worker_a_killed_up_left_running(tmp_path: Path, stacks: list[Stack]):
    """kill -9 of `lrs up` alone: its broker and worker get SIGTERM (parent-death signal) and take
    a while to stop — tansu waits about 5 s for connected clients (here one the test holds). The
    next `lrs up`, started at once, stops them (it noted their PIDs in the data directory)
    instead of failing to bind the broker's port, and its pipeline works."""
    stack = Stack(tmp_path)
    stacks.append(stack)
    stack.start()
    broker, worker = stack.child("tansu"), stack.child("worker")
    wait_for(lambda: stack.synced_through("1970-01-01T00:00:00Z"), 60, "worker ready")
    with socket.create_connection(("127.0.0.1", stack.kafka_port)):  # a client of the old broker
        stack.process.kill()
        stack.process.wait(10)
        killed = time.monotonic()
        stack.start()
    print(f"lrs up ready {time.monotonic() - killed:.1f} s after the kill")
    log = stack.log_text()
    assert f"stopped the broker (pid {broker.pid}) a previous lrs up left running" in log
    assert live_process(broker.pid) is None and live_process(worker.pid) is None
    fresh = post_one(stack)
    with stack.xapi() as client:
        stored = client.get("/statements", params={"statementId": fresh}).json()["stored"]
    wait_for(lambda: stack.synced_through(stored), 90, "the new pipeline did not catch up")
    assert "embedded broker exited" not in stack.log_text()  # it bound on the first try
    stack.stop()


def test_broker_kill_is_drained_soon_without_500s_or_floods(tmp_path: Path, stacks: list[Stack]):
    """kill -9 of the embedded broker while a cohort streams in: the supervisor starts a new one and
    a new worker, the backlog is in the sinks soon after (bound: 30 s; the figure is in
    benchmarks/faults.py), every statement once in ClickHouse and in the rollups' facts, the worker
    never answers 500, and the aiokafka errors of the outage are a few lines, not thousands."""
    document = catalog(60, 1, list(range(601, 609)))
    people = Cohort(document, seed=11)
    for student in range(601, 609):
        people.learn(student)
    (tmp_path / "catalog.json").write_bytes(orjson.dumps(document))
    stack = Stack(tmp_path)
    stacks.append(stack)
    stack.start()
    loaded = subprocess.run(
        [sys.executable, "-m", "lrs", "catalog", "load", str(tmp_path / "catalog.json"), "--data-dir",
         str(stack.data_dir)], env=stack.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    half = len(people.statements) // 2
    statuses: Counter = Counter()
    polling = threading.Event()

    def poll_worker() -> None:
        while not polling.is_set():
            try:
                statuses[stack.worker("/watermarks").status_code] += 1
            except httpx.TransportError:
                statuses["refused"] += 1
            time.sleep(0.02)

    with stack.xapi() as client:
        for start in range(0, half, 25):
            assert client.post("/statements", json=people.statements[start : start + 25]).status_code == 200
        old = stack.child("tansu")
        poller = threading.Thread(target=poll_worker)
        poller.start()
        old.kill()
        killed = time.monotonic()
        for start in range(half, len(people.statements), 25):  # the broker is away: no POST fails
            assert client.post("/statements", json=people.statements[start : start + 25]).status_code == 200
        last = client.get("/statements", params={"limit": 1}).json()["statements"][0]["stored"]

    def new_broker_listens() -> bool:
        try:
            return stack.child("tansu").pid != old.pid and listens(stack.kafka_port)
        except StopIteration:  # between the old broker and the new one
            return False

    wait_for(new_broker_listens, 30, "no new broker")
    back = time.monotonic()
    wait_for(lambda: stack.synced_through(last), 60, "the backlog was not drained")
    drained = time.monotonic() - back
    polling.set()
    poller.join()
    print(
        f"broker back {back - killed:.1f} s after the kill; backlog drained {drained:.1f} s later; {statuses}"
    )
    assert drained <= 30
    assert 500 not in statuses, statuses
    engagement = stack.worker("/analytics/engagement_hourly?course_id=60").json()
    assert sum(r["events"] for r in engagement) == len(people.statements)  # none lost, none twice
    assert stack.learning_facts(60) == len(people.statements)
    stack.stop()
    assert stack.log_text().count("aiokafka") < 50
