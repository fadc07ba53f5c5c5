"""Fault benchmark: `lrs up` under kill -9 and broker outages, while statements are POSTed.

Starts `lrs up` (LRS, embedded PostgreSQL, tansu, one worker) on a fresh data directory, on
127.0.0.1 ports of its own, loads a simulated catalog and keeps POSTing its cohort (batches of
20 at ``--rate`` statements/s) from a thread. Then, in turn:

1. ``--tree-kills`` times: SIGKILL to the whole process tree at once (its process group), and
   `lrs up` started again at once. This process makes itself the subreaper of what it starts
   and reaps late (``--reap-late``, default on), so the dead postmaster is still a zombie when
   the new `lrs up` looks at it, as under a container's PID 1 that reaps late or never.
   Success = the LRS answers and a statement can be stored and read within 90 s.
2. ``--up-kills`` times: SIGKILL to `lrs up` alone (its broker and worker get SIGTERM through
   the parent-death signal and are still stopping), `lrs up` started again at once.
3. ``--broker-kills`` times: SIGKILL to tansu. Drain = seconds from the new broker listening
   until every sink's watermark passed the last statement stored at that moment (watermarks
   polled every 50 ms); POSTs go on meanwhile. The supervisor restarts the broker within a
   fraction of a second, so this is the time the pipeline stalls: what was stored meanwhile
   waits for the new worker.

Before every fault the pipeline has caught up with what was stored, so each fault hits a
working stack. The load never runs out: the catalog's learners go through their courses again and
again, with new statement ids each round.

Finally the load stops, the sinks catch up, and the statements are counted: acknowledged
(POST answered 200) but not stored = lost by the LRS; stored vs counted by ClickHouse
(engagement events) and by the rollups (learning facts, one per statement) = lost or counted
twice by the pipeline. Prints figures; asserts nothing.

    python -m benchmarks.faults                       # 5 + 3 + 3 faults, about 3 minutes
    python -m benchmarks.faults --tree-kills 10 --broker-kills 5

The data directory it made is removed when it ends (``--keep`` keeps it; ``--data-dir`` names
one that is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import ctypes
import itertools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import psutil

from lrs.runtime import live_process
from lrs.simulate import Simulation, catalog
from lrs.store.postgres.embedded import EmbeddedPostgres
from sinks import positions

AUTH = ("bench", "bench-secret")
HEADERS = {"X-Experience-API-Version": "1.0.3"}
FIRST_COURSE, COURSES = 500, 4
READY_SECONDS = 90.0
_PR_SET_CHILD_SUBREAPER = 36


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def poll(condition, timeout: float, interval: float = 0.05):
    """``condition()``'s first true value, or ``None`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)
    return found


class Up:
    """`lrs up` on one data directory and fixed ports; started again after every fault."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port, self.kafka_port, self.web_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ, "LRS_ADMIN_KEY": AUTH[0], "LRS_ADMIN_SECRET": AUTH[1], "LRS_LOG_LEVEL": "info",
            "LRS_KAFKA_PORT": str(self.kafka_port), "LRS_WORKER_WEB_PORT": str(self.web_port),
        }  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> float | None:
        """Start `lrs up` in its own process group; seconds until it serves, ``None`` if it did not."""
        self.starts += 1
        started = time.monotonic()
        with open(self.data_dir.parent / f"up-{self.starts}.log", "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lrs", "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return time.monotonic() - started if poll(self.serves, READY_SECONDS, 0.1) else None

    def serves(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"lrs up exited with {self.process.returncode} (see up-{self.starts}.log)")
        try:
            return httpx.get(self.base + "/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def tree(self) -> list[int]:
        root = psutil.Process(self.process.pid)
        return [root.pid, *(p.pid for p in root.children(recursive=True))]

    def child(self, name: str) -> psutil.Process | None:
        try:
            found = psutil.Process(self.process.pid).children()
            return next((p for p in found if name in " ".join(p.cmdline())), None)
        except psutil.Error:
            return None

    def watermarks(self) -> dict | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.web_port}/watermarks", timeout=5)
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def synced_through(self, target: str) -> bool:
        marks = self.watermarks()
        sinks = {k: v for k, v in (marks or {}).items() if k != "relay"}
        return bool(sinks) and all(min(v) >= target for v in sinks.values())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(120)


def cohort_batches(document: dict, students: list[int], batch: int) -> Iterator[list[dict]]:
    """The catalog's learners' statements in batches, endlessly: groups of 50 learners, a new seed
    (so new statement ids) for every group and round."""
    for seed in itertools.count(1):
        group = students[(seed - 1) * 50 % len(students) :][:50]
        people = Simulation(document, seed)
        for student in group:
            people.learn(student)
        yield from (people.statements[i : i + batch] for i in range(0, len(people.statements), batch))


class Load:
    """POSTs batches at about ``rate`` statements/s from a thread; keeps the ids the LRS acknowledged."""

    def __init__(self, up: Up, batches: Iterator[list[dict]], rate: float, batch: int = 20) -> None:
        self.up, self.batches, self.interval = up, batches, batch / rate
        self.posted: list[str] = []
        self.acknowledged: set[str] = set()
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        with httpx.Client(auth=AUTH, headers=HEADERS, timeout=10) as client:
            while not self._stop.wait(self.interval):
                chunk = next(self.batches)
                self.posted += [s["id"] for s in chunk]
                try:
                    response = client.post(self.up.base + "/xapi/statements", content=orjson.dumps(chunk),
                                           headers={"Content-Type": "application/json"})  # fmt: skip
                except httpx.TransportError:
                    self.failed += 1  # the LRS was being killed: not acknowledged
                    continue
                if response.status_code == 200:
                    self.acknowledged.update(s["id"] for s in chunk)
                else:
                    self.failed += 1


class Reaper:
    """Makes this process the subreaper of the stacks it starts and reaps their dead late."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        if enabled:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
        self.pids: set[int] = set()

    def reap(self) -> None:
        for pid in list(self.pids):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    self.pids.discard(pid)
            except ChildProcessError:
                self.pids.discard(pid)


# --- faults ----------------------------------------------------------------------------------------


def kill_tree(up: Up, reaper: Reaper) -> None:
    """SIGKILL to `lrs up`'s process group: the LRS, PostgreSQL, the broker and the worker at once."""
    tree = up.tree()
    reaper.pids.update(tree)
    os.killpg(up.process.pid, signal.SIGKILL)
    up.process.wait(10)
    poll(lambda: all(live_process(pid) is None for pid in tree), 10)


def kill_up_alone(up: Up, reaper: Reaper) -> None:
    """SIGKILL to `lrs up` only: its children get their parent-death signals and begin to stop."""
    reaper.pids.update(up.tree())
    up.process.kill()
    up.process.wait(10)


def caught_up(up: Up) -> None:
    """Until the pipeline has everything stored so far (it is working: part of what the next
    fault hits)."""
    target = asyncio.run(last_position(up.data_dir))
    if not poll(lambda: up.synced_through(target), 120):
        print("  the pipeline did not catch up within 120 s")


def restart(up: Up, reaper: Reaper, fault, tries: int) -> list[float | None]:
    """``tries`` times: the fault, then `lrs up` at once; seconds until it served (or None)."""
    results = []
    for _ in range(tries):
        caught_up(up)
        fault(up, reaper)
        try:
            served = up.start()
            served = served if served is not None and stores_and_reads(up) else None
        except RuntimeError as exc:
            print(f"  restart failed: {exc}")
            served = None
        results.append(served)
        reaper.reap()
        if served is None:
            up.stop()
            up.start()
    return results


def stores_and_reads(up: Up) -> bool:
    """Whether a statement (outside the cohort's courses) can be stored and read back."""
    probe = {
        "id": str(uuid.uuid4()), "actor": {"mbox": "mailto:probe@faults.example"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"}, "object": {"id": "https://faults.example/probe"},
    }  # fmt: skip
    with httpx.Client(base_url=up.base + "/xapi", auth=AUTH, headers=HEADERS, timeout=30) as client:
        response = client.post("/statements", json=probe)
        return (
            response.status_code == 200
            and client.get("/statements", params={"statementId": probe["id"]}).status_code == 200
        )


def broker_kills(up: Up, tries: int) -> list[float | None]:
    """``tries`` times: SIGKILL tansu; seconds from the new broker listening until drained."""
    drains = []
    for _ in range(tries):
        caught_up(up)
        old = up.child("tansu")
        old.kill()
        back = poll(
            lambda: (b := up.child("tansu")) is not None and b.pid != old.pid and listens(up.kafka_port), 30
        )
        if back is None:
            drains.append(None)
            continue
        at = time.monotonic()
        target = asyncio.run(last_position(up.data_dir))
        drained = poll(lambda: up.synced_through(target), 120)
        drains.append(time.monotonic() - at if drained else None)
    return drains


# --- counting --------------------------------------------------------------------------------------


async def last_position(data_dir: Path) -> str:
    conn = await asyncpg.connect(EmbeddedPostgres(data_dir).dsn)
    try:
        row = await conn.fetchrow(
            "SELECT stored, seq FROM lrs_statements ORDER BY stored DESC, seq DESC LIMIT 1"
        )
        return positions.encode(row["stored"], row["seq"]) if row else positions.START
    finally:
        await conn.close()


async def stored_and_facts(data_dir: Path, ids: list[str]) -> tuple[set[str], int]:
    """Which of ``ids`` the statement store holds, and how many learning facts the rollups have."""
    conn = await asyncpg.connect(EmbeddedPostgres(data_dir).dsn)
    try:
        stored = await conn.fetch("SELECT id::text FROM lrs_statements WHERE id = ANY($1::uuid[])", ids)
        facts = await conn.fetchval(
            "SELECT count(*) FROM lms.learning_facts WHERE statement_id = ANY($1::uuid[])", ids
        )
        return {r["id"] for r in stored}, facts
    finally:
        await conn.close()


def clickhouse_events(up: Up) -> int:
    total = 0
    for course in range(FIRST_COURSE, FIRST_COURSE + COURSES):
        rows = httpx.get(
            f"http://127.0.0.1:{up.web_port}/analytics/engagement_hourly",
            params={"course_id": course},
            timeout=60,
        ).json()
        total += sum(r["events"] for r in rows)
    return total


# --- the run ----------------------------------------------------------------------------------------


def summary(name: str, values: list[float | None]) -> str:
    good = [v for v in values if v is not None]
    spread = f"{min(good):.1f}–{max(good):.1f} s (median {statistics.median(good):.1f} s)" if good else "-"
    return f"{name}: {len(good)}/{len(values)} ok; {spread}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree-kills", type=int, default=5, help="kill -9 of the whole tree, then restart")
    parser.add_argument("--up-kills", type=int, default=3, help="kill -9 of `lrs up` alone, then restart")
    parser.add_argument("--broker-kills", type=int, default=3, help="kill -9 of the broker")
    parser.add_argument(
        "--learners", type=int, default=200, help="learners in the catalog (each in 4 courses)"
    )
    parser.add_argument("--rate", type=float, default=200, help="statements/s POSTed during the faults")
    parser.add_argument("--reap-late", action=argparse.BooleanOptionalAction, default=True,
                        help="keep killed processes as zombies until after the restart (as a late PID 1)")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data directory the run made")
    args = parser.parse_args()

    root = args.data_dir or Path(tempfile.mkdtemp(prefix="lrs-faults-bench-"))
    if args.data_dir is None and not args.keep:
        atexit.register(shutil.rmtree, root, True)  # after the stack has stopped
    students = list(range(1, args.learners + 1))
    document = catalog(FIRST_COURSE, COURSES, students)
    reaper = Reaper(args.reap_late)
    up = Up(root / "lrs-data")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; data in {root}")
    if up.start() is None:
        raise SystemExit("lrs up did not start")
    (root / "catalog.json").write_bytes(orjson.dumps(document))
    subprocess.run([sys.executable, "-m", "lrs", "catalog", "load", str(root / "catalog.json"), "--data-dir",
                    str(up.data_dir)], env=up.env, check=True, capture_output=True)  # fmt: skip
    load = Load(up, cohort_batches(document, students, 20), args.rate)
    load.start()
    try:
        tree = restart(up, reaper, kill_tree, args.tree_kills)
        alone = restart(up, reaper, kill_up_alone, args.up_kills)
        drains = broker_kills(up, args.broker_kills)
        load.stop()
        target = asyncio.run(last_position(up.data_dir))
        if not poll(lambda: up.synced_through(target), 300):
            print("the sinks did not catch up within 300 s")
        stored, facts = asyncio.run(stored_and_facts(up.data_dir, load.posted))
        events = clickhouse_events(up)
    finally:
        load.stop()
        up.stop()
        reaper.reap()

    print(summary(f"restart after kill -9 of the whole tree{' (zombies reaped late)' if args.reap_late else ''}",
                  tree))  # fmt: skip
    print(summary("restart after kill -9 of lrs up alone", alone))
    print(summary("drain after kill -9 of the broker (from the new broker listening)", drains))
    lost = load.acknowledged - stored
    print(f"statements: {len(load.posted):,} posted, {len(load.acknowledged):,} acknowledged, "
          f"{load.failed} requests failed (the LRS was being killed), {len(stored):,} stored; "
          f"acknowledged but not stored: {len(lost)}")  # fmt: skip
    print(f"ClickHouse counts {events:,} of {len(stored):,} stored: lost {max(len(stored) - events, 0)}, "
          f"counted twice {max(events - len(stored), 0)}")  # fmt: skip
    print(
        f"rollups hold {facts:,} learning facts of {len(stored):,} stored: lost {max(len(stored) - facts, 0)}"
    )


if __name__ == "__main__":
    main()
