"""A realistic, deterministic learner simulator: a course catalog and the statements of a cohort.

``catalog()`` builds courses → modules → lessons (video and reading) and quizzes, with the
activity IRIs the pipeline's default IRI templates understand. ``Simulation`` makes learners go
through them the way people do: cmi5-style sessions (launched, initialized … terminated, one
registration per enrollment, a session id per sitting) on some days at plausible hours; videos
watched in parts with pauses and seeks (xAPI video profile: played segments, progress, time),
readings experienced and completed, quiz questions answered, quizzes failed, retried, passed;
learners who drop off, and come back days later, or not. The same seed (and start) gives the
same statements, ids included, so posting a simulation twice stores it once.

``lrs simulate`` posts a simulation through the LRS over HTTP (``post``); the tests and the
benchmarks use the generator directly.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from lrs.xapi.profiles import CMI5_SESSION as SESSION
from lrs.xapi.profiles import VIDEO
from lrs.xapi.profiles import VIDEO_LENGTH as LENGTH
from lrs.xapi.profiles import VIDEO_PLAYED_SEGMENTS as SEGMENTS
from lrs.xapi.profiles import VIDEO_PROGRESS as PROGRESS
from lrs.xapi.profiles import VIDEO_SESSION
from lrs.xapi.profiles import VIDEO_TIME as TIME
from lrs.xapi.profiles import VIDEO_TIME_FROM as TIME_FROM
from lrs.xapi.profiles import VIDEO_TIME_TO as TIME_TO

BASE = "https://lms.example"
VERB = "http://adlnet.gov/expapi/verbs/"
PLATFORM = "lrs-simulate"
HOURS = [1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 10, 8, 9, 10, 10, 9, 9, 11, 14, 15, 12, 6, 2]
"""Relative likelihood of starting a session at each hour of the day (UTC)."""


def catalog(
    first_course: int,
    courses: int = 2,
    students: list[int] | None = None,
    modules: int = 2,
    lessons: int = 2,
    video_seconds: int = 60,
) -> dict[str, Any]:
    """Courses ``first_course…``, each of ``modules`` modules of ``lessons`` lessons (video and
    reading, alternating) and one quiz in every second module and the last; the document
    ``lrs catalog load`` and ``POST /catalog`` take."""
    out: dict[str, Any] = {"courses": [], "students": []}
    for c in range(first_course, first_course + courses):
        course = {"id": c, "title": f"Course {c}", "iri": f"{BASE}/courses/{c}", "modules": []}
        for m in range(1, modules + 1):
            module_id = c * 100 + m
            module: dict[str, Any] = {
                "id": module_id, "title": f"Module {m}", "position": m,
                "iri": f"{BASE}/courses/{c}/modules/{module_id}", "lessons": [], "quizzes": [],
            }  # fmt: skip
            for n in range(1, lessons + 1):
                lesson_id = module_id * 10 + n
                lesson = {"id": lesson_id, "title": f"Lesson {m}.{n}", "kind": "video" if n % 2 else "reading",
                          "iri": f"{BASE}/courses/{c}/lessons/{lesson_id}"}  # fmt: skip
                if lesson["kind"] == "video":
                    lesson["duration_seconds"] = video_seconds
                module["lessons"].append(lesson)
            if m % 2 == 0 or m == modules:
                quiz_id = module_id * 10 + 9
                module["quizzes"].append({"id": quiz_id, "title": f"Quiz {m}", "pass_percentage": 70,
                                          "iri": f"{BASE}/courses/{c}/quizzes/{quiz_id}"})  # fmt: skip
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


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Simulation:
    """Learners working through the catalog's courses; ``statements`` in the order they happen.

    Without ``days`` every learner goes through a course in one sitting, one statement every
    3–50 minutes on a shared clock (what the pipeline tests use). With ``days`` each learner
    starts a course on a random day of the window and works in sessions at plausible hours,
    coming back 1–4 days later with a falling probability; nothing happens after ``end``.
    """

    def __init__(self, catalog: dict[str, Any], seed: int, start: datetime | None = None,
                 days: int | None = None) -> None:  # fmt: skip
        self.catalog = catalog
        self.rng = random.Random(seed)
        self.start = start or datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
        self.clock = self.start
        self.days = days
        self.end = self.start + timedelta(days=days) if days else None
        self.statements: list[dict[str, Any]] = []
        self._context: dict[str, Any] = {}

    # --- statements ------------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _tick(self) -> str:
        self.clock += timedelta(
            minutes=self.rng.randrange(3, 50) if self.days is None else self.rng.randrange(1, 9)
        )
        return _stamp(self.clock)

    def say(self, student: int, verb: str, iri: str, **extra: Any) -> dict[str, Any]:
        """Record one statement of ``student`` (in the current session's context, if any)."""
        st: dict[str, Any] = {
            "id": self._uuid(), "actor": agent(student),
            "verb": {"id": verb if verb.startswith("http") else VERB + verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
            "object": {"objectType": "Activity", "id": iri}, "timestamp": self._tick(),
        }  # fmt: skip
        context = extra.pop("context", None)
        if context is None and self._context:
            context = self._context
        if context:
            st["context"] = context
        st.update(extra)
        self.statements.append(st)
        return st

    # --- behaviour ---------------------------------------------------------------------------------

    def learn(self, student: int, courses: Iterable[dict[str, Any]] | None = None) -> None:
        """One learner through the given courses (default: all of the catalog's)."""
        for course in courses if courses is not None else self.catalog["courses"]:
            if self.days is None:
                self._in_one_sitting(student, course)
            else:
                self._in_sessions(student, course)

    def _in_one_sitting(self, student: int, course: dict[str, Any]) -> None:
        self._context = {"contextActivities": {"grouping": [{"id": course["iri"]}]}}
        self.say(student, "launched", course["iri"], context={})
        self.say(student, "initialized", course["iri"], context={})
        finished = True
        for item in self._items(course):
            if item[0] == "lesson" and self.rng.random() < 0.12:
                finished = False
                break
            finished &= self._work(student, item, {})
        if finished:
            self.say(student, "completed", course["iri"], context={})
        self.say(student, "terminated", course["iri"], context={})
        self._context = {}

    def _in_sessions(self, student: int, course: dict[str, Any]) -> None:
        assert self.end is not None and self.days is not None
        registration = self._uuid()
        day = self.start + timedelta(days=self.rng.randrange(0, max(1, int(self.days * 0.8))))
        todo, state = self._items(course), {}
        stay = 0.85
        while todo:
            self.clock = day + timedelta(
                hours=self.rng.choices(range(24), HOURS)[0], minutes=self.rng.randrange(60)
            )
            if self.clock >= self.end:
                return
            session = self._uuid()
            self._context = {
                "registration": registration, "platform": PLATFORM,
                "contextActivities": {"grouping": [{"id": course["iri"]}]}, "extensions": {SESSION: session},
            }  # fmt: skip
            course_context = {k: v for k, v in self._context.items() if k != "contextActivities"}
            self.say(student, "launched", course["iri"], context=course_context)
            self.say(student, "initialized", course["iri"], context=course_context)
            began = self.clock
            for _ in range(self.rng.randrange(1, 5)):
                if not todo or self.clock >= self.end:
                    break
                if self._work(student, todo[0], state):
                    todo.pop(0)
                    if not todo:
                        self.say(student, "completed", course["iri"], context=course_context,
                                 result={"completion": True})  # fmt: skip
                elif self.rng.random() < 0.5:
                    break  # not done with it, and not today
            self.say(student, "terminated", course["iri"], context=course_context)
            # cmi5 §9.5.4.1: terminated carries the session's time, from initialized to terminated
            self.statements[-1]["result"] = {"duration": f"PT{int((self.clock - began).total_seconds())}S"}
            self._context = {}
            if self.rng.random() > stay:
                return  # dropped off
            stay *= 0.93
            day = self.clock.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
                days=self.rng.randrange(1, 5)
            )

    @staticmethod
    def _items(course: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        items: list[tuple[str, dict[str, Any]]] = []
        for module in course["modules"]:
            items += [("lesson", lesson) for lesson in module["lessons"]]
            items += [("quiz", quiz) for quiz in module["quizzes"]]
        return items

    def _work(self, student: int, item: tuple[str, dict[str, Any]], state: dict) -> bool:
        """Work on one lesson or quiz; whether it is done now."""
        kind, thing = item
        if kind == "quiz":
            return self._quiz(student, thing, state)
        if thing.get("kind") == "video":
            return self._video(student, thing, state)
        self.say(
            student, "experienced", thing["iri"], result={"duration": f"PT{self.rng.randrange(40, 600)}S"}
        )
        if self.rng.random() < 0.9:
            self.say(student, "completed", thing["iri"], result={"completion": True})
            return True
        return False

    def _video(self, student: int, lesson: dict[str, Any], state: dict) -> bool:
        """One sitting in front of a video: play a stretch, maybe pause or seek, play on."""
        length = int(lesson.get("duration_seconds") or 60)
        seen: set[int] = state.setdefault(lesson["id"], set())
        context = self._context | {"extensions": self._context.get("extensions", {}) | {LENGTH: length}}
        if self.days is None:  # the compact pattern: one played statement per sitting, with its duration
            start = self.rng.randrange(0, min(20, length - 5))
            end = self.rng.randrange(start + 5, length + 1)
            stretches = [(start, end)] if self.rng.random() < 0.5 else [(0, length)]
            for a, b in stretches:
                seen.update(range(a, b))
            progress = round(len(seen) / length, 2)
            segments = "[,]".join(f"{a}[.]{b}" for a, b in stretches)
            watched = sum(b - a for a, b in stretches)
            self.say(student, f"{VIDEO}/verbs/played", lesson["iri"], context=context,
                     result={"duration": f"PT{watched}S", "extensions": {SEGMENTS: segments, PROGRESS: 1.0 if progress >= 1 else progress}})  # fmt: skip
            return progress >= 0.9
        return self._video_session(student, lesson, state, length, seen, context)

    def _video_session(self, student: int, lesson: dict[str, Any], state: dict, length: int, seen: set[int],
                       context: dict[str, Any]) -> bool:  # fmt: skip
        """An xAPI video profile session: played, then paused / seeked along the way (each carrying
        the session's cumulative played-segments and the progress), completed once 90 % of the
        video has been seen, terminated at the end. The cmi5 session's terminated carries the time."""
        context = context | {"extensions": context["extensions"] | {VIDEO_SESSION: self._uuid()}}
        played: list[tuple[int, int]] = []

        def progress_now() -> float:
            return 1.0 if len(seen) >= length else round(len(seen) / length, 2)

        def say(verb: str, time: int, **result: Any) -> None:
            """A video statement at ``time``; all but played carry the cumulative segments."""
            extensions: dict[str, Any] = {TIME: time}
            if verb != "played":
                segments = "[,]".join(f"{a}[.]{b}" for a, b in sorted(played))
                extensions |= {SEGMENTS: segments, PROGRESS: progress_now()}
            extensions |= result.pop("extensions", {})
            self.say(student, f"{VIDEO}/verbs/{verb}", lesson["iri"], context=context,
                     result=result | {"extensions": extensions})  # fmt: skip

        at = max(seen) + 1 if seen and max(seen) + 1 < length and self.rng.random() < 0.7 else 0
        say("played", at)
        while at < length and len(played) < 3:
            end = min(length, at + self.rng.randrange(max(5, length // 4), length + 1))
            played.append((at, end))
            seen.update(range(at, end))
            if self.rng.random() < 0.25 and end < length:
                back = max(0, end - self.rng.randrange(5, 30))
                say("seeked", end, extensions={TIME_FROM: end, TIME_TO: back})
                at = back
            elif self.rng.random() < 0.45 and end < length:
                say("paused", end)
                if self.rng.random() < 0.5:
                    break  # paused, and left it there
                say("played", end)
                at = end
            else:
                at = end
        if progress_now() >= 0.9:
            say("completed", at, completion=True)
        say("terminated", at)
        return progress_now() >= 0.9

    def _quiz(self, student: int, quiz: dict[str, Any], state: dict) -> bool:
        skill = state.setdefault(("skill", student), self.rng.random())
        attempts = state.setdefault(("attempts", quiz["id"]), 0)
        questions = 2 if self.days is None else 4
        within = self._context or {}
        activities = within.get("contextActivities", {}) | {"parent": [{"id": quiz["iri"]}]}
        for q in range(questions):  # item responses: the question is the object, its quiz the parent
            self.say(student, "answered", f"{quiz['iri']}/questions/{q}", context=within | {"contextActivities": activities},
                     result={"success": self.rng.random() < 0.4 + 0.5 * skill, "response": "b"})  # fmt: skip
        if self.days is None:
            scaled = round(self.rng.random(), 2)
        else:
            scaled = round(min(1.0, max(0.0, self.rng.gauss(0.45 + 0.4 * skill + 0.1 * attempts, 0.15))), 2)
        state[("attempts", quiz["id"])] = attempts + 1
        passed = scaled >= quiz.get("pass_percentage", 70) / 100
        self.say(student, "passed" if passed else "failed", quiz["iri"],
                 result={"score": {"scaled": scaled, "raw": round(scaled * 100), "min": 0, "max": 100},
                         "success": passed, "duration": f"PT{self.rng.randrange(120, 600)}S"})  # fmt: skip
        if passed or self.days is not None:
            return passed
        if self.rng.random() < 0.6:  # one sitting: an immediate retry, or giving up
            self.say(student, "passed", quiz["iri"],
                     result={"score": {"scaled": 0.85}, "success": True, "duration": "PT240S"})  # fmt: skip
            return True
        return False


def cohort(learners: int, courses: int, days: int, seed: int, start: datetime,
           first_student: int = 1, first_course: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """A catalog of ``courses`` courses (3 modules of 3 lessons) and ``learners`` learners, each
    enrolled in one to three of them, active over ``days`` days from ``start``."""
    students = list(range(first_student, first_student + learners))
    document = catalog(first_course, courses, students, modules=3, lessons=3, video_seconds=120)
    simulation = Simulation(document, seed, start, days)
    for student in students:
        picked = simulation.rng.sample(
            document["courses"], k=min(len(document["courses"]), simulation.rng.randint(1, 3))
        )
        simulation.learn(student, picked)
    return document, simulation.statements


async def post(
    base_url: str, auth: tuple[str, str], document: dict[str, Any], statements: list[dict[str, Any]],
    batch: int = 100, concurrency: int = 4, progress: Any = None,
) -> int:  # fmt: skip
    """Load the catalog (``POST /catalog``) and post the statements in batches; returns how many
    were posted. Raises ``RuntimeError`` naming the LRS's answer on any refusal."""
    import httpx

    headers = {"X-Experience-API-Version": "1.0.3"}
    async with httpx.AsyncClient(
        base_url=base_url.rstrip("/"), auth=auth, headers=headers, timeout=60
    ) as client:
        answer = await client.post("/catalog", json=document)
        if answer.status_code != 200:
            raise RuntimeError(f"POST /catalog answered {answer.status_code}: {answer.text}")
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for start in range(0, len(statements), batch):
            queue.put_nowait(statements[start : start + batch])

        async def sender() -> None:
            while not queue.empty():
                chunk = queue.get_nowait()
                response = await client.post("/xapi/statements", json=chunk)
                if response.status_code != 200:
                    raise RuntimeError(
                        f"POST /xapi/statements answered {response.status_code}: {response.text}"
                    )
                if progress is not None:
                    progress.update(len(chunk))

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return len(statements)
