"""Ingest and query benchmark against a running LRS (or one it starts with ``--spawn``).

Prints figures; asserts nothing. Phases:

1. POST batches of 100 statements from 8 concurrent clients: statements/s, latency per batch.
2. POST single statements from 8 concurrent clients: statements/s, p50/p99 latency.
3. Fill the store up to ``--total`` statements (batches) and report the fill rate.
4. The query matrix at that size, one client, limit 100: p50/p99 per query shape (every GET
   /statements filter, their combinations, since/until, ascending, and the 5th ``more`` page).
5. Bytes per statement on PostgreSQL: heap, TOAST and each index (WAL left out).
6. Peak RSS (VmHWM) of the server process, and CPU seconds per process for each write phase.

    python -m benchmarks.ingest --spawn --total 1000000
    python -m benchmarks.ingest --spawn --total 1000000 --keep --data-dir /tmp/lrs-1m   # reuse later
    python -m benchmarks.ingest --url http://127.0.0.1:8080/xapi --auth KEY:SECRET --pid 1234

``--store mongodb`` (with ``--spawn``) runs the LRS on MongoDB (``LRS_STORE``): the server at
``--mongo-url`` (a replica set), else the SecantusDB stand-in that the tests use, which speaks
MongoDB's protocol but is a Python server: its figures are not MongoDB's. The report names the
store it ran on.

With ``--spawn`` the benchmark removes the data directory it made when it ends (``--keep`` keeps
it; a ``--data-dir`` that existed before is never removed). ``--total`` below what the data
directory already holds fills nothing: the phases then measure that store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import orjson

from lrs.runtime import stop_process

from .loadgen import run_clients

VERBS = [
    "http://adlnet.gov/expapi/verbs/launched", "http://adlnet.gov/expapi/verbs/initialized",
    "http://adlnet.gov/expapi/verbs/experienced", "http://adlnet.gov/expapi/verbs/progressed",
    "http://adlnet.gov/expapi/verbs/completed", "http://adlnet.gov/expapi/verbs/passed",
    "http://adlnet.gov/expapi/verbs/failed", "http://adlnet.gov/expapi/verbs/answered",
    "https://w3id.org/xapi/video/verbs/played", "http://adlnet.gov/expapi/verbs/terminated",
]  # fmt: skip


class Population:
    """Deterministic learners, courses and lessons; statements drawn from them."""

    def __init__(
        self, learners: int = 2000, courses: int = 20, lessons: int = 25, seed: int | None = None
    ) -> None:
        self.rng = random.Random(seed)
        names = random.Random(7)  # learners are the same in every run, statement ids are new
        self.learners = [f"mailto:learner{i}@bench.example" for i in range(learners)]
        self.courses = courses
        self.lessons = lessons
        self.registrations = [str(uuid.UUID(int=names.getrandbits(128), version=4)) for _ in range(500)]

    def statement(self) -> dict:
        r = self.rng
        course, lesson = r.randrange(self.courses), r.randrange(self.lessons)
        course_iri = f"https://lms.example/courses/{course}"
        return {
            "id": str(uuid.UUID(int=r.getrandbits(128), version=4)),
            "actor": {"objectType": "Agent", "name": "Learner", "mbox": r.choice(self.learners)},
            "verb": {"id": r.choice(VERBS), "display": {"en-US": "did"}},
            "object": {
                "objectType": "Activity",
                "id": f"{course_iri}/lessons/{lesson}",
                "definition": {
                    "name": {"en-US": f"Lesson {lesson}"},
                    "type": "http://adlnet.gov/expapi/activities/lesson",
                },
            },  # fmt: skip
            "result": {
                "score": {"scaled": round(r.random(), 2)},
                "completion": r.random() < 0.5,
                "duration": f"PT{r.randrange(1, 900)}S",
            },  # fmt: skip
            "context": {
                "registration": r.choice(self.registrations),
                "contextActivities": {
                    "parent": [{"id": f"{course_iri}/modules/{lesson // 5}"}],
                    "grouping": [{"id": course_iri}],
                },  # fmt: skip
                "platform": "bench",
            },
            "timestamp": "2026-02-09T10:30:00.000Z",
        }


def spawn(
    port: int, data_dir: Path, key: str, secret: str, workers: int, **extra_env: str
) -> subprocess.Popen:
    env = {
        **os.environ,
        "LRS_ADMIN_KEY": key,
        "LRS_ADMIN_SECRET": secret,
        "LRS_LOG_LEVEL": "warning",
        **extra_env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lrs", "up", "--port", str(port), "--data-dir", str(data_dir),
         "--workers", str(workers)],
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1)
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("lrs up exited during start-up") from None
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("lrs up did not become ready")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of the server: the process and its Python worker processes
    (not the PostgreSQL it runs, which is reported apart)."""
    import psutil

    total = 0.0
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        if "postgres" in process.name():
            continue
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def report(label: str, count: int, elapsed: float, timings) -> None:
    bad = {s: n for s, n in timings.statuses.items() if s >= 300}
    print(
        f"{label:<34} {count / elapsed:>9,.0f} stmt/s   p50 {timings.percentile(50) * 1000:6.1f} ms"
        f"   p99 {timings.percentile(99) * 1000:6.1f} ms   ({count:,} in {elapsed:.1f} s{', errors ' + str(bad) if bad else ''})"
    )


async def send(url, auth, requests: list[tuple[str, str, bytes]], clients: int):
    """Send (method, path, body) requests over ``clients`` connections; returns timings, elapsed."""

    async def work(conn, index, timings):
        for method, path, body in requests[index::clients]:
            start = time.perf_counter()
            status, _ = await conn.request(method, path, body)
            timings.add(time.perf_counter() - start, status)

    return await run_clients(url, auth, clients, work)


async def post_batches(url, auth, population, batches: int, clients: int, size: int = 100):
    bodies = [orjson.dumps([population.statement() for _ in range(size)]) for _ in range(batches)]
    timings, elapsed = await send(url, auth, [("POST", "/statements", b) for b in bodies], clients)
    return batches * size, elapsed, timings


async def post_singles(url, auth, population, count: int, clients: int):
    bodies = [orjson.dumps(population.statement()) for _ in range(count)]
    timings, elapsed = await send(url, auth, [("POST", "/statements", b) for b in bodies], clients)
    return count, elapsed, timings


def _agent(mbox: str) -> str:
    return quote(orjson.dumps({"mbox": mbox}).decode())


def _time(at: datetime) -> str:
    return quote(at.astimezone(UTC).isoformat().replace("+00:00", "Z"))


def query_shapes(population: Population, rng: random.Random, until: datetime) -> dict[str, Callable[[], str]]:
    """Query shape → a function giving the next query string (without ``limit``) of that shape."""

    def lesson() -> str:
        course, lesson = rng.randrange(population.courses), rng.randrange(population.lessons)
        return quote(f"https://lms.example/courses/{course}/lessons/{lesson}")

    def course() -> str:
        return quote(f"https://lms.example/courses/{rng.randrange(population.courses)}")

    def agent() -> str:
        return _agent(rng.choice(population.learners))

    def verb() -> str:
        return quote(rng.choice(VERBS))

    def reg() -> str:
        return rng.choice(population.registrations)

    hour_ago, mid = _time(datetime.now(UTC) - timedelta(hours=1)), _time(until)
    return {
        "no filter": lambda: "",
        "agent": lambda: f"agent={agent()}",
        "verb": lambda: f"verb={verb()}",
        "activity": lambda: f"activity={lesson()}",
        "registration": lambda: f"registration={reg()}",
        "agent+verb": lambda: f"agent={agent()}&verb={verb()}",
        "agent+activity": lambda: f"agent={agent()}&activity={lesson()}",
        "verb+activity": lambda: f"verb={verb()}&activity={lesson()}",
        "activity+registration": lambda: f"activity={lesson()}&registration={reg()}",
        "agent+verb+activity": lambda: f"agent={agent()}&verb={verb()}&activity={lesson()}",
        "agent+related_agents": lambda: f"agent={agent()}&related_agents=true",
        "activity+related_activities": lambda: f"activity={course()}&related_activities=true",
        "verb+activity(course)+related": lambda: f"verb={verb()}&activity={course()}&related_activities=true",
        "agent+since (last hour)": lambda: f"agent={agent()}&since={hour_ago}",
        "agent+until (mid-fill)": lambda: f"agent={agent()}&until={mid}",
        "activity+since+until": lambda: f"activity={lesson()}&since={hour_ago}&until={mid}",
        "agent ascending": lambda: f"agent={agent()}&ascending=true",
        "activity ascending": lambda: f"activity={lesson()}&ascending=true",
        "verb ascending": lambda: f"verb={verb()}&ascending=true",
    }


async def query_matrix(url, auth, population, count: int, until: datetime, deep: int = 5):
    """p50/p99 per query shape (``count`` queries each, one client), then the ``deep``-th
    ``more`` page of activity, agent, verb and agent+verb queries (that page timed alone; a
    shape with fewer pages than that reports none)."""
    rng = random.Random(11)
    results = {}
    for name, make in query_shapes(population, rng, until).items():
        paths = [f"/statements?{make()}&limit=100".replace("?&", "?") for _ in range(count)]
        timings, elapsed = await send(url, auth, [("GET", p, b"") for p in paths], 1)
        results[name] = (timings, elapsed, count)
    shapes = query_shapes(population, rng, until)
    for name in ("activity", "agent", "verb", "agent+verb"):
        make = shapes[name]
        starts = [f"/statements?{make()}&limit=100" for _ in range(max(1, count // deep))]

        async def work(conn, index, timings, starts=starts):
            for path in starts[index::1]:
                for page in range(deep + 1):
                    begin = time.perf_counter()
                    status, body = await conn.request("GET", path)
                    if page == deep:
                        timings.add(time.perf_counter() - begin, status)
                    more = orjson.loads(body).get("more") if status == 200 else None
                    if not more:
                        break
                    path = more[more.index("/statements") :]

        timings, elapsed = await run_clients(url, auth, 1, work)
        results[f"{name}, more page {deep}"] = (timings, elapsed, len(timings.latencies))
    return results


def describe_store(store_url: str | None) -> str:
    """Which store the spawned LRS runs on, as the report names it."""
    if store_url is None:
        return os.environ.get("LRS_DATABASE_URL", "embedded PostgreSQL")
    import pymongo

    with pymongo.MongoClient(store_url, serverSelectionTimeoutMS=5000) as client:
        info = client.server_info()
    if "secantusVersion" in info:
        return (
            f"SecantusDB {info['secantusVersion']}, a Python MongoDB wire-protocol stand-in (reports MongoDB"
            f" {info['version']}; its figures are not MongoDB's)"
        )
    return f"MongoDB {info['version']}"


_SIZE_SQL = """
SELECT c.relname AS name, pg_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname LIKE 'lrs_statement%' AND c.relkind IN ('r', 'i')
UNION ALL
SELECT 'TOAST of ' || c.relname, pg_total_relation_size(c.reltoastrelid)
FROM pg_class c WHERE c.relname = 'lrs_statements' AND c.reltoastrelid <> 0
"""


async def storage_report(dsn: str) -> None:
    """Bytes per statement of every relation of the statement store (WAL left out)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
        count = await conn.fetchval("SELECT count(*) FROM lrs_statements")
        rows = await conn.fetch(_SIZE_SQL)
        document = await conn.fetchval(
            "SELECT avg(octet_length(document::text)) FROM lrs_statements TABLESAMPLE SYSTEM (1)"
        )
    finally:
        await conn.close()
    total = sum(r["bytes"] for r in rows)
    print(f"\nstorage at {count:,} statements (JSON text about {document or 0:.0f} bytes each; WAL left out)")
    for r in sorted(rows, key=lambda r: -r["bytes"]):
        print(
            f"  {r['name']:<34} {r['bytes'] / 2**20:>9,.1f} MB  {r['bytes'] / max(count, 1):>7,.0f} B/statement"
        )
    print(f"  {'total':<34} {total / 2**20:>9,.1f} MB  {total / max(count, 1):>7,.0f} B/statement")


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) so far of the server and every process under it, by role."""
    import psutil

    found: dict[str, float] = {}
    try:
        processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in processes:
        try:
            times, cmdline, name = process.cpu_times(), process.cmdline(), process.name()
        except psutil.NoSuchProcess:
            continue
        if "postgres" in name:
            role = "postgres (all backends)"
        elif "-m" in cmdline[:-1]:  # python -m lrs up / lrs worker / sinks.chdb_process …
            module = cmdline[cmdline.index("-m") + 1 :][:2]
            role = " ".join(module if module[0] == "lrs" else module[:1])
        else:
            role = name
        found[role] = found.get(role, 0.0) + times.user + times.system
    return found


def report_cpu(pid: int | None, before: dict[str, float] | None, elapsed: float) -> None:
    if not pid or before is None:
        return
    after = cpu_seconds(pid)
    mine = time.process_time()
    parts = [f"{role} {after[role] - before.get(role, 0.0):.1f}" for role in sorted(after)]
    print(
        f"{'':<34}   CPU s over {elapsed:.1f} s: {', '.join(parts)}; benchmark client {mine - before['_client']:.1f}"
    )


def cpu_mark(pid: int | None) -> dict[str, float] | None:
    if not pid:
        return None
    return {**cpu_seconds(pid), "_client": time.process_time()}


async def main_async(args) -> None:
    url, auth = args.url, tuple(args.auth.split(":", 1))
    population = Population()
    print(f"LRS {url}  ({os.cpu_count()} CPUs on this machine, client and server share them)")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; store: {args.store_label}\n")
    mark = cpu_mark(args.pid)
    n, t, timings = await post_batches(url, auth, population, args.batches, clients=8)
    report("POST batches of 100 (8 clients)", n, t, timings)
    report_cpu(args.pid, mark, t)
    mark = cpu_mark(args.pid)
    n, t, timings = await post_singles(url, auth, population, args.singles, clients=8)
    report("POST single statements (8 clients)", n, t, timings)
    report_cpu(args.pid, mark, t)
    until = datetime.now(UTC)
    stored = args.batches * 100 + args.singles
    if args.total > stored:
        fill = (args.total - stored) // 100
        half = fill // 2
        n1, t1, _ = await post_batches(url, auth, population, half, clients=8)
        until = datetime.now(UTC)
        n2, t2, timings = await post_batches(url, auth, population, fill - half, clients=8)
        report(f"fill to {args.total:,} (batches of 100)", n1 + n2, t1 + t2, timings)
    print(f"\nquery matrix, limit 100, 1 client, {args.queries} queries a shape"
          f" (until = {until:%H:%M:%S} UTC, mid-fill)")  # fmt: skip
    for name, (timings, elapsed, count) in (
        await query_matrix(url, auth, population, args.queries, until)
    ).items():
        bad = {s: n for s, n in timings.statuses.items() if s >= 300}
        print(
            f"  {name:<32} p50 {timings.percentile(50) * 1000:6.1f} ms   p99 {timings.percentile(99) * 1000:6.1f} ms"
            f"   max {max(timings.latencies, default=float('nan')) * 1000:6.1f} ms   ({count:,}{', errors ' + str(bad) if bad else ''})"
        )
    if args.dsn:
        await storage_report(args.dsn)
    if args.pid:
        print(f"\nserver peak RSS (VmHWM, pid {args.pid} and its workers): {peak_rss_mb(args.pid):.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080/xapi")
    parser.add_argument(
        "--auth", default="bench:bench-secret", help="KEY:SECRET of a credential with scope all"
    )
    parser.add_argument("--pid", type=int, default=None, help="server PID, to report its peak RSS")
    parser.add_argument("--spawn", action="store_true", help="start `lrs up` on a fresh data dir for the run")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="with --spawn: data dir (default: temporary)"
    )
    parser.add_argument("--workers", type=int, default=1, help="with --spawn: server processes")
    parser.add_argument(
        "--store", choices=["postgres", "mongodb"], default="postgres", help="with --spawn: the LRS store"
    )
    parser.add_argument(
        "--mongo-url",
        default=None,
        help="with --store mongodb: a MongoDB replica set (default: the stand-in)",
    )
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--singles", type=int, default=20000)
    parser.add_argument(
        "--total", type=int, default=1_000_000, help="statements stored before the query phase"
    )
    parser.add_argument("--queries", type=int, default=200, help="queries per shape of the matrix")
    parser.add_argument(
        "--keep", action="store_true", help="with --spawn: keep the data directory the run made"
    )
    parser.add_argument(
        "--database-url",
        dest="dsn",
        default=None,
        help="PostgreSQL of the LRS at --url (bytes per statement)",
    )
    args = parser.parse_args()
    args.store_label = "as the LRS at --url is configured"
    made: Path | None = None
    with ExitStack() as stack:
        process = None
        if args.spawn:
            port = 18080
            if args.data_dir is None:
                data_dir = made = Path(tempfile.mkdtemp(prefix="lrs-bench-"))
            else:
                data_dir = args.data_dir
                made = None if data_dir.exists() else data_dir
            if made is not None and not args.keep:
                stack.callback(shutil.rmtree, made, True)
            key, secret = args.auth.split(":", 1)
            env = {}
            if args.store == "mongodb":
                from tests.mongo_server import mongo_url

                env["LRS_STORE"] = args.mongo_url or stack.enter_context(mongo_url(data_dir))
                env["LRS_PIPELINE"] = "false"  # the pipeline reads PostgreSQL
            args.store_label = describe_store(env.get("LRS_STORE"))
            process = spawn(port, data_dir, key, secret, args.workers, **env)
            args.url, args.pid = f"http://127.0.0.1:{port}/xapi", process.pid
            if args.store == "postgres" and "LRS_DATABASE_URL" not in os.environ:
                from lrs.store.postgres.embedded import EmbeddedPostgres

                args.dsn = EmbeddedPostgres(data_dir).dsn
        try:
            asyncio.run(main_async(args))
        finally:
            if process is not None:
                stop_process(process, 60)
            if made is not None:
                print(f"data directory {made} {'kept' if args.keep else 'removed'}")


if __name__ == "__main__":
    main()
