"""The parts crash recovery is made of, each on its own (fast): whether a PostgreSQL lock file
is stale, finding a supervisor's orphaned child by its PID file, collapsing repeated log lines,
and the worker's 503 while it stops. The whole `lrs up` under kill -9 is in
``test_crash_recovery.py``."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import orjson
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lrs.logs import RepeatFilter
from lrs.runtime import ChildPidFile, OrphanStillSupervised, live_process
from lrs.store.postgres.embedded import EmbeddedPostgres, LockFile
from streams.stopping import STOPPING_BODY, unavailable_while_stopping


def zombie() -> subprocess.Popen:
    """A child that has exited and is not reaped yet (the caller reaps it with ``wait()``)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return child


# --- PostgreSQL lock files -----------------------------------------------------------------------


def lock_file(path: Path, pid: int, status: str = "ready") -> Path:
    """A ``postmaster.pid`` as PostgreSQL 18 writes it (8 lines, the state last)."""
    path.write_text(
        f"{pid}\n{path.parent}\n1796617211\n5432\n{path.parent}\n\n  2163390        25\n{status}  \n"
    )
    return path


def test_a_lock_file_naming_a_zombie_or_an_unrelated_process_is_stale(tmp_path: Path):
    pgdata = tmp_path.resolve()
    dead = zombie()
    try:
        assert kill_zero_succeeds(dead.pid)  # what the old check relied on
        assert LockFile.read(lock_file(tmp_path / "postmaster.pid", dead.pid)).why_stale(pgdata) == (
            "no such process, or only its zombie"
        )
    finally:
        dead.wait()
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        lock = LockFile.read(lock_file(tmp_path / "postmaster.pid", unrelated.pid))
        assert lock.why_stale(pgdata) == "an unrelated process (sleep)"
        assert not lock.names_postmaster_of(pgdata)
    finally:
        unrelated.kill()
        unrelated.wait()
    assert LockFile.read(tmp_path / "missing.pid") is None
    assert LockFile.read(lock_file(tmp_path / "postmaster.pid", 0)).why_stale(pgdata) is not None


def kill_zero_succeeds(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_live_postmaster_counts_only_for_its_own_data_directory(pg_dsn: str, tmp_path: Path):
    """The test session's PostgreSQL is a live postmaster: its lock file names it for its own data
    directory, and a copy of that file in another directory is stale there."""
    if os.environ.get("LRS_TEST_DATABASE_URL"):
        pytest.skip("the test database is not an embedded server")
    pgdata = Path(pg_dsn.split("host=")[1]).resolve()
    lock = LockFile.read(pgdata / "postmaster.pid")
    assert lock.status == "ready" and lock.names_postmaster_of(pgdata)
    assert lock.why_stale(tmp_path.resolve()) == f"a PostgreSQL server of {pgdata}"
    server = EmbeddedPostgres(pgdata.parent)
    assert server.running()


def test_start_removes_stale_lock_files_and_refuses_a_live_one(pg_dsn: str, tmp_path: Path):
    if os.environ.get("LRS_TEST_DATABASE_URL"):
        pytest.skip("the test database is not an embedded server")
    server = EmbeddedPostgres(tmp_path)
    server.pgdata.mkdir(parents=True)
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        stale = lock_file(server.pgdata / "postmaster.pid", unrelated.pid)
        socket_lock = lock_file(server.socket_dir / ".s.PGSQL.5432.lock", unrelated.pid)
        assert not server.running()
        server._clear_stale_locks()
        assert not stale.exists() and not socket_lock.exists()
    finally:
        unrelated.kill()
        unrelated.wait()
    live = EmbeddedPostgres(Path(pg_dsn.split("host=")[1]).resolve().parent)
    with pytest.raises(RuntimeError, match="already running"):
        live._clear_stale_locks()


def test_running_waits_for_a_server_that_is_still_stopping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A postmaster that a killed `lrs up` left behind is in fast shutdown ("stopping"): it is waited
    for, not used; one that never finishes is an error naming it."""
    server = EmbeddedPostgres(tmp_path)
    server.pgdata.mkdir(parents=True)
    pretend = lock_file(server.pgdata / "postmaster.pid", os.getpid(), status="stopping")
    fake_postmaster_of(server.pgdata, monkeypatch)
    with pytest.raises(RuntimeError, match="is still stopping"):
        server.running(timeout=0.2)
    pretend.unlink()
    assert not server.running(timeout=0.2)


def fake_postmaster_of(pgdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this test process look like a postmaster of ``pgdata`` to the lock-file check."""
    original = LockFile.why_stale

    def why_stale(self: LockFile, data_dir: Path) -> str | None:
        return None if self.pid == os.getpid() and data_dir == pgdata else original(self, data_dir)

    monkeypatch.setattr(LockFile, "why_stale", why_stale)


# --- a supervisor's children ---------------------------------------------------------------------


def orphaned(*argv: str) -> tuple[int, int]:
    """Start ``argv`` from a shell that exits at once: (its PID, now an orphan's; the shell's)."""
    shell = subprocess.Popen(["sh", "-c", f"{' '.join(argv)} >/dev/null & echo $!"], stdout=subprocess.PIPE)
    pid = int(shell.stdout.readline())
    shell.wait()
    deadline = time.monotonic() + 10
    while psutil.Process(pid).cmdline() != list(argv):  # the shell forked it; until it runs argv
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return pid, shell.pid


def note(pid_file: ChildPidFile, pid: int, argv: list[str], parent: int) -> None:
    pid_file.path.write_bytes(orjson.dumps({"pid": pid, "argv": argv, "parent": parent}))


def test_a_child_pid_file_names_an_orphan_only_while_it_runs_as_started(tmp_path: Path):
    pid_file = ChildPidFile(tmp_path / "worker.pid")
    assert pid_file.orphan() is None and pid_file.stop_orphan(1.0) is None
    pid, shell = orphaned("sleep", "60")
    note(pid_file, pid, ["sleep", "60"], shell)
    assert pid_file.orphan().pid == pid
    other = ChildPidFile(tmp_path / "other.pid")
    note(other, pid, ["sleep", "61"], shell)  # same PID, another command: not ours
    assert other.orphan() is None
    assert pid_file.stop_orphan(5.0) == pid
    assert live_process(pid) is None and not pid_file.path.exists()

    dead = zombie()
    try:
        note(pid_file, dead.pid, dead.args, os.getpid() + 1)
        assert pid_file.orphan() is None and live_process(dead.pid) is None
    finally:
        dead.wait()


def test_a_child_whose_supervisor_still_runs_is_not_an_orphan(tmp_path: Path):
    """Two `lrs up` on one data directory: the second must not stop the first one's children."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = ChildPidFile(tmp_path / "broker.pid")
        pid_file.record(child)
        with pytest.raises(
            OrphanStillSupervised, match=f"pid {child.pid} .* supervised by pid {os.getpid()}"
        ):
            pid_file.stop_orphan(1.0)
        assert child.poll() is None and pid_file.path.exists()
    finally:
        child.kill()
        child.wait()


def test_an_orphan_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path):
    script, ready = tmp_path / "stubborn.py", tmp_path / "ignoring-sigterm"
    script.write_text(
        f"import pathlib, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\ntime.sleep(60)\n"
    )
    pid, shell = orphaned(sys.executable, str(script))
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid_file = ChildPidFile(tmp_path / "broker.pid")
    note(pid_file, pid, [sys.executable, str(script)], shell)
    started = time.monotonic()
    assert pid_file.stop_orphan(0.3) == pid
    assert live_process(pid) is None and time.monotonic() - started < 5


# --- repeated log records ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeated_errors_are_logged_once_per_window_with_a_count():
    clock = Clock()
    repeats = RepeatFilter(window=10.0, clock=clock)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(f"{record.levelname} {record.getMessage()}")  # type: ignore[method-assign]
    handler.addFilter(repeats)
    log, own = logging.getLogger("aiokafka.test-repeats"), logging.getLogger("streams.test-repeats")
    for logger in (log, own):
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    try:
        for _ in range(500):  # an outage: the same error over and over, and now and then another
            log.error("Unable connect to node with id %s: %s", 0, "[Errno 111] Connect call failed")
            clock.now += 0.01
        log.error("Unable to update metadata from [%s]", 0)
        log.error("Unable connect to node with id %s: %s", 1, "[Errno 111] Connect call failed")
        log.info("not collapsed")
        log.info("not collapsed")
        own.warning("this project's own warnings are never collapsed")
        own.warning("this project's own warnings are never collapsed")
        clock.now += 10
        repeats.flush()
        log.error("Unable connect to node with id %s: %s", 0, "[Errno 111] Connect call failed")
    finally:
        for logger in (log, own):
            logger.removeHandler(handler)
        repeats.flush()
    assert lines == [
        "ERROR Unable connect to node with id 0: [Errno 111] Connect call failed",
        "ERROR Unable to update metadata from [0]",
        "ERROR Unable connect to node with id 1: [Errno 111] Connect call failed",
        "INFO not collapsed",
        "INFO not collapsed",
        "WARNING this project's own warnings are never collapsed",
        "WARNING this project's own warnings are never collapsed",
        "ERROR Unable connect to node with id 0: [Errno 111] Connect call failed [repeated 499 more times in 15 s]",
        "ERROR Unable connect to node with id 0: [Errno 111] Connect call failed",
    ]


# --- the worker's web pages while it stops ------------------------------------------------------


def test_worker_pages_answer_503_while_the_worker_stops():
    """Once stopping, every page answers 503 with a JSON body saying so, also a request already
    running when the stop closed its pool (a 500 before)."""
    state = {"stopping": False}

    async def run() -> list[tuple[int, dict]]:
        started_event, release = asyncio.Event(), asyncio.Event()

        async def watermarks(request: web.Request) -> web.Response:
            if request.query.get("slow"):
                started_event.set()
                await release.wait()
                raise asyncpg.InterfaceError("pool is closed")
            return web.json_response({"relay": "0"})

        app = web.Application(middlewares=[unavailable_while_stopping(lambda: state["stopping"])])
        app.router.add_get("/watermarks", watermarks)
        async with TestClient(TestServer(app)) as client:
            answers = [await client.get("/watermarks")]
            slow = asyncio.create_task(client.get("/watermarks", params={"slow": "1"}))
            await started_event.wait()
            state["stopping"] = True
            release.set()
            answers += [await slow, await client.get("/watermarks")]
            return [(r.status, await r.json()) for r in answers]

    assert asyncio.run(run()) == [(200, {"relay": "0"}), (503, STOPPING_BODY), (503, STOPPING_BODY)]


HANGING_STOP = """
import asyncio
import faust
from streams.stopping import BoundedWorker

async def never_done(self):  # a stop that waits for a broker that is gone
    await asyncio.sleep(60)

faust.Worker.stop = never_done
app = faust.App("bounded", broker="kafka://127.0.0.1:1", web_enabled=False)
worker = BoundedWorker(app, stop_timeout=0.5, on_stopping=lambda: print("503 from now on", flush=True),
                       quiet=True, redirect_stdouts=False, override_logging=False)
asyncio.get_event_loop().run_until_complete(worker.stop())
"""


def test_a_worker_whose_stop_hangs_exits_after_the_stop_timeout():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HANGING_STOP], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stdout == "503 from now on\n"
    assert "did not stop within 0.5 s (LRS_WORKER_STOP_TIMEOUT); exiting now" in done.stderr
    assert time.monotonic() - started < 30  # not the 60 s the stop would have taken
