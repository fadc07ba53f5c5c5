"""A simulated cohort for pipeline tests, and what its statements must add up to.

The statements come from the product's simulator (``lrs.simulate``: ``catalog()``, and
``Cohort`` = ``Simulation``, which makes learners launch, watch parts of videos, complete
readings, answer questions, fail or pass quizzes, drop off). The ``expected_*`` functions
compute, from the statements alone and the rules the README documents, the numbers the sinks
must hold. They share nothing with the pipeline's code.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from lrs.simulate import LENGTH, PROGRESS, SEGMENTS, VERB, VIDEO, agent, catalog
from lrs.simulate import Simulation as Cohort

__all__ = ["LENGTH", "VERB", "VIDEO", "Cohort", "agent", "catalog"]


# --- what the sinks must hold --------------------------------------------------------------------


def _verb(st: dict[str, Any]) -> str:
    return st["verb"]["id"].rsplit("/", 1)[-1]


def _where(catalog: dict[str, Any]) -> dict[str, tuple[str, int, int | None, int]]:
    """IRI → (kind, course, module, item id) for every catalog activity."""
    where: dict[str, tuple[str, int, int | None, int]] = {}
    for course in catalog["courses"]:
        where[course["iri"]] = ("course", course["id"], None, course["id"])
        for module in course["modules"]:
            for lesson in module["lessons"]:
                where[lesson["iri"]] = ("lesson", course["id"], module["id"], lesson["id"])
            for quiz in module["quizzes"]:
                where[quiz["iri"]] = ("quiz", course["id"], module["id"], quiz["id"])
    return where


def _student(st: dict[str, Any]) -> int:
    return int(st["actor"]["mbox"].split("student")[1].split("@")[0])


def _seconds(duration: str | None) -> float:
    return float(duration[2:-1]) if duration else 0.0  # the cohort writes PT<n>S only


def expected_rollups(
    catalog: dict[str, Any], statements: list[dict[str, Any]]
) -> dict[tuple[int, int], dict]:
    """(student, course) → status, completion_percentage, completed lessons/quizzes/modules,
    quiz attempts, time spent minutes; by the README's rollup rules."""
    where = _where(catalog)
    done_lessons: dict[tuple[int, int], set[int]] = defaultdict(set)
    passed: dict[tuple[int, int], set[int]] = defaultdict(set)
    attempts: Counter = Counter()
    seconds: Counter = Counter()
    seen: set[tuple[int, int]] = set()
    for st in statements:
        place = where.get(st["object"]["id"])
        if place is None:
            course = next((where[a["id"]][1] for a in st.get("context", {}).get("contextActivities", {}).get("grouping", [])
                           if a["id"] in where), None)  # fmt: skip
            if course is None:
                continue
            kind, module, item = "other", None, None
        else:
            kind, course, module, item = place
        key = (_student(st), course)
        seen.add(key)
        result = st.get("result", {})
        seconds[key] += _seconds(result.get("duration"))
        verb = _verb(st)
        progress = result.get("extensions", {}).get(PROGRESS)
        completes = (
            verb in ("completed", "passed") or result.get("completion") is True or (progress or 0) >= 0.9
        )
        if kind == "lesson" and completes:
            done_lessons[key].add(item)
        if kind == "quiz":
            if verb in ("passed", "failed") or "score" in result:
                attempts[key] += 1
            if verb == "passed" or result.get("success") is True:
                passed[key].add(item)
    out = {}
    for key in seen:
        course = next(c for c in catalog["courses"] if c["id"] == key[1])
        lessons = [lesson["id"] for m in course["modules"] for lesson in m["lessons"]]
        quizzes = [q["id"] for m in course["modules"] for q in m["quizzes"]]
        modules = [m["id"] for m in course["modules"]
                   if all(lesson["id"] in done_lessons[key] for lesson in m["lessons"]) and all(q["id"] in passed[key] for q in m["quizzes"])]  # fmt: skip
        done = len(done_lessons[key] & set(lessons)) + len(passed[key] & set(quizzes))
        total = len(lessons) + len(quizzes)
        out[key] = {
            "status": "completed" if done == total else "active",
            "completion_percentage": (Decimal(100 * done) / total).quantize(Decimal("0.01"), ROUND_HALF_UP),
            "completed_lessons": sorted(done_lessons[key] & set(lessons)),
            "completed_quizzes": sorted(passed[key] & set(quizzes)),
            "completed_modules": sorted(modules),
            "quiz_attempts": attempts[key],
            "time_spent_minutes": int(seconds[key] // 60),
        }
    return out


def expected_domain_events(rollups: dict[tuple[int, int], dict]) -> Counter:
    """Events a first pass emits: one progress.updated per completed lesson or passed quiz, one
    progress.module_completed per completed module, one enrollment.completed per completion."""
    counts: Counter = Counter()
    for r in rollups.values():
        counts["progress.updated"] += len(r["completed_lessons"]) + len(r["completed_quizzes"])
        counts["progress.module_completed"] += len(r["completed_modules"])
        counts["enrollment.completed"] += r["status"] == "completed"
    return counts


def _timestamp(st: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(st["timestamp"].replace("Z", "+00:00"))


def expected_engagement(
    catalog: dict[str, Any], statements: list[dict[str, Any]]
) -> dict[tuple, tuple[int, int, float]]:
    """(course, lesson, day, hour) → (events, learners, seconds) over catalog-located statements."""
    where = _where(catalog)
    events: Counter = Counter()
    learners: dict[tuple, set] = defaultdict(set)
    seconds: Counter = Counter()
    for st in statements:
        place = where.get(st["object"]["id"])
        if place is None:  # questions: located by their grouping course
            grouping = st.get("context", {}).get("contextActivities", {}).get("grouping", [])
            course = next((where[a["id"]][1] for a in grouping if a["id"] in where), 0)
            lesson = 0
        else:
            kind, course, _, item = place
            lesson = item if kind == "lesson" else 0
        at = _timestamp(st)
        key = (course, lesson, at.date(), at.hour)
        events[key] += 1
        learners[key].add(st["actor"]["mbox"])
        seconds[key] += _seconds(st.get("result", {}).get("duration"))
    return {k: (events[k], len(learners[k]), seconds[k]) for k in events}


def expected_heatmap(statements: list[dict[str, Any]]) -> dict[tuple[str, int], int]:
    """(video IRI, 5-second segment) → statements whose played segments touch it."""
    views: Counter = Counter()
    for st in statements:
        value = st.get("result", {}).get("extensions", {}).get(SEGMENTS)
        if not value:
            continue
        touched = set()
        for part in value.split("[,]"):
            start, end = (float(x) for x in part.split("[.]"))
            touched.update(range(int(start // 5), int(math.ceil(end / 5))))
        for segment in touched:
            views[(st["object"]["id"], segment)] += 1
    return dict(views)


def expected_quizzes(
    catalog: dict[str, Any], statements: list[dict[str, Any]]
) -> dict[tuple[int, int], tuple[int, int]]:
    """(course, quiz) → (attempts, passed)."""
    where = _where(catalog)
    out: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for st in statements:
        place = where.get(st["object"]["id"])
        if place and place[0] == "quiz" and _verb(st) in ("passed", "failed"):
            out[(place[1], place[3])][0] += 1
            out[(place[1], place[3])][1] += st["result"].get("success") is True
    return {k: tuple(v) for k, v in out.items()}


def expected_funnel(
    catalog: dict[str, Any], statements: list[dict[str, Any]]
) -> dict[int, tuple[int, int, int, int]]:
    """course → learners who (started, progressed, completed something, passed something)."""
    where = _where(catalog)
    stages: dict[int, list[set]] = defaultdict(lambda: [set(), set(), set(), set()])
    for st in statements:
        place = where.get(st["object"]["id"])
        grouping = st.get("context", {}).get("contextActivities", {}).get("grouping", [])
        course = place[1] if place else next((where[a["id"]][1] for a in grouping if a["id"] in where), None)
        if course is None:
            continue
        verb, who = _verb(st), st["actor"]["mbox"]
        if verb in ("launched", "initialized"):
            stages[course][0].add(who)
        if verb in ("progressed", "experienced", "played", "completed", "passed"):
            stages[course][1].add(who)
        if verb == "completed":
            stages[course][2].add(who)
        if verb == "passed":
            stages[course][3].add(who)
    return {c: tuple(len(s) for s in v) for c, v in stages.items()}
