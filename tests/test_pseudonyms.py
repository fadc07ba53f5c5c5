"""Pseudonymous analytics (``LRS_ANALYTICS_PSEUDONYMS``, docs/data-rights.md): the sinks receive a
keyed hash of each identity instead of names and mailboxes, the figures are those of the reference
model (learners known by their pseudonyms, computed here independently: HMAC-SHA256 of the
identity key with the secret), learners' names reach only credentials that may see them, and an
erasure still finds the learner's rows."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from pymongo import MongoClient

from lrs.usecases.analytics import CourseAnalytics
from lrs.xapi.erasure import pseudonymise

from .model_check import assert_stack_equals_model
from .pipeline_stack import PipelineStack
from .reference.cohorts import SeededChoices, build
from .test_forwarding import SECRET as HOOK_SECRET
from .test_forwarding import Webhook, lrs_command, wait_for
from .test_erasure_e2e import Learner, clickhouse_traces, credential, mongo_traces, wait_completed, without

pytestmark = pytest.mark.timeout(1200)
SECRET = "pseudonym-test-secret"
HOMEPAGE = "urn:lrs:pseudonym"


def pseudonymous_key(key: str) -> str:
    """What the sinks must know the learner ``key`` by, computed from the documented rule."""
    name = hmac.new(SECRET.encode(), f"pseudonym|{key}".encode(), hashlib.sha256).hexdigest()
    return "account:" + orjson.dumps([HOMEPAGE, name]).decode()


@pytest.fixture(scope="module")
def stack(pg_dsn: str, mongo_dsn: str, tmp_path_factory: pytest.TempPathFactory):
    env = {
        "LRS_SINK_MONGO_URL": mongo_dsn, "LRS_SINK_MONGO_DATABASE": f"pseudonyms_{uuid.uuid4().hex[:8]}",
        "LRS_ANALYTICS_PSEUDONYMS": "true", "LRS_DATA_RIGHTS_SECRET": SECRET, "LRS_ERASURE_WAIT_SECONDS": "120",
    }  # fmt: skip
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        built = PipelineStack(
            pg_dsn, Path(tmp_path_factory.mktemp("pseudonyms")), sinks="clickhouse,progress,mongodb,forward"
        )
        built.mongo = (mongo_dsn, env["LRS_SINK_MONGO_DATABASE"])
        yield built
        built.close()
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sink_traces(stack: PipelineStack, learner: Learner) -> list[str]:
    """The learner's raw identifiers in the sinks (the rollups, MongoDB, ClickHouse)."""
    found = []
    for table in (
        "enrollments",
        "progress",
        "lesson_progress",
        "quiz_attempts",
        "learning_facts",
        "domain_events",
    ):
        for (text,) in stack.fetch(f"SELECT t::text FROM lms.{table} t"):
            found += [f"lms.{table}: {n}" for n in learner.needles if n in text]
    return found + mongo_traces(stack, learner) + clickhouse_traces(stack, learner)


def test_sinks_know_learners_by_pseudonym_only_with_unchanged_figures(stack: PipelineStack):
    cohort = build(SeededChoices(20261219), 63)
    stack.load_catalog(cohort.catalog)
    stack.post(cohort.statements, batch=40)
    stack.post(cohort.voids, batch=10)
    stack.wait_synced()
    learners = [Learner(s) for s in cohort.catalog["students"]]
    everything = cohort.statements + cohort.voids
    guests = {
        s["actor"]["mbox"] for s in everything if s["actor"].get("mbox", "").endswith("elsewhere.example")
    }
    for learner in learners:  # student ids are the LMS's own ids (kept): only raw identifiers are looked for
        assert sink_traces(stack, Learner({"id": -1, "identities": [{"mbox": learner.mbox}]})) == [], (
            learner.mbox
        )
        stack.wait_synced()
    for mbox in guests:
        assert mongo_traces(stack, Learner({"id": -1, "identities": [{"mbox": mbox}]})) == []
    assert_stack_equals_model(stack, cohort.catalog, cohort.courses, everything, pseudonym=pseudonymous_key)
    # the store itself keeps the statements as sent
    assert stack.xapi.get("/statements", params={"agent": orjson.dumps(learners[0].agent).decode()}).json()[
        "statements"
    ]

    # an erasure finds the learner in the sinks by their pseudonym
    admin = credential(stack, ["admin"])
    first = learners[0]
    pseudonym = pseudonymous_key(f"mbox:{first.mbox}")
    client = MongoClient(stack.mongo[0])
    try:
        assert client[stack.mongo[1]].learning_progress.count_documents({"learner_key": pseudonym}) > 0
    finally:
        client.close()
    response = httpx.post(
        f"{stack.base}/admin/erasures", json={"agent": first.agent}, auth=admin, timeout=180
    )
    assert response.status_code == 200, response.text
    wait_completed(stack, response.json()["id"], admin)
    assert not stack.fetch("SELECT 1 FROM lms.enrollments WHERE student_id = $1", first.id)
    client = MongoClient(stack.mongo[0])
    try:
        db = client[stack.mongo[1]]
        assert db.learning_progress.count_documents({}) > 0
        for name in ("xapi_statements", "learning_progress", "user_sessions"):
            assert db[name].count_documents({"learner_key": pseudonym}) == 0, name
    finally:
        client.close()
    stack.wait_synced()
    remaining = without(first, everything)
    catalog = {**cohort.catalog, "students": [s for s in cohort.catalog["students"] if s["id"] != first.id]}
    assert_stack_equals_model(stack, catalog, cohort.courses, remaining, pseudonym=pseudonymous_key)


def test_pseudonymised_statements_name_nobody():
    person = {"objectType": "Agent", "name": "Ada", "mbox": "mailto:ada@school.example"}
    other = {
        "objectType": "Agent",
        "name": "Bob",
        "account": {"homePage": "https://lms.example", "name": "7"},
    }
    statement = {
        "actor": {"objectType": "Group", "name": "Team", "member": [person, other]},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"objectType": "SubStatement", "actor": person, "verb": {"id": "http://x/v"}, "object": other},
        "context": {"instructor": other, "contextAgents": [{"objectType": "contextAgent", "agent": person}]},
        "authority": other,
    }  # fmt: skip
    made = pseudonymise(statement, SECRET.encode())
    text = orjson.dumps(made).decode()
    for raw in ("Ada", "Bob", "ada@school.example", "https://lms.example", "Team"):
        assert raw not in text
    ada = {
        "account": {"homePage": HOMEPAGE, "name": pseudonymous_key("mbox:mailto:ada@school.example")[-66:-2]}
    }
    assert made["actor"]["member"][0] == {"objectType": "Agent", **ada}
    assert made["context"]["contextAgents"][0]["agent"] == made["object"]["actor"]
    assert pseudonymise(statement, b"another secret") != made


class Catalog:
    async def student_names(self, ids: list[int], tenant: str = "default") -> dict[int, str]:
        return {i: f"Student {i}" for i in ids if i != 9}


class Reports:
    async def course_report(self, query) -> bytes:
        return orjson.dumps({"at_risk": [{"learner_key": "account:[…]", "student_id": 3},
                                         {"learner_key": "account:[…]", "student_id": 9}]})  # fmt: skip


@pytest.mark.parametrize(
    ("scopes", "names"),
    [({"analytics/read"}, [None, None]), ({"analytics/course/1"}, [None, None]),
     ({"analytics/read", "analytics/names"}, ["Student 3", None]), ({"all"}, ["Student 3", None])],
)  # fmt: skip
def test_names_reach_only_credentials_that_may_see_them(scopes: set[str], names: list):
    report = asyncio.run(
        CourseAnalytics(Catalog(), Reports()).report(frozenset(scopes), "1", None, None, None)
    )
    assert [r.get("name") for r in orjson.loads(report)["at_risk"]] == names


def test_forwarding_delivers_the_statements_as_stored_not_their_pseudonyms(stack: PipelineStack):
    """Forwarding moves statements between LRSs: with pseudonyms on for the analytics sinks, a
    webhook still receives each statement as it was stored (the actor's own mailbox)."""
    hook = Webhook()
    try:
        lrs_command(stack, "forward", "add", "pseudonyms-hook", "--webhook", hook.url, "--secret", HOOK_SECRET,
                    "--verb", "http://adlnet.gov/expapi/verbs/experienced")  # fmt: skip
        actor = {"objectType": "Agent", "mbox": f"mailto:{uuid.uuid4().hex}@forward.example", "name": "Fran"}
        sent = {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": "https://forward.example/activity"}}  # fmt: skip
        stack.post([sent])
        wait_for(lambda: sent["id"] in hook.statements(), "the webhook delivery")
        delivered = hook.statements()[sent["id"]]
        assert delivered["actor"] == actor and delivered["object"]["id"] == sent["object"]["id"]
    finally:
        hook.down()
