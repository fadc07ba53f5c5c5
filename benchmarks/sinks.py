"""Write-path cost of the Cassandra and MongoDB sinks, without the rest of the pipeline.

Both sinks get the same events: a simulated cohort (``lrs.simulate``: cmi5 sessions, videos in
parts, quizzes) over the last 7 days, flattened by the worker's own code, spread over 4
partitions by learner and applied in takes of ``--take`` statements, as the worker hands them
over. Then the same takes again (a replay after a restart). Prints figures; asserts nothing.

* Cassandra, on the fake session of ``tests/cassandra_fake.py`` (no server runs here): wall time
  and the sink's own CPU time per event (its event loop thread; the fake runs on its own thread
  and its cost is not the sink's), and CQL statements per event by kind.
* MongoDB, on SecantusDB (``tests/mongo_server.py``: a MongoDB wire-protocol server written in
  Python, the tests' stand-in) unless LRS_TEST_MONGO_URL is set: events per second. SecantusDB
  is far slower than MongoDB; the figure bounds the sink's cost from above, it is not MongoDB's.

    python -m benchmarks.sinks                  # 4,000 events, takes of 500
    python -m benchmarks.sinks --events 2000 --take 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from lrs.simulate import Simulation, catalog
from sinks.cassandra import CassandraSink
from sinks.mongodb import MongoSink
from sinks.ports import Batch, Sink
from sinks.catalog import Catalog
from sinks.events import LearningEvent
from streams.enrich import flatten
from streams.locate import Locator
from streams.envelope import partition_of
from sinks.positions import encode
from sinks.settings import CassandraSettings
from streams.settings import CatalogSettings
from tests.cassandra_fake import STAND_IN as CASSANDRA_STAND_IN
from tests.cassandra_fake import FakeCluster, schema_text
from tests.mongo_server import STAND_IN as MONGO_STAND_IN
from tests.mongo_server import mongo_url

PARTITIONS = 4


def cohort(count: int) -> list[LearningEvent]:
    """``count`` events of simulated learners, in store order."""
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=7)
    people = Simulation(catalog(1, 2, video_seconds=120), seed=7, start=start, days=7)
    student = 0
    while len(people.statements) < count:
        student += 1
        people.learn(student)
    statements = sorted(people.statements[:count], key=lambda s: s["timestamp"])
    settings = CatalogSettings()
    resolve = Locator(Catalog(), settings.iri_templates, settings.student_homepage)
    out = []
    for seq, s in enumerate(statements, 1):
        s["stored"] = s["timestamp"]
        stored = datetime.fromisoformat(s["stored"].replace("Z", "+00:00"))
        out.append(flatten(s, encode(stored, seq), resolve, keep_statement=True))
    return out


def takes(events: list[LearningEvent], size: int, epoch: str) -> list[list[Batch]]:
    """Consecutive takes of ``size`` events, each one batch per partition."""
    out = []
    for start in range(0, len(events), size):
        batches: dict[int, Batch] = {}
        for e in events[start : start + size]:
            b = batches.setdefault(partition_of(e.learner_key, PARTITIONS), Batch(0, epoch=epoch))
            b.operations.append(e)
            b.through = e.position
        for partition, b in batches.items():
            b.partition = partition
        out.append(list(batches.values()))
    return out


async def timed(sink: Sink, rounds: Sequence[list[Batch]]) -> tuple[float, float]:
    """Wall and this thread's CPU seconds to apply every take."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for batches in rounds:
        await sink.apply(batches)
    return time.perf_counter() - wall, time.thread_time() - cpu


async def cassandra(events: list[LearningEvent], size: int) -> None:
    fake = FakeCluster(schema_text())
    sink = CassandraSink(fake.connect, CassandraSettings(cassandra_keyspace="bench"), PARTITIONS)
    await sink.start()
    print(f"Cassandra sink on {CASSANDRA_STAND_IN}; {len(events)} events, takes of {size}")
    for label in ("first time", "replay"):
        logged = len(fake.log)
        wall, cpu = await timed(sink, takes(events, size, "e1"))
        kinds = Counter(e.cql.split(" ", 1)[0] for e in fake.log[logged:])
        per_event = sum(kinds.values()) / len(events)
        detail = ", ".join(f"{k} {v / len(events):.2f}" for k, v in kinds.most_common())
        wall_us, cpu_us = wall / len(events) * 1e6, cpu / len(events) * 1e6
        print(f"  {label:10}  {wall_us:7.1f} µs/event wall, {cpu_us:7.1f} µs/event sink CPU;"
              f" {per_event:.2f} CQL statements/event ({detail})")  # fmt: skip
    users = len({e.learner_key for e in events})
    print(f"  ({users} learners; replays read each learner-week partition and rewrite only aggregates)")
    await sink.close()


async def mongodb(events: list[LearningEvent], size: int, url: str, stand_in: bool) -> None:
    sink = MongoSink(url, "bench_sinks", PARTITIONS)
    await sink.start()
    await sink.reset(None, "e0")
    where = MONGO_STAND_IN if stand_in else url.split("@")[-1]
    print(f"MongoDB sink on {where}; {len(events)} events, takes of {size}")
    for label in ("first time", "replay"):
        wall, cpu = await timed(sink, takes(events, size, "e1"))
        cpu_us = cpu / len(events) * 1e6
        print(f"  {label:10}  {len(events) / wall:8.0f} events/s ({cpu_us:.0f} µs/event sink CPU)")
    if stand_in:
        print(
            "  (SecantusDB is a Python server: the server, not the sink, sets this pace;"
            " MongoDB is far faster)"
        )
    await sink.db.client.drop_database(sink.db.name)
    await sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=4000, help="events to apply")
    parser.add_argument("--take", type=int, default=500, help="events per apply (all partitions together)")
    args = parser.parse_args()
    events = cohort(args.events)
    print(f"{len(events)} events of {len({e.learner_key for e in events})} simulated learners")
    asyncio.run(cassandra(events, args.take))
    with (
        tempfile.TemporaryDirectory() as data,
        mongo_url(Path(data)) as url,
    ):  # LRS_TEST_MONGO_URL, else SecantusDB
        asyncio.run(mongodb(events, args.take, url, stand_in="LRS_TEST_MONGO_URL" not in os.environ))


if __name__ == "__main__":
    main()
