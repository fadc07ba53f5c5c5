"""Reading what a running stack holds and comparing it with the reference model
(``tests/reference/model.py``): rollups, lesson progress, quiz attempts, domain events and the
ClickHouse views the dashboards and the instructor page read."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import orjson

from .pipeline_stack import PipelineStack
from .reference import model


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def service_enrollments(stack: PipelineStack, courses: list[int]) -> dict[tuple[int, int], dict]:
    rows = stack.fetch(
        "SELECT e.*, p.completed_lessons, p.completed_quizzes, p.completed_modules, p.total_lessons,"
        " p.total_modules, p.quiz_scores, p.time_spent_minutes, p.current_lesson_id, p.current_module_id,"
        " p.last_accessed_at AS progress_last_accessed_at"
        " FROM lms.enrollments e JOIN lms.progress p ON p.enrollment_id = e.id WHERE e.course_id = ANY($1::int[])",
        courses,
    )
    out = {}
    for r in rows:
        key = (r["student_id"], r["course_id"])
        if r["started_at"] is None:  # every statement of it voided: the row stays, empty
            assert (r["status"], r["completion_percentage"], list(r["completed_lessons"])) == (
                "active",
                0,
                [],
            ), key
            continue
        assert (
            r["enrolled_at"] == r["started_at"] and r["progress_last_accessed_at"] == r["last_accessed_at"]
        ), key
        out[key] = {
            "status": r["status"], "completion_percentage": r["completion_percentage"],
            "completed_at": r["completed_at"], "started_at": r["started_at"],
            "last_accessed_at": r["last_accessed_at"], "completed_lessons": list(r["completed_lessons"]),
            "completed_quizzes": list(r["completed_quizzes"]), "completed_modules": list(r["completed_modules"]),
            "total_lessons": r["total_lessons"], "total_modules": r["total_modules"],
            "quiz_scores": orjson.loads(r["quiz_scores"]), "time_spent_minutes": r["time_spent_minutes"],
            "current_lesson_id": r["current_lesson_id"], "current_module_id": r["current_module_id"],
        }  # fmt: skip
    return out


def model_enrollments(state: dict[tuple[int, int], model.Enrollment]) -> dict[tuple[int, int], dict]:
    return {
        key: {
            "status": e.status,
            "completion_percentage": e.completion_percentage,
            "completed_at": e.completed_at,
            "started_at": e.started_at,
            "last_accessed_at": e.last_accessed_at,
            "completed_lessons": e.completed_lessons,
            "completed_quizzes": e.completed_quizzes,
            "completed_modules": e.completed_modules,
            "total_lessons": e.total_lessons,
            "total_modules": e.total_modules,
            "quiz_scores": e.quiz_scores,
            "time_spent_minutes": e.time_spent_minutes,
            "current_lesson_id": e.current_lesson_id,
            "current_module_id": e.current_module_id,
        }  # fmt: skip
        for key, e in state.items()
    }


def service_lessons(stack: PipelineStack, courses: list[int]) -> dict[tuple, tuple]:
    rows = stack.fetch(
        "SELECT e.student_id, e.course_id, l.lesson_id, l.is_completed, l.completed_at, l.time_spent_seconds"
        " FROM lms.lesson_progress l JOIN lms.enrollments e ON e.id = l.enrollment_id"
        " WHERE e.course_id = ANY($1::int[])",
        courses,
    )
    return {
        (r["student_id"], r["course_id"], r["lesson_id"]): (
            r["is_completed"],
            r["completed_at"],
            r["time_spent_seconds"],
        )
        for r in rows
    }


def service_attempts(stack: PipelineStack, courses: list[int]) -> dict[str, tuple]:
    rows = stack.fetch(
        "SELECT q.statement_id::text, q.quiz_id, q.student_id, q.score, q.passed, q.time_taken_seconds,"
        " q.attempted_at FROM lms.quiz_attempts q JOIN lms.enrollments e ON e.id = q.enrollment_id"
        " WHERE e.course_id = ANY($1::int[])",
        courses,
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def service_events(stack: PipelineStack, courses: list[int]) -> list[tuple]:
    rows = stack.fetch(
        "SELECT type, payload FROM lms.domain_events WHERE (payload->>'course_id')::int = ANY($1::int[])",
        courses,
    )
    out = []
    for r in rows:
        p = orjson.loads(r["payload"])
        if r["type"] == "progress.updated":
            item = f"lesson:{p['lesson_id']}" if "lesson_id" in p else f"quiz:{p['quiz_id']}"
            out.append((r["type"], p["student_id"], p["course_id"], item, p["completed"]))
        elif r["type"] == "progress.module_completed":
            out.append((r["type"], p["student_id"], p["course_id"], f"module:{p['module_id']}", True))
        else:
            out.append((r["type"], p["student_id"], p["course_id"], "", True))
    return sorted(out)


def view(stack: PipelineStack, name: str, courses: list[int]) -> list[dict]:
    return [row for course in courses for row in stack.analytics(name, course)]


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def assert_same(service: dict, expected: dict, what: str) -> None:
    """Equal keys and values (floats within 1e-6), with the differing keys in the message."""
    missing, extra = set(expected) - set(service), set(service) - set(expected)
    wrong = []
    for key in set(service) & set(expected):
        got, want = service[key], expected[key]
        if isinstance(want, tuple):
            same = len(got) == len(want) and all(
                close(g, w) if isinstance(w, float) else g == w for g, w in zip(got, want, strict=True)
            )
        elif isinstance(want, dict):
            same = set(got) == set(want) and all(
                close(got[k], want[k]) if isinstance(want[k], float) else got[k] == want[k] for k in want
            )
        else:
            same = got == want
        if not same:
            wrong.append((key, got, want))
    assert not (missing or extra or wrong), (
        f"{what}: missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}, "
        f"wrong (key, service, model) {sorted(wrong, key=str)[:3]}"
    )


# --- the comparison -------------------------------------------------------------------------------


def expected_activity(facts: list[model.Fact], catalog: model.Catalog, courses: list[int]) -> dict:
    activity = {k: v for k, v in model.learner_activity(facts, catalog).items() if k[0] in courses}
    students = {f.learner: f.student or 0 for f in facts}
    return {k: v | {"student_id": students[k[1]]} for k, v in activity.items()}


def assert_rollups_equal_model(
    stack: PipelineStack, document: dict, courses: list[int], posted: list[dict]
) -> dict[tuple[int, int], model.Enrollment]:
    """Every rollup row of these courses (enrollments, progress, lesson progress, quiz attempts)
    equals the model of the ``posted`` statements (voiding statements included); returns the
    model's enrollments."""
    catalog = model.Catalog(document)
    facts = model.facts_of(posted, catalog)
    state = {k: v for k, v in model.enrollments(facts, catalog).items() if k[1] in courses}
    assert_same(service_enrollments(stack, courses), model_enrollments(state), "enrollments + progress")
    lessons = {k: v for k, v in model.lesson_progress(facts, catalog).items() if k[1] in courses}
    assert_same(service_lessons(stack, courses), lessons, "lesson_progress")
    attempts = {k: v for k, v in model.quiz_attempts(facts).items() if v[1] is not None}
    assert_same(service_attempts(stack, courses), attempts, "quiz_attempts")
    return state


def assert_stack_equals_model(
    stack: PipelineStack, document: dict, courses: list[int], posted: list[dict], pseudonym=None
) -> dict[tuple[int, int], model.Enrollment]:
    """Every rollup row and BI view of these courses equals the model of the ``posted`` statements
    (voiding statements included); returns the model's enrollments."""
    state = assert_rollups_equal_model(stack, document, courses, posted)
    catalog = model.Catalog(document)
    facts = model.facts_of(posted, catalog)
    activity = expected_activity(facts, catalog, courses)
    if pseudonym is not None:  # LRS_ANALYTICS_PSEUDONYMS: the sinks know each learner by pseudonym
        activity = {(course, pseudonym(learner)): v for (course, learner), v in activity.items()}
    got = {}
    for r in view(stack, "bi_learner_activity", courses):
        got[(r["course_id"], r["learner_key"])] = {
            "first_event": _utc(r["first_event"]), "last_event": _utc(r["last_event"]),
            "active_days": r["active_days"], "events": r["events"], "time_spent_seconds": r["time_spent_seconds"],
            "lessons_completed": r["lessons_completed"], "quiz_attempts": r["quiz_attempts"],
            "quizzes_passed": r["quizzes_passed"], "items_required": r["items_required"],
            "items_completed": r["items_completed"], "completed": r["completed"],
            "completed_at": _utc(r["completed_at"]), "seconds_to_complete": r["seconds_to_complete"],
            "student_id": r["student_id"],
        }  # fmt: skip
    assert_same(got, activity, "bi_learner_activity")

    overview = {k: v for k, v in model.course_overview(activity).items() if k in courses}
    got = {
        r["course_id"]: {
            "learners": r["learners"],
            "completed_learners": r["completed_learners"],
            "completion_rate_percent": r["completion_rate_percent"],
            "avg_days_to_complete": r["avg_days_to_complete"],
            "events": r["events"],
            "time_spent_seconds": r["time_spent_seconds"],
            "first_activity": _utc(r["first_activity"]),
            "last_activity": _utc(r["last_activity"]),
        }  # fmt: skip
        for r in view(stack, "bi_course_overview", courses)
    }
    assert_same(got, overview, "bi_course_overview")

    daily = {k: v for k, v in model.course_daily(facts, activity).items() if k[1] in courses}
    got = {
        (date.fromisoformat(str(r["day"])[:10]), r["course_id"]): (
            r["active_learners"], r["new_learners"], r["completions"], r["events"], r["time_spent_seconds"])
        for r in view(stack, "bi_course_daily", courses)
    }  # fmt: skip
    assert_same(got, daily, "bi_course_daily")

    engagement = {k: v for k, v in model.lesson_engagement(facts).items() if k[0] in courses}
    got = {
        (r["course_id"], r["lesson_id"], date.fromisoformat(str(r["day"])[:10]), r["hour"]):
            (r["events"], r["learners"], r["time_spent_seconds"], r["completions"])
        for r in view(stack, "bi_lesson_engagement", courses)
    }  # fmt: skip
    assert_same(got, engagement, "bi_lesson_engagement")
    hourly = {
        (r["course_id"], r["lesson_id"], date.fromisoformat(str(r["day"])[:10]), r["hour"]):
            (r["events"], r["learners"], r["seconds"])
        for r in view(stack, "engagement_hourly", courses)
    }  # fmt: skip
    assert_same(hourly, {k: v[:3] for k, v in engagement.items()}, "engagement_hourly (instructor page)")

    segments = {k: v for k, v in model.video_segments(facts).items() if k[0] in courses}
    got = {
        (r["course_id"], r["lesson_id"], r["activity_id"], r["segment"]): (r["views"], r["viewers"])
        for r in view(stack, "bi_video_segments", courses)
    }
    assert_same(got, segments, "bi_video_segments")

    quizzes = {k: v for k, v in model.quiz_performance(facts).items() if k[0] in courses}
    got = {
        (r["course_id"], r["quiz_id"]): {k: r[k] for k in ("attempts", "passed", "failed", "avg_score_percent",
                                                            "learners", "learners_passed")}
        for r in view(stack, "bi_quiz_performance", courses)
    }  # fmt: skip
    assert_same(got, quizzes, "bi_quiz_performance")

    items = {k: v for k, v in model.quiz_items(facts).items() if k[0] in courses}
    got = {
        (r["course_id"], r["quiz_id"], r["question_id"]): (r["answers"], r["correct"], r["learners"])
        for r in view(stack, "bi_quiz_items", courses)
    }
    assert_same(got, items, "bi_quiz_items")

    funnel = {k: v for k, v in model.funnel(activity).items() if k in courses}
    got = {
        r["course_id"]: (r["started"], r["progressed"], r["passed"], r["completed"])
        for r in view(stack, "completion_funnel", courses)
    }
    assert_same(got, funnel, "completion_funnel")
    return state
