"""The learner simulator (``lrs simulate``): deterministic, behaves like learners, valid xAPI."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from lrs.cli import main
from lrs.simulate import LENGTH, PROGRESS, SEGMENTS, SESSION, VIDEO_SESSION, cohort

from .conftest import ADMIN, Xapi

START = datetime(2026, 9, 1, tzinfo=timezone.utc)


def _verb(st: dict) -> str:
    return st["verb"]["id"].rsplit("/", 1)[-1]


def test_the_same_seed_gives_the_same_statements_and_another_seed_others():
    first = cohort(40, 3, 20, seed=11, start=START)
    again = cohort(40, 3, 20, seed=11, start=START)
    other = cohort(40, 3, 20, seed=12, start=START)
    assert first == again
    assert {s["id"] for s in first[1]}.isdisjoint({s["id"] for s in other[1]})


def test_learners_work_in_sessions_inside_the_window():
    document, statements = cohort(60, 3, 20, seed=3, start=START)
    end = START + timedelta(days=20)
    sessions: dict[str, list[dict]] = defaultdict(list)
    registrations: dict[tuple[str, str], set[str]] = defaultdict(set)
    for st in statements:
        at = datetime.fromisoformat(st["timestamp"].replace("Z", "+00:00"))
        assert START <= at < end + timedelta(hours=2), st["timestamp"]  # a session may run past midnight
        context = st["context"]
        sessions[context["extensions"][SESSION]].append(st)
        registrations[(st["actor"]["mbox"], context["registration"])].add(context["extensions"][SESSION])
    for session in sessions.values():  # cmi5: launched, initialized … terminated, in time order
        assert [_verb(s) for s in session[:2]] == ["launched", "initialized"]
        assert _verb(session[-1]) == "terminated"
        assert [s["timestamp"] for s in session] == sorted(s["timestamp"] for s in session)
    per_enrollment = [len(s) for s in registrations.values()]
    assert max(per_enrollment) > 1, "some learners come back for another session"
    assert min(per_enrollment) == 1, "some learners never come back"
    completed_courses = sum(
        1 for s in statements if _verb(s) == "completed" and s["object"]["id"].count("/") == 4
    )
    assert 0 < completed_courses < len(registrations), "some, not all, enrollments are completed"
    verbs = {_verb(s) for s in statements}
    assert {"played", "paused", "seeked", "answered", "failed", "passed", "experienced"} <= verbs


def test_videos_are_watched_in_sessions_whose_segments_only_grow():
    """Video profile sessions: every statement of a session carrying played-segments carries the
    session's cumulative ones (never fewer than before), progress only grows, and sessions end with
    terminated; some videos stay partly watched."""
    _, statements = cohort(60, 2, 20, seed=5, start=START)
    covered: dict[str, set[float]] = {}
    progress: dict[tuple[str, str], float] = {}
    last_verb: dict[str, str] = {}
    partial = 0
    for st in statements:
        if VIDEO_SESSION not in st.get("context", {}).get("extensions", {}):
            continue
        session = st["context"]["extensions"][VIDEO_SESSION]
        last_verb[session] = _verb(st)
        extensions = st.get("result", {}).get("extensions", {})
        if SEGMENTS not in extensions:
            continue
        length = st["context"]["extensions"][LENGTH]
        parts = set()
        for part in extensions[SEGMENTS].split("[,]"):
            a, b = (float(x) for x in part.split("[.]"))
            assert 0 <= a < b <= length
            parts.add((a, b))
        assert parts >= covered.get(session, set()), "played segments are cumulative within a session"
        covered[session] = parts
        key = (st["actor"]["mbox"], st["object"]["id"])
        assert extensions[PROGRESS] >= progress.get(key, 0.0)
        progress[key] = extensions[PROGRESS]
        partial += extensions[PROGRESS] < 0.9
    assert partial > 0 and covered
    assert set(last_verb.values()) == {"terminated"}
    verbs = {_verb(st) for st in statements if VIDEO_SESSION in st.get("context", {}).get("extensions", {})}
    assert {"played", "paused", "seeked", "completed", "terminated"} <= verbs


def test_questions_name_their_quiz_as_parent_and_sessions_carry_their_time():
    """Answers to a quiz's questions have the question as object and the quiz as context parent;
    a cmi5 session's terminated carries the session's time (initialized to terminated)."""
    document, statements = cohort(30, 2, 10, seed=9, start=START)
    quizzes = {q["iri"] for c in document["courses"] for m in c["modules"] for q in m["quizzes"]}
    answers = [st for st in statements if _verb(st) == "answered"]
    assert answers and all(
        [a["id"] for a in st["context"]["contextActivities"]["parent"]] == [st["object"]["id"].rsplit("/questions/")[0]]
        and st["object"]["id"].rsplit("/questions/")[0] in quizzes
        for st in answers
    )  # fmt: skip
    opened: dict[str, datetime] = {}
    for st in statements:
        session, at = (
            st["context"]["extensions"][SESSION],
            datetime.fromisoformat(st["timestamp"].replace("Z", "+00:00")),
        )
        if _verb(st) == "initialized":
            opened[session] = at
        elif _verb(st) == "terminated" and st["object"]["id"].count("/") == 4:
            assert st["result"]["duration"] == f"PT{int((at - opened[session]).total_seconds())}S"


def test_lrs_simulate_posts_through_the_lrs_and_a_second_run_stores_nothing_new(base_url: str, xapi: Xapi):
    arguments = ["simulate", "--learners", "3", "--courses", "2", "--days", "5", "--seed", "77",
                 "--start", "2026-08-01", "--url", base_url, "--auth", ":".join(ADMIN)]  # fmt: skip
    document, statements = cohort(3, 2, 5, seed=77, start=datetime(2026, 8, 1, tzinfo=timezone.utc))
    first = CliRunner().invoke(main, arguments)
    assert first.exit_code == 0, first.output
    assert f"posted {len(statements):,} statements" in first.output
    learner = statements[0]["actor"]
    stored = xapi.find(agent=learner)
    assert {s["id"] for s in stored} == {s["id"] for s in statements if s["actor"] == learner}
    second = CliRunner().invoke(main, arguments)  # the same ids and content: accepted, not duplicated
    assert second.exit_code == 0, second.output
    assert len(xapi.find(agent=learner)) == len(stored)


def test_lrs_simulate_names_a_refusal():
    result = CliRunner().invoke(
        main, ["simulate", "--learners", "1", "--start", "not a date", "--auth", "a:b"]
    )
    assert result.exit_code != 0 and "not an ISO 8601 date" in result.output
