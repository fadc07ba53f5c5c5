"""A reference model of ``docs/analytics.md``: every figure, computed from a list of statements.

Written from the definitions page, not from the pipeline: it imports nothing from ``streams``,
``sinks`` or ``lrs`` and works on the statements as a client posted them (plus the catalog
document and the IRI templates). Readability first: plain loops over plain data, one function
per figure. Sections refer to ``docs/analytics.md``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ADL = "http://adlnet.gov/expapi/verbs/"
COMPLETING_VERBS = {ADL + "completed", ADL + "passed", "https://w3id.org/xapi/adl/verbs/satisfied"}
VOIDED = ADL + "voided"
ANSWERED = ADL + "answered"
PASSED, FAILED = ADL + "passed", ADL + "failed"
CMI5_SESSION = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"
CMI5_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
SATISFIED = "https://w3id.org/xapi/adl/verbs/satisfied"
WAIVED = "https://w3id.org/xapi/adl/verbs/waived"
OUTCOME_VERBS = {ADL + "completed": "completed", PASSED: "passed", WAIVED: "waived"}
"""cmi5 "cmi5 courses": the verbs of cmi5 defined statements that record an AU's outcome."""
VIDEO_SESSION = "https://w3id.org/xapi/video/extensions/session-id"
VIDEO_PROGRESS = "https://w3id.org/xapi/video/extensions/progress"
VIDEO_SEGMENTS = "https://w3id.org/xapi/video/extensions/played-segments"
DEFAULT_TEMPLATES = (
    "https://lms.example/courses/{course}/modules/{module}/lessons/{lesson};"
    "https://lms.example/courses/{course}/lessons/{lesson};"
    "https://lms.example/courses/{course}/quizzes/{quiz};"
    "https://lms.example/courses/{course}/modules/{module};"
    "https://lms.example/courses/{course}"
)
ROLES = ("course", "module", "lesson", "quiz")


# --- §1 words --------------------------------------------------------------------------------------


def instant(text: str) -> datetime:
    """An ISO 8601 timestamp in UTC."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def seconds_of(duration: str | None) -> float:
    """ISO 8601 duration (the P…T…H…M…S forms xAPI content sends) in seconds; 0 without one."""
    if not duration:
        return 0.0
    m = re.fullmatch(
        r"P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
        r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?",
        duration,
    )
    assert m, duration
    years, months, weeks, days, hours, minutes, secs = (float(g) if g else 0.0 for g in m.groups())
    return (((years * 365 + months * 30 + weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs


@dataclass
class Place:
    course: int | None = None
    module: int | None = None
    lesson: int | None = None
    quiz: int | None = None

    def fill(self, other: Place) -> Place:
        """This place, with what ``other`` knows and this one does not."""
        return Place(*(a if a is not None else b for a, b in zip(self.ids(), other.ids(), strict=True)))

    def ids(self) -> tuple:
        return (self.course, self.module, self.lesson, self.quiz)

    def kind(self) -> str:
        for name, value in (("quiz", self.quiz), ("lesson", self.lesson), ("module", self.module),
                            ("course", self.course)):  # fmt: skip
            if value is not None:
                return name
        return ""


class Catalog:
    """The catalog document (as ``POST /catalog`` takes it) and the IRI templates."""

    def __init__(self, document: dict[str, Any], templates: str = DEFAULT_TEMPLATES,
                 student_homepage: str = "https://lms.example") -> None:  # fmt: skip
        self.places: dict[str, Place] = {}
        self.required: dict[int, list[tuple[str, int]]] = {}
        self.modules_of: dict[int, list[int]] = {}
        self.module_items: dict[int, list[tuple[str, int]]] = {}
        self.lesson_course: dict[int, int] = {}
        self.lesson_module: dict[int, int | None] = {}
        self.quiz_course: dict[int, int] = {}
        self.quiz_module: dict[int, int | None] = {}
        self.module_course: dict[int, int] = {}
        self.pass_mark: dict[int, float] = {}
        self.move_on: dict[int, str] = {}
        """cmi5 AUs: lesson → moveOn (ordinary lessons are absent)."""
        self.students: dict[str, int] = {}
        self.homepage = student_homepage.rstrip("/")
        self.templates = [self._pattern(t) for t in templates.split(";") if t.strip()]
        for course in document.get("courses", []):
            cid = course["id"]
            self.required[cid] = []
            self.modules_of[cid] = []
            if course.get("iri"):
                self.places[course["iri"]] = Place(cid)
            groups = [(None, course.get("lessons", []), course.get("quizzes", []))]
            groups += [(m, m.get("lessons", []), m.get("quizzes", [])) for m in course.get("modules", [])]
            for module, lessons, quizzes in groups:
                mid = module["id"] if module else None
                if module:
                    self.modules_of[cid].append(mid)
                    self.module_items[mid] = []
                    self.module_course[mid] = cid
                    if module.get("iri"):
                        self.places[module["iri"]] = Place(cid, mid)
                for lesson in lessons:
                    self.required[cid].append(("lesson", lesson["id"]))
                    self.lesson_course[lesson["id"]], self.lesson_module[lesson["id"]] = cid, mid
                    if lesson.get("move_on") is not None:
                        self.move_on[lesson["id"]] = lesson["move_on"]
                    if mid is not None:
                        self.module_items[mid].append(("lesson", lesson["id"]))
                    if lesson.get("iri"):
                        self.places[lesson["iri"]] = Place(cid, mid, lesson["id"])
                for quiz in quizzes:
                    self.required[cid].append(("quiz", quiz["id"]))
                    self.quiz_course[quiz["id"]], self.quiz_module[quiz["id"]] = cid, mid
                    self.pass_mark[quiz["id"]] = float(quiz.get("pass_percentage", 70))
                    if mid is not None:
                        self.module_items[mid].append(("quiz", quiz["id"]))
                    if quiz.get("iri"):
                        self.places[quiz["iri"]] = Place(cid, mid, quiz=quiz["id"])
        for student in document.get("students", []):
            for identity in student.get("identities", []):
                if "mbox" in identity:
                    self.students[identity["mbox"]] = student["id"]

    @staticmethod
    def _pattern(template: str) -> re.Pattern[str]:
        out, rest = "", template.strip()
        while (m := re.search(r"\{(course|module|lesson|quiz)\}", rest)) is not None:
            out += re.escape(rest[: m.start()]) + f"(?P<{m.group(1)}>[0-9]+)"
            rest = rest[m.end() :]
        return re.compile(out + re.escape(rest) + r"/?(?:[?#].*)?")

    def place_of(self, iri: str) -> Place:
        """Where an activity IRI itself is (catalog first, then templates), completed from the catalog."""
        place = self.places.get(iri)
        if place is None:
            place = Place()
            for pattern in self.templates:
                if (m := pattern.fullmatch(iri)) is not None:
                    place = Place(
                        *(int(m.group(r)) if r in m.groupdict() and m.group(r) else None for r in ROLES)
                    )
                    break
        return self._complete(place)

    def _complete(self, place: Place) -> Place:
        if place.lesson in self.lesson_course:
            place = place.fill(Place(self.lesson_course[place.lesson], self.lesson_module[place.lesson]))
        if place.quiz in self.quiz_course:
            place = place.fill(Place(self.quiz_course[place.quiz], self.quiz_module[place.quiz]))
        if place.module in self.module_course:
            place = place.fill(Place(self.module_course[place.module]))
        return place

    def student(self, actor: dict[str, Any]) -> int | None:
        if actor.get("mbox") in self.students:
            return self.students[actor["mbox"]]
        account = actor.get("account")
        if account and account["homePage"].rstrip("/") == self.homepage and account["name"].isdigit():
            return int(account["name"])
        return None


# --- §2 one statement ------------------------------------------------------------------------------


@dataclass
class Fact:
    """A counted statement and what it counts for."""

    id: str
    learner: str  # learner_key (mbox agents: "mbox:" + mbox)
    student: int | None
    at: datetime
    place: Place
    kind: str
    verb: str
    duration: float
    completes: bool
    completes_lesson: bool
    completes_course: bool
    attempt: bool
    passed: bool | None
    score: float | None
    item_response: bool
    correct: bool
    response: str | None
    session: str | None
    view_session: str
    segments: set[int] = field(default_factory=set)
    activity: str = ""
    score_all: float | None = None
    """The score of any statement (``bi_events.score_percent``); ``score`` is an attempt's."""
    counted_seconds: float = 0.0
    outcome: str | None = None
    """cmi5 courses: what a cmi5 defined statement about a lesson records (completed, passed, waived)."""

    @property
    def day(self) -> date:
        return self.at.date()


def score_percent(result: dict[str, Any]) -> float | None:
    score = result.get("score") or {}
    if "scaled" in score:
        return score["scaled"] * 100
    if "raw" in score and "max" in score and score["max"] != score.get("min", 0):
        low = score.get("min", 0)
        return (score["raw"] - low) / (score["max"] - low) * 100
    return None


def segments_of(value: Any) -> set[int]:
    out: set[int] = set()
    if not isinstance(value, str):
        return out
    for part in value.split("[,]"):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*\[\.\]\s*([0-9]+(?:\.[0-9]+)?)\s*", part)
        if not m:
            continue
        a, b = float(m.group(1)), float(m.group(2))
        if b < a:
            continue
        last = b if b == a else b - 1e-9
        out.update(range(int(a // 5), int(last // 5) + 1))
    return out


def counted(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statements that count: not voided, not voiding, each id once."""
    voided = {s["object"]["id"] for s in statements if s["verb"]["id"] == VOIDED}
    seen: dict[str, dict[str, Any]] = {}
    for s in statements:
        if s["verb"]["id"] != VOIDED and s["id"] not in voided:
            seen.setdefault(s["id"], s)
    return list(seen.values())


def fact_of(s: dict[str, Any], catalog: Catalog) -> Fact:
    obj, result, context = s["object"], s.get("result") or {}, s.get("context") or {}
    own = catalog.place_of(obj["id"])
    place = own  # then each parent, then each grouping activity fills what is still unknown
    activities = context.get("contextActivities") or {}
    for role in ("parent", "grouping"):
        for activity in activities.get(role, []):
            place = place.fill(catalog.place_of(activity["id"]))
    extensions = result.get("extensions") or {}
    context_ext = context.get("extensions") or {}
    verb = s["verb"]["id"]
    progress = extensions.get(VIDEO_PROGRESS)
    cmi5 = any(c["id"] == CMI5_CATEGORY for c in activities.get("category", []))
    completes = (
        verb in COMPLETING_VERBS
        or result.get("completion") is True
        or (isinstance(progress, (int, float)) and progress >= 0.9)
    )
    if cmi5 and verb == SATISFIED:  # the LMS's satisfied completes nothing by itself
        completes = False
    kind = own.kind()
    is_au = kind == "lesson" and own.lesson in catalog.move_on
    score = score_percent(result)
    attempt = kind == "quiz" and (verb in (PASSED, FAILED) or "success" in result or score is not None)
    passed = None
    if attempt:
        if verb in (PASSED, FAILED):
            passed = verb == PASSED
        elif "success" in result:
            passed = result["success"]
        elif score is not None and place.quiz in catalog.pass_mark:
            passed = score >= catalog.pass_mark[place.quiz]
    session = context_ext.get(CMI5_SESSION)
    return Fact(
        id=s["id"], learner="mbox:" + s["actor"]["mbox"], student=catalog.student(s["actor"]),
        at=instant(s["timestamp"]), place=place, kind=kind, verb=verb, duration=seconds_of(result.get("duration")),
        completes=completes, completes_lesson=kind == "lesson" and completes and not is_au,
        completes_course=kind == "course" and completes, attempt=attempt, passed=passed,
        score=score if attempt else None, item_response=verb == ANSWERED and kind == "",
        correct=result.get("success") is True, response=result.get("response"), session=session,
        view_session=context_ext.get(VIDEO_SESSION) or session or "statement:" + s["id"],
        segments=segments_of(extensions.get(VIDEO_SEGMENTS)), activity=obj["id"], score_all=score,
        outcome=OUTCOME_VERBS.get(verb) if cmi5 and kind == "lesson" else None,
    )  # fmt: skip


def facts_of(statements: list[dict[str, Any]], catalog: Catalog) -> list[Fact]:
    """Every counted statement's fact, with its time counted (§2 "time counted")."""
    facts = [fact_of(s, catalog) for s in counted(statements)]
    sessions: dict[tuple, list[Fact]] = defaultdict(list)
    for f in facts:
        if f.session is None:
            f.counted_seconds = f.duration
        else:
            sessions[(f.learner, f.place.course, f.session)].append(f)
    for members in sessions.values():
        top = min(members, key=lambda f: (-f.duration, f.id))
        top.counted_seconds = top.duration
    return facts


# --- §3 rollups ------------------------------------------------------------------------------------


def _percent(done: int, total: int) -> Decimal:
    return (Decimal(100 * done) / Decimal(total)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def au_satisfied(move_on: str, facts: list[Fact], lesson: int, start: datetime) -> datetime | None:
    """cmi5 courses: when an AU became satisfied, walking one learner's statements in one course
    in time order until its moveOn holds (waived always does); NotApplicable: from the start."""
    if move_on == "NotApplicable":
        return start
    seen: set[str] = set()
    for f in sorted((f for f in facts if f.outcome and f.place.lesson == lesson), key=lambda f: f.at):
        seen.add(f.outcome)
        holds = {
            "Completed": "completed" in seen,
            "Passed": "passed" in seen,
            "CompletedOrPassed": bool(seen & {"completed", "passed"}),
            "CompletedAndPassed": {"completed", "passed"} <= seen,
        }[move_on]
        if holds or "waived" in seen:
            return f.at
    return None


def lessons_done(facts: list[Fact], catalog: Catalog, course: int) -> dict[int, datetime]:
    """Lesson (catalog or template) → completion time, for one learner's facts in one course: an
    ordinary lesson's first statement completing it, a cmi5 AU's satisfaction."""
    done: dict[int, datetime] = {}
    for f in facts:
        if f.completes_lesson and f.place.lesson not in catalog.move_on:
            done[f.place.lesson] = min(done.get(f.place.lesson, f.at), f.at)
    if facts:
        start = min(f.at for f in facts)
        for kind, lesson in catalog.required.get(course, []):
            if kind == "lesson" and lesson in catalog.move_on:
                at = au_satisfied(catalog.move_on[lesson], facts, lesson, start)
                if at is not None:
                    done[lesson] = at
    return done


def item_completions(facts: list[Fact], catalog: Catalog, course: int) -> dict[tuple[str, int], datetime]:
    """Required item → completion time, for one learner's facts in one course."""
    done: dict[tuple[str, int], datetime] = {
        ("lesson", lesson): at for lesson, at in lessons_done(facts, catalog, course).items()
    }
    for f in facts:
        if f.attempt and f.passed:
            key = ("quiz", f.place.quiz)
            done[key] = min(done.get(key, f.at), f.at)
    required = catalog.required.get(course, [])
    return {key: at for key, at in done.items() if key in required}


@dataclass
class Enrollment:
    student: int
    course: int
    status: str
    completion_percentage: Decimal
    completed_at: datetime | None
    started_at: datetime
    last_accessed_at: datetime
    completed_lessons: list[int]
    completed_quizzes: list[int]
    completed_modules: list[int]
    total_lessons: int
    total_modules: int
    quiz_scores: dict[str, float]
    time_spent_minutes: int
    current_lesson_id: int | None
    current_module_id: int | None


def enrollment_of(student: int, course: int, facts: list[Fact], catalog: Catalog) -> Enrollment:
    required = catalog.required.get(course, [])
    done = item_completions(facts, catalog, course)
    if required:
        complete = len(done) == len(required)
        completed_at = max(done.values()) if complete else None
        percentage = _percent(len(done), len(required))
    else:
        course_done = [f.at for f in facts if f.completes_course]
        complete = bool(course_done)
        completed_at = min(course_done) if complete else None
        percentage = Decimal("100.00") if complete else Decimal("0.00")
    modules = [
        m for m in catalog.modules_of.get(course, [])
        if catalog.module_items[m] and all(item in done for item in catalog.module_items[m])
    ]  # fmt: skip
    best: dict[int, float] = {}
    for f in facts:
        if f.attempt and f.score is not None:
            best[f.place.quiz] = max(best.get(f.place.quiz, f.score), f.score)
    placed = [f for f in facts if f.place.lesson is not None or f.place.module is not None]
    current = min(placed, key=lambda f: (-f.at.timestamp(), f.id)) if placed else None
    return Enrollment(
        student, course, "completed" if complete else "active", percentage, completed_at,
        min(f.at for f in facts), max(f.at for f in facts),
        sorted(i for k, i in done if k == "lesson"), sorted(i for k, i in done if k == "quiz"), sorted(modules),
        sum(1 for k, _ in required if k == "lesson"), len(catalog.modules_of.get(course, [])),
        {str(q): round(s, 2) for q, s in sorted(best.items())},
        int(sum(f.counted_seconds for f in facts) // 60),
        current.place.lesson if current else None, current.place.module if current else None,
    )  # fmt: skip


def by_enrollment(facts: list[Fact]) -> dict[tuple[int, int], list[Fact]]:
    groups: dict[tuple[int, int], list[Fact]] = defaultdict(list)
    for f in facts:
        if f.student is not None and f.place.course is not None:
            groups[(f.student, f.place.course)].append(f)
    return groups


def enrollments(facts: list[Fact], catalog: Catalog) -> dict[tuple[int, int], Enrollment]:
    return {key: enrollment_of(*key, group, catalog) for key, group in by_enrollment(facts).items()}


def lesson_progress(
    facts: list[Fact], catalog: Catalog
) -> dict[tuple[int, int, int], tuple[bool, datetime | None, int]]:
    """(student, course, lesson) → (is_completed, completed_at, time_spent_seconds)."""
    out = {}
    for (student, course), group in by_enrollment(facts).items():
        done = lessons_done(group, catalog, course)
        rows: dict[int, list[Fact]] = defaultdict(list)
        for f in group:
            if f.place.lesson is not None:
                rows[f.place.lesson].append(f)
        for lesson, members in rows.items():
            at = done.get(lesson)
            out[(student, course, lesson)] = (
                at is not None,
                at,
                int(sum(f.counted_seconds for f in members)),
            )
    return out


def quiz_attempts(facts: list[Fact]) -> dict[str, tuple]:
    """statement id → (quiz, student, score rounded to 2, passed, time taken, attempted at)."""
    out = {}
    for group in by_enrollment(facts).values():
        for f in group:
            if f.attempt:
                score = (
                    None
                    if f.score is None
                    else Decimal(format(f.score, ".15g")).quantize(Decimal("0.01"), ROUND_HALF_UP)
                )
                taken = math.floor(f.duration) if f.duration > 0 else None
                out[f.id] = (f.place.quiz, f.student, score, f.passed, taken, f.at)
    return out


# --- §4 domain events ------------------------------------------------------------------------------


def transitions(
    before: dict[tuple[int, int], Enrollment], after: dict[tuple[int, int], Enrollment]
) -> list[tuple]:
    """The events announcing the change from ``before`` to ``after``:
    (type, student, course, item, completed)."""
    events = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        student, course = key
        for kind, attr in (("lesson", "completed_lessons"), ("quiz", "completed_quizzes")):
            was = set(getattr(old, attr)) if old else set()
            now = set(getattr(new, attr)) if new else set()
            for item in sorted(was ^ now):
                events.append(("progress.updated", student, course, f"{kind}:{item}", item in now))
        was_modules = set(old.completed_modules) if old else set()
        for module in sorted(set(new.completed_modules if new else []) - was_modules):
            events.append(("progress.module_completed", student, course, f"module:{module}", True))
        if new and new.status == "completed" and not (old and old.status == "completed"):
            events.append(("enrollment.completed", student, course, "", True))
    return events


# --- §5 ClickHouse views ---------------------------------------------------------------------------


def learner_activity(facts: list[Fact], catalog: Catalog) -> dict[tuple[int, str], dict[str, Any]]:
    """(course, learner) → the columns of ``bi_learner_activity`` that do not depend on now()."""
    groups: dict[tuple[int, str], list[Fact]] = defaultdict(list)
    for f in facts:
        if f.place.course is not None:
            groups[(f.place.course, f.learner)].append(f)
    out = {}
    for (course, learner), group in groups.items():
        required = catalog.required.get(course, [])
        done = item_completions(group, catalog, course)
        if required:
            complete = len(done) == len(required)
            completed_at = max(done.values()) if complete else None
        else:
            finished = [f.at for f in group if f.completes_course]
            complete, completed_at = bool(finished), (min(finished) if finished else None)
        first = min(f.at for f in group)
        out[(course, learner)] = {
            "first_event": first,
            "last_event": max(f.at for f in group),
            "active_days": len({f.day for f in group}),
            "events": len(group),
            "time_spent_seconds": sum(f.counted_seconds for f in group),
            "lessons_completed": len(lessons_done(group, catalog, course)),
            "quiz_attempts": sum(1 for f in group if f.attempt),
            "quizzes_passed": len({f.place.quiz for f in group if f.attempt and f.passed}),
            "items_required": len(required),
            "items_completed": len(done),
            "completed": int(complete),
            "completed_at": completed_at,
            "seconds_to_complete": int((completed_at - first).total_seconds()) if complete else None,
        }
    return out


def course_overview(activity: dict[tuple[int, str], dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """course → ``bi_course_overview`` columns that do not depend on now()."""
    rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for (course, _), row in activity.items():
        rows[course].append(row)
    out = {}
    for course, group in rows.items():
        completers = [r for r in group if r["completed"]]
        out[course] = {
            "learners": len(group),
            "completed_learners": len(completers),
            "completion_rate_percent": 100 * len(completers) / len(group),
            "avg_days_to_complete": (
                sum(r["seconds_to_complete"] for r in completers) / len(completers) / 86400
                if completers
                else None
            ),
            "events": sum(r["events"] for r in group),
            "time_spent_seconds": sum(r["time_spent_seconds"] for r in group),
            "first_activity": min(r["first_event"] for r in group),
            "last_activity": max(r["last_event"] for r in group),
        }
    return out


def course_daily(facts: list[Fact], activity: dict[tuple[int, str], dict[str, Any]]) -> dict[tuple, tuple]:
    """(day, course) → (active_learners, new_learners, completions, events, time_spent_seconds)."""
    active: dict[tuple, set[str]] = defaultdict(set)
    events: dict[tuple, int] = defaultdict(int)
    seconds: dict[tuple, float] = defaultdict(float)
    for f in facts:
        if f.place.course is not None:
            key = (f.day, f.place.course)
            active[key].add(f.learner)
            events[key] += 1
            seconds[key] += f.counted_seconds
    new: dict[tuple, int] = defaultdict(int)
    finished: dict[tuple, int] = defaultdict(int)
    for (course, _), row in activity.items():
        new[(row["first_event"].date(), course)] += 1
        if row["completed"]:
            finished[(row["completed_at"].date(), course)] += 1
    keys = set(active) | set(new) | set(finished)
    return {k: (len(active[k]), new[k], finished[k], events[k], seconds[k]) for k in keys}


def lesson_engagement(facts: list[Fact]) -> dict[tuple, tuple]:
    """(course, lesson, day, hour) → (events, learners, time_spent_seconds, completions); 0 = unknown."""
    groups: dict[tuple, list[Fact]] = defaultdict(list)
    for f in facts:
        groups[(f.place.course or 0, f.place.lesson or 0, f.day, f.at.hour)].append(f)
    out = {}
    for key, group in groups.items():
        lesson = key[1]
        completions = sum(1 for f in group if f.completes_lesson or (lesson == 0 and f.completes_course))
        out[key] = (
            len(group),
            len({f.learner for f in group}),
            sum(f.counted_seconds for f in group),
            completions,
        )
    return out


def video_segments(facts: list[Fact]) -> dict[tuple, tuple[int, int]]:
    """(course, lesson, video activity, segment) → (views, viewers)."""
    sessions: dict[tuple, set[tuple[str, str]]] = defaultdict(set)
    for f in facts:
        for segment in f.segments:
            sessions[(f.place.course or 0, f.place.lesson or 0, f.activity, segment)].add(
                (f.learner, f.view_session)
            )
    return {k: (len(v), len({learner for learner, _ in v})) for k, v in sessions.items()}


def quiz_performance(facts: list[Fact]) -> dict[tuple[int, int], dict[str, Any]]:
    groups: dict[tuple[int, int], list[Fact]] = defaultdict(list)
    for f in facts:
        if f.attempt:
            groups[(f.place.course or 0, f.place.quiz)].append(f)
    out = {}
    for key, group in groups.items():
        scores = [f.score for f in group if f.score is not None]
        passed = sum(1 for f in group if f.passed)
        out[key] = {
            "attempts": len(group), "passed": passed, "failed": len(group) - passed,
            "avg_score_percent": sum(scores) / len(scores) if scores else None,
            "learners": len({f.learner for f in group}),
            "learners_passed": len({f.learner for f in group if f.passed}),
        }  # fmt: skip
    return out


def quiz_items(facts: list[Fact]) -> dict[tuple[int, int, str], tuple[int, int, int]]:
    """(course, quiz, question) → (answers, correct, learners)."""
    groups: dict[tuple, list[Fact]] = defaultdict(list)
    for f in facts:
        if f.item_response:
            groups[(f.place.course or 0, f.place.quiz or 0, f.activity)].append(f)
    return {
        k: (len(g), sum(1 for f in g if f.correct), len({f.learner for f in g})) for k, g in groups.items()
    }


def funnel(activity: dict[tuple[int, str], dict[str, Any]]) -> dict[int, tuple[int, int, int, int]]:
    """course → (started, progressed, passed, completed)."""
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (course, _), row in activity.items():
        counts = out[course]
        counts[0] += 1
        counts[1] += row["items_completed"] > 0
        counts[2] += row["quizzes_passed"] > 0
        counts[3] += row["completed"]
    return {k: tuple(v) for k, v in out.items()}
