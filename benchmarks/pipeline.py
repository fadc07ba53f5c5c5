"""Pipeline benchmark: worker throughput, freshness at a steady rate, worker memory.

Starts its own stack on a fresh data directory: ``lrs up`` (embedded PostgreSQL, no pipeline),
a tansu broker, and later one ``lrs worker`` process (relay, Faust agent, chdb and PostgreSQL
rollups). Prints figures; asserts nothing. Phases:

1. Backlog: a simulated cohort (catalog loaded, ~11 statements per learner and course) is
   posted while no worker runs. Then one worker starts; throughput = backlog / (time from the
   worker answering until every sink's watermark passes the last statement). This is the
   whole path per worker process: relay reads the store, publishes to Kafka, the agent
   consumes, flattens and applies to both sinks.
2. Freshness: with the worker caught up, statements are POSTed at ``--rate`` per second
   (requests of 10, open loop, paced by a schedule) for ``--seconds``. A statement is visible
   once the ClickHouse sink's watermark for its partition passes it (the sink records the
   watermark after the insert that carries the row, and the aggregates are projections built
   in that same insert); watermarks are polled every 20 ms, so figures carry ±10 ms. Freshness
   = visible - POST sent. The ClickHouse aggregate's event count is checked at the end.
3. Peak RSS (VmHWM) of the worker process, and its sink batch latencies from /metrics.

The data directory it made is removed when it ends (``--keep`` keeps it; ``--data-dir`` names
one that is kept).

    python -m benchmarks.pipeline --backlog-learners 400   # 91k backlog, 2,000 stmt/s for 30 s
    python -m benchmarks.pipeline --backlog-learners 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg
import orjson

from lrs.runtime import stop_process
from lrs.simulate import Simulation, catalog
from lrs.store.postgres.embedded import EmbeddedPostgres
from sinks import positions
from streams.broker import EmbeddedBroker
from streams.enrich import learner_key
from streams.envelope import partition_of

from .ingest import spawn
from .loadgen import Connection, Timings

PARTITIONS = 4
AUTH = ("bench", "bench-secret")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cohort(first_course: int, courses: int, students: range, seed: int) -> tuple[dict, list[dict]]:
    """A catalog and its learners' statements, timestamped over the last 30 days in their order."""
    document = catalog(first_course, courses, list(students))
    people = Simulation(document, seed)
    for student in students:
        people.learn(student)
    start, step = time.time() - 30 * 86400, 30 * 86400 / max(len(people.statements), 1)
    for i, s in enumerate(people.statements):
        s["timestamp"] = stamp(start + i * step)
    return document, people.statements


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


class Stack:
    def __init__(self, data_dir: Path, sinks: str) -> None:
        self.data_dir = data_dir
        self.port, self.web_port = free_port(), free_port()
        self.broker = EmbeddedBroker(free_port(), data_dir / "broker.log")
        self.env = {
            **os.environ,
            "LRS_PIPELINE": "false",
            "LRS_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "LRS_WORKER_WEB_PORT": str(self.web_port),
            "LRS_STREAM_PARTITIONS": str(PARTITIONS),
            "LRS_LOG_LEVEL": "warning",
            "LRS_STREAM_SINKS": sinks,
        }
        self.server = spawn(self.port, data_dir, *AUTH, workers=1, LRS_PIPELINE="false")
        self.dsn = EmbeddedPostgres(data_dir).dsn
        self.url = f"http://127.0.0.1:{self.port}/xapi"
        self.worker: subprocess.Popen | None = None

    def lrs(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "lrs", *args, "--data-dir", str(self.data_dir)],
                       env=self.env, check=True, capture_output=True)  # fmt: skip

    def start_worker(self) -> float:
        """Start broker and worker; returns when the worker answers (monotonic time)."""
        self.broker.start()
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "lrs", "worker", "--data-dir", str(self.data_dir)], env=self.env,
            stderr=open(self.data_dir / "worker.log", "ab"),
        )  # fmt: skip
        while True:
            try:
                self.get("/watermarks")
                return time.monotonic()
            except OSError:
                if self.worker.poll() is not None:
                    raise SystemExit((self.data_dir / "worker.log").read_text()[-2000:]) from None
                time.sleep(0.05)

    def engine(self) -> int | None:
        """PID of the worker's chdb process (LRS_CHDB_OWN_PROCESS), if it runs one."""
        import psutil

        for child in psutil.Process(self.worker.pid).children():
            if "sinks.chdb_process" in " ".join(child.cmdline()):
                return child.pid
        return None

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=30) as response:
            return response.read()

    def watermarks(self) -> dict:
        return orjson.loads(self.get("/watermarks"))

    def wait_synced(self, target: str, progress: dict | None = None) -> float:
        """Until every sink passed ``target``; ``progress`` gets when the relay and each sink did."""
        while True:
            marks = self.watermarks()
            now = time.monotonic()
            if progress is not None:
                if (marks.get("relay") or "") >= target:
                    progress.setdefault("relay", now)
                for name, values in marks.items():
                    if name != "relay" and min(values) >= target:
                        progress.setdefault(name, now)
            if all(min(v) >= target for k, v in marks.items() if k != "relay"):
                return now
            time.sleep(0.02)

    def close(self) -> None:
        for process in (self.worker, self.server):
            if process is not None:
                stop_process(process, 60)
            if process is self.worker:
                self.broker.stop()


async def cpu_by_component(dsn: str, stack: Stack) -> dict[str, float]:
    """CPU seconds so far: the worker, tansu, the LRS, and PostgreSQL backends by application."""
    import psutil

    def cpu(pid: int) -> float:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system

    found = {"worker": cpu(stack.worker.pid), "tansu": cpu(stack.broker.process.pid),
             "lrs": cpu(stack.server.pid)}  # fmt: skip
    if (engine := stack.engine()) is not None:
        found["chdb process"] = cpu(engine)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid, application_name FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )
    finally:
        await conn.close()
    for r in rows:
        try:
            name = "pg:" + (r["application_name"] or "?")
            found[name] = found.get(name, 0.0) + cpu(r["pid"])
        except psutil.Error:
            pass
    return found


async def last_position(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT stored, seq FROM lrs_statements ORDER BY stored DESC, seq DESC LIMIT 1"
        )
        return positions.encode(row["stored"], row["seq"])
    finally:
        await conn.close()


async def positions_of(dsn: str, ids: list[str]) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id::text, stored, seq FROM lrs_statements WHERE id = ANY($1::uuid[])", ids
        )
        return {r["id"]: positions.encode(r["stored"], r["seq"]) for r in rows}
    finally:
        await conn.close()


async def post_all(url: str, statements: list[dict], size: int = 100, clients: int = 4) -> None:
    bodies = [orjson.dumps(statements[i : i + size]) for i in range(0, len(statements), size)]
    connections = [Connection(url, AUTH) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in connections))

    async def work(conn: Connection, index: int) -> None:
        for body in bodies[index::clients]:
            status, payload = await conn.request("POST", "/statements", body)
            if status != 200:
                raise SystemExit(f"POST failed: {status} {payload[:200]!r}")

    await asyncio.gather(*(work(c, i) for i, c in enumerate(connections)))
    await asyncio.gather(*(c.close() for c in connections))


async def paced(url: str, statements: list[dict], rate: float, size: int, clients: int = 16):
    """POST ``size`` statements per request at ``rate`` statements/s; returns send times per request."""
    requests = [statements[i : i + size] for i in range(0, len(statements), size)]
    interval = size / rate
    sent = [0.0] * len(requests)
    timings = Timings()
    connections = [Connection(url, AUTH) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in connections))
    start = time.monotonic() + 0.1

    async def work(conn: Connection, index: int) -> None:
        for i in range(index, len(requests), clients):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[i] = time.monotonic()
            now = stamp(time.time())  # live statements happen now
            body = orjson.dumps([s | {"timestamp": now} for s in requests[i]])
            status, payload = await conn.request("POST", "/statements", body)
            timings.add(time.monotonic() - sent[i], status)
            if status != 200:
                raise SystemExit(f"POST failed: {status} {payload[:200]!r}")

    await asyncio.gather(*(work(c, i) for i, c in enumerate(connections)))
    await asyncio.gather(*(c.close() for c in connections))
    return requests, sent, timings, time.monotonic() - start


async def poll_watermarks(stack: Stack, log: list, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        marks = await loop.run_in_executor(None, stack.watermarks)
        log.append((time.monotonic(), marks["clickhouse"]))
        await asyncio.sleep(0.02)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def sink_latencies(metrics: str) -> dict[str, float]:
    sums = dict(re.findall(r'lrs_sink_batch_seconds_sum\{sink="(\w+)"\} ([0-9.e+-]+)', metrics))
    counts = dict(re.findall(r'lrs_sink_batch_seconds_count\{sink="(\w+)"\} ([0-9.e+-]+)', metrics))
    return {k: float(sums[k]) / float(counts[k]) for k in sums if float(counts.get(k, 0))}


async def freshness(stack: Stack, statements: list[dict], rate: float) -> None:
    log: list = []
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_watermarks(stack, log, stop))
    requests, sent, timings, elapsed = await paced(stack.url, statements, rate, size=10)
    target = await last_position(stack.dsn)
    await asyncio.get_running_loop().run_in_executor(None, stack.wait_synced, target)
    stop.set()
    await poller
    found = await positions_of(stack.dsn, [s["id"] for s in statements])
    lags = []
    for request, sent_at in zip(requests, sent, strict=True):
        visible = sent_at
        for s in request:
            p, pos = partition_of(learner_key(s["actor"]), PARTITIONS), found[s["id"]]
            visible = max(visible, next(t for t, marks in log if marks[p] >= pos))
        lags.append(visible - sent_at)
    print(f"steady load: {len(statements):,} statements at {len(statements) / elapsed:,.0f} stmt/s "
          f"(requests of 10; POST p50 {timings.percentile(50) * 1000:.1f} ms, p99 {timings.percentile(99) * 1000:.1f} ms)")  # fmt: skip
    print(f"freshness POST → in ClickHouse: p50 {percentile(lags, 50) * 1000:.0f} ms   "
          f"p99 {percentile(lags, 99) * 1000:.0f} ms   max {max(lags) * 1000:.0f} ms   (±10 ms polling)")  # fmt: skip


def memory(pid: int) -> dict[str, float]:
    """VmHWM, RssAnon and RssFile of a process, in MB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {k: int(status[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backlog-learners", type=int, default=900, help="learners in the backlog (×20 courses)"
    )
    parser.add_argument("--rate", type=float, default=2000, help="statements/s in the freshness phase")
    parser.add_argument("--seconds", type=float, default=30, help="length of the freshness phase")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--sinks", default="clickhouse,progress", help="LRS_STREAM_SINKS of the worker")
    parser.add_argument("--keep", action="store_true", help="keep the data directory the run made")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="lrs-pipeline-bench-"))
    if args.data_dir is None and not args.keep:
        atexit.register(shutil.rmtree, data_dir, True)  # after the stack has stopped
    courses = 20
    backlog_doc, backlog = cohort(1, courses, range(1, args.backlog_learners + 1), seed=1)
    needed = int(args.rate * args.seconds)
    learners = needed // (11 * courses) + 2
    steady_doc, steady = cohort(100, courses, range(100_001, 100_001 + learners), seed=2)
    steady = steady[:needed]
    print(f"{os.cpu_count()} CPUs; LRS, PostgreSQL, tansu, the worker and this client share them\n")
    stack = Stack(data_dir, args.sinks)
    try:
        for name, document in (("backlog", backlog_doc), ("steady", steady_doc)):
            path = data_dir / f"catalog-{name}.json"
            path.write_bytes(orjson.dumps(document))
            stack.lrs("catalog", "load", str(path))
        asyncio.run(post_all(stack.url, backlog))
        target = asyncio.run(last_position(stack.dsn))
        ready = stack.start_worker()
        before = asyncio.run(cpu_by_component(stack.dsn, stack))
        reached: dict[str, float] = {}
        done = stack.wait_synced(target, reached)
        after = asyncio.run(cpu_by_component(stack.dsn, stack))
        print(f"backlog: {len(backlog):,} statements through one worker (relay → Kafka → agent → chdb + "
              f"PostgreSQL rollups) in {done - ready:.1f} s = {len(backlog) / (done - ready):,.0f} events/s")  # fmt: skip
        print(
            "  reached the last statement after: "
            + ", ".join(f"{k} {t - ready:.1f} s" for k, t in sorted(reached.items(), key=lambda kv: kv[1]))
        )
        spent = {k: v - before.get(k, 0.0) for k, v in after.items()}
        print(
            "  CPU seconds during the backlog: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.1)
        )
        asyncio.run(freshness(stack, steady, args.rate))
        counted = sum(r["events"] for c in range(100, 100 + courses)
                      for r in orjson.loads(stack.get(f"/analytics/engagement_hourly?course_id={c}")))  # fmt: skip
        print(f"engagement aggregate counts {counted:,} of {len(steady):,} steady-load statements")
        latencies = sink_latencies(stack.get("/metrics").decode())
        print(
            "sink batch latency (mean): " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in latencies.items())
        )
        for name, pid in (("worker", stack.worker.pid), ("chdb process", stack.engine())):
            if pid is None:
                continue
            mb = memory(pid)
            print(f"{name} peak RSS (VmHWM): {mb['VmHWM']:.0f} MB; now {mb['RssAnon']:.0f} MB anonymous + "
                  f"{mb['RssFile']:.0f} MB file-backed")  # fmt: skip
    finally:
        stack.close()


if __name__ == "__main__":
    main()
