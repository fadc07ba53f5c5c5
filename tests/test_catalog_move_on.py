"""cmi5 AUs in the catalog (docs/analytics.md "cmi5 courses"): ``LessonIn.move_on`` is validated,
carried into the snapshot and kept by the LMS tables; an AU is satisfied by its moveOn (the
rollups' rule, expected values by hand; the whole stack is checked against the reference model in
``test_reference_model.test_cmi5_cohort``)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest
from pydantic import ValidationError

from sinks.catalog import Catalog, CatalogDocument
from sinks.lms import LmsDatabase
from sinks.progress import au_satisfied_at

from .pipeline_stack import create_database

DOCUMENT = {
    "courses": [{
        "id": 1, "iri": "https://lms.example.org/cmi5/1",
        "modules": [{"id": 10, "iri": "https://lms.example.org/cmi5/1/block/a", "lessons": [
            {"id": 100, "kind": "cmi5", "iri": "https://lms.example.org/cmi5/1/au/0", "move_on": "CompletedAndPassed"},
            {"id": 101, "kind": "cmi5", "iri": "https://lms.example.org/cmi5/1/au/1", "move_on": "NotApplicable"},
        ]}],
        "lessons": [
            {"id": 102, "kind": "cmi5", "iri": "https://lms.example.org/cmi5/1/au/2", "move_on": "Passed"},
            {"id": 103, "kind": "reading"},
        ],
    }],
}  # fmt: skip
MOVE_ONS = {100: "CompletedAndPassed", 101: "NotApplicable", 102: "Passed", 103: None}


def test_move_on_is_one_of_cmi5s_values():
    lesson = {"id": 1, "kind": "cmi5", "move_on": "Completed"}
    for bad in ("completed", "Satisfied", ""):
        with pytest.raises(ValidationError):
            CatalogDocument.model_validate({"courses": [{"id": 1, "lessons": [lesson | {"move_on": bad}]}]})
    snapshot = Catalog.of(CatalogDocument.model_validate(DOCUMENT))
    assert {i: snapshot.lessons[i].move_on for i in MOVE_ONS} == MOVE_ONS
    assert (
        snapshot.move_on(102) == "Passed" and snapshot.move_on(103) is None and snapshot.move_on(999) is None
    )


def test_the_lms_tables_keep_move_on_and_refuse_anything_else(pg_dsn: str):
    async def scenario() -> None:
        lms = LmsDatabase(await create_database(pg_dsn, "moveon"))
        try:
            await lms.save_catalog(CatalogDocument.model_validate(DOCUMENT))
            read = await lms.read_catalog()
            assert {i: read.lessons[i].move_on for i in MOVE_ONS} == MOVE_ONS
            changed = DOCUMENT["courses"][0] | {
                "lessons": [{"id": 102, "kind": "cmi5", "move_on": "Completed"}]
            }
            await lms.save_catalog(CatalogDocument.model_validate({"courses": [changed]}))
            assert (await lms.read_catalog()).lessons[102].move_on == "Completed"  # a re-import updates it
            with pytest.raises(asyncpg.CheckViolationError):
                await (await lms.pool()).execute(
                    "UPDATE lms.lessons SET move_on = 'Sometimes' WHERE lesson_id = 100"
                )
        finally:
            await lms.close()

    asyncio.run(scenario())


T = [datetime(2026, 3, 2, 9, tzinfo=timezone.utc) + timedelta(hours=h) for h in range(5)]


@pytest.mark.parametrize(
    ("move_on", "completed", "passed", "waived", "expected"),
    [  # (first completed, first passed, first waived) → satisfied at; the enrollment started at T[0]
        ("Completed", T[2], None, None, T[2]),
        ("Completed", None, T[1], None, None),  # passing is not completing
        ("Passed", T[2], T[3], None, T[3]),
        ("CompletedOrPassed", T[3], T[2], None, T[2]),
        ("CompletedAndPassed", T[3], T[1], None, T[3]),  # the later of the two
        ("CompletedAndPassed", T[1], None, None, None),
        ("CompletedAndPassed", T[1], None, T[4], T[4]),  # waived satisfies any moveOn
        ("Passed", None, None, T[2], T[2]),
        ("CompletedAndPassed", T[1], T[4], T[2], T[2]),  # waived before the pass
        ("NotApplicable", None, None, None, T[0]),  # from the enrollment's start
    ],
)
def test_an_au_is_satisfied_by_its_move_on(move_on, completed, passed, waived, expected):
    assert au_satisfied_at(move_on, completed, passed, waived, T[0]) == expected
