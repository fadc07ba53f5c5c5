"""The course catalog and learner identities: how statements map to LMS ids.

An LMS fills the ``lms`` tables (courses → modules → lessons / quizzes with the activity IRI
its content uses, students with their xAPI identities) with ``lrs catalog load FILE.json`` or
``POST /catalog``. The worker keeps the whole catalog in memory (it is small next to the
statement stream) and reloads it when told (PostgreSQL NOTIFY ``lms_catalog``).

Resolving an activity, most trusted first: the catalog's IRIs; the configured IRI templates
(``https://lms.example/courses/{course}/lessons/{lesson}``); then the statement's context,
where a grouping activity names the course and a parent the module or lesson (cmi5 and most
xAPI content put them there). What stays unknown stays empty: the event still flows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from lrs.xapi.agents import ifi_key
from lrs.xapi.models import Agent

NOTIFY_CHANNEL = "lms_catalog"


@dataclass(slots=True, frozen=True)
class Location:
    course_id: int | None = None
    module_id: int | None = None
    lesson_id: int | None = None
    quiz_id: int | None = None

    @property
    def kind(self) -> str:
        """What an activity placed here is: ``quiz``, ``lesson``, ``module``, ``course``, or ``""``
        (unknown). The finest id decides: a lesson's location also names its module and course."""
        for kind, item in (("quiz", self.quiz_id), ("lesson", self.lesson_id), ("module", self.module_id),
                           ("course", self.course_id)):  # fmt: skip
            if item is not None:
                return kind
        return ""

    def merged(self, other: Location) -> Location:
        """This location, completed by what ``other`` knows and this one does not."""
        return Location(
            self.course_id if self.course_id is not None else other.course_id,
            self.module_id if self.module_id is not None else other.module_id,
            self.lesson_id if self.lesson_id is not None else other.lesson_id,
            self.quiz_id if self.quiz_id is not None else other.quiz_id,
        )


UNKNOWN = Location()


@dataclass(slots=True)
class Course:
    course_id: int
    modules: list[int] = field(default_factory=list)
    lessons: list[int] = field(default_factory=list)
    quizzes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Lesson:
    lesson_id: int
    module_id: int | None
    course_id: int
    kind: str
    duration_seconds: int | None


@dataclass(slots=True)
class Quiz:
    quiz_id: int
    module_id: int | None
    course_id: int
    pass_percentage: float


def _template(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"\{(course|module|lesson|quiz)\}", pattern)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[0-9]+)" for i, p in enumerate(parts))
    return re.compile(regex + r"/?(?:[?#].*)?")


class Catalog:
    """An in-memory snapshot of the ``lms`` catalog tables plus the resolution rules."""

    def __init__(self, templates: str = "", student_homepage: str | None = None) -> None:
        self.templates = [_template(t.strip()) for t in templates.split(";") if t.strip()]
        self.student_homepage = student_homepage
        self.by_iri: dict[str, Location] = {}
        self.courses: dict[int, Course] = {}
        self.modules: dict[int, int] = {}  # module → course
        self.module_lessons: dict[int, list[int]] = {}
        self.module_quizzes: dict[int, list[int]] = {}
        self.lessons: dict[int, Lesson] = {}
        self.quizzes: dict[int, Quiz] = {}
        self.students: dict[str, int] = {}

    @classmethod
    async def read(
        cls, conn: asyncpg.Connection, templates: str = "", student_homepage: str | None = None
    ) -> Catalog:
        catalog = cls(templates, student_homepage)
        for row in await conn.fetch("SELECT course_id, iri FROM lms.courses"):
            catalog.courses[row["course_id"]] = Course(row["course_id"])
            if row["iri"]:
                catalog.by_iri[row["iri"]] = Location(course_id=row["course_id"])
        for row in await conn.fetch(
            "SELECT module_id, course_id, iri FROM lms.modules ORDER BY position, module_id"
        ):
            catalog.modules[row["module_id"]] = row["course_id"]
            catalog.courses[row["course_id"]].modules.append(row["module_id"])
            catalog.module_lessons[row["module_id"]] = []
            catalog.module_quizzes[row["module_id"]] = []
            if row["iri"]:
                catalog.by_iri[row["iri"]] = Location(row["course_id"], row["module_id"])
        for row in await conn.fetch(
            "SELECT lesson_id, module_id, course_id, kind, duration_seconds, iri FROM lms.lessons"
            " ORDER BY position, lesson_id"
        ):
            lesson = Lesson(
                row["lesson_id"], row["module_id"], row["course_id"], row["kind"], row["duration_seconds"]
            )
            catalog.lessons[lesson.lesson_id] = lesson
            catalog.courses[lesson.course_id].lessons.append(lesson.lesson_id)
            if lesson.module_id is not None:
                catalog.module_lessons[lesson.module_id].append(lesson.lesson_id)
            if row["iri"]:
                catalog.by_iri[row["iri"]] = Location(lesson.course_id, lesson.module_id, lesson.lesson_id)
        for row in await conn.fetch(
            "SELECT quiz_id, module_id, course_id, pass_percentage, iri FROM lms.quizzes ORDER BY quiz_id"
        ):
            quiz = Quiz(row["quiz_id"], row["module_id"], row["course_id"], float(row["pass_percentage"]))
            catalog.quizzes[quiz.quiz_id] = quiz
            catalog.courses[quiz.course_id].quizzes.append(quiz.quiz_id)
            if quiz.module_id is not None:
                catalog.module_quizzes[quiz.module_id].append(quiz.quiz_id)
            if row["iri"]:
                catalog.by_iri[row["iri"]] = Location(quiz.course_id, quiz.module_id, quiz_id=quiz.quiz_id)
        for row in await conn.fetch("SELECT agent_key, student_id FROM lms.student_identities"):
            catalog.students[row["agent_key"]] = row["student_id"]
        return catalog

    # --- resolution ------------------------------------------------------------------------------

    def _from_template(self, iri: str) -> Location:
        for template in self.templates:
            m = template.fullmatch(iri)
            if m:
                ids = {k: int(v) for k, v in m.groupdict().items() if v is not None}
                return Location(ids.get("course"), ids.get("module"), ids.get("lesson"), ids.get("quiz"))
        return UNKNOWN

    def _complete(self, location: Location) -> Location:
        """Fill module and course from the catalog's structure where a lesson or quiz is known."""
        if location.lesson_id in self.lessons:
            lesson = self.lessons[location.lesson_id]
            location = location.merged(Location(lesson.course_id, lesson.module_id))
        if location.quiz_id in self.quizzes:
            quiz = self.quizzes[location.quiz_id]
            location = location.merged(Location(quiz.course_id, quiz.module_id))
        if location.module_id in self.modules:
            location = location.merged(Location(self.modules[location.module_id]))
        return location

    def locate(self, iri: str) -> Location:
        found = self.by_iri.get(iri)
        return self._complete(found if found is not None else self._from_template(iri))

    def resolve(self, statement: dict[str, Any]) -> Location:
        """Where a statement sits in the catalog: its object's place, completed by its context
        activities (``parent`` first, then ``grouping``) for what the object itself does not say."""
        obj = statement["object"]
        location = self.locate(obj["id"]) if obj.get("objectType", "Activity") == "Activity" else UNKNOWN
        return self.within_context(statement, location)

    def within_context(self, statement: dict[str, Any], location: Location) -> Location:
        """``location`` completed by the statement's context activities: each ``parent``, then
        each ``grouping`` activity, in order, fills only what is still unknown."""
        context = (statement.get("context") or {}).get("contextActivities") or {}
        for role in ("parent", "grouping"):
            for activity in context.get(role, ()):
                if None not in (location.course_id, location.module_id, location.lesson_id, location.quiz_id):
                    return location
                location = location.merged(self.locate(activity["id"]))
        return location

    def pass_percentage(self, quiz_id: int | None) -> float | None:
        """The catalog's pass mark of a quiz (percent), ``None`` for a quiz it does not know."""
        quiz = self.quizzes.get(quiz_id) if quiz_id is not None else None
        return quiz.pass_percentage if quiz is not None else None

    def student_of(self, actor: dict[str, Any]) -> int | None:
        key = ifi_key(actor)
        if key is not None and key in self.students:
            return self.students[key]
        account = actor.get("account")
        if (
            account
            and self.student_homepage
            and account["homePage"].rstrip("/") == self.student_homepage.rstrip("/")
        ):
            return int(account["name"]) if account["name"].isdigit() else None
        return None

    def required_items(self, course_id: int) -> tuple[list[int], list[int]]:
        """(lessons, quizzes) a learner completes to complete the course."""
        course = self.courses.get(course_id)
        return (course.lessons, course.quizzes) if course else ([], [])


# --- loading ---------------------------------------------------------------------------------------


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    title: str = ""
    iri: str | None = None


class LessonIn(_Item):
    kind: str = "lesson"
    duration_seconds: int | None = Field(default=None, ge=0)


class QuizIn(_Item):
    pass_percentage: float = Field(default=70, ge=0, le=100)


class ModuleIn(_Item):
    position: int = 0
    lessons: list[LessonIn] = []
    quizzes: list[QuizIn] = []


class CourseIn(_Item):
    modules: list[ModuleIn] = []
    lessons: list[LessonIn] = []
    """Lessons that belong to no module."""
    quizzes: list[QuizIn] = []


class StudentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    name: str = ""
    identities: list[Agent] = []
    """xAPI agents (``{"mbox": "mailto:…"}``, ``{"account": {...}}``…) that are this student."""


class CatalogFile(BaseModel):
    """The document ``lrs catalog load`` and ``POST /catalog`` accept (merged into the tables)."""

    model_config = ConfigDict(extra="forbid")
    courses: list[CourseIn] = []
    students: list[StudentIn] = []


async def store_catalog(conn: asyncpg.Connection, catalog: CatalogFile) -> dict[str, int]:
    """Upsert a catalog document in one transaction and tell workers to reload."""
    counts = {"courses": 0, "modules": 0, "lessons": 0, "quizzes": 0, "students": 0}
    async with conn.transaction():
        for course in catalog.courses:
            await conn.execute(
                "INSERT INTO lms.courses (course_id, title, iri) VALUES ($1, $2, $3) ON CONFLICT (course_id)"
                " DO UPDATE SET title = EXCLUDED.title, iri = EXCLUDED.iri",
                course.id, course.title, course.iri,
            )  # fmt: skip
            counts["courses"] += 1
            groups = [(None, 0, course.lessons, course.quizzes)] + [
                (m, m.position, m.lessons, m.quizzes) for m in course.modules
            ]
            for module, position, lessons, quizzes in groups:
                module_id = module.id if module else None
                if module:
                    await conn.execute(
                        "INSERT INTO lms.modules (module_id, course_id, position, title, iri) VALUES ($1, $2, $3, $4, $5)"
                        " ON CONFLICT (module_id) DO UPDATE SET course_id = EXCLUDED.course_id,"
                        " position = EXCLUDED.position, title = EXCLUDED.title, iri = EXCLUDED.iri",
                        module.id, course.id, position, module.title, module.iri,
                    )  # fmt: skip
                    counts["modules"] += 1
                for index, lesson in enumerate(lessons):
                    await conn.execute(
                        "INSERT INTO lms.lessons (lesson_id, module_id, course_id, position, title, kind,"
                        " duration_seconds, iri) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (lesson_id)"
                        " DO UPDATE SET module_id = EXCLUDED.module_id, course_id = EXCLUDED.course_id,"
                        " position = EXCLUDED.position, title = EXCLUDED.title, kind = EXCLUDED.kind,"
                        " duration_seconds = EXCLUDED.duration_seconds, iri = EXCLUDED.iri",
                        lesson.id, module_id, course.id, index, lesson.title, lesson.kind,
                        lesson.duration_seconds, lesson.iri,
                    )  # fmt: skip
                    counts["lessons"] += 1
                for quiz in quizzes:
                    await conn.execute(
                        "INSERT INTO lms.quizzes (quiz_id, module_id, course_id, title, pass_percentage, iri)"
                        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (quiz_id) DO UPDATE SET"
                        " module_id = EXCLUDED.module_id, course_id = EXCLUDED.course_id, title = EXCLUDED.title,"
                        " pass_percentage = EXCLUDED.pass_percentage, iri = EXCLUDED.iri",
                        quiz.id, module_id, course.id, quiz.title, quiz.pass_percentage, quiz.iri,
                    )  # fmt: skip
                    counts["quizzes"] += 1
        for student in catalog.students:
            await conn.execute(
                "INSERT INTO lms.students (student_id, name) VALUES ($1, $2)"
                " ON CONFLICT (student_id) DO UPDATE SET name = EXCLUDED.name",
                student.id, student.name,
            )  # fmt: skip
            for identity in student.identities:
                key = ifi_key(identity.model_dump(exclude_unset=True))
                await conn.execute(
                    "INSERT INTO lms.student_identities (agent_key, student_id) VALUES ($1, $2)"
                    " ON CONFLICT (agent_key) DO UPDATE SET student_id = EXCLUDED.student_id",
                    key, student.id,
                )  # fmt: skip
            counts["students"] += 1
        await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return counts
