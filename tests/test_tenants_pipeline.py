"""Tenants through the pipeline (docs/tenants.md), end to end on real parts: two tenants with
the same course ids, activity IRIs, learner identities and statement ids post over HTTP; each
tenant's ClickHouse figures, catalog and instructor report must equal the reference model of its
own statements (``tests/reference/model.py``, which knows nothing of tenants), the default
tenant's rollups must hold its statements only, and all of it must hold after a worker is killed
mid-stream and after a replay. Runs on both statement stores.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from lrs.simulate import cohort

from .conftest import ADMIN
from .model_check import assert_rollups_equal_model
from .pipeline_stack import PipelineStack
from .reference import model
from .test_tenants import make_tenant

pytestmark = pytest.mark.timeout(900)
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
START = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=14)


@pytest.fixture(scope="module", params=["postgres", "mongodb"])
def stack(request: pytest.FixtureRequest, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory):
    store = request.getfixturevalue("mongo_dsn") if request.param == "mongodb" else None
    built = PipelineStack(pg_dsn, Path(tmp_path_factory.mktemp("tenants")), store)
    built.acme = make_tenant(built.store, "acme")
    yield built
    built.close()


def tenant_cohorts() -> dict[str, tuple[dict, list[dict]]]:
    """Both tenants: courses 80-81 with the same IRIs, students from 8001 (the same identities),
    and the same random seed, so acme's statement ids are the default tenant's first ones, a day
    later; acme has fewer learners and voids its first statement, whose id is the default
    tenant's first statement's too."""
    default = cohort(10, 2, 10, seed=5, start=START, first_student=8001, first_course=80)
    later = START + timedelta(days=1)
    acme_document, acme = cohort(6, 2, 10, seed=5, start=later, first_student=8001, first_course=80)
    assert acme[0]["id"] == default[1][0]["id"] and acme[0] != default[1][0]
    voiding = {
        "actor": acme[0]["actor"], "verb": {"id": VOIDED},
        "object": {"objectType": "StatementRef", "id": acme[0]["id"]}, "timestamp": acme[-1]["timestamp"],
    }  # fmt: skip
    return {"default": default, "acme": (acme_document, [*acme, voiding])}


def later_statements() -> dict[str, list[dict]]:
    """More learners of both tenants (from 8101), again with the same first statement ids."""
    return {
        "default": cohort(4, 2, 10, seed=6, start=START, first_student=8101, first_course=80)[1],
        "acme": cohort(
            3, 2, 10, seed=6, start=START + timedelta(days=1), first_student=8101, first_course=80
        )[1],
    }


def credentials(stack: PipelineStack) -> dict[str, tuple[str, str]]:
    return {"default": ADMIN, "acme": stack.acme}


def load_catalog(stack: PipelineStack, tenant: str, document: dict) -> None:
    """Upload the tenant's catalog and wait until the worker holds it."""
    answer = httpx.post(stack.base + "/catalog", json=document, auth=credentials(stack)[tenant], timeout=60)
    assert answer.status_code == 200, answer.text
    wanted = {c["id"] for c in document["courses"]}
    deadline = time.monotonic() + 30
    while not wanted <= set(catalog_of(stack, tenant)["courses"]):
        assert time.monotonic() < deadline, f"the worker did not load {tenant}'s catalog"
        time.sleep(0.05)


def post_interleaved(stack: PipelineStack, statements: dict[str, list[dict]], batch: int = 20) -> None:
    """Each tenant's statements in batches, the tenants' batches alternating: the same ids of
    two tenants arrive within the same instants and the same worker takes."""
    clients = {t: httpx.Client(base_url=stack.base + "/xapi", auth=credentials(stack)[t], timeout=60,
                               headers={"X-Experience-API-Version": "1.0.3"}) for t in statements}  # fmt: skip
    try:
        for start in range(0, max(map(len, statements.values())), batch):
            for tenant, mine in statements.items():
                if chunk := mine[start : start + batch]:
                    answer = clients[tenant].post("/statements", json=chunk)
                    assert answer.status_code == 200, answer.text
    finally:
        for client in clients.values():
            client.close()


def catalog_of(stack: PipelineStack, tenant: str) -> dict:
    return httpx.get(stack.worker_url("/catalog"), params={"tenant": tenant}, timeout=10).json()


def analytics(stack: PipelineStack, view: str, tenant: str, **params) -> list[dict]:
    answer = httpx.get(
        stack.worker_url(f"/analytics/{view}"), params={"tenant": tenant, **params}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_each_tenant_equals_its_model(stack: PipelineStack, cohorts: dict) -> None:
    """Every tenant's views equal the model of its own statements: counted statements, per course
    the funnel, learners and completions, per quiz attempts and passes, per learner events."""
    for tenant, (document, statements) in cohorts.items():
        catalog = model.Catalog(document)
        facts = model.facts_of(statements, catalog)
        activity = model.learner_activity(facts, catalog)
        (row,) = analytics(stack, "bi_tenants", tenant)
        assert row["statements"] == len(model.counted(statements)), tenant
        funnel = {c: dict(zip(("started", "progressed", "passed", "completed"), n, strict=True))
                  for c, n in model.funnel(activity).items()}  # fmt: skip
        got = {r["course_id"]: {k: r[k] for k in ("started", "progressed", "passed", "completed")}
               for r in analytics(stack, "completion_funnel", tenant)}  # fmt: skip
        assert got == funnel, tenant
        quizzes = {k: (v["attempts"], v["passed"]) for k, v in model.quiz_performance(facts).items()}
        got_quizzes = {(r["course_id"], r["quiz_id"]): (r["attempts"], r["passed"])
                       for r in analytics(stack, "bi_quiz_performance", tenant)}  # fmt: skip
        assert got_quizzes == quizzes, tenant
        events = {(c, learner): a["events"] for (c, learner), a in activity.items()}
        got_events = {(r["course_id"], r["learner_key"]): r["events"]
                      for r in analytics(stack, "bi_learner_activity", tenant)}  # fmt: skip
        assert got_events == events, tenant


def test_each_tenant_sees_exactly_its_own_analytics(stack: PipelineStack) -> None:
    cohorts = tenant_cohorts()
    for tenant, (document, _) in cohorts.items():
        load_catalog(stack, tenant, document)
    post_interleaved(stack, {tenant: statements for tenant, (_, statements) in cohorts.items()})
    stack.wait_synced()
    assert_each_tenant_equals_its_model(stack, cohorts)
    assert analytics(stack, "bi_course_overview", "nobody") == []
    for params, problem in (({"tenant": "Not A Tenant"}, "tenant"), ({"course_id": "80"}, "no course_id")):
        refused = httpx.get(stack.worker_url("/analytics/bi_tenants"), params=params, timeout=30)
        assert refused.status_code == 400 and problem in refused.text, refused.text

    # the rollups are the default tenant's: its statements only, none of acme's
    document, statements = cohorts["default"]
    assert_rollups_equal_model(stack, document, [c["id"] for c in document["courses"]], statements)

    # the instructor page: each credential its tenant's courses and reports
    for tenant, (document, statements) in cohorts.items():
        auth = credentials(stack)[tenant]
        courses = httpx.get(stack.base + "/analytics/api/courses", auth=auth, timeout=30)
        assert courses.status_code == 200, courses.text
        assert [c["id"] for c in courses.json()] == sorted(c["id"] for c in document["courses"])
        expected = model.funnel(model.learner_activity(model.facts_of(statements, model.Catalog(document)),
                                                       model.Catalog(document)))  # fmt: skip
        for course in (c["id"] for c in document["courses"]):
            answer = httpx.get(f"{stack.base}/analytics/api/courses/{course}/report", auth=auth, timeout=60)
            assert answer.status_code == 200, answer.text
            assert tuple(
                answer.json()["funnel"][k] for k in ("started", "progressed", "passed", "completed")
            ) == (expected.get(course, (0, 0, 0, 0))), (tenant, course)

    # what stays the default tenant's: cmi5 launch refuses other tenants' credentials
    refused = httpx.get(stack.base + "/cmi5/courses", auth=stack.acme, timeout=30)
    assert refused.status_code == 403 and "default tenant" in refused.text, refused.text


def test_two_tenants_count_once_across_a_killed_worker_and_a_replay(stack: PipelineStack) -> None:
    """More statements of both tenants, the worker killed (SIGKILL) while they arrive and started
    again; then a whole replay: each tenant's figures still equal its model."""
    cohorts = tenant_cohorts()
    more = later_statements()
    assert more["default"][0]["id"] == more["acme"][0]["id"]
    post_interleaved(
        stack, {tenant: statements[: len(statements) // 2] for tenant, statements in more.items()}
    )
    stack.stop_worker(signal.SIGKILL)
    post_interleaved(
        stack, {tenant: statements[len(statements) // 2 :] for tenant, statements in more.items()}
    )
    stack.start_worker()
    stack.wait_synced()
    grown = {t: (document, statements + more[t]) for t, (document, statements) in cohorts.items()}
    assert_each_tenant_equals_its_model(stack, grown)

    stack.replay()
    assert_each_tenant_equals_its_model(stack, grown)


def test_an_erasure_in_one_tenant_screens_none_of_another_tenants_statements() -> None:
    """An erased learner's identity and student id of the default tenant, used by another tenant
    for another person, leave that tenant's statements and events alone."""
    from lrs.xapi.erasure import keyed_hash, student_key
    from streams.envelope import Item
    from streams.erasure import ErasedLearners

    secret, mbox = b"secret", "mailto:ada@example.org"
    erased = ErasedLearners()
    now = datetime.now(timezone.utc)
    erased.update(secret, {("default", keyed_hash(secret, f"mbox:{mbox}")): now,
                           ("default", keyed_hash(secret, student_key(7))): now})  # fmt: skip
    statement = {
        "id": "6f1c0f4e-3c1b-4a47-9a40-8f0f2a1e3b11", "actor": {"mbox": mbox},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"id": "https://example.org/a"}, "stored": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    assert erased.screen_item(Item("p", f"mbox:{mbox}", statement)) is None
    assert erased.screen_item(Item("p", f"mbox:{mbox}", statement, tenant="acme")) is not None
    earlier = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert erased.erased_student(7, earlier) and not erased.erased_student(7, earlier, "acme")


def test_a_tenants_catalog_merges_as_the_catalog_tables_do() -> None:
    """A later upload replaces the courses and students it names; a lesson it puts in another
    course and an identity it gives another student leave their former place."""
    from sinks.catalog import Catalog, CatalogDocument
    from sinks.lms import merged

    first = CatalogDocument.model_validate({
        "courses": [{"id": 1, "iri": "https://e.org/c/1", "lessons": [{"id": 11, "iri": "https://e.org/l/11"},
                                                                     {"id": 12}]},
                    {"id": 2, "lessons": [{"id": 21}]}],
        "students": [{"id": 1, "name": "Ada", "identities": [{"mbox": "mailto:ada@e.org"}, {"mbox": "mailto:a@e.org"}]},
                     {"id": 3, "name": "Cy"}],
    })  # fmt: skip
    later = CatalogDocument.model_validate({
        "courses": [{"id": 2, "title": "two", "lessons": [{"id": 21}, {"id": 12}]}],
        "students": [{"id": 2, "name": "Bo", "identities": [{"mbox": "mailto:a@e.org"}]}],
    })  # fmt: skip
    catalog = Catalog.of(merged(first, later))
    assert catalog.required_items(1) == ([11], []) and catalog.required_items(2) == ([21, 12], [])
    assert catalog.students == {"mbox:mailto:ada@e.org": 1, "mbox:mailto:a@e.org": 2}
    assert catalog.by_iri["https://e.org/l/11"].lesson_id == 11
    assert [s.name for s in merged(first, later).students] == ["Ada", "Cy", "Bo"]


def admin_of(stack: PipelineStack, tenant: str) -> tuple[str, str]:
    """A credential of scope ``admin`` of the tenant."""
    from lrs.auth.credentials import new_credential
    from lrs.store import open_stores

    made, secret = new_credential(f"{tenant} admin", ["admin"], "urn:test", tenant=tenant)

    async def save() -> None:
        backend = await open_stores(stack.store, pool_min=1, pool_max=1)
        try:
            await backend.credentials.save(made)
        finally:
            await backend.close()

    run_async(save())
    return made.key, secret


def run_async(coroutine):
    import asyncio

    return asyncio.run(coroutine)


def test_a_learner_erased_in_one_tenant_stays_in_the_other(stack: PipelineStack) -> None:
    """Student 8001's identity is a learner of both tenants. Erased in acme over HTTP (acme's
    admin credential): acme's statements of the learner are gone from its store and its figures
    equal the model without them; the default tenant's statements and figures are untouched, and
    its admin cannot see acme's erasure record."""
    mbox = "mailto:student8001@school.example"
    cohorts = tenant_cohorts()
    more = later_statements()
    posted = {t: statements + more[t] for t, (_, statements) in cohorts.items()}
    admin = admin_of(stack, "acme")
    answer = httpx.post(
        stack.base + "/admin/erasures", json={"agent": {"mbox": mbox}}, auth=admin, timeout=180
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["tenant"] == "acme" and not report["pending_sinks"], report
    assert report["counts"]["statements"]["statements"] > 0

    kept = {
        "default": (cohorts["default"][0], posted["default"]),
        "acme": (cohorts["acme"][0], [s for s in posted["acme"] if s["actor"].get("mbox") != mbox]),
    }
    assert len(kept["acme"][1]) < len(posted["acme"])
    stack.wait_synced()
    assert_each_tenant_equals_its_model(stack, kept)

    agent = {"agent": '{"mbox": "%s"}' % mbox}
    for tenant, auth, found in (("acme", stack.acme, False), ("default", ADMIN, True)):
        with httpx.Client(base_url=stack.base + "/xapi", auth=auth, headers={"X-Experience-API-Version": "1.0.3"},
                          timeout=30) as xapi:  # fmt: skip
            statements = xapi.get("/statements", params=agent).json()["statements"]
        assert bool(statements) is found, tenant
    record = f"{stack.base}/admin/erasures/{report['id']}"
    assert httpx.get(record, auth=admin, timeout=30).status_code == 200
    assert httpx.get(record, auth=admin_of(stack, "default"), timeout=30).status_code == 404
