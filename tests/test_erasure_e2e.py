"""Erasing a learner from a populated stack (issue 16, docs/data-rights.md).

A realistic cohort (``tests/reference/cohorts.py``) flows through a real stack (LRS, tansu, the
worker with ClickHouse on chdb, the PostgreSQL rollups and the MongoDB sink on the SecantusDB
stand-in), plus what an erasure must handle beyond a learner's own statements: a statement about
the learner by an instructor, another learner's statement naming them as instructor, state and
agent-profile documents, a voiding of one of their statements. Then the learner is erased over
HTTP, and every store is searched for every identifier of theirs (every table and collection,
every text column); the figures left must equal the reference model's recomputation without the
learner, also after ``lrs replay``. An erasure interrupted midway is completed by ``lrs erase``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from bson import json_util
from pymongo import MongoClient

from lrs.auth.credentials import new_credential
from lrs.settings import AuthSettings
from lrs.store import open_stores
from lrs.xapi.agents import ifi_key
from lrs.xapi.erasure import keyed_hash, student_key

from .model_check import assert_stack_equals_model
from .pipeline_stack import PipelineStack, run
from .reference.cohorts import SeededChoices, build

pytestmark = pytest.mark.timeout(1500)
BASE = 61
XAPI_SCOPES = ["statements/write", "statements/read", "statements/read/mine", "state", "define", "profile",
               "all/read", "all", "import"]  # fmt: skip
TEACHER = {"objectType": "Agent", "name": "Teacher", "mbox": "mailto:teacher.b61@school.example"}
MENTORED = "http://id.tincanapi.com/verb/mentored"


@pytest.fixture(scope="module")
def stack(pg_dsn: str, mongo_dsn: str, tmp_path_factory: pytest.TempPathFactory):
    env = {
        "LRS_SINK_MONGO_URL": mongo_dsn, "LRS_SINK_MONGO_DATABASE": f"erasure_{uuid.uuid4().hex[:8]}",
        "LRS_ERASURE_WAIT_SECONDS": "120",
    }  # fmt: skip
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        built = PipelineStack(
            pg_dsn, Path(tmp_path_factory.mktemp("erasure")), sinks="clickhouse,progress,mongodb"
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


def credential(stack: PipelineStack, scopes: list[str]) -> tuple[str, str]:
    async def make() -> tuple[str, str]:
        backend = await open_stores(stack.store, pool_min=1, pool_max=1)
        try:
            made, secret = new_credential("erasure test", scopes, AuthSettings().authority_homepage)
            await backend.credentials.save(made)
        finally:
            await backend.close()
        return made.key, secret

    return run(make())


# --- the learner and what is expected without them (computed here, not by the code under test) ------


class Learner:
    def __init__(self, student: dict[str, Any]) -> None:
        self.id = student["id"]
        self.mbox = student["identities"][0]["mbox"]
        self.agent = {"objectType": "Agent", "mbox": self.mbox}
        self.sha1 = hashlib.sha1(self.mbox.encode()).hexdigest()

    @property
    def needles(self) -> list[str]:
        """Every form an identifier of theirs could take in a store."""
        return [self.mbox.removeprefix("mailto:"), self.sha1, ifi_key(self.agent)]

    def is_them(self, who: Any) -> bool:
        return isinstance(who, dict) and who.get("mbox") == self.mbox


def without(learner: Learner, statements: list[dict]) -> list[dict]:
    """The statements as they must be after erasing ``learner``: theirs and those about them gone,
    voidings of those gone, their instructor role removed from other statements."""
    gone = {s["id"] for s in statements if learner.is_them(s["actor"]) or learner.is_them(s["object"])}
    kept = []
    for s in statements:
        if s["id"] in gone or (s["object"].get("objectType") == "StatementRef" and s["object"]["id"] in gone):
            continue
        if learner.is_them((s.get("context") or {}).get("instructor")):
            s = copy.deepcopy(s)
            del s["context"]["instructor"]
        kept.append(s)
    return kept


def catalog_without(document: dict, learner: Learner) -> dict:
    return {**document, "students": [s for s in document["students"] if s["id"] != learner.id]}


# --- searching every store -------------------------------------------------------------------------


def pg_traces(stack: PipelineStack, learner: Learner) -> list[str]:
    """Every row of every table of the statement store and the LMS database naming the learner (any
    text, JSON or bytea column; a ``student_id``), and any lookup-key hash of their keys."""
    found = []
    tables = stack.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_schema IN ('public', 'lms') AND table_type = 'BASE TABLE'"
    )
    for schema, table in tables:
        columns = stack.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            schema, table,
        )  # fmt: skip
        texts = [f"encode(\"{c}\", 'escape')" if t == "bytea" else f'"{c}"::text' for c, t in columns]
        for row in stack.fetch(f'SELECT concat_ws(\' | \', {", ".join(texts)}) FROM "{schema}"."{table}"'):
            text = row[0] or ""
            hits = [n for n in learner.needles if n in text]
            if re.search(rf'"student_id": {learner.id}\b', text):
                hits.append("payload student_id")
            if hits:
                found.append(f"{schema}.{table}: {hits}: {text[:200]}")
        if any(c == "student_id" for c, _ in columns):
            if stack.fetch(f'SELECT 1 FROM "{schema}"."{table}" WHERE student_id = $1 LIMIT 1', learner.id):
                found.append(f"{schema}.{table}: student_id {learner.id}")
    for key in ("a:", "A:"):
        for value in (ifi_key(learner.agent), "sha1:" + learner.sha1):
            if stack.fetch("SELECT 1 FROM lrs_statement_keys WHERE hash = lrs_key_hash($1) LIMIT 1", value):
                found.append(f"lrs_statement_keys: hash of {key}{value}")
    return found


def mongo_traces(stack: PipelineStack, learner: Learner) -> list[str]:
    url, database = stack.mongo
    client = MongoClient(url)
    try:
        db = client[database]
        found = []
        for name in db.list_collection_names():
            for doc in db[name].find():
                text = json_util.dumps(doc)
                hits = [n for n in learner.needles if n in text]
                if re.search(rf'"student_id": {learner.id}\b', text):
                    hits.append("student_id")
                if hits:
                    found.append(f"{name}: {hits}: {text[:200]}")
        return found
    finally:
        client.close()


def clickhouse_traces(stack: PipelineStack, learner: Learner) -> list[str]:
    """Every ClickHouse table (the worker stopped: chdb is opened by one process at a time)."""
    from sinks.chdb_process import ChdbProcess

    stack.stop_worker()
    client = ChdbProcess((stack.data_dir / "clickhouse").resolve())
    try:
        found = []
        tables = client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View%'"
        ).result_rows
        for (table,) in tables:
            columns = client.query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = %(t)s",
                parameters={"t": table},
            ).result_rows
            strings = [c for c, t in columns if "String" in t]
            for needle in learner.needles:
                for column in strings:
                    count = client.query(
                        f"SELECT count() FROM {table} WHERE position(toString({column}), %(n)s) > 0",
                        parameters={"n": needle},
                    ).result_rows[0][0]
                    if count:
                        found.append(f"{table}.{column}: {count} rows with {needle}")
            if any(c == "student_id" for c, _ in columns):
                count = client.query(
                    f"SELECT count() FROM {table} WHERE student_id = %(s)s", parameters={"s": learner.id}
                ).result_rows[0][0]
                if count:
                    found.append(f"{table}.student_id: {count} rows")
        return found
    finally:
        client.close()
        stack.start_worker()


def traces(stack: PipelineStack, learner: Learner) -> list[str]:
    return pg_traces(stack, learner) + mongo_traces(stack, learner) + clickhouse_traces(stack, learner)


def wait_completed(stack: PipelineStack, erasure_id: str, auth: tuple[str, str]) -> dict:
    deadline = time.monotonic() + 120
    while True:
        report = httpx.get(f"{stack.base}/admin/erasures/{erasure_id}", auth=auth, timeout=30).json()
        if report["completed_at"]:
            return report
        assert time.monotonic() < deadline, f"the erasure did not complete: {report}"
        time.sleep(0.1)


# --- the test ----------------------------------------------------------------------------------------


def test_a_learner_is_erased_from_every_store_and_stays_erased(stack: PipelineStack):
    cohort = build(SeededChoices(20261216), BASE)
    first, second = (Learner(s) for s in cohort.catalog["students"][:2])
    course_iri = cohort.catalog["courses"][0]["iri"]
    extras = [
        {  # an instructor's statement about the learner: erased with them
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"erasure:{BASE}:mentored")), "actor": TEACHER,
            "verb": {"id": MENTORED}, "object": first.agent, "timestamp": "2026-03-02T10:00:00Z",
            "context": {"contextActivities": {"grouping": [{"id": course_iri}]}},
        },
        {  # another learner's statement naming them as instructor: kept, redacted
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"erasure:{BASE}:instructed")), "actor": second.agent,
            "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
            "object": {"objectType": "Activity", "id": course_iri}, "timestamp": "2026-03-02T11:00:00Z",
            "context": {"instructor": {**first.agent, "name": "Erased Learner"},
                        "contextActivities": {"grouping": [{"id": course_iri}]}},
        },
    ]  # fmt: skip
    own = next(s for s in cohort.statements if s["actor"]["mbox"] == first.mbox)
    void_own = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"erasure:{BASE}:void")), "actor": TEACHER,
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"}, "object": {"objectType": "StatementRef", "id": own["id"]},
    }  # fmt: skip
    stack.load_catalog(cohort.catalog)
    stack.post(cohort.statements + extras, batch=40)
    stack.post(cohort.voids + [void_own], batch=10)
    for kind, params in (("state", {"activityId": course_iri, "stateId": "bookmark"}),
                         ("agents/profile", {"profileId": "preferences"})):  # fmt: skip
        response = stack.xapi.put(f"/activities/{kind}" if kind == "state" else f"/{kind}",
                                  params={**params, "agent": orjson.dumps(first.agent).decode()},
                                  json={"learner": first.mbox}, headers={"If-None-Match": "*"})  # fmt: skip
        assert response.status_code == 204, response.text
    stack.wait_synced()
    everything = cohort.statements + extras + cohort.voids + [void_own]
    before = {t.split(":")[0] for t in pg_traces(stack, first) + mongo_traces(stack, first)}
    assert {
        "public.lrs_statements",
        "public.lrs_documents",
        "lms.student_identities",
        "lms.enrollments",
    } <= before
    assert any(t.startswith(("xapi_statements", "learning_progress")) for t in mongo_traces(stack, first))
    assert any(t.startswith(("learning_events.", "video_segments.")) for t in clickhouse_traces(stack, first))
    stack.wait_synced()

    # --- access: the admin endpoint refuses every xAPI scope --------------------------------------
    body = {"agent": {"mbox": first.mbox}}
    assert httpx.post(f"{stack.base}/admin/erasures", json=body, timeout=30).status_code == 401
    for scope in XAPI_SCOPES + ["analytics/read"]:
        response = httpx.post(
            f"{stack.base}/admin/erasures", json=body, auth=credential(stack, [scope]), timeout=30
        )
        assert response.status_code == 403, (scope, response.text)
        response = httpx.get(
            f"{stack.base}/admin/erasures/{uuid.uuid4()}", auth=credential(stack, [scope]), timeout=30
        )
        assert response.status_code == 403, (scope, response.text)
    admin = credential(stack, ["admin"])
    assert httpx.get(f"{stack.xapi.base_url}statements", auth=admin,
                     headers={"X-Experience-API-Version": "1.0.3"}, timeout=30).status_code == 403  # fmt: skip
    for bad in ({}, {"agent": {"name": "no identifier"}}, {"agent": {"mbox": "not-a-mailbox"}},
                {"student_id": -1}, {"agent": {"mbox": first.mbox}, "student_id": first.id}, {"whom": 1}):  # fmt: skip
        response = httpx.post(f"{stack.base}/admin/erasures", json=bad, auth=admin, timeout=30)
        assert response.status_code == 400, (bad, response.text)
    response = httpx.post(f"{stack.base}/admin/erasures", content=b"{", auth=admin, timeout=30)
    assert response.status_code == 400

    # --- a dry run removes nothing ------------------------------------------------------------------
    dry = httpx.post(
        f"{stack.base}/admin/erasures", json={**body, "dry_run": True}, auth=admin, timeout=60
    ).json()
    remaining = without(first, everything)
    gone = {s["id"] for s in everything} - {
        s["id"] for s in remaining
    }  # theirs, about them, voidings of those
    assert dry["counts"]["statements"] == {"statements": len(gone), "redacted": 1}
    assert stack.stored() == len({s["id"] for s in everything})

    # --- the erasure --------------------------------------------------------------------------------
    response = httpx.post(f"{stack.base}/admin/erasures", json=body, auth=admin, timeout=180)
    assert response.status_code == 200, response.text
    report = wait_completed(stack, response.json()["id"], admin)
    assert report["requested_by"] == admin[0] and not report["pending_sinks"]
    assert report["counts"]["statements"]["statements"] == len(gone)
    assert report["counts"]["statements"]["rewritten"] >= 1  # redacted, or keys inherited from theirs dropped
    assert report["counts"]["documents"] == {"documents": 2}
    assert report["counts"]["lms"]["students"] == 1 and report["counts"]["lms"]["student_identities"] == 1
    assert (
        report["counts"]["progress"]["enrollments"] >= 1
        and report["counts"]["mongodb"]["xapi_statements"] > 0
    )
    assert not any(
        n in orjson.dumps(report).decode() for n in first.needles
    )  # the record holds no identifier
    stack.wait_synced()
    assert traces(stack, first) == []
    stack.wait_synced()

    catalog = catalog_without(cohort.catalog, first)
    assert stack.stored() == len({s["id"] for s in remaining})
    assert_stack_equals_model(stack, catalog, cohort.courses, remaining)
    instructed = stack.xapi.get("/statements", params={"statementId": extras[1]["id"]}).json()
    assert "instructor" not in instructed["context"] and instructed["actor"]["mbox"] == second.mbox

    # --- nothing brings them back: a replay reads the store ---------------------------------------
    stack.replay()
    assert traces(stack, first) == []
    stack.wait_synced()
    assert_stack_equals_model(stack, catalog, cohort.courses, remaining)

    # --- an erasure interrupted midway is completed by running it again ------------------------------
    async def interrupted() -> str:
        from lrs.usecases.erasure import EraseLearner, read_request
        from lrs.usecases.stores import Stores
        from sinks.erasures import LmsErasures
        from sinks.lms import LmsDatabase

        class Crash(Exception):
            pass

        backend = await open_stores(stack.store, pool_min=1, pool_max=2)
        lms = LmsDatabase(stack.dsn)
        stores = Stores(backend.statements, backend.documents, backend.credentials)

        async def crash(keys: list[str]) -> int:
            raise Crash  # the process dies after the statements, before the documents

        stores.documents.erase_agents = crash
        try:
            with pytest.raises(Crash):
                await EraseLearner(stores, LmsErasures(lms), wait_seconds=0)(
                    {"admin"}, "test", read_request({"student_id": second.id})
                )
            ledger = LmsErasures(lms)
            task = await ledger.open_task(keyed_hash(await ledger.secret(), student_key(second.id)))
            assert task is not None and second.id in task.student_ids
            return task.id
        finally:
            await lms.close()
            await backend.close()

    pending = run(interrupted())
    assert (
        stack.fetch("SELECT 1 FROM lrs_statements WHERE document -> 'actor' ->> 'mbox' = $1", second.mbox)
        == []
    )
    env = {
        **os.environ,
        "LRS_DATABASE_URL": stack.dsn,
        "LRS_LMS_DATABASE_URL": stack.dsn,
        "LRS_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "lrs", "erase", "--student", str(second.id), "--wait", "120",
               "--data-dir", str(stack.data_dir / "cli")]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    rerun = orjson.loads(done.stdout)
    assert rerun["id"] == pending and rerun["completed_at"] and not rerun["pending_sinks"]
    stack.wait_synced()
    assert traces(stack, second) == []
    stack.wait_synced()
    assert_stack_equals_model(
        stack, catalog_without(catalog, second), cohort.courses, without(second, remaining)
    )


def test_statements_in_flight_are_dropped_or_redacted_by_the_pipeline():
    """Statements of an erased learner still on Kafka (stored before the erasure) never reach a
    sink; one naming them elsewhere arrives redacted; their later statements count again."""
    from datetime import datetime, timedelta, timezone

    from streams.envelope import Envelope, Item
    from streams.pipeline import Pipeline
    from streams.settings import CatalogSettings, StreamSettings

    secret, erased_at = b"k" * 32, datetime(2026, 3, 1, tzinfo=timezone.utc)
    learner = {"objectType": "Agent", "mbox": "mailto:gone@school.example"}
    other = {"objectType": "Agent", "mbox": "mailto:stays@school.example"}

    def st(actor, stored: datetime, **extra) -> dict:
        return {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": "https://lms.example/courses/1"}, "stored": stored.isoformat().replace("+00:00", "Z"),
                "timestamp": stored.isoformat().replace("+00:00", "Z"), **extra}  # fmt: skip

    before, after = erased_at - timedelta(hours=1), erased_at + timedelta(hours=1)
    theirs, named, later = (
        st(learner, before),
        st(other, before, context={"instructor": learner}),
        st(learner, after),
    )
    pipeline = Pipeline(
        "postgresql://unused", "postgresql://unused", Path("."), StreamSettings(), CatalogSettings()
    )
    pipeline.erased.update(
        secret, {("default", keyed_hash(secret, "mbox:mailto:gone@school.example")): erased_at}
    )
    raw = Envelope(
        "p", [Item("p1", "x", theirs), Item("p2", "x", named), Item("p3", "x", later)], "e"
    ).encode()

    async def dead(*_: Any) -> None:
        raise AssertionError("nothing is dead-lettered")

    (batch,) = asyncio.run(pipeline.prepare([(0, raw)], dead))
    assert [e.statement_id for e in batch.operations] == [named["id"], later["id"]]
    assert batch.operations[0].learner_key == "mbox:mailto:stays@school.example"
    pipeline.found.keeps_statements = True
    (batch,) = asyncio.run(pipeline.prepare([(0, raw)], dead))
    assert "instructor" not in batch.operations[0].statement["context"]
