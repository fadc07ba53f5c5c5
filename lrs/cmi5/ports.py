"""What the cmi5 use cases need stored (``lrs.usecases.cmi5``): imported courses, registrations,
launch sessions and what the LMS knows of each AU in a registration. The PostgreSQL adapter is
``lrs.store.postgres.cmi5`` (the LMS database, beside the catalog the import fills)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .rules import Member
from .structure import Package


@dataclass(frozen=True, slots=True)
class AuRecord:
    lesson_id: int
    course_id: int
    publisher_id: str
    activity_id: str
    title: str
    url: str
    launch_method: str
    move_on: str
    mastery_score: float | None = None
    launch_parameters: str | None = None
    entitlement_key: str | None = None
    activity_type: str | None = None


@dataclass(frozen=True, slots=True)
class CourseRecord:
    course_id: int
    publisher_id: str
    activity_id: str
    title: str
    members: tuple[Member, ...]
    """Every AU (publisher id) with the blocks around it, outermost first."""
    blocks: dict[str, str]
    """Block publisher id → the activity id the LMS gave it."""
    aus: dict[str, AuRecord] = field(default_factory=dict)
    """AU publisher id → the AU."""
    files: int = 0


@dataclass(frozen=True, slots=True)
class Imported:
    course_id: int
    created: bool
    aus: int
    blocks: int
    files: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    registration: str
    lesson_id: int
    course_id: int
    student_id: int
    actor: dict[str, Any]
    launch_mode: str
    launch_url: str
    launched_at: datetime
    last_at: datetime
    return_url: str | None = None
    verbs: frozenset[str] = frozenset()
    fetched: bool = False
    fetch_expires: datetime | None = None
    ended_by: str | None = None
    """``terminated``, ``abandoned`` or ``None`` while the session is open."""


@dataclass(frozen=True, slots=True)
class AuStatus:
    completed: bool = False
    passed: bool = False
    waived: bool = False


class Registration(Protocol):
    """One registration, locked against concurrent writers until the block that opened it ends
    (statements of one registration are judged one request at a time)."""

    registration: str
    course_id: int
    actor: dict[str, Any]

    async def statuses(self) -> dict[int, AuStatus]: ...

    async def save_status(self, lesson_id: int, status: AuStatus) -> None: ...

    async def satisfied(self) -> set[str]:
        """Publisher ids of the blocks (and the course) already announced satisfied."""

    async def record_satisfied(self, publisher_id: str, statement_id: str, at: datetime) -> None: ...

    async def session(self, session_id: str) -> SessionRecord | None: ...

    async def open_sessions(self) -> list[SessionRecord]: ...

    async def save_session(
        self, session_id: str, *, verbs: frozenset[str], last_at: datetime, ended_by: str | None = None
    ) -> None: ...

    async def add_session(self, session: SessionRecord, fetch_hash: bytes) -> None: ...


class Cmi5Store(Protocol):
    async def save_course(self, package: Package, course_id: int | None = None) -> Imported:
        """Import (or re-import, matched by the course's publisher id) a course package: the cmi5
        tables and the catalog (course, blocks holding AUs as modules, AUs as lessons) in one
        transaction; workers are told to reload the catalog."""

    async def course(self, course_id: int) -> CourseRecord | None: ...

    async def courses(self) -> list[CourseRecord]: ...

    async def file(self, course_id: int, path: str) -> bytes | None: ...

    def registration(
        self, course_id: int, student_id: int, actor: dict[str, Any], name: str = ""
    ) -> AbstractAsyncContextManager[tuple[Registration, bool]]:
        """The learner's registration for the course, created when there is none (``True``:
        created; the student and its identity join the catalog), locked."""

    def locked(self, registration: str) -> AbstractAsyncContextManager[Registration | None]:
        """An existing registration, locked (``None``: unknown)."""

    async def fetch(
        self, fetch_hash: bytes, now: datetime, token_key: str, token_hash: bytes
    ) -> tuple[str, SessionRecord | None]:
        """Hand out the session's token once: ``("ok", session)``, or ``"used"``, ``"expired"``,
        ``"unknown"`` (the token is not set then)."""

    async def by_token(self, token_key: str) -> tuple[SessionRecord, bytes] | None:
        """The session a token key belongs to and the token's secret hash."""

    async def session(self, session_id: str) -> SessionRecord | None: ...

    async def course_of(self, registration: str) -> int | None:
        """The course of a registration (``None``: unknown)."""

    async def stale(self, before: datetime) -> list[SessionRecord]:
        """Open sessions whose last statement (or launch) is older than ``before``."""

    async def close(self) -> None: ...
