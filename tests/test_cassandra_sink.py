"""The Cassandra sink's tables and values: seed 004's shapes, what a small known set of
statements writes, voiding, replays, resets, TTLs and the learner history (also as a worker page).

Runs against a real cluster when LRS_TEST_CASSANDRA_HOSTS is set, else against the fake session
(tests/cassandra_fake.py); the tests of the request machinery (bounded concurrency, retries,
paging) and of the fake's own checks always use the fake.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from dataclasses import replace
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cassandra import InvalidRequest, OperationTimedOut
from pydantic import ValidationError

from sinks.cassandra import CassandraSink, Requests, user_uuid
from sinks.catalog import Catalog, Lesson
from sinks.ports import Retraction
from streams.app import create_app
from streams.pipeline import Pipeline
from sinks.positions import encode
from sinks.settings import CassandraSettings
from streams.settings import CatalogSettings, StreamSettings

from .cassandra_fake import FakeCluster, cassandra_sink, parse_schema, real_cluster_hosts, schema_text
from .sink_events import batch, events, key_of, lesson, quiz, statement, student

ADA, BOB = student(1), student(2)
MONDAY = datetime(2026, 5, 4, tzinfo=timezone.utc)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


def scenario() -> dict[str, Any]:
    """Ada's week in two courses and a statement of the next week; Bob on the same lesson."""
    L10, L11, Q5, L20 = lesson(1, 10), lesson(1, 11), quiz(1, 5), lesson(2, 20)
    made = events([
        statement(ADA, at(0, 9, 10), "experienced", L10, seconds=300, session="s1"),
        statement(ADA, at(0, 9, 40), "completed", L10, seconds=120, session="s1"),
        statement(ADA, at(0, 14, 5), "passed", Q5, seconds=60, scaled=0.8, session="s2"),
        statement(ADA, at(2, 10), "experienced", L11, seconds=600, session="s3"),
        statement(ADA, at(2, 10, 30), "completed", L20, seconds=90, session="s3"),
        statement(ADA, at(7, 8), "completed", L11, seconds=30),
        statement(BOB, at(0, 9, 15), "experienced", L10, seconds=200),
        statement(BOB, at(0, 9, 20), "failed", Q5, seconds=30, scaled=0.4),
    ])  # fmt: skip
    names = ["a1", "a2", "a3", "a4", "a5", "a6", "b1", "b2"]
    return dict(zip(names, made, strict=True))


async def snapshot(sink: CassandraSink) -> dict[str, Any]:
    """Every aggregate row, by key."""
    engagement = {
        (r.user_id, r.date.date()): (r.total_events, r.unique_pages, r.session_count, r.total_time_minutes,
                                     r.engagement_score)
        for r in await sink.query("SELECT * FROM user_engagement")
    }  # fmt: skip
    progress = {
        (r.user_id, r.subject, r.week_start.date()):
            (r.lessons_completed, r.time_spent_minutes, r.average_score, set(r.topics_mastered or ()))
        for r in await sink.query("SELECT * FROM learning_progress")
    }  # fmt: skip
    views = {
        (r.date.date(), r.hour, r.page): r.view_count
        for r in await sink.query("SELECT * FROM page_view_stats")
    }
    return {"engagement": engagement, "progress": progress, "views": views}


A, B = user_uuid(key_of(ADA)), user_uuid(key_of(BOB))
D0, D2, D7 = date(2026, 5, 4), date(2026, 5, 6), date(2026, 5, 11)

EXPECTED = {
    "engagement": {
        # events, pages, sessions, minutes, score = minutes + 2 × pages + 5 × completions
        (A, D0): (3, 2, 2, 8, 8 + 4 + 10.0),
        (A, D2): (2, 2, 1, 11, 11 + 4 + 5.0),
        (A, D7): (1, 1, 0, 0, 0 + 2 + 5.0),
        (B, D0): (2, 2, 0, 3, 3 + 4 + 0.0),
    },
    "progress": {
        (A, "course:1", D0): (1, 18, 80.0, {"lesson:10", "quiz:5"}),
        (A, "course:2", D0): (1, 1, None, {"lesson:20"}),
        (A, "course:1", D7): (1, 0, None, {"lesson:11"}),
        (B, "course:1", D0): (0, 3, 40.0, set()),
    },
    "views": {
        (D0, 9, lesson(1, 10)): 3,
        (D0, 9, quiz(1, 5)): 1,
        (D0, 14, quiz(1, 5)): 1,
        (D2, 10, lesson(1, 11)): 1,
        (D2, 10, lesson(2, 20)): 1,
        (D7, 8, lesson(1, 11)): 1,
    },
}


class Run:
    def __init__(self, runner: asyncio.Runner, sink: CassandraSink) -> None:
        self.runner, self.sink = runner, sink

    def __call__(self, coroutine):
        return self.runner.run(coroutine)

    def apply(self, *batches) -> None:
        self(self.sink.apply(list(batches)))

    def snapshot(self) -> dict[str, Any]:
        return self(snapshot(self.sink))


def _started(sink: CassandraSink) -> Iterator[Run]:
    with asyncio.Runner() as runner:
        runner.run(sink.start())
        yield Run(runner, sink)
        runner.run(sink.close())


@pytest.fixture
def run() -> Iterator[Run]:
    """The sink on a real cluster (LRS_TEST_CASSANDRA_HOSTS) or on the fake."""
    yield from _started(cassandra_sink(4))


@pytest.fixture
def fake() -> FakeCluster:
    return FakeCluster(schema_text())


@pytest.fixture
def on_fake(fake: FakeCluster) -> Iterator[Run]:
    """The sink on the fake, always (for what only the fake can show)."""
    yield from _started(cassandra_sink(4, cluster=fake))


def the_scenario(run: Run) -> dict[str, Any]:
    made = scenario()
    ada = [e for name, e in made.items() if name.startswith("a")]
    bob = [e for name, e in made.items() if name.startswith("b")]
    run.apply(batch(0, ada), batch(1, bob))
    return made


# --- shapes --------------------------------------------------------------------------------------

SEED_TABLES = {
    "user_engagement": (
        {"user_id": "uuid", "date": "date", "total_events": "bigint", "unique_pages": "int",
         "session_count": "int", "total_time_minutes": "int", "engagement_score": "double"},
        ("user_id",), ("date",), {"date"}, 0,
    ),
    "learning_progress": (
        {"user_id": "uuid", "subject": "text", "week_start": "date", "lessons_completed": "int",
         "time_spent_minutes": "int", "average_score": "double", "topics_mastered": "set<text>"},
        ("user_id", "subject"), ("week_start",), {"week_start"}, 0,
    ),
    "page_view_stats": (  # the seed's counter is an absolute bigint: replays must not add up
        {"date": "date", "hour": "int", "page": "text", "view_count": "bigint"},
        ("date",), ("hour", "page"), {"hour"}, 0,
    ),
    "events": (
        {"partition_key": "text", "event_time": "timestamp", "event_id": "uuid", "event_type": "text",
         "user_id": "uuid", "properties": "map<text,text>"},
        ("partition_key",), ("event_time", "event_id"), {"event_time"}, 604800,
    ),
}  # fmt: skip


def shapes(run: Run) -> dict[str, tuple]:
    """(columns, partition key, clustering, descending columns, default TTL) per table, as the
    cluster reports them (system_schema), or as the fake holds them."""
    if not real_cluster_hosts():
        session = run.sink.session
        return {name: t.shape() for (ks, name), t in session.cluster.tables.items() if ks == session.keyspace}
    keyspace = run.sink.settings.cassandra_keyspace
    columns = run(run.sink.query(
        "SELECT table_name, column_name, kind, position, clustering_order, type FROM system_schema.columns"
        " WHERE keyspace_name = ?", (keyspace,),
    ))  # fmt: skip
    ttls = run(run.sink.query(
        "SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = ?",
        (keyspace,),
    ))  # fmt: skip
    found: dict[str, tuple] = {}
    for table in {c.table_name for c in columns}:
        mine = [c for c in columns if c.table_name == table]
        keys = {kind: tuple(c.column_name for c in sorted(mine, key=lambda c: c.position) if c.kind == kind)
                for kind in ("partition_key", "clustering")}  # fmt: skip
        found[table] = (
            {c.column_name: c.type.replace(" ", "") for c in mine}, keys["partition_key"], keys["clustering"],
            frozenset(c.column_name for c in mine if c.clustering_order == "desc"),
            next(t.default_time_to_live for t in ttls if t.table_name == table),
        )  # fmt: skip
    return found


def test_seed_tables_have_the_seed_shapes(run: Run):
    found = shapes(run)
    for table, (columns, partition, clustering, descending, ttl) in SEED_TABLES.items():
        assert found[table] == (columns, partition, clustering, frozenset(descending), ttl), table
    assert set(found) == set(parse_schema(schema_text())), "every table of the schema file is created"


# --- values --------------------------------------------------------------------------------------


def test_a_known_week_writes_exactly_these_aggregates(run: Run):
    the_scenario(run)
    assert run.snapshot() == EXPECTED


def test_two_tenants_with_the_same_ids_keep_apart(run: Run):
    """The week in the default tenant and again in tenant acme with the same statement ids,
    learners and activities, in the same batches: each tenant's rows are the single-tenant ones
    under its own keys; acme voiding a statement leaves the default tenant's."""
    made = scenario()
    acme = {name: replace(e, tenant="acme") for name, e in made.items()}
    mine = [n for n in made if n.startswith("a")]
    run.apply(
        batch(0, [e for n in mine for e in (made[n], acme[n])]),
        batch(1, [e for n in ("b1", "b2") for e in (made[n], acme[n])]),
    )
    users = {A: user_uuid(key_of(ADA), "acme"), B: user_uuid(key_of(BOB), "acme")}
    assert not set(users.values()) & {A, B}
    in_acme = {
        "engagement": {(users[u], d): v for (u, d), v in EXPECTED["engagement"].items()},
        "progress": {(users[u], s, w): v for (u, s, w), v in EXPECTED["progress"].items()},
        "views": {(d, h, f"acme/{p}"): v for (d, h, p), v in EXPECTED["views"].items()},
    }
    assert run.snapshot() == {k: EXPECTED[k] | in_acme[k] for k in EXPECTED}

    run.apply(batch(0, [Retraction(made["a6"].statement_id, encode(at(8, 0), 1), tenant="acme")]))
    after = run.snapshot()
    assert (A, D7) in after["engagement"] and (users[A], D7) not in after["engagement"]
    assert (
        after["views"][(D7, 8, lesson(1, 11))] == 1 and (D7, 8, f"acme/{lesson(1, 11)}") not in after["views"]
    )
    history = run(run.sink.learner_history(key_of(ADA), days=14, until=D7, tenant="acme"))
    assert history["user_id"] == str(users[A]) and history["days"][0]["date"] != D7.isoformat()


def test_replaying_changes_no_aggregate_and_writes_no_statement_rows(on_fake: Run, fake: FakeCluster):
    made = the_scenario(on_fake)
    void = Retraction(made["a6"].statement_id, encode(at(8, 0), 1))
    on_fake.apply(batch(0, [void]))
    before, logged = on_fake.snapshot(), len(fake.log)
    on_fake.apply(
        batch(0, [e for n, e in made.items() if n.startswith("a")]), batch(1, [made["b1"], made["b2"]])
    )
    on_fake.apply(batch(0, [void]))  # the retraction re-sent
    assert on_fake.snapshot() == before
    per_statement = ("statement_facts", "page_views", "statement_index", "statements_by_stored", "events")
    inserted = {e.cql.split()[2] for e in fake.log[logged:] if e.cql.startswith("INSERT")}
    assert not inserted & set(per_statement)  # only aggregates and watermarks are written again


def test_voiding_takes_a_statement_out_of_every_aggregate_and_keeps_it_out(run: Run):
    made = the_scenario(run)
    run.apply(batch(0, [Retraction(made["a2"].statement_id, encode(at(1, 0), 1))]))  # Ada's completion of L10
    run.apply(
        batch(0, [Retraction(made["a6"].statement_id, encode(at(8, 0), 2))])
    )  # her only statement of D7
    run.apply(batch(0, [made["a2"], made["a6"]]))  # both sent again by a replay of older messages
    expected = {
        "engagement": EXPECTED["engagement"] | {(A, D0): (2, 2, 2, 6, 6 + 4 + 5.0)},
        "progress": EXPECTED["progress"] | {(A, "course:1", D0): (0, 16, 80.0, {"quiz:5"})},
        "views": EXPECTED["views"] | {(D0, 9, lesson(1, 10)): 2},
    }
    del expected["engagement"][(A, D7)], expected["progress"][(A, "course:1", D7)]
    del expected["views"][(D7, 8, lesson(1, 11))]
    assert run.snapshot() == expected


def test_a_statement_voided_in_the_same_call_from_another_partition_never_counts(run: Run):
    made = scenario()
    void = Retraction(made["b1"].statement_id, encode(at(0, 12), 1))
    run.apply(
        batch(0, [void]), batch(1, [made["b1"], made["b2"]])
    )  # the voider's batch is another partition's
    assert run.snapshot()["engagement"] == {(B, D0): (1, 1, 0, 0, 0 + 2 + 0.0)}


def test_reset_forgets_from_its_instant_and_the_replay_rebuilds_the_same(run: Run):
    made = the_scenario(run)
    since = made["a4"].stored  # a4, a5 and a6 were stored from then on
    run(run.sink.reset(since, "e2"))
    assert run.snapshot() == {
        "engagement": {k: v for k, v in EXPECTED["engagement"].items() if k[1] == D0},
        "progress": {
            (A, "course:1", D0): (1, 8, 80.0, {"lesson:10", "quiz:5"}),
            (B, "course:1", D0): (0, 3, 40.0, set()),
        },
        "views": {k: v for k, v in EXPECTED["views"].items() if k[0] == D0},
    }  # fmt: skip
    run.apply(batch(0, [made["a4"], made["a5"], made["a6"]], epoch="e2"))
    assert run.snapshot() == EXPECTED


def test_recent_statements_are_events_that_expire_7_days_after_they_happened(run: Run):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    recent, old = events([
        statement(ADA, now - timedelta(days=2), "experienced", lesson(1, 10), seconds=5, session="s9",
                  platform="web"),
        statement(ADA, now - timedelta(days=8), "experienced", lesson(1, 10), seconds=5),
    ])  # fmt: skip
    run.apply(batch(0, [recent, old]))
    hours = [moment.strftime("%Y-%m-%d-%H") for moment in (recent.timestamp, old.timestamp)]
    query = "SELECT event_id, event_type, user_id, properties, TTL(event_type) FROM events"
    query += " WHERE partition_key = ?"
    (row,) = run(run.sink.query(query, (hours[0],)))
    assert (row[0], row[1], row[2]) == (uuid.UUID(recent.statement_id), "xapi.statement.experienced", A)
    assert dict(row[3]) == {
        "statement_id": recent.statement_id, "verb_id": recent.verb_id, "activity_id": lesson(1, 10),
        "course_id": "1", "lesson_id": "10", "duration_seconds": "5.0", "session_id": "s9", "platform": "web",
    }  # fmt: skip
    five_days = int(timedelta(days=5).total_seconds())
    assert five_days - 120 <= row[4] <= five_days  # what is left of the 7 days
    assert run(run.sink.query(query, (hours[1],))) == []  # already past 7 days: never written
    run.apply(batch(0, [Retraction(recent.statement_id, encode(now, 1))]))
    assert run(run.sink.query(query, (hours[0],))) == []


# --- the learner history -------------------------------------------------------------------------

ADA_HISTORY = {
    "user_id": str(A),
    "from": "2026-04-28",
    "until": "2026-05-11",
    "days": [  # newest first
        {"date": "2026-05-11", "total_events": 1, "unique_pages": 1, "session_count": 0,
         "total_time_minutes": 0, "engagement_score": 7.0},
        {"date": "2026-05-06", "total_events": 2, "unique_pages": 2, "session_count": 1,
         "total_time_minutes": 11, "engagement_score": 20.0},
        {"date": "2026-05-04", "total_events": 3, "unique_pages": 2, "session_count": 2,
         "total_time_minutes": 8, "engagement_score": 22.0},
    ],
    "progress": [
        {"subject": "course:1", "weeks": [
            {"week_start": "2026-05-11", "lessons_completed": 1, "time_spent_minutes": 0,
             "average_score": None, "topics_mastered": ["lesson:11"]},
            {"week_start": "2026-05-04", "lessons_completed": 1, "time_spent_minutes": 18,
             "average_score": 80.0, "topics_mastered": ["lesson:10", "quiz:5"]},
        ]},
        {"subject": "course:2", "weeks": [
            {"week_start": "2026-05-04", "lessons_completed": 1, "time_spent_minutes": 1,
             "average_score": None, "topics_mastered": ["lesson:20"]},
        ]},
    ],
}  # fmt: skip


def test_learner_history_by_identity_key_or_user_id(run: Run):
    the_scenario(run)
    assert run(run.sink.learner_history(key_of(ADA), days=14, until=D7)) == ADA_HISTORY
    assert run(run.sink.learner_history(A, days=14, until=D7)) == ADA_HISTORY
    window = run(run.sink.learner_history(A, days=3, until=D7))  # 2026-05-09 … 11
    assert [d["date"] for d in window["days"]] == ["2026-05-11"]
    # subjects active in the window (not course 2), every week overlapping it
    assert [(p["subject"], [w["week_start"] for w in p["weeks"]]) for p in window["progress"]] == [
        ("course:1", ["2026-05-11", "2026-05-04"])
    ]


def test_the_worker_serves_learner_histories(run: Run, tmp_path: Path):
    the_scenario(run)
    pipeline = Pipeline(
        "postgresql://unused", "postgresql://unused", tmp_path, StreamSettings(), CatalogSettings()
    )
    app = create_app(pipeline, "127.0.0.1:1")
    app.web.init_server()

    async def get(path: str) -> tuple[int, Any]:
        async with TestClient(TestServer(app.web.web_app)) as client:
            response = await client.get(path)
            return response.status, await (response.json() if response.status == 200 else response.text())

    key = urllib.parse.quote(key_of(ADA), safe="")  # an account key has slashes: URL-encoded
    assert run(get(f"/learners/{key}/history?days=14&until=2026-05-11"))[0] == 404  # no Cassandra sink
    pipeline.found.history = run.sink
    assert run(get(f"/learners/{key}/history?days=14&until=2026-05-11")) == (200, ADA_HISTORY)
    assert run(get(f"/learners/{A}/history?days=14&until=2026-05-11")) == (200, ADA_HISTORY)
    status, text = run(get(f"/learners/{A}/history?days=many"))
    assert status == 400 and "days" in text


# --- requests: bounded, retried, paged (on the fake) ---------------------------------------------


def test_requests_stay_within_the_concurrency_bound(fake: FakeCluster):
    async def scenario() -> int:
        session = fake.connect()
        session.execute(
            "CREATE KEYSPACE k WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.set_keyspace("k")
        session.execute(next(s for s in schema_text().split(";") if "stored_dates" in s))
        select = session.prepare("SELECT stored_date FROM stored_dates WHERE shard = ?")
        requests = Requests(session, concurrency=3, retries=0)
        session.hold()
        task = asyncio.create_task(requests.all([(select, (i,)) for i in range(10)]))
        await asyncio.sleep(0)  # one turn of the loop: the task sends what it may
        held = session.in_flight
        session.release()
        assert await task == [[]] * 10
        session.shutdown()
        return held

    assert asyncio.run(scenario()) == 3
    assert fake.sessions[0].peak == 3


def test_timeouts_are_retried_and_a_batch_that_still_fails_is_applied_later_once(fake: FakeCluster):
    with asyncio.Runner() as runner:
        sink = cassandra_sink(4, cluster=fake, cassandra_retries=2)
        runner.run(sink.start())
        made = scenario()
        fake.fail_next(2)
        assert runner.run(sink.watermarks(4)) == [""] * 4  # failed twice, third time lucky
        fake.fail_next(3)
        with pytest.raises(OperationTimedOut):
            runner.run(sink.watermarks(4))
        fake.fail_next(3)
        with pytest.raises(OperationTimedOut):  # retried twice, failed three times
            runner.run(sink.apply([batch(1, [made["b1"], made["b2"]])]))
        runner.run(sink.apply([batch(1, [made["b1"], made["b2"]])]))  # the worker retries the batch
        assert runner.run(snapshot(sink))["engagement"] == {(B, D0): EXPECTED["engagement"][(B, D0)]}
        runner.run(sink.close())


def test_partitions_larger_than_a_page_are_read_whole(on_fake: Run, fake: FakeCluster):
    made = the_scenario(on_fake)
    fake.sessions[0].default_fetch_size = 2  # Ada's first week is 5 rows: three pages
    logged = len(fake.log)
    on_fake.apply(batch(0, [e for n, e in made.items() if n.startswith("a")]))
    assert not [e for e in fake.log[logged:] if e.cql.startswith("INSERT INTO statement_facts")]
    assert on_fake.snapshot() == EXPECTED


# --- the fake checks what Cassandra checks -------------------------------------------------------


@pytest.mark.parametrize(
    ("cql", "values", "complaint"),
    [
        ("INSERT INTO page_views (date, hour, page, statement_id, views) VALUES (?, ?, ?, ?, ?)",
         (D0, 1, "p", uuid.uuid4(), 1), "Undefined column name views"),
        ("INSERT INTO page_views (date, hour, page) VALUES (?, ?, ?)", (D0, 1, "p"),
         "primary key parts are missing"),
        ("INSERT INTO page_views (date, hour, page, statement_id) VALUES (?, ?, ?, ?)", (D0, 1, "p"),
         "expected 4, got 3"),
        ("INSERT INTO page_views (date, hour, page, statement_id) VALUES (?, ?, ?, ?)",
         (D0, "nine", "p", uuid.uuid4()), "hour of type int"),
        ("INSERT INTO page_views (date, hour, page, statement_id) VALUES (?, ?, ?, ?)",
         (datetime(2026, 5, 4), 1, "p", uuid.uuid4()), "date of type date"),
        ("INSERT INTO page_views (date, hour, page, statement_id) VALUES (?, ?, ?, ?)",
         (D0, 1, None, uuid.uuid4()), "null value for primary key part page"),
        ("SELECT * FROM user_engagement WHERE total_events = ?", (1,), "data filtering"),
        ("SELECT * FROM user_engagement WHERE date = ?", (D0,), "data filtering"),
        ("UPDATE user_engagement SET total_events = ? WHERE user_id = ?", (1, A), "every primary key column"),
        ("DELETE FROM page_views WHERE date = ? AND hour = ?", (D0, 1), "whole partition key"),
        ("SELECT * FROM nowhere WHERE x = ?", (1,), "unconfigured table nowhere"),
    ],
)  # fmt: skip
def test_the_fake_refuses_what_cassandra_refuses(on_fake: Run, cql: str, values: tuple, complaint: str):
    session = on_fake.sink.session
    with pytest.raises(InvalidRequest, match=complaint):
        session.execute(session.prepare(cql), values)


def test_the_fake_only_creates_the_tables_it_was_given(on_fake: Run):
    session = on_fake.sink.session
    session.execute(
        "CREATE TABLE IF NOT EXISTS stored_dates"
        " (shard int, stored_date date, PRIMARY KEY ((shard), stored_date))"
    )
    with pytest.raises(InvalidRequest, match="differs from the schema"):
        session.execute(
            "CREATE TABLE IF NOT EXISTS stored_dates (shard int, stored_date text, PRIMARY KEY (shard))"
        )


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("cassandra_keyspace", "analytics; DROP", "keyspace name"),
        ("cassandra_replication", "SimpleStrategy", "CQL map"),
        ("cassandra_replication", "{'replication_factor': 1}", "CQL map"),
        ("cassandra_consistency", "MOST", "unknown consistency level"),
    ],
)
def test_settings_refuse_what_would_break_the_schema_statements(variable: str, value: str, complaint: str):
    with pytest.raises(ValidationError, match=complaint):
        CassandraSettings(**{variable: value})


def test_the_fake_records_ttls_and_stops_reading_expired_rows():
    clock = [1_000_000.0]
    fake = FakeCluster(schema_text(), clock=lambda: clock[0])
    sink = cassandra_sink(1, cluster=fake)
    (recent,) = events(
        [statement(ADA, datetime.now(timezone.utc) - timedelta(days=6), "experienced", lesson(1, 10))]
    )
    with asyncio.Runner() as runner:
        runner.run(sink.start())
        runner.run(sink.apply([batch(0, [recent])]))
        (row,) = fake.rows(sink.settings.cassandra_keyspace, "events")
        assert 86400 - 120 <= row.ttl <= 86400 and row.expires == clock[0] + row.ttl  # one day left of seven
        assert [r.ttl for r in fake.rows(sink.settings.cassandra_keyspace, "page_views")] == [None]
        hour = recent.timestamp.strftime("%Y-%m-%d-%H")
        query = "SELECT event_id FROM events WHERE partition_key = ?"
        assert len(runner.run(sink.query(query, (hour,)))) == 1
        clock[0] += row.ttl
        assert runner.run(sink.query(query, (hour,))) == []
        runner.run(sink.close())


def test_cmi5_statements_carry_their_outcome_and_master_no_au(run: Run):
    """docs/analytics.md "cmi5 courses" and §6: a cmi5 defined statement about a lesson keeps its
    outcome in its event's properties; no single statement completes (masters) a cmi5 AU, while an
    ordinary lesson keeps §2's rule."""
    known = Catalog()
    known.add_course(1)
    known.add_lesson(Lesson(12, None, 1, "cmi5", None, "CompletedOrPassed"), lesson(1, 12))
    now = (datetime.now(timezone.utc) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    made = events([
        statement(ADA, now, "passed", lesson(1, 12), cmi5=True, seconds=60, scaled=0.9),
        statement(ADA, now + timedelta(seconds=1), "terminated", lesson(1, 12), cmi5=True),
        statement(ADA, now + timedelta(seconds=2), "completed", lesson(1, 10), cmi5=True),
    ], known)  # fmt: skip
    run.apply(batch(0, made))
    rows = run(run.sink.query("SELECT event_id, properties FROM events WHERE partition_key = ?",
                              (now.strftime("%Y-%m-%d-%H"),)))  # fmt: skip
    outcomes = {str(r[0]): dict(r[1]).get("cmi5_outcome") for r in rows}
    assert [outcomes.get(e.statement_id, "missing") for e in made] == ["passed", None, "completed"]
    (progress,) = run(run.sink.query("SELECT topics_mastered, lessons_completed FROM learning_progress"))
    assert (set(progress[0]), progress[1]) == ({"lesson:10"}, 1)
