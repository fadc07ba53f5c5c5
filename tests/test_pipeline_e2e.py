"""The pipeline end to end, on real parts: statements POSTed to the LRS over HTTP, relayed into
tansu, processed by the Faust worker, landing in chdb and in the PostgreSQL rollups, domain
events on Kafka. Every expected number comes from the reference model of ``docs/analytics.md``
(``tests/reference/model.py``) applied to the statements the test sent; the cohorts here are
``lrs simulate``'s (the reference tests bring their own, ``tests/test_reference_model.py``)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import topics

from .cohort import Cohort, catalog
from .conftest import free_port
from .model_check import assert_rollups_equal_model, assert_stack_equals_model, service_events
from .pipeline_stack import PipelineStack
from .reference import model

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module", params=["postgres", "mongodb"])
def stack(request: pytest.FixtureRequest, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory):
    """A whole stack on each statement store (MongoDB: the SecantusDB stand-in, or
    LRS_TEST_MONGO_URL); the LMS tables are PostgreSQL's either way."""
    store = request.getfixturevalue("mongo_dsn") if request.param == "mongodb" else None
    built = PipelineStack(pg_dsn, Path(tmp_path_factory.mktemp("pipeline")), store)
    yield built
    built.close()


def cohort(first_course: int, students: range, seed: int) -> tuple[dict, list[dict]]:
    document = catalog(first_course, 2, list(students))
    people = Cohort(document, seed)
    for student in students:
        people.learn(student)
    return document, people.statements


# --- reading what the sinks hold ----------------------------------------------------------------


def rollups(stack: PipelineStack, courses: list[int]) -> dict[tuple[int, int], dict]:
    rows = stack.fetch(
        "SELECT e.student_id, e.course_id, e.status, e.completion_percentage, p.completed_quizzes,"
        " p.completed_modules FROM lms.enrollments e JOIN lms.progress p ON p.enrollment_id = e.id"
        " WHERE e.course_id = ANY($1::int[])",
        courses,
    )
    return {(r["student_id"], r["course_id"]): dict(r) for r in rows}


def quizzes(stack: PipelineStack, courses: list[int]) -> dict[tuple[int, int], tuple[int, int]]:
    return {(r["course_id"], r["quiz_id"]): (r["attempts"], r["passed"])
            for c in courses for r in stack.analytics("quiz_performance", c)}  # fmt: skip


def expected_events(document: dict, courses: list[int], statements: list[dict]) -> list[tuple]:
    """The domain events of a history that only grew (no voiding): each completion announced once."""
    reference = model.Catalog(document)
    state = model.enrollments(model.facts_of(statements, reference), reference)
    return sorted(model.transitions({}, {k: v for k, v in state.items() if k[1] in courses}))


def published(stack: PipelineStack, courses: list[int]) -> list[tuple]:
    stack.wait_published()
    return service_events(stack, courses)


def consume_domain_events(bootstrap: str, courses: list[int], expected: int) -> list[dict]:
    """Domain events of these courses on Kafka lms.events (stops once ``expected`` distinct ids
    arrived and the topic is then quiet for a second, or after a minute)."""

    async def consume() -> list[dict]:
        consumer = AIOKafkaConsumer("lms.events", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    group_id=None, enable_auto_commit=False)  # fmt: skip
        await consumer.start()
        found: dict[str, dict] = {}
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            quiet_since = None
            while loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    for m in messages:
                        event = orjson.loads(m.value)
                        if event["course_id"] in courses:
                            found.setdefault(event["id"], event)
                if batch:
                    quiet_since = None
                elif len(found) >= expected:
                    quiet_since = quiet_since or loop.time()
                    if loop.time() - quiet_since > 1.0:
                        break
        finally:
            await consumer.stop()
        return list(found.values())

    return asyncio.run(consume())


def assert_sinks_hold(stack: PipelineStack, document: dict, statements: list[dict]) -> None:
    assert_stack_equals_model(stack, document, [c["id"] for c in document["courses"]], statements)


# --- tests ------------------------------------------------------------------------------------------


def test_cohort_lands_in_every_sink_exactly(stack: PipelineStack):
    """A cohort posted over HTTP (batches and single statements) yields exactly the rollups,
    ClickHouse aggregates and domain events computed from its statements."""
    document, statements = cohort(first_course=10, students=range(1, 13), seed=3)
    stack.load_catalog(document)
    half = len(statements) // 2
    stack.post(statements[:half], batch=40)
    stack.post(statements[half:], batch=1)
    stack.wait_synced()
    assert_sinks_hold(stack, document, statements)

    courses = [c["id"] for c in document["courses"]]
    expected = expected_events(document, courses, statements)
    assert published(stack, courses) == expected
    on_kafka = consume_domain_events(stack.broker.bootstrap, courses, len(expected))
    assert Counter(e["type"] for e in on_kafka) == Counter(e[0] for e in expected)
    completed = {(e["student_id"], e["course_id"]) for e in on_kafka if e["type"] == "enrollment.completed"}
    want_completed = {(e[1], e[2]) for e in expected if e[0] == "enrollment.completed"}
    assert completed == want_completed and want_completed, "the cohort should complete some enrollments"


def test_crash_broker_restart_and_replays_leave_the_numbers_unchanged(stack: PipelineStack):
    """SIGKILL the worker while a cohort streams in, restart it; restart the broker (which forgets
    every message); replay every sink twice: the sinks hold the first-pass numbers each time, and
    no transition is announced twice."""
    document, statements = cohort(first_course=20, students=range(101, 113), seed=7)
    stack.load_catalog(document)
    courses = [c["id"] for c in document["courses"]]
    poster = threading.Thread(target=stack.post, args=(statements,), kwargs={"batch": 5})
    poster.start()
    before = stack.stored()
    while stack.stored() - before < len(statements) // 3:
        pass  # until a third of the cohort is stored and streaming
    stack.stop_worker(signal.SIGKILL)
    stack.start_worker()
    poster.join()
    stack.wait_synced()
    assert_sinks_hold(stack, document, statements)
    first_pass = published(stack, courses)
    assert first_pass == expected_events(document, courses, statements)

    stack.restart_broker()
    stack.wait_synced()
    assert_sinks_hold(stack, document, statements)

    for _ in range(2):
        stack.replay()
        assert_sinks_hold(stack, document, statements)
    assert published(stack, courses) == first_pass


def test_voiding_a_completion_retracts_it_everywhere(stack: PipelineStack):
    """Voiding the statement that passed a learner's quiz takes the quiz, its module and the
    enrollment's completion back, and removes it from the ClickHouse aggregates."""
    document = catalog(30, 1, [501])
    stack.load_catalog(document)
    course = document["courses"][0]
    learner = Cohort(document, seed=1)
    context = {"contextActivities": {"grouping": [{"id": course["iri"]}]}}
    for module in course["modules"]:
        for lesson in module["lessons"]:
            learner.say(501, "completed", lesson["iri"], context=context, result={"completion": True})
    quiz = course["modules"][1]["quizzes"][0]
    passing = learner.say(501, "passed", quiz["iri"], context=context,
                           result={"score": {"scaled": 0.9}, "success": True, "duration": "PT60S"})  # fmt: skip
    stack.post(learner.statements)
    stack.wait_synced()
    before = rollups(stack, [30])[(501, 30)]
    assert before["status"] == "completed" and before["completed_quizzes"] == [quiz["id"]]
    assert quizzes(stack, [30]) == {(30, quiz["id"]): (1, 1)}

    void = {"actor": {"mbox": "mailto:teacher@school.example"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
            "object": {"objectType": "StatementRef", "id": passing["id"]}}  # fmt: skip
    stack.post([void])
    stack.wait_synced()
    after = rollups(stack, [30])[(501, 30)]
    assert after["status"] == "active"
    assert after["completed_quizzes"] == [] and after["completed_modules"] == [course["modules"][0]["id"]]
    assert after["completion_percentage"] == Decimal("80.00")
    assert quizzes(stack, [30]) == {}
    assert_sinks_hold(stack, document, [*learner.statements, void])


def test_poison_messages_go_to_the_dead_letter_topic_and_unknowns_still_flow(stack: PipelineStack):
    """Undecodable and wrongly shaped messages on ``xapi.statements`` land on ``xapi.deadletter``
    with their reason, and the agent keeps going: statements about an activity and a learner the
    catalog does not know, posted afterwards, are counted with empty ids."""

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topics.STATEMENTS, b"\xff not json", partition=0)
            await producer.send_and_wait(topics.STATEMENTS, b'{"v":1,"through":"","items":5}', partition=1)
        finally:
            await producer.stop()

    asyncio.run(produce())
    stranger = {"actor": {"mbox": "mailto:stranger@elsewhere.example"}, "timestamp": "2019-01-01T03:10:00Z",
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": "https://elsewhere.example/unknown-activity"}, "result": {"duration": "PT90S"}}  # fmt: skip
    stack.post([stranger, {**stranger, "timestamp": "2019-01-01T03:20:00Z"}])
    stack.wait_synced()
    rows = [
        r for r in stack.analytics("engagement_hourly", 0) if str(r["day"]) == "2019-01-01" and r["hour"] == 3
    ]

    async def dead_letters() -> list[dict]:
        consumer = AIOKafkaConsumer(topics.DEAD_LETTERS, bootstrap_servers=stack.broker.bootstrap,
                                    auto_offset_reset="earliest", group_id=None)  # fmt: skip
        await consumer.start()
        try:
            found: list[dict] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(found) < 2 and loop.time() < deadline:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    found += [orjson.loads(m.value) for m in messages]
            return found
        finally:
            await consumer.stop()

    letters = asyncio.run(dead_letters())
    marks = httpx.get(stack.worker_url("/watermarks"), timeout=10).json()
    assert [(r["lesson_id"], r["events"], r["learners"], r["seconds"]) for r in rows] == [(0, 2, 1, 180.0)], (
        f"dead letters: {letters}; watermarks: {marks}; newest: {stack.last_position()}"
    )
    by_partition = {letter["partition"]: letter for letter in letters}
    assert by_partition[0]["value"].endswith(" not json") and "JSON" in by_partition[0]["reason"]
    assert "items" in by_partition[1]["reason"]


def test_a_replay_is_invisible_and_statements_keep_flowing_meanwhile(stack: PipelineStack):
    """A replay started while the broker is down cannot make progress: readers must see the
    figures from before it, whole, until it is swapped in. The rebuild survives a worker and
    broker restart (its state is kept with the sinks), statements posted meanwhile count once,
    and after the swap every figure equals the model and the only domain events are those the
    new statements caused. A replay started over a running one starts over."""
    document, statements = cohort(first_course=50, students=range(301, 321), seed=11)
    stack.load_catalog(document)
    courses = [c["id"] for c in document["courses"]]
    first, later = statements[: len(statements) * 2 // 3], statements[len(statements) * 2 // 3 :]
    stack.post(first, batch=50)
    stack.wait_synced()
    assert_sinks_hold(stack, document, first)
    before = published(stack, courses)

    def snapshot() -> tuple:
        overview = sorted((r["course_id"], r["events"], r["completed_learners"])
                          for c in courses for r in stack.analytics("bi_course_overview", c))  # fmt: skip
        rows = rollups(stack, courses)
        return overview, sorted((k, v["status"], v["completion_percentage"]) for k, v in rows.items())

    settled = snapshot()
    stack.broker.stop()
    response = httpx.post(stack.worker_url("/replay"), json={}, timeout=120)
    assert response.status_code == 200, response.text
    for _ in range(5):
        replaying = httpx.get(stack.worker_url("/replay"), timeout=10).json()["replaying"]
        assert {r["sink"] for r in replaying} == {"clickhouse", "progress"}
        assert snapshot() == settled, "a partial rebuild was visible"
    stack.restart_broker()  # and the worker: the rebuild goes on where it was
    stack.post(later, batch=7)
    response = httpx.post(stack.worker_url("/replay"), json={}, timeout=120)  # over the running one
    assert response.status_code == 200, response.text
    stack.replay()  # and one more, waited for
    assert_sinks_hold(stack, document, statements)
    assert published(stack, courses) == expected_events(document, courses, statements)
    assert set(before) <= set(published(stack, courses))


def test_two_workers_share_the_partitions_and_a_killed_one_loses_and_doubles_nothing(
    pg_dsn: str, tmp_path: Path
):
    """Two ``lrs worker`` processes share the partitions (and one relay, elected); the one that
    started first, holding the relay, is killed mid-stream: the other takes over the relay and the
    partitions, and the rollups and domain events equal the model's. (Rollups only: with embedded
    chdb each worker has its own ClickHouse; workers share ClickHouse through a server.)"""
    (tmp_path / "first").mkdir()
    stack = PipelineStack(pg_dsn, tmp_path / "first", sinks="progress")
    try:
        second_port = free_port()
        second = stack.spawn_worker(tmp_path / "second", second_port)
        document, statements = cohort(first_course=70, students=range(701, 717), seed=13)
        stack.load_catalog(document)
        courses = [c["id"] for c in document["courses"]]
        poster = threading.Thread(target=stack.post, args=(statements,), kwargs={"batch": 5})
        poster.start()
        before = stack.stored()
        while stack.stored() - before < len(statements) // 3:
            pass  # until a third of the cohort is stored and streaming
        stack.stop_worker(signal.SIGKILL)
        stack.web_port = second_port  # the survivor's pages from now on
        poster.join()
        stack.wait_synced(timeout=180)
        assert_rollups_equal_model(stack, document, courses, statements)
        assert published(stack, courses) == expected_events(document, courses, statements)
    finally:
        second.kill()
        second.wait()
        stack.close()
