"""Statement → LearningEvent, and where its ids come from (catalog, IRI templates, context)."""

from __future__ import annotations

import pytest

from sinks.catalog import Catalog, Lesson, Quiz
from sinks.events import Location
from sinks.positions import encode
from streams.enrich import flatten, played_segments
from streams.locate import Locator
from streams.settings import CatalogSettings

from lrs.xapi.formats import parse_timestamp

VIDEO = "https://w3id.org/xapi/video"


def catalog() -> Locator:
    """Course 7: module 70 with lesson 700 (IRI from the LMS's own content) and quiz 71."""
    found = Catalog()
    found.add_course(7)
    found.add_module(70, 7)
    found.add_lesson(Lesson(700, 70, 7, "video", 120), "https://content.example/intro-video")
    found.add_quiz(Quiz(71, 70, 7, 70.0))
    found.students["mbox:mailto:ada@example.org"] = 42
    settings = CatalogSettings()
    return Locator(found, settings.iri_templates, settings.student_homepage)


def statement(object_id: str = "https://content.example/intro-video", **parts) -> dict:
    return {
        "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        "actor": parts.pop("actor", {"mbox": "mailto:ada@example.org"}),
        "verb": parts.pop("verb", {"id": "http://adlnet.gov/expapi/verbs/experienced"}),
        "object": {"id": object_id},
        "timestamp": "2026-03-04T10:15:00.250Z",
        "stored": "2026-03-04T10:15:01Z",
        **parts,
    }


POSITION = encode(parse_timestamp("2026-03-04T10:15:01Z"), 1)


@pytest.mark.parametrize(
    ("iri", "expected"),
    [
        ("https://content.example/intro-video", Location(7, 70, 700)),  # the catalog's IRI
        ("https://lms.example/courses/7/lessons/700", Location(7, 70, 700)),  # template, module from catalog
        (
            "https://lms.example/courses/9/modules/90/lessons/900/",
            Location(9, 90, 900),
        ),  # template, trailing /
        ("https://lms.example/courses/7/quizzes/71?attempt=2", Location(7, 70, None, 71)),
        ("https://lms.example/courses/7", Location(7)),
        ("https://lms.example/courses/seven", Location()),  # ids are numbers
        ("https://elsewhere.example/x", Location()),
    ],
)
def test_activities_resolve_through_catalog_then_templates(iri: str, expected: Location):
    assert catalog().resolve(statement(iri)) == expected


def test_context_activities_fill_what_the_object_leaves_open():
    """cmi5 content: the object is an AU nobody catalogued; grouping names the course, parent the
    module. The object's own ids win over the context's."""
    context = {"contextActivities": {"parent": [{"id": "https://lms.example/courses/7/modules/70"}],
                                     "grouping": [{"id": "https://lms.example/courses/7"}]}}  # fmt: skip
    assert catalog().resolve(statement("https://au.example/1", context=context)) == Location(7, 70)
    other = {"contextActivities": {"grouping": [{"id": "https://lms.example/courses/8"}]}}
    assert catalog().resolve(statement("https://content.example/intro-video", context=other)) == Location(
        7, 70, 700
    )


@pytest.mark.parametrize(
    ("actor", "student"),
    [
        ({"mbox": "mailto:ada@example.org"}, 42),
        ({"account": {"homePage": "https://lms.example/", "name": "1234"}}, 1234),
        ({"account": {"homePage": "https://lms.example", "name": "ada"}}, None),  # not a number
        ({"account": {"homePage": "https://other.example", "name": "1234"}}, None),
        ({"mbox": "mailto:stranger@example.org"}, None),
    ],
)
def test_learners_map_to_students(actor: dict, student: int | None):
    assert catalog().student_of(actor) == student


def test_a_video_statement_flattens_to_every_field():
    event = flatten(
        statement(
            verb={"id": f"{VIDEO}/verbs/paused"},
            result={
                "duration": "PT1M30.5S",
                "score": {"raw": 15, "min": 10, "max": 20},
                "extensions": {
                    f"{VIDEO}/extensions/played-segments": "0[.]5[,]10[.]12.5[,]junk[,]9[.]3",
                    f"{VIDEO}/extensions/time": 12.5,
                    f"{VIDEO}/extensions/progress": 0.95,
                },
            },
            context={
                "platform": "web",
                "registration": "a8b9c6f0-0a0b-4c1d-8e2f-3a4b5c6d7e8f",
                "extensions": {
                    f"{VIDEO}/extensions/length": "120",
                    "https://w3id.org/xapi/cmi5/context/extensions/sessionid": "s-1",
                },
            },
        ),  # fmt: skip
        POSITION,
        catalog(),
    )
    assert (event.student_id, event.learner_key, event.verb_class) == (
        42,
        "mbox:mailto:ada@example.org",
        "paused",
    )
    assert event.location == Location(7, 70, 700)
    assert event.duration_seconds == 90.5
    assert event.score_percent == 50.0
    assert event.video_segments == [(0.0, 5.0), (10.0, 12.5)]  # junk and backwards segments skipped
    assert (event.video_time, event.video_length, event.progress) == (12.5, 120.0, 0.95)
    assert event.completes  # 95 % of the video watched
    assert (event.session_id, event.platform) == ("s-1", "web")
    assert event.timestamp.isoformat() == "2026-03-04T10:15:00.250000+00:00"


def test_unknown_activity_verb_and_learner_still_flatten_with_empty_ids():
    event = flatten(
        statement(
            "https://elsewhere.example/x",
            actor={"mbox": "mailto:stranger@example.org"},
            verb={"id": "https://verbs.example/pondered"},
        ),  # fmt: skip
        POSITION,
        catalog(),
    )
    assert (event.student_id, event.location, event.verb_class) == (None, Location(), "other")
    assert not event.completes and event.quiz_passed is None and event.score_percent is None


def test_groups_count_by_their_members_and_sub_statements_have_no_activity():
    group = {
        "objectType": "Group",
        "member": [{"mbox": "mailto:b@example.org"}, {"mbox": "mailto:a@example.org"}],
    }
    event = flatten(statement(actor=group), POSITION, catalog())
    assert event.learner_key == "group:mbox:mailto:a@example.org,mbox:mailto:b@example.org"
    about = statement()
    about["object"] = {"objectType": "StatementRef", "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bef"}
    flat = flatten(about, POSITION, catalog())
    assert (flat.activity_id, flat.location) == ("", Location())


@pytest.mark.parametrize(
    ("result", "passes", "score"),
    [
        ({"success": True, "score": {"scaled": 0.8}}, True, 80.0),
        ({"success": False, "score": {"raw": 3, "max": 10}}, False, 30.0),
        ({"score": {"raw": 5, "min": 5, "max": 5}}, None, None),  # no range: no percentage
    ],
)
def test_assessment_outcomes(result: dict, passes: bool | None, score: float | None):
    event = flatten(statement("https://lms.example/courses/7/quizzes/71", result=result), POSITION, catalog())
    assert (event.quiz_passed, event.score_percent) == (passes, score)


def test_played_segments_ignore_anything_not_a_segment_list():
    assert played_segments(None) == [] and played_segments(5) == [] and played_segments("") == []
    assert played_segments(" 1.5[.]2 ") == [(1.5, 2.0)]


def test_answers_to_a_quiz_question_are_item_responses_not_attempts():
    """A question whose parent is the quiz is located in it, but answering it (even correctly)
    neither attempts nor passes the quiz (docs/analytics.md §2)."""
    quiz = "https://lms.example/courses/7/quizzes/71"
    answer = statement(
        "https://content.example/q1", verb={"id": "http://adlnet.gov/expapi/verbs/answered"},
        result={"success": True, "response": "b"}, context={"contextActivities": {"parent": [{"id": quiz}]}},
    )  # fmt: skip
    event = flatten(answer, POSITION, catalog())
    assert (event.location.quiz_id, event.object_kind) == (71, "")
    assert event.item_response and not event.quiz_attempt and event.quiz_passed is None
    scored = flatten(statement(quiz, result={"score": {"raw": 8, "min": 0, "max": 10}}), POSITION, catalog())
    assert scored.quiz_attempt and scored.quiz_passed is True  # 80 % against the quiz's 70 %


def test_only_a_statement_about_the_lesson_completes_it():
    inside = statement(
        "https://content.example/page-3", result={"completion": True},
        context={"contextActivities": {"parent": [{"id": "https://content.example/intro-video"}]}},
    )  # fmt: skip
    event = flatten(inside, POSITION, catalog())
    assert event.location.lesson_id == 700 and event.completes and not event.completes_lesson
    assert flatten(statement(result={"completion": True}), POSITION, catalog()).completes_lesson


CMI5 = {"contextActivities": {"category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]}}
ADL = "http://adlnet.gov/expapi/verbs/"
AU_IRI = "https://lms.example.org/au/1"


def cmi5_catalog() -> Locator:
    """Course 8: lesson 800, a cmi5 AU (moveOn Completed) under block 80; course 7 as ``catalog()``."""
    locator = catalog()
    locator.catalog.add_course(8, "https://lms.example.org/course/8")
    locator.catalog.add_module(80, 8, "https://lms.example.org/block/80")
    locator.catalog.add_lesson(Lesson(800, 80, 8, "cmi5", None, "Completed"), AU_IRI)
    return locator


@pytest.mark.parametrize(
    ("verb", "context", "outcome"),
    [
        (ADL + "completed", CMI5, "completed"),
        (ADL + "passed", CMI5, "passed"),
        ("https://w3id.org/xapi/adl/verbs/waived", CMI5, "waived"),
        (ADL + "failed", CMI5, None),  # failed satisfies nothing
        (ADL + "terminated", CMI5, None),
        (ADL + "completed", None, None),  # not cmi5 defined
        (ADL + "completed", {"contextActivities": {"category": [{"id": "https://example.org/other"}]}}, None),
    ],
)
def test_cmi5_outcomes_come_from_cmi5_defined_statements_about_the_au(verb, context, outcome):
    parts = {"verb": {"id": verb}, "result": {"completion": True}} | ({"context": context} if context else {})
    event = flatten(statement(AU_IRI, **parts), POSITION, cmi5_catalog())
    # an AU: no single statement completes it
    assert (event.cmi5_outcome, event.completes_lesson) == (outcome, False)
    assert event.location == Location(8, 80, 800) and not event.quiz_attempt


def test_an_outcome_needs_the_au_as_object_and_ordinary_lessons_keep_their_rule():
    child = statement("https://lms.example.org/au/1/page", verb={"id": ADL + "completed"},
                      context=CMI5 | {"contextActivities": CMI5["contextActivities"] | {"parent": [{"id": AU_IRI}]}})  # fmt: skip
    event = flatten(child, POSITION, cmi5_catalog())
    assert event.location.lesson_id == 800 and event.cmi5_outcome is None
    ordinary = flatten(statement(verb={"id": ADL + "completed"}, context=CMI5), POSITION, cmi5_catalog())
    # recorded, but lesson 700 is no AU: §2's rule completes it as before
    assert ordinary.completes_lesson and ordinary.cmi5_outcome == "completed"


@pytest.mark.parametrize(
    "iri", [AU_IRI, "https://lms.example.org/block/80", "https://lms.example.org/course/8"]
)
def test_the_lms_satisfied_completes_nothing(iri: str):
    satisfied = {"id": "https://w3id.org/xapi/adl/verbs/satisfied"}
    event = flatten(
        statement(iri, verb=satisfied, context=CMI5, result={"completion": True}), POSITION, cmi5_catalog()
    )
    assert not (event.completes or event.completes_lesson or event.completes_course or event.cmi5_outcome)
    plain = flatten(statement("https://lms.example.org/course/8", verb=satisfied), POSITION, cmi5_catalog())
    assert plain.completes_course  # without the cmi5 category: §2's completing statement, as before


def test_a_single_context_activity_locates_like_a_list_of_one():
    """xAPI 1.0.3 allows a context activity as one object instead of an array."""
    single, listed = (
        statement("https://content.example/page-3", context={"contextActivities": {"parent": parent}})
        for parent in (
            {"id": "https://content.example/intro-video"},
            [{"id": "https://content.example/intro-video"}],
        )
    )
    assert flatten(single, POSITION, catalog()).location == Location(7, 70, 700)
    assert flatten(single, POSITION, catalog()) == flatten(listed, POSITION, catalog())


def test_the_statements_json_and_its_decoded_form_flatten_alike():
    """The worker flattens the JSON the relay sent; tests and tools pass decoded statements."""
    import orjson

    video = statement(
        result={"duration": "PT1M30S", "score": {"raw": "7", "min": 0, "max": 10}, "response": "b",
                "extensions": {VIDEO + "/extensions/played-segments": "0[.]5[,]10[.]12.5"}},
        context={"registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7", "platform": "web",
                 "contextActivities": {"grouping": [{"id": "https://lms.example/courses/7"}]}},
    )  # fmt: skip
    decoded = flatten(video, POSITION, catalog(), keep_statement=True)
    assert flatten(orjson.dumps(video), POSITION, catalog(), keep_statement=True) == decoded
    assert decoded.score_percent == 70.0 and decoded.duration_seconds == 90.0 and decoded.statement == video


@pytest.mark.parametrize(
    "broken",
    [
        {
            "actor": {"mbox": "mailto:ada@example.org"},
            "verb": {"id": "v"},
            "object": {"id": "x"},
        },  # no id, stored
        statement(verb="http://adlnet.gov/expapi/verbs/experienced"),  # verb is not an object
        statement(result={"success": "yes"}),
        statement(object_id=None),
    ],
)
def test_a_statement_no_lrs_would_store_is_a_value_error_both_ways(broken):
    """What the worker dead-letters: a ValueError (or KeyError/TypeError), never another error."""
    import orjson

    for form in (broken, orjson.dumps(broken)):
        with pytest.raises((ValueError, KeyError, TypeError)):
            flatten(form, POSITION, catalog())
