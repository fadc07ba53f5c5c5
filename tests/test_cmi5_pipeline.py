"""cmi5 through the whole stack: a course imported over HTTP, AU sessions launched and run (the AU
is this test speaking HTTP as cmi5 content does), and the pipeline's rollups following moveOn:
the enrollment completes exactly when the last AU is satisfied, at that statement's timestamp,
with one ``enrollment.completed`` domain event. Expected values by hand from
``tests/data/cmi5/two_blocks.xml`` (a1 CompletedAndPassed, a2 Completed, a3 NotApplicable)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN, cmi5_course_xml
from .pipeline_stack import PipelineStack
from .test_cmi5_launch import Au, au_id, launch


@pytest.fixture(scope="module")
def stack(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory):
    built = PipelineStack(pg_dsn, Path(tmp_path_factory.mktemp("cmi5")))
    yield built
    built.close()


def _wait_for_catalog(stack: PipelineStack, course_id: int, students: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        seen = httpx.get(stack.worker_url("/catalog"), timeout=10).json()
        if course_id in seen["courses"] and seen["students"] >= students:
            return
        assert time.monotonic() < deadline, f"the worker did not reload the catalog: {seen}"
        time.sleep(0.05)


def _enrollment(stack: PipelineStack, student: int, course_id: int) -> dict | None:
    rows = stack.fetch(
        "SELECT status, completion_percentage, completed_at FROM lms.enrollments WHERE student_id = $1"
        " AND course_id = $2",
        student, course_id,
    )  # fmt: skip
    return dict(rows[0]) if rows else None


def _events(stack: PipelineStack, student: int, course_id: int) -> list[str]:
    rows = stack.fetch(
        "SELECT d.type FROM lms.domain_events d JOIN lms.enrollments e ON e.id = d.enrollment_id"
        " WHERE e.student_id = $1 AND e.course_id = $2 ORDER BY d.created_at",
        student, course_id,
    )  # fmt: skip
    return [r["type"] for r in rows]


def test_moveon_drives_the_enrollment_to_completion(stack: PipelineStack):
    lms = httpx.Client(base_url=stack.base, auth=ADMIN, timeout=60)
    course_iri = f"https://example.com/courses/{uuid.uuid4()}"
    imported = lms.post("/cmi5/courses", content=cmi5_course_xml(course_iri),
                        headers={"Content-Type": "application/xml"}).json()  # fmt: skip
    course = {"course_id": imported["course_id"], "id": course_iri}
    student = 8_000_000 + uuid.uuid4().int % 10**6

    # a1: passed, then completed in a second session: satisfied once both are in
    first = Au(stack.base, launch(lms, course, au_id(course, "a1"), student))
    _wait_for_catalog(stack, course["course_id"], 1)
    first.start()
    passed = first.statement("passed", {"success": True, "duration": "PT5M", "score": {"scaled": 0.9}},
                             moveon=True, **{"https://w3id.org/xapi/cmi5/context/extensions/masteryscore": 0.8})  # fmt: skip
    for statement in (
        first.statement("initialized"),
        passed,
        first.statement("terminated", {"duration": "PT5M"}),
    ):
        assert first.send(statement).status_code == 200
    second = Au(stack.base, launch(lms, course, au_id(course, "a1"), student))
    second.start()
    a1_done = second.statement("completed", {"completion": True, "duration": "PT2M"}, moveon=True)
    for statement in (
        second.statement("initialized"),
        a1_done,
        second.statement("terminated", {"duration": "PT2M"}),
    ):
        assert second.send(statement).status_code == 200
    stack.wait_synced()
    halfway = _enrollment(stack, student, course["course_id"])
    # a1 and a3 (NotApplicable) of three AUs: two thirds, not complete
    assert halfway["status"] == "active" and halfway["completion_percentage"] == Decimal("66.67"), halfway

    third = Au(stack.base, launch(lms, course, au_id(course, "a2"), student))
    third.start()
    a2_done = third.statement("completed", {"completion": True, "duration": "PT1M"}, moveon=True)
    for statement in (
        third.statement("initialized"),
        a2_done,
        third.statement("terminated", {"duration": "PT1M"}),
    ):
        assert third.send(statement).status_code == 200
    stack.wait_synced()
    done = _enrollment(stack, student, course["course_id"])
    assert done["status"] == "completed" and done["completion_percentage"] == Decimal("100.00")
    assert done["completed_at"] == datetime.fromisoformat(a2_done["timestamp"].replace("Z", "+00:00"))
    stack.wait_published()
    assert _events(stack, student, course["course_id"]).count("enrollment.completed") == 1
