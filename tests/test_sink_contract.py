"""Contract tests of the sink port (``sinks.ports.Sink``), run against every sink adapter.

What the worker relies on: applying is idempotent (the relay re-sends after any restart),
a retraction takes a statement back exactly once, positions follow the relay's epochs, and a
replay rebuilds exactly what was stored from its instant on (beside the live tables where the
sink can). Each adapter exposes which
statements it currently counts; the tests compare that against what they sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sinks.clickhouse import ClickHouseSink, connect
from sinks.mongodb import MongoSink
from sinks.ports import Batch, Retraction, Sink
from sinks.progress import ProgressSink
from sinks.catalog import Catalog, Lesson
from sinks.events import LearningEvent, Location
from sinks.positions import encode, since_position

from .cassandra_fake import cassandra_sink
from .pipeline_stack import create_database

PARTITIONS = 4
START = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


class Harness:
    def __init__(
        self, runner: asyncio.Runner, sink: Sink, counted: Callable[[], Awaitable[dict[str, int]]]
    ) -> None:
        self.runner, self.sink, self._counted = runner, sink, counted
        self.seq = 0

    def __call__(self, coroutine):
        return self.runner.run(coroutine)

    def events(self, count: int, partition: int = 0, at: datetime | None = None, step_us: int = 1) -> list:
        """``count`` events of one learner stored ``step_us`` µs apart (from ``at``)."""
        out = []
        moment = at or START + timedelta(seconds=self.seq)
        for _ in range(count):
            self.seq += 1
            moment += timedelta(microseconds=step_us)
            out.append(LearningEvent(
                statement_id=str(uuid.uuid4()), position=encode(moment, self.seq), learner_key=f"learner:{partition}",
                student_id=1 + partition, timestamp=moment, stored=moment, verb_id="http://adlnet.gov/expapi/verbs/experienced",
                verb_class="experienced", activity_id="https://lms.example/courses/1/lessons/10", activity_type="",
                location=Location(1, None, 10), duration_seconds=30.0,
            ))  # fmt: skip
        return out

    def apply(self, *batches: Batch) -> None:
        self(self.sink.apply(list(batches)))

    def counted(self) -> set[str]:
        """Statements the sink counts; each must count exactly once."""
        found = self(self._counted())
        assert set(found.values()) <= {1}, (
            f"counted more than once: {[k for k, v in found.items() if v != 1]}"
        )
        return set(found)

    def watermarks(self) -> list[str]:
        return self(self.sink.watermarks(PARTITIONS))


def batch(partition: int, operations: list, through: str | None = None, epoch: str = "e1") -> Batch:
    last = through if through is not None else max((op.position for op in operations), default="")
    return Batch(partition, list(operations), last, epoch)


def _catalog() -> Catalog:
    catalog = Catalog()
    catalog.add_course(1)
    catalog.add_lesson(Lesson(10, None, 1, "reading", None))
    return catalog


def _clickhouse(runner: asyncio.Runner, tmp: Path, request: pytest.FixtureRequest):
    sink = ClickHouseSink(lambda: connect(None, tmp), PARTITIONS)

    async def counted() -> dict[str, int]:
        rows = await sink.query(
            "SELECT toString(statement_id), sum(sign) FROM learning_events GROUP BY statement_id HAVING sum(sign) != 0"
        )
        return {r[0]: r[1] for r in rows}

    return sink, counted


def _progress(runner: asyncio.Runner, tmp: Path, request: pytest.FixtureRequest):
    dsn = runner.run(create_database(request.getfixturevalue("pg_dsn"), "sink"))
    sink = ProgressSink(dsn, _catalog, PARTITIONS)

    async def counted() -> dict[str, int]:
        rows = await sink._pool.fetch(
            "SELECT statement_id::text, count(*) FROM lms.learning_facts WHERE NOT retracted GROUP BY 1"
        )
        return {r[0]: r[1] for r in rows}

    return sink, counted


def _mongodb(runner: asyncio.Runner, tmp: Path, request: pytest.FixtureRequest):
    """Against the session's MongoDB (``mongo_dsn``: SecantusDB unless LRS_TEST_MONGO_URL), a
    database per test. Counted: the statements' facts; the statement documents and the engagement
    rollups must agree with them."""
    sink = MongoSink(request.getfixturevalue("mongo_dsn"), f"sink_{uuid.uuid4().hex[:8]}", PARTITIONS)

    async def counted() -> dict[str, int]:
        facts = {d["_id"] async for d in sink.db.learning_progress.find({}, {"_id": 1})}
        kept = {d["_id"] async for d in sink.db.xapi_statements.find({"voided": {"$ne": True}}, {"_id": 1})}
        assert kept == facts, "statement documents and facts disagree"
        engaged = [d async for d in sink.db.course_engagement.find({}, {"events": 1})]
        assert sum(d["events"] for d in engaged) == len(facts), "engagement rollups disagree with the facts"
        return dict.fromkeys(facts, 1)

    return sink, counted


def _cassandra(runner: asyncio.Runner, tmp: Path, request: pytest.FixtureRequest):
    """Against the fake session (tests/cassandra_fake.py), or a cluster at LRS_TEST_CASSANDRA_HOSTS.
    Counted: the statements' fact rows not voided; daily engagement must agree."""
    sink = cassandra_sink(PARTITIONS)

    async def counted() -> dict[str, int]:
        rows = await sink.query("SELECT statement_id, voided FROM statement_facts")
        facts = [str(r.statement_id) for r in rows if not r.voided]
        days = await sink.query("SELECT total_events FROM user_engagement")
        assert sum(r.total_events for r in days) == len(facts), "user_engagement disagrees with the facts"
        return {i: facts.count(i) for i in facts}

    return sink, counted


ADAPTERS = {"clickhouse": _clickhouse, "progress": _progress, "mongodb": _mongodb, "cassandra": _cassandra}


@pytest.fixture(params=sorted(ADAPTERS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with asyncio.Runner() as runner:
        sink, counted = ADAPTERS[request.param](runner, tmp_path, request)
        runner.run(sink.start())
        yield Harness(runner, sink, counted)
        runner.run(sink.close())


def ids(events: list[LearningEvent]) -> set[str]:
    return {e.statement_id for e in events}


def test_applying_twice_counts_once_and_records_each_partition(harness: Harness):
    first, second = harness.events(5, partition=0), harness.events(3, partition=2)
    harness.apply(batch(0, first), batch(2, second))
    harness.apply(batch(0, first), batch(2, second))  # the relay re-sent both after a restart
    harness.apply(batch(0, first[2:]))  # and a part again, alone
    assert harness.counted() == ids(first + second)
    assert harness.watermarks() == [first[-1].position, "", second[-1].position, ""]


def test_a_large_take_is_applied_whole(harness: Harness):
    """Thousands of statements in one call (a backlog after downtime) — no query-size limits."""
    events = [harness.events(2500, partition=p) for p in range(PARTITIONS)]
    harness.apply(*(batch(p, events[p]) for p in range(PARTITIONS)))
    harness.apply(*(batch(p, events[p]) for p in range(PARTITIONS)))
    assert harness.counted() == set().union(*map(ids, events))


def test_statements_stored_in_the_same_second_are_told_apart(harness: Harness):
    """Idempotency must not blur sub-second instants: later statements in the same second as
    already applied ones are still applied."""
    at = START + timedelta(days=3)
    early = harness.events(3, at=at, step_us=1000)
    harness.apply(batch(0, early))
    late = harness.events(3, at=early[-1].stored, step_us=200_000)  # same second, later
    harness.apply(batch(0, early + late))
    assert harness.counted() == ids(early + late)


def test_retraction_takes_a_statement_back_once(harness: Harness):
    events = harness.events(3)
    harness.apply(batch(0, events))
    void = Retraction(events[1].statement_id, harness.events(1)[0].position)
    harness.apply(batch(0, [void]))
    harness.apply(batch(0, [void]))  # re-sent
    harness.apply(batch(0, events))  # the voided statement re-sent (a replay of older messages)
    assert harness.counted() == ids(events) - {events[1].statement_id}


def test_a_retraction_in_the_same_batch_cancels_its_statement(harness: Harness):
    events = harness.events(2)
    void = Retraction(events[0].statement_id, harness.events(1)[0].position)
    harness.apply(batch(0, [*events, void]))
    assert harness.counted() == {events[1].statement_id}


def test_positions_follow_relay_epochs(harness: Harness):
    events = harness.events(4)
    harness.apply(batch(0, events, epoch="e2"))
    harness.apply(batch(0, events[:2], epoch="e2"))  # same epoch, lower: the position stays
    assert harness.watermarks()[0] == events[-1].position
    harness.apply(batch(0, [], through=events[0].position, epoch="e1"))  # older epoch: ignored
    assert harness.watermarks()[0] == events[-1].position
    harness.apply(batch(0, [], through=events[1].position, epoch="e3"))  # the relay rewound
    assert harness.watermarks()[0] == events[1].position


def test_a_replay_rebuilds_what_was_stored_from_its_instant(harness: Harness):
    """``begin_replay`` then the relay's statements sent again (one of them voided meanwhile, so not
    sent) and heartbeats past the target: the sink ends up counting exactly what the store holds.
    A sink that rebuilds beside its tables (``replay_status`` reports it) shows the old state until
    the rebuild has caught up in every partition, then the new one at once."""
    at = START + timedelta(days=9)
    before = harness.events(3, at=at, step_us=100_000)
    after = harness.events(3, at=before[-1].stored, step_us=100_000)  # some in the same second
    harness.apply(batch(0, before + after))
    since, target = after[0].stored, encode(after[-1].stored + timedelta(seconds=1), 0)
    harness(harness.sink.begin_replay(since, "e9", target))
    beside = harness(harness.sink.replay_status()) is not None
    if beside:
        assert harness.counted() == ids(before + after)
    assert harness.watermarks()[0] == since_position(since)  # a restarted relay re-sends the rest
    harness.apply(batch(0, after[1:], epoch="e9"))
    harness.apply(
        batch(0, [], through="00000000000000000.0000000000000000001", epoch="e8")
    )  # before the replay
    if beside:
        assert harness.counted() == ids(before + after), "swapped in before every partition caught up"
        assert harness(harness.sink.replay_status()).position < target
    harness.apply(*(batch(p, [], through=target, epoch="e9") for p in range(PARTITIONS)))
    assert harness.counted() == ids(before + after[1:])
    assert harness(harness.sink.replay_status()) is None
    assert harness.watermarks() == [target] * PARTITIONS

    harness(harness.sink.begin_replay(None, "e10", target))  # everything, and nothing is sent again
    harness.apply(*(batch(p, [], through=target, epoch="e10") for p in range(PARTITIONS)))
    assert harness.counted() == set() and harness.watermarks() == [target] * PARTITIONS


def test_statements_keep_arriving_during_a_replay(harness: Harness):
    """New statements applied while a rebuild runs count once, before and after the swap."""
    old = harness.events(3)
    harness.apply(batch(0, old))
    target = encode(old[-1].stored + timedelta(seconds=1), 0)
    harness(harness.sink.begin_replay(None, "e9", target))
    new = harness.events(2, at=old[-1].stored + timedelta(seconds=2))
    harness.apply(batch(1, new, epoch="e1"))  # sent before the relay rewound
    assert harness.counted() >= ids(new)
    harness.apply(batch(0, old, epoch="e9"), batch(1, new, epoch="e9"))  # the rewound relay
    harness.apply(*(batch(p, [], through=new[-1].position, epoch="e9") for p in range(PARTITIONS)))
    assert harness.counted() == ids(old + new)
    assert harness(harness.sink.replay_status()) is None
