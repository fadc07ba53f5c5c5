"""The MongoDB sink's collections: indexes and TTL indexes, documents in seed 000's shapes for a
small known set of statements, voiding, replays and resets leaving the engagement heatmaps and
sessions exactly as recomputed from the statements that count.

Runs against the session's MongoDB (``mongo_dsn``: the SecantusDB stand-in, or the server at
LRS_TEST_MONGO_URL), in a database of its own per test. Statements happened two days ago (the
event log and sessions expire after 30 and 90 days, and the server's TTL monitor runs).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from collections.abc import Awaitable, Iterator
from pathlib import Path
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from sinks.catalog import Catalog, Lesson
from sinks.mongodb import MongoSink, session_key
from sinks.ports import Retraction
from streams.pipeline import Pipeline, SinkSettings
from sinks.events import LearningEvent
from streams.envelope import Envelope, Item
from sinks.positions import encode
from sinks.settings import CassandraSettings, ClickHouseSettings, MongoSettings
from streams.settings import CatalogSettings, StreamSettings

from .sink_events import batch, events, key_of, lesson, quiz, statement, student

T = TypeVar("T")
ADA, BOB = student(1), student(2)
BASE = (datetime.now(timezone.utc) - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
DAY = BASE.date().isoformat()
MIDNIGHT = datetime(BASE.year, BASE.month, BASE.day, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return BASE + timedelta(minutes=minutes)


def scenario() -> dict[str, LearningEvent]:
    """Ada watches lesson 10's video in two parts, completes it and passes quiz 5; Bob watches
    10 seconds; someone does something outside any course."""
    L10 = lesson(1, 10)
    video = {"length": 120}
    made = events([
        statement(ADA, at(0), "played", L10, seconds=30, session="s1", platform="web",
                  video=video | {"time": 30, "progress": 0.25, "segments": "0[.]30"}),
        statement(ADA, at(5), "paused", L10, seconds=30, session="s1",
                  video=video | {"time": 60, "progress": 0.5, "segments": "30[.]60"}),
        statement(BOB, at(20), "played", L10, seconds=10, video=video | {"time": 10, "segments": "0[.]10"}),
        statement({"mbox": "mailto:someone@example.org"}, at(30), "experienced",
                  "https://elsewhere.example/x"),
        statement(ADA, at(70), "completed", L10, seconds=20, session="s1"),
        statement(ADA, at(90), "passed", quiz(1, 5), scaled=0.9, session="s2"),
    ])  # fmt: skip
    return dict(zip(["v1", "v2", "bob", "stranger", "done", "quiz"], made, strict=True))


class Run:
    def __init__(self, runner: asyncio.Runner, sink: MongoSink) -> None:
        self.runner, self.sink = runner, sink

    def __call__(self, awaitable: Awaitable[T]) -> T:
        async def wait() -> T:
            return await awaitable  # motor hands back futures, not coroutines

        return self.runner.run(wait())

    def apply(self, *batches) -> None:
        self(self.sink.apply(list(batches)))

    def docs(self, collection: str, query: dict | None = None) -> dict[str, dict[str, Any]]:
        """Documents by ``_id``, without ``updated_at`` (when they were last rewritten)."""

        async def read() -> dict[str, dict[str, Any]]:
            cursor = self.sink.db[collection].find(query or {}, {"updated_at": 0})
            return {d.pop("_id"): d async for d in cursor}

        return self(read())

    def rollups(self) -> dict[str, dict]:
        return {
            "course_engagement": self.docs("course_engagement"),
            "user_sessions": self.docs("user_sessions"),
        }


@pytest.fixture
def run(mongo_dsn: str) -> Iterator[Run]:
    with asyncio.Runner() as runner:
        sink = MongoSink(mongo_dsn, f"sink_{uuid.uuid4().hex[:8]}", partitions=4)
        runner.run(sink.start())
        yield (done := Run(runner, sink))
        done(sink.db.client.drop_database(sink.db.name))
        runner.run(sink.close())


def the_scenario(run: Run) -> dict[str, LearningEvent]:
    made = scenario()
    run.apply(batch(0, [made[n] for n in ("v1", "v2", "done", "quiz")]), batch(1, [made["bob"]]),
              batch(2, [made["stranger"]]))  # fmt: skip
    return made


def ms(moment: datetime) -> datetime:
    """An instant as BSON keeps it (milliseconds)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


SEGMENTS = {0: 2, 1: 2, 2: 1, 3: 1, 4: 1, 5: 1} | dict.fromkeys(range(6, 12), 1)  # segment → views
LEARNERS = {0: 2, 1: 2}  # segment → learners, 1 elsewhere


def engagement(events: int, learners: int, seconds: float, completions: int, hourly: dict[int, int],
               segments: dict[int, int], lesson_id: int | None = 10, tenant: str = "default") -> dict[str, Any]:  # fmt: skip
    return {
        "tenant": tenant, "course_id": 1, "lesson_id": lesson_id, "date": MIDNIGHT, "events": events, "learners": learners,
        "time_spent_seconds": seconds, "completions": completions,
        "hourly": [hourly.get(h, 0) for h in range(24)],
        "video_heatmap": [{"segment": s, "start_seconds": 5 * s, "views": v, "learners": LEARNERS.get(s, 1)}
                          for s, v in sorted(segments.items())],
    }  # fmt: skip


def session(made: dict[str, LearningEvent], first: str, last: str, count: int, seconds: float,
            name: str, platform: str | None, tenant: str = "default") -> dict[str, Any]:  # fmt: skip
    started, ended = ms(made[first].timestamp), ms(made[last].timestamp)
    return {
        "tenant": tenant, "session_id": name, "learner_key": key_of(ADA), "student_id": 1, "started_at": started,
        "last_activity_at": ended, "duration_seconds": (ended - started).total_seconds(), "events": count,
        "time_spent_seconds": seconds, "course_ids": [1],
        "device_info": {"platform": platform} if platform else None, "registration": None,
    }  # fmt: skip


def sessions_of(run: Run) -> dict[str, dict[str, Any]]:
    """Sessions by session id (their keys embed the learner's identity)."""
    return {d["session_id"]: d for d in run.docs("user_sessions").values()}


# --- indexes -------------------------------------------------------------------------------------

SEED_INDEXES = {
    # collection → (index keys, expireAfterSeconds or None)
    "xapi_statements": [([("student_id", 1), ("timestamp", -1)], None),
                        ([("course_id", 1), ("timestamp", -1)], None),
                        ([("verb_id", 1), ("timestamp", -1)], None), ([("object_id", 1)], None)],
    "learning_progress": [([("student_id", 1), ("course_id", 1), ("timestamp", -1)], None),
                          ([("course_id", 1), ("lesson_id", 1), ("timestamp", -1)], None)],
    "course_engagement": [([("course_id", 1), ("date", -1)], None),
                          ([("course_id", 1), ("lesson_id", 1), ("date", -1)], None)],
    "event_log": [([("created_at", 1)], 30 * 86400), ([("event_type", 1), ("created_at", -1)], None),
                  ([("correlation_id", 1)], None)],
    "user_sessions": [([("last_activity_at", 1)], 90 * 86400),
                      ([("student_id", 1), ("started_at", -1)], None)],
}  # fmt: skip


def test_collections_have_their_indexes_and_ttl_indexes(run: Run):
    for collection, wanted in SEED_INDEXES.items():
        found = run(run.sink.db[collection].index_information())
        have = [
            ([(k, int(d)) for k, d in spec["key"]], spec.get("expireAfterSeconds")) for spec in found.values()
        ]
        for index in wanted:
            assert index in have, (collection, index)


# --- documents -----------------------------------------------------------------------------------


def test_statements_land_in_the_seed_shapes(run: Run):
    made = the_scenario(run)
    v2, done, q = made["v2"], made["done"], made["quiz"]
    kept = run.docs("xapi_statements")[v2.statement_id]
    assert {k: kept[k] for k in ("student_id", "course_id", "verb_id", "object_id", "timestamp")} == {
        "student_id": 1, "course_id": 1, "verb_id": "https://w3id.org/xapi/video/verbs/paused",
        "object_id": lesson(1, 10), "timestamp": ms(v2.timestamp),
    }  # fmt: skip
    assert kept["statement"] == v2.statement  # the statement whole
    assert run.docs("xapi_statements")[made["stranger"].statement_id]["course_id"] is None

    progress = run.docs("learning_progress")
    shown = ("student_id", "course_id", "lesson_id", "activity_type", "timestamp", "session_id", "details",
             "device_info")  # fmt: skip
    assert {k: progress[v2.statement_id][k] for k in shown} == {
        "student_id": 1, "course_id": 1, "lesson_id": 10, "activity_type": "video_paused",
        "timestamp": ms(v2.timestamp), "session_id": "s1", "device_info": None,
        "details": {
            "verb": "paused", "activity_id": lesson(1, 10), "time_spent_seconds": 30.0, "completed": False,
            "video_progress": {"current_time_seconds": 60.0, "total_duration_seconds": 120.0,
                               "percentage_watched": 50.0, "played_segments": [[30.0, 60.0]],
                               "segments": list(range(6, 12)), "session": "s1"},
        },
    }  # fmt: skip
    assert progress[made["v1"].statement_id]["device_info"] == {"platform": "web"}
    assert progress[done.statement_id]["activity_type"] == "lesson_completed"
    assert progress[q.statement_id]["activity_type"] == "quiz_passed"
    assert progress[q.statement_id]["details"]["quiz_result"] == {
        "score_percent": 90.0, "score_raw": None, "passed": True, "response": None, "attempt": True,
    }  # fmt: skip

    logged = run.docs("event_log")[done.statement_id]
    assert logged == {
        "tenant": "default", "event_type": "xapi.statement.completed",
        "payload": {"statement_id": done.statement_id, "student_id": 1, "course_id": 1, "lesson_id": 10,
                    "quiz_id": None, "verb_id": done.verb_id, "object_id": lesson(1, 10),
                    "timestamp": done.timestamp.isoformat()},
        "status": "completed", "source_service": "lrs-pipeline", "correlation_id": done.statement_id,
        "created_at": ms(done.stored), "position": done.position,
    }  # fmt: skip


def test_engagement_heatmaps_and_sessions_are_computed_from_the_statements(run: Run):
    made = the_scenario(run)
    assert run.docs("course_engagement") == {
        # lesson 10: Ada's two video parts and completion, Bob's 10 s; nothing for the stranger
        f"1:10:{DAY}": engagement(4, 2, 90.0, 1, {10: 3, 11: 1}, SEGMENTS),
        # the quiz (no lesson): passing a quiz completes no lesson and not the course
        f"1:-:{DAY}": engagement(1, 1, 0.0, 0, {11: 1}, {}, lesson_id=None),
    }
    assert sessions_of(run) == {
        "s1": session(made, "v1", "done", 3, 80.0, "s1", "web"),
        "s2": session(made, "quiz", "quiz", 1, 0.0, "s2", None),
    }
    assert set(run.docs("user_sessions")) == {session_key(key_of(ADA), name) for name in ("s1", "s2")}


def test_two_tenants_with_the_same_ids_keep_apart(run: Run):
    """The scenario in the default tenant and again in tenant acme with the same statement ids,
    learners, courses and sessions, in the same batches: each tenant's statements, heatmaps and
    sessions are the single-tenant ones; acme voiding a statement leaves the default tenant's."""
    made = scenario()
    acme = {name: replace(e, tenant="acme") for name, e in made.items()}
    order = ("v1", "v2", "done", "quiz")
    run.apply(batch(0, [e for name in order for e in (made[name], acme[name])]),
              batch(1, [made["bob"], acme["bob"]]), batch(2, [made["stranger"], acme["stranger"]]))  # fmt: skip
    statements = run.docs("xapi_statements")
    for name, e in made.items():
        assert statements[e.statement_id]["tenant"] == "default"
        assert statements[f"acme/{e.statement_id}"]["tenant"] == "acme"
    heatmaps = {
        f"1:10:{DAY}": engagement(4, 2, 90.0, 1, {10: 3, 11: 1}, SEGMENTS),
        f"1:-:{DAY}": engagement(1, 1, 0.0, 0, {11: 1}, {}, lesson_id=None),
    }
    acme_heatmaps = {f"acme/{k}": v | {"tenant": "acme"} for k, v in heatmaps.items()}
    assert run.docs("course_engagement") == heatmaps | acme_heatmaps
    sessions = run.docs("user_sessions")
    for tenant in ("default", "acme"):
        mine = {d["session_id"]: d for d in sessions.values() if d["tenant"] == tenant}
        assert mine == {
            "s1": session(made, "v1", "done", 3, 80.0, "s1", "web", tenant),
            "s2": session(made, "quiz", "quiz", 1, 0.0, "s2", None, tenant),
        }

    run.apply(batch(3, [Retraction(made["done"].statement_id, encode(at(100), 1), tenant="acme")]))
    statements = run.docs("xapi_statements")
    assert statements[f"acme/{made['done'].statement_id}"]["voided"] is True
    assert "voided" not in statements[made["done"].statement_id]
    engagement_now = run.docs("course_engagement")
    assert engagement_now[f"1:10:{DAY}"] == heatmaps[f"1:10:{DAY}"]
    assert engagement_now[f"acme/1:10:{DAY}"]["completions"] == 0
    assert set(run.docs("event_log", {"event_type": "xapi.statement.voided"})) == {
        f"acme/voided:{made['done'].statement_id}"
    }


# --- voiding, replays, resets --------------------------------------------------------------------


def test_voiding_retracts_a_statement_everywhere_and_keeps_it_out(run: Run):
    made = the_scenario(run)
    done, q = made["done"], made["quiz"]
    voids = [
        Retraction(done.statement_id, encode(at(100), 1)),
        Retraction(q.statement_id, encode(at(101), 2)),
    ]
    run.apply(batch(3, voids))
    run.apply(batch(0, [done, q]))  # sent again by a replay of older messages
    kept = run.docs("xapi_statements")
    assert kept[done.statement_id]["voided"] is True and kept[q.statement_id]["voided"] is True
    assert done.statement_id not in run.docs("learning_progress")
    assert run.docs("event_log", {"event_type": "xapi.statement.voided"}) == {
        f"voided:{r.statement_id}": {
            "tenant": "default", "event_type": "xapi.statement.voided", "payload": {"statement_id": r.statement_id},
            "status": "completed", "source_service": "lrs-pipeline", "correlation_id": r.statement_id,
            "created_at": ms(at(100 + i)),
            "position": r.position,
        }
        for i, r in enumerate(voids)
    }  # fmt: skip
    # the completion gone from lesson 10's day; the quiz's day document and Ada's s2 session gone entirely
    assert run.docs("course_engagement") == {f"1:10:{DAY}": engagement(3, 2, 70.0, 0, {10: 3}, SEGMENTS)}
    assert sessions_of(run) == {"s1": session(made, "v1", "v2", 2, 60.0, "s1", "web")}


def test_replays_leave_heatmaps_and_sessions_unchanged_and_repair_a_crash(run: Run):
    made = the_scenario(run)
    void = Retraction(made["v2"].statement_id, encode(at(200), 1))
    run.apply(batch(3, [void]))
    before = run.rollups()
    everything = batch(0, list(made.values()))
    run.apply(everything, batch(3, [void]))  # the relay re-sent it all
    assert run.rollups() == before
    run(run.sink.db.course_engagement.delete_many({}))  # as if the worker died before recomputing
    run(run.sink.db.user_sessions.delete_many({}))
    run.apply(everything, batch(3, [void]))
    assert run.rollups() == before


def test_reset_forgets_from_its_instant_and_the_replay_rebuilds_the_same(run: Run):
    made = the_scenario(run)
    full = run.rollups()
    since = made["done"].stored  # the completion and the quiz were stored from then on
    run(run.sink.reset(since, "e2"))
    assert set(run.docs("xapi_statements")) == {made[n].statement_id for n in ("v1", "v2", "bob", "stranger")}
    assert set(run.docs("event_log")) == set(run.docs("xapi_statements"))
    assert run.docs("course_engagement") == {f"1:10:{DAY}": engagement(3, 2, 70.0, 0, {10: 3}, SEGMENTS)}
    assert sessions_of(run) == {"s1": session(made, "v1", "v2", 2, 60.0, "s1", "web")}
    assert run(run.sink.watermarks(4)) == [encode(since, 0)] * 4
    run.apply(batch(0, [made["done"], made["quiz"]], epoch="e2"))
    assert run.rollups() == full


# --- the worker ----------------------------------------------------------------------------------


def test_the_worker_feeds_the_sink_whole_statements_when_it_is_on(
    pg_dsn: str, mongo_dsn: str, tmp_path: Path
):
    """LRS_STREAM_SINKS=mongodb: the worker builds the sink from LRS_SINK_MONGO_URL and
    LRS_SINK_MONGO_DATABASE, and its events carry the statement (other sinks' do not)."""
    database = f"sink_{uuid.uuid4().hex[:8]}"
    sinks = SinkSettings(ClickHouseSettings(), MongoSettings(sink_mongo_url=mongo_dsn, sink_mongo_database=database),
                         CassandraSettings())  # fmt: skip
    pipeline = Pipeline(
        pg_dsn,
        pg_dsn,
        tmp_path,
        StreamSettings(stream_sinks="mongodb", stream_partitions=1),
        CatalogSettings(),
        sinks,
    )
    sent = statement(ADA, at(0), "completed", lesson(1, 10), seconds=20)
    position = encode(at(0), 1)

    async def dead_letter(raw: bytes, reason: str, partition: int) -> None:
        raise AssertionError(reason)

    async def scenario() -> dict[str, Any]:
        await pipeline.start(send=None)
        try:
            (mongodb,) = pipeline.sinks
            assert mongodb.name == "mongodb" and mongodb.db.name == database
            envelope = Envelope(position, [Item(position, key_of(ADA), sent)], "e1").encode()
            batches = await pipeline.prepare([(0, envelope)], dead_letter)
            await mongodb.apply(batches)
            found = await mongodb.db.xapi_statements.find_one({"_id": sent["id"]})
            await mongodb.db.client.drop_database(database)
            return found
        finally:
            await pipeline.stop()

    found = asyncio.run(scenario())
    assert found["statement"] == sent and found["student_id"] == 1


def au_catalog() -> Catalog:
    """Course 1 with lesson 12, a cmi5 AU (moveOn Completed), at the template IRI of lesson 12."""
    known = Catalog()
    known.add_course(1)
    known.add_lesson(Lesson(12, None, 1, "cmi5", None, "Completed"), lesson(1, 12))
    return known


def test_cmi5_statements_carry_their_outcome_and_complete_no_au(run: Run):
    """docs/analytics.md "cmi5 courses": the outcome of a cmi5 defined statement about a lesson is
    kept; no single statement completes an AU; an ordinary lesson keeps §2's rule."""
    AU, L10 = lesson(1, 12), lesson(1, 10)
    made = events([
        statement(ADA, at(0), "completed", AU, cmi5=True, completion=True),
        statement(ADA, at(1), "failed", AU, cmi5=True),
        statement(ADA, at(2), "waived", AU, cmi5=True),
        statement(ADA, at(3), "completed", AU),  # not cmi5 defined
        statement(ADA, at(4), "completed", L10, cmi5=True),
    ], au_catalog())  # fmt: skip
    run.apply(batch(0, made))
    progress = run.docs("learning_progress")
    got = [(progress[e.statement_id]["details"]["completed"], progress[e.statement_id]["details"].get("cmi5_outcome"))
           for e in made]  # fmt: skip
    assert got == [(False, "completed"), (False, None), (False, "waived"), (False, None), (True, "completed")]
