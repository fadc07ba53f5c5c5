"""A simulated cohort for pipeline tests, and what its statements must add up to.

``catalog()`` describes courses (modules with video / reading lessons and a quiz); ``Cohort``
makes learners go through them with a seeded random generator: launch, watch parts of videos,
complete readings, answer questions, fail or pass quizzes, drop off. The ``expected_*``
functions compute, from the statements alone and the rules the README documents, the numbers
the sinks must hold. They share nothing with the pipeline's code.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

BASE = "https://lms.example"
VERB = "http://adlnet.gov/expapi/verbs/"
VIDEO = "https://w3id.org/xapi/video"
SEGMENTS = f"{VIDEO}/extensions/played-segments"
PROGRESS = f"{VIDEO}/extensions/progress"
LENGTH = f"{VIDEO}/extensions/length"


def catalog(first_course: int, courses: int = 2, students: list[int] | None = None) -> dict[str, Any]:
    """Courses ``first_course…``: 2 modules × (1 video + 1 reading lesson) and 1 quiz in module 2."""
    out: dict[str, Any] = {"courses": [], "students": []}
    for c in range(first_course, first_course + courses):
        course = {"id": c, "title": f"Course {c}", "iri": f"{BASE}/courses/{c}", "modules": []}
        for m in (1, 2):
            module_id = c * 100 + m
            module = {
                "id": module_id,
                "title": f"Module {m}",
                "position": m,
                "iri": f"{BASE}/courses/{c}/modules/{module_id}",
                "lessons": [
                    {
                        "id": module_id * 10 + 1,
                        "kind": "video",
                        "duration_seconds": 60,
                        "iri": f"{BASE}/courses/{c}/lessons/{module_id * 10 + 1}",
                    },
                    {
                        "id": module_id * 10 + 2,
                        "kind": "reading",
                        "iri": f"{BASE}/courses/{c}/lessons/{module_id * 10 + 2}",
                    },
                ],  # fmt: skip
                "quizzes": [],
            }
            if m == 2:
                module["quizzes"] = [{"id": module_id * 10 + 9, "pass_percentage": 70,
                                      "iri": f"{BASE}/courses/{c}/quizzes/{module_id * 10 + 9}"}]  # fmt: skip
            course["modules"].append(module)
        out["courses"].append(course)
    for s in students or []:
        out["students"].append(
            {"id": s, "name": f"Student {s}", "identities": [{"mbox": f"mailto:student{s}@school.example"}]}
        )
    return out


def agent(student: int) -> dict[str, Any]:
    return {
        "objectType": "Agent",
        "name": f"Student {student}",
        "mbox": f"mailto:student{student}@school.example",
    }


class Cohort:
    """Learners working through the catalog's courses; ``statements`` in the order they happen."""

    def __init__(self, catalog: dict[str, Any], seed: int, start: datetime | None = None) -> None:
        self.catalog = catalog
        self.rng = random.Random(seed)
        self.clock = start or datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
        self.statements: list[dict[str, Any]] = []

    def _at(self) -> str:
        self.clock += timedelta(minutes=self.rng.randrange(3, 50))
        return self.clock.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _say(self, student: int, verb: str, iri: str, **extra: Any) -> dict[str, Any]:
        st = {"id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "actor": agent(student),
              "verb": {"id": verb if verb.startswith("http") else VERB + verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
              "object": {"objectType": "Activity", "id": iri}, "timestamp": self._at()}  # fmt: skip
        st.update(extra)
        self.statements.append(st)
        return st

    def learn(self, student: int) -> None:
        """One learner through every course, dropping off now and then."""
        for course in self.catalog["courses"]:
            course_iri = course["iri"]
            context = {"contextActivities": {"grouping": [{"id": course_iri}]}}
            self._say(student, "launched", course_iri)
            self._say(student, "initialized", course_iri)
            finished = True
            for module in course["modules"]:
                for lesson in module["lessons"]:
                    if self.rng.random() < 0.12:
                        finished = False
                        break
                    if lesson["kind"] == "video":
                        start = self.rng.randrange(0, 20)
                        end = self.rng.randrange(start + 5, 61)
                        watched = [(start, end)] if self.rng.random() < 0.5 else [(0, 60)]
                        done = watched == [(0, 60)]
                        segments = "[,]".join(f"{a}[.]{b}" for a, b in watched)
                        self._say(student, f"{VIDEO}/verbs/played", lesson["iri"], context=context | {"extensions": {LENGTH: 60}},
                                  result={"duration": f"PT{end - start}S",
                                          "extensions": {SEGMENTS: segments, PROGRESS: 1.0 if done else round((end - start) / 60, 2)}})  # fmt: skip
                        if not done:
                            finished = False
                    else:
                        self._say(
                            student,
                            "experienced",
                            lesson["iri"],
                            context=context,
                            result={"duration": "PT90S"},
                        )
                        self._say(
                            student, "completed", lesson["iri"], context=context, result={"completion": True}
                        )
                for quiz in module["quizzes"]:
                    for q in range(2):
                        self._say(student, "answered", f"{quiz['iri']}/questions/{q}", context=context,
                                  result={"success": self.rng.random() < 0.6, "response": "b"})  # fmt: skip
                    scaled = round(self.rng.random(), 2)
                    self._say(student, "passed" if scaled >= 0.7 else "failed", quiz["iri"], context=context,
                              result={"score": {"scaled": scaled}, "success": scaled >= 0.7, "duration": "PT300S"})  # fmt: skip
                    if scaled < 0.7:
                        if self.rng.random() < 0.6:
                            self._say(student, "passed", quiz["iri"], context=context,
                                      result={"score": {"scaled": 0.85}, "success": True, "duration": "PT240S"})  # fmt: skip
                        else:
                            finished = False
            if finished:
                self._say(student, "completed", course_iri)
            self._say(student, "terminated", course_iri)


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
