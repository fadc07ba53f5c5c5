"""Ingest and query benchmark against a running LRS (or one it starts with ``--spawn``).

Prints figures; asserts nothing. Phases:

1. POST batches of 100 statements from 8 concurrent clients: statements/s, latency per batch.
2. POST single statements from 8 concurrent clients: statements/s, p50/p99 latency.
3. Fill the store up to ``--total`` statements (batches) and report the fill rate.
4. GET /statements?agent=…&verb=…&limit=100 from one client: p50/p99 latency at that size.
5. Peak RSS (VmHWM) of the server process.

    python -m benchmarks.ingest --spawn --total 1000000
    python -m benchmarks.ingest --url http://127.0.0.1:8080/xapi --auth KEY:SECRET --pid 1234

``--store mongodb`` (with ``--spawn``) runs the LRS on MongoDB (``LRS_STORE``): the server at
``--mongo-url`` (a replica set), else the SecantusDB stand-in that the tests use, which speaks
MongoDB's protocol but is a Python server: its figures are not MongoDB's. The report names the
store it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import ExitStack
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


async def query(url, auth, population, count: int, clients: int = 1):
    rng = random.Random(11)
    paths = []
    for _ in range(count):
        agent = quote(orjson.dumps({"mbox": rng.choice(population.learners)}).decode())
        paths.append(f"/statements?agent={agent}&verb={quote(rng.choice(VERBS))}&limit=100")
    timings, elapsed = await send(url, auth, [("GET", p, b"") for p in paths], clients)
    return count, elapsed, timings


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


async def main_async(args) -> None:
    url, auth = args.url, tuple(args.auth.split(":", 1))
    population = Population()
    print(f"LRS {url}  ({os.cpu_count()} CPUs on this machine, client and server share them)")
    print(f"store: {args.store_label}\n")
    n, t, timings = await post_batches(url, auth, population, args.batches, clients=8)
    report("POST batches of 100 (8 clients)", n, t, timings)
    n, t, timings = await post_singles(url, auth, population, args.singles, clients=8)
    report("POST single statements (8 clients)", n, t, timings)
    stored = args.batches * 100 + args.singles
    if args.total > stored:
        fill = (args.total - stored) // 100
        n, t, timings = await post_batches(url, auth, population, fill, clients=8)
        report(f"fill to {args.total:,} (batches of 100)", n, t, timings)
    n, t, timings = await query(url, auth, population, args.queries)
    print(
        f"{'GET agent+verb, limit 100 (1 client)':<34} {n / t:>9,.0f} req/s    p50 {timings.percentile(50) * 1000:6.1f} ms"
        f"   p99 {timings.percentile(99) * 1000:6.1f} ms   ({n:,} queries)"
    )
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
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    args.store_label = "as the LRS at --url is configured"
    with ExitStack() as stack:
        process = None
        if args.spawn:
            port = 18080
            data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="lrs-bench-"))
            key, secret = args.auth.split(":", 1)
            env = {}
            if args.store == "mongodb":
                from tests.mongo_server import mongo_url

                env["LRS_STORE"] = args.mongo_url or stack.enter_context(mongo_url(data_dir))
                env["LRS_PIPELINE"] = "false"  # the pipeline reads PostgreSQL
            args.store_label = describe_store(env.get("LRS_STORE"))
            process = spawn(port, data_dir, key, secret, args.workers, **env)
            args.url, args.pid = f"http://127.0.0.1:{port}/xapi", process.pid
        try:
            asyncio.run(main_async(args))
        finally:
            if process is not None:
                stop_process(process, 60)


if __name__ == "__main__":
    main()
