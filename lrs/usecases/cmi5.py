"""The LMS's side of cmi5 (quartz): importing a course, launching an AU (§8), the fetch URL's
one-time token (§8.2), the session the token is limited to, the rules statements sent with it
must keep (§9, ``lrs.cmi5.rules``) and the statements the LMS itself records: launched,
satisfied, waived and abandoned.

Who may: importing, launching, waiving and abandoning need scope ``all`` (an LMS's own
credential); the fetch URL needs nothing but its secret key; a session token reaches only its
learner's statements and documents in its registration, for its AU (``SessionGrant``).

Satisfied statements: the LMS records ``satisfied`` for each block whose AUs are all satisfied
(innermost first) and then for the course, as soon as the statement that satisfies the last AU
is stored, in the session of that statement (CATAPULT's order: launched, initialized, passed,
completed, satisfied block, satisfied course, terminated). AUs themselves get no satisfied
statement (§9.3.9 names blocks and the course); whether an AU is satisfied is in
``lms.cmi5_au_status`` and the pipeline's rollups.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field

from lrs.auth.credentials import SESSION_TOKEN_PREFIX, Principal, SessionGrant
from lrs.cmi5 import records, rules
from lrs.cmi5 import vocabulary as v
from lrs.cmi5.ports import AuRecord, AuStatus, Cmi5Store, CourseRecord, Registration, SessionRecord
from lrs.cmi5.structure import CourseStructureError, read_package
from lrs.store.ports import DocumentKind, DocumentScope, Write
from lrs.xapi.agents import ifi_key
from lrs.xapi.compare import same_statement
from lrs.xapi.models import XapiVersion
from lrs.xapi.statements import prepare

from .documents import etag_of
from .errors import BadRequest, Forbidden, LRSError, NotFound, Unauthorized, validated
from .stores import Stores

ADMIN_SCOPE = "all"
INT32 = 2**31 - 1
SESSION_SCOPES = frozenset({"statements/write", "statements/read", "state", "profile"})
_NAMESPACE = uuid.UUID("5b0c8a4e-6f1d-4c7a-9f59-2f3a7c1d0e21")


class Unavailable(LRSError):
    status = 503


def _admin(scopes: frozenset[str], what: str) -> None:
    if ADMIN_SCOPE not in scopes:
        raise Forbidden(f"{what} needs a credential with scope {ADMIN_SCOPE}")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LmsIdentity:
    """The Agents the LMS's records name: learners (an account per student id) and the LMS
    itself (the authority of its statements and of session tokens' statements)."""

    def __init__(self, student_homepage: str) -> None:
        self.homepage = student_homepage.rstrip("/") or "https://lms.example"

    def learner(self, student_id: int) -> dict[str, Any]:
        return {"objectType": "Agent", "account": {"homePage": self.homepage, "name": str(student_id)}}

    @property
    def authority(self) -> dict[str, Any]:
        return {
            "objectType": "Agent",
            "name": "LMS (cmi5)",
            "account": {"homePage": self.homepage, "name": "lms"},
        }


class LmsStatements:
    """Stores the LMS's own statements, each id at most once (a retry after a failure finds the
    ones already stored and stores the rest)."""

    def __init__(self, stores: Stores, identity: LmsIdentity) -> None:
        self._stores, self._identity = stores, identity

    async def store(self, statements: list[dict[str, Any]]) -> None:
        if not statements:
            return
        existing = await self._stores.statements.existing([s["id"] for s in statements])
        fresh = [s for s in statements if s["id"] not in existing]
        if fresh:
            prepared = [prepare(s, self._identity.authority, XapiVersion.V1) for s in fresh]
            await self._stores.statements.store(prepared, [], same_statement, False)


def _launch(au: AuRecord, session: SessionRecord, url: str) -> records.Launch:
    return records.Launch(
        actor=session.actor, registration=session.registration, session_id=session.session_id,
        au_iri=au.activity_id, publisher_id=au.publisher_id, url=url, launch_mode=session.launch_mode,
        move_on=au.move_on, launch_method=au.launch_method, mastery_score=au.mastery_score,
        launch_parameters=au.launch_parameters, entitlement_key=au.entitlement_key,
        return_url=session.return_url, activity_type=au.activity_type, title=au.title,
    )  # fmt: skip


def _find_au(course: CourseRecord, key: str) -> AuRecord:
    """An AU of the course by its publisher id or its catalog lesson id; ``NotFound`` otherwise."""
    au = course.aus.get(key) or next((a for a in course.aus.values() if str(a.lesson_id) == key), None)
    if au is None:
        raise NotFound(f"course {course.course_id} has no AU {key!r}")
    return au


def _au_by_lesson(course: CourseRecord, lesson_id: int) -> AuRecord:
    return next(au for au in course.aus.values() if au.lesson_id == lesson_id)


class Satisfaction:
    """Records satisfied for the blocks and the course of a registration that its AUs now
    satisfy (§9.3.9), once each."""

    def __init__(self, statements: LmsStatements) -> None:
        self._statements = statements

    async def settle(self, registration: Registration, course: CourseRecord, session_id: str) -> list[str]:
        """Publisher ids newly announced satisfied (blocks innermost first, then the course)."""
        statuses = await registration.statuses()
        satisfied_aus = {
            publisher_id
            for publisher_id, au in course.aus.items()
            if rules.au_satisfied(au.move_on, **_flags(statuses.get(au.lesson_id, AuStatus())))
        }
        done = await registration.satisfied()
        targets = [
            (b, course.blocks[b], v.TYPE_BLOCK)
            for b in rules.satisfied_blocks(list(course.members), satisfied_aus)
        ]
        if rules.course_satisfied(list(course.members), satisfied_aus):
            targets.append((course.publisher_id, course.activity_id, v.TYPE_COURSE))
        at = _now()
        new = []
        for publisher_id, iri, kind in targets:
            if publisher_id in done:
                continue
            statement_id = str(
                uuid.uuid5(_NAMESPACE, f"{registration.registration}|satisfied|{publisher_id}")
            )
            statement = records.satisfied(
                registration.actor, target_iri=iri, target_type=kind, publisher_id=publisher_id,
                registration=registration.registration, session_id=session_id, course_iri=course.activity_id, at=at,
            )  # fmt: skip
            statement["id"] = statement_id
            await self._statements.store([statement])
            await registration.record_satisfied(publisher_id, statement_id, at)
            new.append(publisher_id)
        return new


def _flags(status: AuStatus) -> dict[str, bool]:
    return {"completed": status.completed, "passed": status.passed, "waived": status.waived}


# --- import ------------------------------------------------------------------------------------------


class ImportCourse:
    def __init__(self, store: Cmi5Store, max_package_bytes: int) -> None:
        self._store, self._max = store, max_package_bytes

    async def __call__(
        self, scopes: frozenset[str], data: bytes, course_id: int | None = None
    ) -> dict[str, Any]:
        _admin(scopes, "importing a cmi5 course")
        try:
            package = read_package(data, max_bytes=self._max)
        except CourseStructureError as exc:
            raise BadRequest(f"not a valid cmi5 course package: {exc}") from None
        try:
            imported = await self._store.save_course(package, course_id)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        except OSError as exc:
            raise Unavailable(f"the LMS database is unavailable: {exc}") from None
        return {"course_id": imported.course_id, "created": imported.created, "aus": imported.aus,
                "blocks": imported.blocks, "files": imported.files}  # fmt: skip


def describe(course: CourseRecord) -> dict[str, Any]:
    """A course as ``GET /cmi5/courses`` shows it."""
    return {
        "course_id": course.course_id, "id": course.publisher_id, "activityId": course.activity_id,
        "title": course.title, "files": course.files, "blocks": course.blocks,
        "aus": [
            {"id": au.publisher_id, "activityId": au.activity_id, "lesson_id": au.lesson_id, "title": au.title,
             "url": au.url, "moveOn": au.move_on, "masteryScore": au.mastery_score, "launchMethod": au.launch_method}
            for au in sorted(course.aus.values(), key=lambda a: a.lesson_id)
        ],
    }  # fmt: skip


# --- launch ------------------------------------------------------------------------------------------


class LaunchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_id: int = Field(ge=0, le=INT32)
    course_id: int = Field(ge=0, le=INT32)
    au: str = Field(min_length=1, max_length=2048)
    """The AU's id in the course structure (its publisher id) or its catalog lesson id."""
    launch_mode: Literal["Normal", "Browse", "Review"] = "Normal"
    return_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    name: str = Field(default="", max_length=200)
    """The learner's name, for the catalog when the registration is new."""


class Launch:
    """Launch an AU (§8.1): the registration (created, or reused), the session, ``LMS.LaunchData``,
    ``cmi5LearnerPreferences``, the launched statement, and the launch URL."""

    def __init__(
        self, store: Cmi5Store, stores: Stores, identity: LmsIdentity, *, fetch_seconds: float
    ) -> None:
        self._store, self._stores, self._identity = store, stores, identity
        self._statements = LmsStatements(stores, identity)
        self._satisfaction = Satisfaction(self._statements)
        self._abandon = AbandonSessions(store, self._statements)
        self._fetch_ttl = timedelta(seconds=fetch_seconds)

    async def __call__(self, scopes: frozenset[str], raw: Any, public_url: str) -> dict[str, Any]:
        _admin(scopes, "launching a cmi5 AU")
        request: LaunchRequest = validated(LaunchRequest, raw, "a launch request")
        course = await self._store.course(request.course_id)
        if course is None:
            raise NotFound(f"no cmi5 course {request.course_id}")
        au = _find_au(course, request.au)
        base = public_url.rstrip("/")
        actor = self._identity.learner(request.student_id)
        async with self._store.registration(course.course_id, request.student_id, actor, request.name) as (
            reg,
            created,
        ):
            if created:  # AUs whose moveOn is NotApplicable may satisfy blocks and the course at once
                await self._satisfaction.settle(reg, course, str(uuid.uuid4()))
            for open_session in await reg.open_sessions():
                await self._abandon.end(reg, open_session, _au_by_lesson(course, open_session.lesson_id))
            now = _now()
            fetch_key = secrets.token_urlsafe(32)
            url = au.url if urlsplit(au.url).scheme else f"{base}/cmi5/content/{course.course_id}/{au.url}"
            session = SessionRecord(
                session_id=str(uuid.uuid4()), registration=reg.registration, lesson_id=au.lesson_id,
                course_id=course.course_id, student_id=request.student_id, actor=reg.actor,
                launch_mode=request.launch_mode, launch_url=url, launched_at=now, last_at=now,
                return_url=request.return_url, fetch_expires=now + self._fetch_ttl,
            )  # fmt: skip
            launch = _launch(au, session, url)
            launch_url = launch.url_with(f"{base}/xapi/", f"{base}/cmi5/fetch/{fetch_key}")
            session = replace(session, launch_url=launch_url)
            await reg.add_session(session, _digest(fetch_key))
            await self._documents(launch)
            await self._statements.store([launch.launched(now)])
        return {
            "url": launch_url, "registration": reg.registration, "sessionId": session.session_id,
            "activityId": au.activity_id, "actor": reg.actor, "launchMethod": au.launch_method,
            "fetchExpires": session.fetch_expires.isoformat() if session.fetch_expires else None,
        }  # fmt: skip

    async def _documents(self, launch: records.Launch) -> None:
        key = ifi_key(launch.actor) or ""
        state = DocumentScope(DocumentKind.STATE, launch.au_iri, key, launch.registration)
        data = orjson.dumps(launch.launch_data())
        await self._stores.documents.update(
            state, v.LAUNCH_DATA, lambda _: Write(data, "application/json", etag_of(data))
        )
        profile = DocumentScope(DocumentKind.AGENT_PROFILE, "", key, "")
        preferences = orjson.dumps(records.learner_preferences())

        def ensure(current: Any) -> Write | None:
            return (
                None if current is not None else Write(preferences, "application/json", etag_of(preferences))
            )

        await self._stores.documents.update(profile, v.LEARNER_PREFERENCES, ensure)


# --- fetch -------------------------------------------------------------------------------------------


class Fetch:
    """The fetch URL (§8.2): the session's token once; otherwise the spec's error document."""

    ERRORS = {
        "used": ("1", "the fetch URL was already used: a launch hands out its token once"),
        "expired": ("2", "the fetch URL has expired (or its session has ended)"),
        "unknown": ("3", "no launch has this fetch URL"),
    }

    def __init__(self, store: Cmi5Store) -> None:
        self._store = store

    async def __call__(self, fetch_key: str) -> dict[str, str]:
        key = SESSION_TOKEN_PREFIX + secrets.token_hex(16)
        secret = secrets.token_urlsafe(24)
        outcome, _ = await self._store.fetch(_digest(fetch_key), _now(), key, _digest(secret))
        if outcome != "ok":
            code, text = self.ERRORS[outcome]
            return {"error-code": code, "error-text": text}
        return {"auth-token": base64.b64encode(f"{key}:{secret}".encode()).decode()}


class SessionTokens:
    """Verifies session tokens (``Authenticator.sessions``): the session must be open and not
    idle past the timeout."""

    def __init__(self, store: Cmi5Store, identity: LmsIdentity, timeout_seconds: float) -> None:
        self._store, self._identity = store, identity
        self._timeout = timedelta(seconds=timeout_seconds)

    async def verify(self, key: str, secret: str) -> Principal | None:
        try:
            found = await self._store.by_token(key)
        except OSError:
            return None
        if found is None:
            return None
        session, digest = found
        if not hmac.compare_digest(digest, _digest(secret)):
            return None
        if session.ended_by is not None or session.last_at + self._timeout < _now():
            return None
        course = await self._store.course(session.course_id)
        if course is None:
            return None
        au = _au_by_lesson(course, session.lesson_id)
        grant = SessionGrant(
            session.session_id, session.registration, ifi_key(session.actor) or "", au.activity_id
        )
        return Principal(key, SESSION_SCOPES, self._identity.authority, grant)


# --- statements sent with a session token ----------------------------------------------------------------


class SessionWrites:
    """Statements sent with a session token (``Stores.cmi5``): judged in order against the
    session under the registration's lock, stored, then the session, the AU's status and
    satisfaction follow. A statement already stored (a retry) is not judged again."""

    def __init__(self, store: Cmi5Store, stores: Stores, identity: LmsIdentity) -> None:
        self._store, self._stores = store, stores
        self._satisfaction = Satisfaction(LmsStatements(stores, identity))

    async def write(
        self, grant: SessionGrant, statements: list[dict[str, Any]],
        store: Callable[[list[dict[str, Any]]], Awaitable[list[str]]],
    ) -> list[str]:  # fmt: skip
        opened = await self._store.session(grant.session_id)
        course = await self._store.course(opened.course_id) if opened is not None else None
        if course is None:
            raise Unauthorized("the cmi5 session of this token is gone")
        async with self._store.locked(grant.registration) as reg:
            session_record = await reg.session(grant.session_id) if reg is not None else None
            if reg is None or session_record is None or session_record.ended_by is not None:
                raise Unauthorized("the cmi5 session of this token has ended")
            au = _au_by_lesson(course, session_record.lesson_id)
            statuses = await reg.statuses()
            status = statuses.get(au.lesson_id, AuStatus())
            session = rules.Session(
                session_id=grant.session_id, registration=grant.registration, actor_key=grant.actor_key,
                au_iri=au.activity_id, publisher_id=au.publisher_id, launch_mode=session_record.launch_mode,
                mastery_score=au.mastery_score, initialized="initialized" in session_record.verbs,
                terminated="terminated" in session_record.verbs, verbs=session_record.verbs,
                completed_before=status.completed, passed_before=status.passed,
            )  # fmt: skip
            ids = [s["id"].lower() for s in statements if isinstance(s.get("id"), str)]
            stored_before = await self._stores.statements.existing(ids) if ids else set()
            for statement in statements:
                if str(statement.get("id", "")).lower() in stored_before:
                    continue
                try:
                    session = rules.check(statement, session)
                except rules.RuleViolation as exc:
                    raise Forbidden(f"rejected by the LMS: {exc}") from None
            written = await store(statements)
            ended = "terminated" if session.terminated else None
            await reg.save_session(grant.session_id, verbs=session.verbs, last_at=_now(), ended_by=ended)
            new_status = AuStatus(status.completed or session.completed_before, status.passed or session.passed_before,
                                  status.waived)  # fmt: skip
            if new_status != status:
                await reg.save_status(au.lesson_id, new_status)
                await self._satisfaction.settle(reg, course, grant.session_id)
        return written


# --- abandoned, waived ----------------------------------------------------------------------------


class AbandonSessions:
    """Ends sessions that stopped without terminated (§9.3.6): on a new launch in the
    registration, after the idle timeout (``sweep``), or by an administrator."""

    def __init__(self, store: Cmi5Store, statements: LmsStatements) -> None:
        self._store, self._statements = store, statements

    async def end(self, reg: Registration, session: SessionRecord, au: AuRecord) -> None:
        seconds = (session.last_at - session.launched_at).total_seconds()
        launch = _launch(au, session, session.launch_url)
        statement = records.abandoned(launch, seconds=seconds, at=_now())
        statement["id"] = str(uuid.uuid5(_NAMESPACE, f"{session.session_id}|abandoned"))
        await self._statements.store([statement])
        await reg.save_session(
            session.session_id, verbs=session.verbs, last_at=session.last_at, ended_by="abandoned"
        )

    async def session(self, session_id: str) -> bool:
        """Abandon one open session; ``False`` if it is unknown or already ended."""
        session = await self._store.session(session_id)
        course = await self._store.course(session.course_id) if session is not None else None
        if session is None or course is None:
            return False
        async with self._store.locked(session.registration) as reg:
            current = await reg.session(session_id) if reg is not None else None
            if reg is None or current is None or current.ended_by is not None:
                return False
            await self.end(reg, current, _au_by_lesson(course, current.lesson_id))
        return True

    async def sweep(self, idle_seconds: float) -> int:
        """Abandon every session idle for longer than ``idle_seconds``; how many."""
        stale = await self._store.stale(_now() - timedelta(seconds=idle_seconds))
        ended = 0
        for session in stale:
            ended += await self.session(session.session_id)
        return ended


class AdminSessions:
    """``POST /cmi5/sessions/{id}/abandon`` and ``GET /cmi5/sessions/{id}``."""

    def __init__(self, store: Cmi5Store, stores: Stores, identity: LmsIdentity) -> None:
        self._store = store
        self.abandon = AbandonSessions(store, LmsStatements(stores, identity))

    async def end(self, scopes: frozenset[str], session_id: str) -> dict[str, Any]:
        _admin(scopes, "abandoning a cmi5 session")
        if not await self.abandon.session(session_id):
            raise NotFound(f"no open cmi5 session {session_id!r}")
        return await self.show(scopes, session_id)

    async def show(self, scopes: frozenset[str], session_id: str) -> dict[str, Any]:
        _admin(scopes, "reading a cmi5 session")
        session = await self._store.session(session_id)
        if session is None:
            raise NotFound(f"no cmi5 session {session_id!r}")
        return {
            "sessionId": session.session_id, "registration": session.registration, "lesson_id": session.lesson_id,
            "course_id": session.course_id, "student_id": session.student_id, "launchMode": session.launch_mode,
            "verbs": sorted(session.verbs), "fetched": session.fetched, "ended": session.ended_by,
            "launchedAt": session.launched_at.isoformat(), "lastAt": session.last_at.isoformat(),
        }  # fmt: skip


class WaiveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    au: str = Field(min_length=1, max_length=2048)
    reason: Literal["Tested Out", "Equivalent AU", "Equivalent Outside Activity", "Administrative"]


class Waive:
    """An administrator waives an AU in a registration (§9.3.7): waived, then satisfied for what
    that completes, in a session of the LMS's own."""

    def __init__(self, store: Cmi5Store, stores: Stores, identity: LmsIdentity) -> None:
        self._store = store
        self._statements = LmsStatements(stores, identity)
        self._satisfaction = Satisfaction(self._statements)

    async def __call__(self, scopes: frozenset[str], registration: str, raw: Any) -> dict[str, Any]:
        _admin(scopes, "waiving a cmi5 AU")
        request: WaiveRequest = validated(WaiveRequest, raw, "a waive request")
        try:
            registration = str(uuid.UUID(registration))
        except ValueError:
            raise BadRequest(f"not a registration (UUID): {registration!r}") from None
        course_id = await self._store.course_of(registration)
        course = await self._store.course(course_id) if course_id is not None else None
        if course is None:
            raise NotFound(f"no cmi5 registration {registration}")
        au = _find_au(course, request.au)
        async with self._store.locked(registration) as reg:
            if reg is None:
                raise NotFound(f"no cmi5 registration {registration}")
            status = (await reg.statuses()).get(au.lesson_id, AuStatus())
            if status.waived:
                return {"waived": False, "satisfied": []}
            session_id = str(uuid.uuid4())
            statement = records.waived(
                reg.actor, au_iri=au.activity_id, publisher_id=au.publisher_id, registration=registration,
                session_id=session_id, reason=request.reason, at=_now(),
            )  # fmt: skip
            statement["id"] = str(uuid.uuid5(_NAMESPACE, f"{registration}|waived|{au.publisher_id}"))
            await self._statements.store([statement])
            await reg.save_status(au.lesson_id, replace(status, waived=True))
            satisfied = await self._satisfaction.settle(reg, course, session_id)
        return {"waived": True, "satisfied": satisfied}


class Courses:
    """Reading imported courses and their files."""

    def __init__(self, store: Cmi5Store) -> None:
        self._store = store

    async def list(self, scopes: frozenset[str]) -> list[dict[str, Any]]:
        _reader(scopes)
        return [describe(course) for course in await self._store.courses()]

    async def show(self, scopes: frozenset[str], course_id: int) -> dict[str, Any]:
        _reader(scopes)
        course = await self._store.course(course_id) if 0 <= course_id <= INT32 else None
        if course is None:
            raise NotFound(f"no cmi5 course {course_id}")
        return describe(course)

    async def file(self, course_id: int, path: str) -> bytes | None:
        return await self._store.file(course_id, path) if 0 <= course_id <= INT32 else None


def _reader(scopes: frozenset[str]) -> None:
    if scopes.isdisjoint({"all", "all/read"}):
        raise Forbidden("reading cmi5 courses needs scope all or all/read")


class Cmi5:
    """The cmi5 use cases of a running LRS, on one store and the statement and document stores."""

    def __init__(
        self, store: Cmi5Store, stores: Stores, *, student_homepage: str, fetch_seconds: float,
        session_timeout_seconds: float, max_package_bytes: int,
    ) -> None:  # fmt: skip
        identity = LmsIdentity(student_homepage)
        self.store = store
        self.courses = Courses(store)
        self.importer = ImportCourse(store, max_package_bytes)
        self.launch = Launch(store, stores, identity, fetch_seconds=fetch_seconds)
        self.fetch = Fetch(store)
        self.waive = Waive(store, stores, identity)
        self.sessions = AdminSessions(store, stores, identity)
        self.writes = SessionWrites(store, stores, identity)
        self.tokens = SessionTokens(store, identity, session_timeout_seconds)
        self.timeout = session_timeout_seconds
