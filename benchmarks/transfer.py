"""Export and import rates (statements/s) and the peak memory of ``lrs export`` / ``lrs import``.

Starts an embedded PostgreSQL in a temporary directory with two empty databases (a source and a
target LRS store), writes an NDJSON file of ``--count`` generated statements (one in
``--attachment-every`` with attachment data), then times, each as the ``lrs`` program:

1. ``lrs import FILE`` into the source (statements stored as the importing credential);
2. ``lrs export`` of the whole source (plain NDJSON, or gzip with ``--gzip``);
3. ``lrs import`` of that export into the target (``--keep-authority``, scope ``import``);
4. the same import again: every statement already there, nothing stored.

For each: wall time, statements/s and the peak resident memory (``ru_maxrss`` of the command's
process; the PostgreSQL server it talks to is not counted). Prints figures; asserts nothing.

Then, with ``--compare-post 1 4``, the same statements POSTed to an ``lrs up`` (no pipeline) on
a new database in batches of ``--batch`` from 1 and from 4 concurrent clients: the batch ingest
rate on the same machine at the same time, to compare the import's with.

    python -m benchmarks.transfer --count 200000 --compare-post 1 4
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import orjson

KEY, SECRET = "bench", "bench-secret"
IMPORTER, IMPORTER_SECRET = "bench-importer", "bench-importer-secret"
VERBS = [
    "launched",
    "initialized",
    "experienced",
    "progressed",
    "completed",
    "passed",
    "failed",
    "terminated",
]


def generate(path: Path, count: int, attachment_every: int) -> int:
    """``count`` statements as export records, written as they are made; returns the file size."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    namespace = uuid.UUID("6f1c3b2e-9a57-4d0e-8f7a-0b9d8c1e2f30")
    with open(path, "wb") as out:
        out.write(orjson.dumps({"lrs-export": 1, "exported": start.isoformat(), "filters": {}}) + b"\n")
        for n in range(count):
            learner, course = n % 5000, n % 40
            statement = {
                "id": str(uuid.uuid5(namespace, str(n))),
                "actor": {"objectType": "Agent", "mbox": f"mailto:learner{learner}@bench.example"},
                "verb": {"id": f"http://adlnet.gov/expapi/verbs/{VERBS[n % len(VERBS)]}"},
                "object": {"objectType": "Activity",
                           "id": f"https://lms.example/courses/{course}/lessons/{n % 25}"},
                "context": {"registration": str(uuid.uuid5(namespace, f"reg{learner}-{course}")),
                            "contextActivities": {"parent": [{"id": f"https://lms.example/courses/{course}"}]}},
                "result": {"score": {"scaled": (n % 100) / 100}, "duration": f"PT{n % 600}S"},
                "timestamp": (start + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
            }  # fmt: skip
            record: dict = {"statement": statement}
            if attachment_every and n % attachment_every == 0:
                content = f"certificate {n} ".encode() * 64
                statement["attachments"] = [{
                    "usageType": "http://id.tincanapi.com/attachment/certificate-of-completion",
                    "display": {"en-US": "certificate"}, "contentType": "application/pdf",
                    "length": len(content), "sha2": hashlib.sha256(content).hexdigest(),
                }]  # fmt: skip
                record["attachments"] = [{"sha2": statement["attachments"][0]["sha2"],
                                          "contentType": "application/pdf",
                                          "content": base64.b64encode(content).decode()}]  # fmt: skip
            out.write(orjson.dumps(record) + b"\n")
    return path.stat().st_size


async def create_databases(dsn: str, *names: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    head, _, query = dsn.partition("?")
    return [f"{head.rsplit('/', 1)[0]}/{name}?{query}" for name in names]


def lrs(database: str, *args: str, quiet: bool = True) -> tuple[float, float, str]:
    """Run ``lrs ARGS`` on ``database``: (seconds, peak RSS in MB of the command, its last line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
    env.update(LRS_DATABASE_URL=database, LRS_LMS_DATABASE_URL=database, LRS_LOG_LEVEL="warning")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "lrs", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL if quiet else None)  # fmt: skip
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"lrs {' '.join(args)} failed ({process.returncode}):\n{output}")
    lines = output.strip().splitlines()
    return seconds, usage.ru_maxrss / 1024, lines[-1] if lines else ""


async def post_file(url: str, path: Path, batch: int, clients: int) -> int:
    """POST the statements of ``path`` to ``url`` in batches of ``batch`` from ``clients``
    concurrent clients (each batch as JSON, without the attachment records); how many."""
    import httpx

    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=clients * 2)
    sent = 0

    async def client() -> None:
        nonlocal sent
        async with httpx.AsyncClient(auth=(KEY, SECRET), timeout=300,
                                     headers={"X-Experience-API-Version": "1.0.3",
                                              "Content-Type": "application/json"}) as http:  # fmt: skip
            while (body := await queue.get()) is not None:
                response = await http.post(url + "/statements", content=body)
                if response.status_code != 200:
                    raise SystemExit(f"POST /statements: {response.status_code} {response.text[:300]}")
                sent += len(response.json())

    workers = [asyncio.create_task(client()) for _ in range(clients)]
    pending: list[bytes] = []
    with open(path, "rb") as lines:
        next(lines)
        for line in lines:
            record = orjson.loads(line)
            st = record["statement"]
            if "attachments" in st:  # their data travels in multipart requests: left out here
                continue
            pending.append(orjson.dumps(st))
            if len(pending) == batch:
                await queue.put(b"[" + b",".join(pending) + b"]")
                pending = []
    if pending:
        await queue.put(b"[" + b",".join(pending) + b"]")
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    return sent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(database: str, port: int) -> subprocess.Popen:
    import urllib.request

    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
    env.update(LRS_DATABASE_URL=database, LRS_LMS_DATABASE_URL=database, LRS_LOG_LEVEL="warning",
               LRS_PIPELINE="false", LRS_ADMIN_KEY=KEY, LRS_ADMIN_SECRET=SECRET)  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "lrs", "up", "--port", str(port)], env=env)
    deadline = time.monotonic() + 120
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--attachment-every", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000, help="lrs import --batch")
    parser.add_argument("--gzip", action="store_true", help="export gzip-compressed")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--compare-post", type=int, nargs="*", default=[], metavar="CLIENTS",
                        help="also POST the generated statements in batches of --batch to an lrs up on a"
                        " new database, with each number of concurrent clients: the batch ingest rate")  # fmt: skip
    args = parser.parse_args()

    from lrs.databases import embedded_postgres

    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        work_dir = Path(work)
        made = time.monotonic()
        size = generate(work_dir / "generated.ndjson", args.count, args.attachment_every)
        print(
            f"generated {args.count:,} statements ({size / 1e6:.0f} MB) in {time.monotonic() - made:.0f} s",
            flush=True,
        )
        with embedded_postgres(work_dir / "pg") as dsn:
            source, target = asyncio.run(create_databases(dsn, "bench_source", "bench_target"))
            lrs(source, "credentials", "create", "--name", "bench", "--scope", "all", "--key", KEY,
                "--secret", SECRET)  # fmt: skip
            lrs(target, "credentials", "create", "--name", "importer", "--scope", "import", "--scope", "define",
                "--key", IMPORTER, "--secret", IMPORTER_SECRET)  # fmt: skip
            exported = work_dir / ("export.ndjson.gz" if args.gzip else "export.ndjson")
            phases = [
                ("import a file (new store)", source,
                 ("import", str(work_dir / "generated.ndjson"), "--as", KEY, "--batch", str(args.batch))),
                ("export" + (" (gzip)" if args.gzip else ""), source, ("export", str(exported))),
                ("import the export (keep authority)", target,
                 ("import", str(exported), "--as", IMPORTER, "--keep-authority", "--batch", str(args.batch))),
                ("re-import (nothing new)", target,
                 ("import", str(exported), "--as", IMPORTER, "--keep-authority", "--batch", str(args.batch))),
            ]  # fmt: skip
            print(f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                  f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, embedded PostgreSQL")  # fmt: skip
            for label, database, command in phases:
                seconds, peak, last = lrs(database, *command)
                print(f"{label:38} {seconds:8.1f} s {args.count / seconds:10,.0f} statements/s"
                      f"  peak RSS {peak:6.0f} MB  | {last}", flush=True)  # fmt: skip
                if command[0] == "export":
                    print(f"{'':38} export file {exported.stat().st_size / 1e6:.0f} MB", flush=True)
            for clients in args.compare_post:
                (database,) = asyncio.run(create_databases(dsn, f"bench_post_{clients}"))
                port = free_port()
                server = serve(database, port)
                try:
                    started = time.monotonic()
                    sent = asyncio.run(post_file(f"http://127.0.0.1:{port}/xapi",
                                                 work_dir / "generated.ndjson", args.batch, clients))  # fmt: skip
                    seconds = time.monotonic() - started
                finally:
                    server.terminate()
                    server.wait(60)
                print(f"{f'POST batches of {args.batch}, {clients} clients':38} {seconds:8.1f} s"
                      f" {sent / seconds:10,.0f} statements/s  ({sent:,} statements)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
