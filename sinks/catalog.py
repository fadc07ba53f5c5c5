"""The course catalog: courses → modules → lessons and quizzes (each with the activity IRI its
content uses) and learners' xAPI identities — what the pipeline maps statements with, and the
structure the sinks aggregate by (a course's required items, a module's items, a quiz's pass
mark).

``Catalog`` is an in-memory snapshot (the worker holds the whole catalog: it is small next to
the statement stream); ``CatalogDocument`` is what an LMS uploads (``lrs catalog load``,
``POST /catalog``), merged into the LMS database by ``sinks.lms``. Pure: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from lrs.xapi.agents import ifi_key
from lrs.xapi.models import Agent

from .events import Location

INT32 = 2**31 - 1
MOVE_ON = ("Passed", "Completed", "CompletedAndPassed", "CompletedOrPassed", "NotApplicable")
"""cmi5 moveOn values (cmi5 §13.1.4)."""
MoveOn = Literal["Passed", "Completed", "CompletedAndPassed", "CompletedOrPassed", "NotApplicable"]
IRI_MAX = 2000
"""Longest catalog IRI: the LMS tables index them (a btree entry holds about 2.7 KB)."""


@dataclass(slots=True)
class Course:
    course_id: int
    modules: list[int] = field(default_factory=list)
    lessons: list[int] = field(default_factory=list)
    """Every lesson of the course (of its modules and directly under it), in order."""
    quizzes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Lesson:
    lesson_id: int
    module_id: int | None
    course_id: int
    kind: str = "lesson"
    duration_seconds: int | None = None
    move_on: str | None = None
    """A cmi5 AU's moveOn (``MOVE_ON``): its cmi5 outcomes satisfy it (``docs/analytics.md``,
    "cmi5 courses"); ``None``: an ordinary lesson."""


@dataclass(slots=True)
class Quiz:
    quiz_id: int
    module_id: int | None
    course_id: int
    pass_percentage: float = 70.0


class Catalog:
    """A snapshot of the catalog. Add courses before their modules, modules before their items."""

    def __init__(self) -> None:
        self.courses: dict[int, Course] = {}
        self.modules: dict[int, int] = {}  # module → course
        self.module_lessons: dict[int, list[int]] = {}
        self.module_quizzes: dict[int, list[int]] = {}
        self.lessons: dict[int, Lesson] = {}
        self.quizzes: dict[int, Quiz] = {}
        self.by_iri: dict[str, Location] = {}
        self.students: dict[str, int] = {}
        """Identity key (``lrs.xapi.agents.ifi_key``) → student id."""

    # --- building ------------------------------------------------------------------------------

    def add_course(self, course_id: int, iri: str | None = None) -> None:
        self.courses[course_id] = Course(course_id)
        if iri:
            self.by_iri[iri] = Location(course_id)

    def add_module(self, module_id: int, course_id: int, iri: str | None = None) -> None:
        self.modules[module_id] = course_id
        self.courses[course_id].modules.append(module_id)
        self.module_lessons[module_id], self.module_quizzes[module_id] = [], []
        if iri:
            self.by_iri[iri] = Location(course_id, module_id)

    def add_lesson(self, lesson: Lesson, iri: str | None = None) -> None:
        self.lessons[lesson.lesson_id] = lesson
        self.courses[lesson.course_id].lessons.append(lesson.lesson_id)
        if lesson.module_id is not None:
            self.module_lessons[lesson.module_id].append(lesson.lesson_id)
        if iri:
            self.by_iri[iri] = Location(lesson.course_id, lesson.module_id, lesson.lesson_id)

    def add_quiz(self, quiz: Quiz, iri: str | None = None) -> None:
        self.quizzes[quiz.quiz_id] = quiz
        self.courses[quiz.course_id].quizzes.append(quiz.quiz_id)
        if quiz.module_id is not None:
            self.module_quizzes[quiz.module_id].append(quiz.quiz_id)
        if iri:
            self.by_iri[iri] = Location(quiz.course_id, quiz.module_id, quiz_id=quiz.quiz_id)

    @classmethod
    def of(cls, *documents: CatalogDocument) -> Catalog:
        """The snapshot of catalog documents, as the LMS database would hold them once loaded
        (into an empty database, in this order)."""
        catalog = cls()
        for document in documents:
            for course in document.courses:
                catalog.add_course(course.id, course.iri)
                for module in course.modules:
                    catalog.add_module(module.id, course.id, module.iri)
                for module_id, lessons, quizzes in course.groups():
                    for lesson in lessons:
                        catalog.add_lesson(
                            Lesson(
                                lesson.id,
                                module_id,
                                course.id,
                                lesson.kind,
                                lesson.duration_seconds,
                                lesson.move_on,
                            ),
                            lesson.iri,
                        )
                    for quiz in quizzes:
                        catalog.add_quiz(Quiz(quiz.id, module_id, course.id, quiz.pass_percentage), quiz.iri)
            for student in document.students:
                for key in student.identity_keys():
                    catalog.students[key] = student.id
        return catalog

    # --- reading -------------------------------------------------------------------------------

    def required_items(self, course_id: int) -> tuple[list[int], list[int]]:
        """(lessons, quizzes) a learner completes to complete the course."""
        course = self.courses.get(course_id)
        return (course.lessons, course.quizzes) if course else ([], [])

    def move_on(self, lesson_id: int | None) -> str | None:
        """A lesson's cmi5 moveOn, ``None`` for an ordinary lesson or one the catalog does not know."""
        lesson = self.lessons.get(lesson_id) if lesson_id is not None else None
        return lesson.move_on if lesson is not None else None

    def pass_percentage(self, quiz_id: int | None) -> float | None:
        """The pass mark of a quiz (percent), ``None`` for a quiz the catalog does not know."""
        quiz = self.quizzes.get(quiz_id) if quiz_id is not None else None
        return quiz.pass_percentage if quiz is not None else None


# --- the document an LMS uploads ---------------------------------------------------------------------


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000)")
    return value


Text = Annotated[str, AfterValidator(_storable)]
Id = Annotated[int, Field(ge=0, le=INT32)]
Iri = Annotated[str, Field(min_length=1, max_length=IRI_MAX), AfterValidator(_storable)]


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    title: Text = ""
    iri: Iri | None = None


class LessonIn(_Item):
    kind: Text = "lesson"
    duration_seconds: int | None = Field(default=None, ge=0, le=INT32)
    move_on: MoveOn | None = None
    """A cmi5 AU's moveOn: the lesson is satisfied by cmi5 statements about it, not by the
    ordinary completion rules (``docs/analytics.md``, "cmi5 courses"); ``None``: an ordinary lesson."""


class QuizIn(_Item):
    pass_percentage: float = Field(default=70, ge=0, le=100)


class ModuleIn(_Item):
    position: int = Field(default=0, ge=-INT32, le=INT32)
    lessons: list[LessonIn] = []
    quizzes: list[QuizIn] = []


class CourseIn(_Item):
    modules: list[ModuleIn] = []
    lessons: list[LessonIn] = []
    """Lessons that belong to no module."""
    quizzes: list[QuizIn] = []

    def groups(self) -> list[tuple[int | None, list[LessonIn], list[QuizIn]]]:
        """(module id or ``None`` for the course's own items, lessons, quizzes)."""
        return [(None, self.lessons, self.quizzes)] + [(m.id, m.lessons, m.quizzes) for m in self.modules]


class StudentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    name: Text = ""
    identities: list[Agent] = []
    """xAPI agents (``{"mbox": "mailto:…"}``, ``{"account": {...}}``…) that are this student."""

    def identity_keys(self) -> list[str]:
        return [ifi_key(identity.model_dump(exclude_unset=True)) for identity in self.identities]


class CatalogDocument(BaseModel):
    """The document ``lrs catalog load`` and ``POST /catalog`` accept (merged into the tables)."""

    model_config = ConfigDict(extra="forbid")
    courses: list[CourseIn] = []
    students: list[StudentIn] = []
