"""Tenants benchmark: ingest and query with 100 tenants against one (docs/tenants.md).

Starts ``lrs up`` (embedded PostgreSQL, pipeline off) on a fresh data directory, creates
``--tenants`` tenants with a credential each, then alternates two phases of the same load, so
both see the same machine: requests spread over every tenant (each request a different tenant
from the one before, round-robin), and requests all of the first tenant. Each phase: ``--clients``
keep-alive connections post batches of ``--batch`` statements for ``--seconds``, then query
``agent`` + ``limit=10`` as fast as they can for ``--seconds``. Prints statements/s, queries/s,
p50/p99 per phase and the ratios. Then the pipeline's side: the outbox the relay reads, over
every tenant (one merged query over the tenants' schemas) against one tenant's own, reading
what was stored in pages of 5,000 (statements/s) and reading when nothing is new (the relay's
idle round, p50/p99). Asserts nothing.

    python -m benchmarks.tenants --tenants 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from lrs.auth.credentials import new_credential
from lrs.runtime import stop_process
from lrs.store import open_stores
from lrs.store.postgres.embedded import EmbeddedPostgres
from lrs.store.postgres.outbox import PostgresOutbox
from streams.relay import READ_LIMIT
from lrs.usecases.tenants import TenantAdmin

from .ingest import spawn
from .loadgen import Connection, Timings
from .pipeline import free_port

AUTH = ("bench", "bench-secret")


async def make_tenants(dsn: str, count: int) -> list[tuple[str, str]]:
    """``count`` tenants (``t000``…) with a credential of scope ``all`` each."""
    backend = await open_stores(dsn, pool_min=1, pool_max=2)

    async def open_tenant(name: str):
        return await open_stores(dsn, pool_min=0, pool_max=2, tenant=name)

    admin, credentials = TenantAdmin(backend.tenants, open_tenant), []
    try:
        for i in range(count):
            await admin.create(f"t{i:03d}")
            credential, secret = new_credential(f"t{i:03d}", ["all"], "urn:bench", tenant=f"t{i:03d}")
            await backend.credentials.save(credential)
            credentials.append((credential.key, secret))
    finally:
        await backend.close()
    return credentials


def batch(agent: str, size: int) -> bytes:
    return orjson.dumps([
        {"actor": {"mbox": agent}, "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
         "object": {"id": f"https://example.org/activities/{uuid.uuid4()}"}}
        for _ in range(size)
    ])  # fmt: skip


async def phase(url: str, credentials: list[tuple[str, str]], clients: int, seconds: float, size: int):
    """Ingest then queries, each for ``seconds``: one connection per credential, ``clients``
    coroutines each taking its own share of them in turn (consecutive requests of a coroutine go
    to different tenants when the credentials are). Returns (statements/s, ingest timings,
    queries/s, query timings)."""
    connections = [Connection(url, c) for c in credentials]
    await asyncio.gather(*(c.open() for c in connections))
    for connection in connections:  # each tenant's first request opens its pools: not timed
        await connection.request("GET", "/statements?limit=1")
    agents = [f"mailto:learner{i}@example.org" for i in range(len(connections))]

    async def drive(timings: Timings, request) -> int:
        done, deadline = 0, time.monotonic() + seconds

        async def client(first: int) -> None:
            nonlocal done
            mine = list(range(first, len(connections), clients))  # its own connections, in turn
            i = 0
            while time.monotonic() < deadline:
                k = mine[i % len(mine)]
                started = time.perf_counter()
                status = await request(connections[k], agents[k])
                timings.add(time.perf_counter() - started, status)
                done += 1
                i += 1

        await asyncio.gather(*(client(i) for i in range(clients)))
        return done

    async def post(connection: Connection, agent: str) -> int:
        return (await connection.request("POST", "/statements", batch(agent, size)))[0]

    async def query(connection: Connection, agent: str) -> int:
        path = f"/statements?agent={orjson.dumps({'mbox': agent}).decode()}&limit=10"
        return (await connection.request("GET", path))[0]

    ingest = Timings()
    started = time.perf_counter()
    posted = await drive(ingest, post) * size
    ingest_rate = posted / (time.perf_counter() - started)
    queries = Timings()
    started = time.perf_counter()
    asked = await drive(queries, query)
    query_rate = asked / (time.perf_counter() - started)
    await asyncio.gather(*(c.close() for c in connections))
    return ingest_rate, ingest, query_rate, queries


async def first(url: str, credentials: list[tuple[str, str]]) -> str:
    timings = Timings()
    for credential in credentials:
        connection = Connection(url, credential)
        await connection.open()
        started = time.perf_counter()
        status, _ = await connection.request("GET", "/statements?limit=1")
        timings.add(time.perf_counter() - started, status)
        await connection.close()
    return f"p50 {timings.percentile(50) * 1000:.1f} ms, max {max(timings.latencies) * 1000:.1f} ms, statuses {timings.statuses}"


def describe(name: str, result) -> str:
    rate, ingest, qrate, queries = result
    return (
        f"{name}: ingest {rate:,.0f} statements/s (POST p50 {ingest.percentile(50) * 1000:.1f} ms,"
        f" p99 {ingest.percentile(99) * 1000:.1f} ms; statuses {ingest.statuses}); queries {qrate:,.0f}/s"
        f" (p50 {queries.percentile(50) * 1000:.1f} ms, p99 {queries.percentile(99) * 1000:.1f} ms;"
        f" statuses {queries.statuses})"
    )


async def outbox_reads(dsn: str, tenant: str | None, rounds: int = 200) -> tuple[int, float, Timings]:
    """Through the pipeline's outbox (``tenant``: that tenant's own instead): how many statements
    and how long reading them all took, and the timings of reads with nothing new."""
    outbox = PostgresOutbox(dsn, tenant)
    try:
        count, after, started = 0, None, time.perf_counter()
        while True:
            page = (await outbox.read(after, READ_LIMIT)).entries
            if not page:
                break
            count, after = count + len(page), page[-1].position
        elapsed = time.perf_counter() - started
        idle = Timings()
        for _ in range(rounds):
            began = time.perf_counter()
            await outbox.read(after, READ_LIMIT)
            idle.add(time.perf_counter() - began, 200)
        return count, elapsed, idle
    finally:
        await outbox.close()


def describe_outbox(name: str, result: tuple[int, float, Timings]) -> str:
    count, elapsed, idle = result
    return (
        f"{name}: {count:,} statements read in {elapsed:.2f} s ({count / elapsed:,.0f}/s); a read with"
        f" nothing new p50 {idle.percentile(50) * 1000:.2f} ms, p99 {idle.percentile(99) * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two phases")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="lrs-bench-tenants-"))
    port = free_port()
    server = spawn(port, data_dir, *AUTH, workers=1, LRS_PIPELINE="false")
    try:
        dsn = EmbeddedPostgres(data_dir).dsn
        started = time.perf_counter()
        credentials = asyncio.run(make_tenants(dsn, args.tenants))
        print(f"{args.tenants} tenants created in {time.perf_counter() - started:.1f} s")
        url = f"http://127.0.0.1:{port}/xapi"
        print(
            f"first request of each tenant (opens its pools in the server): {asyncio.run(first(url, credentials))}"
        )
        many, one = [], []
        for _ in range(args.rounds):
            many.append(asyncio.run(phase(url, credentials, args.clients, args.seconds, args.batch)))
            print(describe(f"{args.tenants} tenants", many[-1]))
            same = [credentials[0]] * len(credentials)  # as many connections, all of the first tenant
            one.append(asyncio.run(phase(url, same, args.clients, args.seconds, args.batch)))
            print(describe("1 tenant   ", one[-1]))
        ingest = sum(r[0] for r in many) / sum(r[0] for r in one)
        queries = sum(r[2] for r in many) / sum(r[2] for r in one)
        print(f"{args.tenants} tenants / 1 tenant: ingest {ingest:.2f}×, queries {queries:.2f}×")
        every = asyncio.run(outbox_reads(dsn, None))
        print(describe_outbox(f"the pipeline's outbox over {args.tenants + 1} tenants", every))
        own = asyncio.run(outbox_reads(dsn, "t000"))
        print(describe_outbox("one tenant's own outbox (t000)", own))
    finally:
        stop_process(server, 60)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
