"""The cmi5 port on the LMS database (``sinks/migrations/0005_cmi5.sql``).

An import writes the course's cmi5 rows and its catalog rows (course; each block that holds AUs
as a module; each AU as a lesson of kind ``cmi5`` with its ``moveOn``) in one transaction, so the
pipeline's rollups know the structure as soon as the workers reload the catalog. Ids of new
courses, modules and lessons are allocated after the largest in use, under a transaction-scoped
advisory lock; a re-import keeps every id (matched by publisher ids) and removes what the new
structure no longer has.

A registration's writers are serialised by ``SELECT … FOR UPDATE`` of its row: statements of
one registration are judged against what the LMS knows one request at a time, in every process.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from lrs.cmi5.ports import AuRecord, AuStatus, CourseRecord, Imported, SessionRecord
from lrs.cmi5.records import lms_iri
from lrs.cmi5.rules import Member
from lrs.cmi5.structure import AU, Package
from lrs.xapi.agents import ifi_key
from sinks.catalog import CatalogDocument, CourseIn, LessonIn, ModuleIn
from sinks.lms import CATALOG_CHANNEL, LmsDatabase, merge_catalog

_IDS_LOCK = 0x636D6935  # "cmi5": one importer allocates catalog ids at a time

_SESSION = """
SELECT s.session_id, s.registration, s.lesson_id, r.course_id, r.student_id, r.actor, s.launch_mode,
       s.launch_url, s.launched_at, s.last_at, s.return_url, s.verbs, s.fetched_at, s.fetch_expires,
       s.ended_by
FROM lms.cmi5_sessions s JOIN lms.cmi5_registrations r USING (registration)"""


def _session(row: asyncpg.Record) -> SessionRecord:
    return SessionRecord(
        session_id=str(row["session_id"]), registration=str(row["registration"]), lesson_id=row["lesson_id"],
        course_id=row["course_id"], student_id=row["student_id"], actor=orjson.loads(row["actor"]),
        launch_mode=row["launch_mode"], launch_url=row["launch_url"], launched_at=row["launched_at"],
        last_at=row["last_at"], return_url=row["return_url"], verbs=frozenset(row["verbs"]),
        fetched=row["fetched_at"] is not None, fetch_expires=row["fetch_expires"], ended_by=row["ended_by"],
    )  # fmt: skip


def _au(row: asyncpg.Record) -> AuRecord:
    return AuRecord(
        lesson_id=row["lesson_id"], course_id=row["course_id"], publisher_id=row["publisher_id"],
        activity_id=row["activity_id"], title=row["title"], url=row["url"], launch_method=row["launch_method"],
        move_on=row["move_on"], mastery_score=row["mastery_score"], launch_parameters=row["launch_parameters"],
        entitlement_key=row["entitlement_key"], activity_type=row["activity_type"],
    )  # fmt: skip


class PgRegistration:
    """A registration row locked for the transaction ``conn`` is in."""

    def __init__(
        self, conn: asyncpg.Connection, registration: str, course_id: int, actor: dict[str, Any]
    ) -> None:
        self._conn = conn
        self.registration, self.course_id, self.actor = registration, course_id, actor

    async def statuses(self) -> dict[int, AuStatus]:
        rows = await self._conn.fetch(
            "SELECT lesson_id, completed, passed, waived FROM lms.cmi5_au_status WHERE registration = $1",
            self.registration,
        )
        return {r["lesson_id"]: AuStatus(r["completed"], r["passed"], r["waived"]) for r in rows}

    async def save_status(self, lesson_id: int, status: AuStatus) -> None:
        await self._conn.execute(
            "INSERT INTO lms.cmi5_au_status (registration, lesson_id, completed, passed, waived)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (registration, lesson_id) DO UPDATE SET"
            " completed = EXCLUDED.completed, passed = EXCLUDED.passed, waived = EXCLUDED.waived",
            self.registration, lesson_id, status.completed, status.passed, status.waived,
        )  # fmt: skip

    async def satisfied(self) -> set[str]:
        rows = await self._conn.fetch(
            "SELECT publisher_id FROM lms.cmi5_satisfied WHERE registration = $1", self.registration
        )
        return {r["publisher_id"] for r in rows}

    async def record_satisfied(self, publisher_id: str, statement_id: str, at: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO lms.cmi5_satisfied (registration, publisher_id, statement_id, at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            self.registration, publisher_id, uuid.UUID(statement_id), at,
        )  # fmt: skip

    async def session(self, session_id: str) -> SessionRecord | None:
        row = await self._conn.fetchrow(
            f"{_SESSION} WHERE s.session_id = $1 AND s.registration = $2",
            uuid.UUID(session_id),
            self.registration,
        )
        return _session(row) if row else None

    async def open_sessions(self) -> list[SessionRecord]:
        rows = await self._conn.fetch(
            f"{_SESSION} WHERE s.registration = $1 AND s.ended_at IS NULL ORDER BY s.launched_at",
            self.registration,
        )
        return [_session(r) for r in rows]

    async def save_session(
        self, session_id: str, *, verbs: frozenset[str], last_at: datetime, ended_by: str | None = None
    ) -> None:
        await self._conn.execute(
            "UPDATE lms.cmi5_sessions SET verbs = $2, last_at = greatest(last_at, $3),"
            " ended_by = coalesce(ended_by, $4), ended_at = CASE WHEN ended_at IS NULL AND $4::text IS NOT NULL"
            " THEN now() ELSE ended_at END WHERE session_id = $1",
            uuid.UUID(session_id), sorted(verbs), last_at, ended_by,
        )  # fmt: skip

    async def add_session(self, session: SessionRecord, fetch_hash: bytes) -> None:
        await self._conn.execute(
            "INSERT INTO lms.cmi5_sessions (session_id, registration, lesson_id, launch_mode, return_url,"
            " launch_url, fetch_hash, fetch_expires, launched_at, last_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            uuid.UUID(session.session_id), uuid.UUID(session.registration), session.lesson_id, session.launch_mode,
            session.return_url, session.launch_url, fetch_hash, session.fetch_expires, session.launched_at,
        )  # fmt: skip


class PgCmi5Store:
    def __init__(self, lms: LmsDatabase) -> None:
        self._lms = lms

    async def close(self) -> None:
        return None  # the pool is the LMS database's, closed with it

    # --- courses ---------------------------------------------------------------------------------

    async def save_course(self, package: Package, course_id: int | None = None) -> Imported:
        structure = package.structure
        async with (await self._lms.pool()).acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _IDS_LOCK)
            known = await conn.fetchval(
                "SELECT course_id FROM lms.cmi5_courses WHERE publisher_id = $1", structure.id
            )
            if known is not None and course_id is not None and known != course_id:
                raise ValueError(f"course {structure.id!r} was imported as course {known}, not {course_id}")
            created = known is None
            if known is None and course_id is not None:
                other = await conn.fetchval(
                    "SELECT publisher_id FROM lms.cmi5_courses WHERE course_id = $1", course_id
                )
                if other is not None:
                    raise ValueError(f"course {course_id} already holds the cmi5 course {other!r}")
            cid = known if known is not None else course_id
            if cid is None:
                cid = await conn.fetchval("SELECT coalesce(max(course_id), 0) + 1 FROM lms.courses")
            lessons = await self._ids(
                conn, cid, "cmi5_aus", "lesson_id", "lessons", [a.id for a, _ in structure.aus()]
            )
            holders = _blocks_with_aus(package)
            modules = await self._ids(conn, cid, "cmi5_blocks", "module_id", "modules", holders)
            document = _catalog(cid, package, lessons, modules)
            await merge_catalog(conn, document)
            await self._save_rows(conn, cid, package, lessons, modules)
            await conn.execute(f"NOTIFY {CATALOG_CHANNEL}")
        return Imported(cid, created, len(lessons), len(structure.blocks()), len(package.files))

    @staticmethod
    async def _ids(
        conn: asyncpg.Connection,
        course_id: int,
        table: str,
        column: str,
        catalog: str,
        publisher_ids: list[str],
    ) -> dict[str, int]:
        """Catalog ids for these publisher ids: kept where imported before, else new ones."""
        rows = await conn.fetch(
            f"SELECT publisher_id, {column} FROM lms.{table} WHERE course_id = $1", course_id
        )
        ids = {r["publisher_id"]: r[column] for r in rows}
        next_id = await conn.fetchval(f"SELECT coalesce(max({column}), 0) + 1 FROM lms.{catalog}")
        for publisher_id in publisher_ids:
            if publisher_id not in ids:
                ids[publisher_id] = next_id
                next_id += 1
        return {p: ids[p] for p in publisher_ids}

    @staticmethod
    async def _save_rows(
        conn: asyncpg.Connection, cid: int, package: Package, lessons: dict[str, int], modules: dict[str, int]
    ) -> None:
        structure = package.structure
        members = [{"au": au.id, "blocks": list(blocks)} for au, blocks in structure.aus()]
        blocks = {block.id: lms_iri(cid, "block", block.id) for block, _ in structure.blocks()}
        await conn.execute(
            "INSERT INTO lms.cmi5_courses (course_id, publisher_id, activity_id, title, members, blocks)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (course_id) DO UPDATE SET title = EXCLUDED.title,"
            " activity_id = EXCLUDED.activity_id, members = EXCLUDED.members, blocks = EXCLUDED.blocks,"
            " imported_at = now()",
            cid, structure.id, lms_iri(cid, "course", structure.id), structure.title,
            orjson.dumps(members), orjson.dumps(blocks),
        )  # fmt: skip
        # what the new structure no longer has leaves the catalog too
        stale_lessons = await conn.fetch(
            "DELETE FROM lms.cmi5_aus WHERE course_id = $1 AND NOT lesson_id = ANY($2::int[]) RETURNING lesson_id",
            cid, list(lessons.values()),
        )  # fmt: skip
        await conn.execute(
            "DELETE FROM lms.lessons WHERE lesson_id = ANY($1::int[])",
            [r["lesson_id"] for r in stale_lessons],
        )
        stale_modules = await conn.fetch(
            "DELETE FROM lms.cmi5_blocks WHERE course_id = $1 AND NOT module_id = ANY($2::int[]) RETURNING module_id",
            cid, list(modules.values()),
        )  # fmt: skip
        await conn.execute(
            "DELETE FROM lms.modules WHERE module_id = ANY($1::int[])",
            [r["module_id"] for r in stale_modules],
        )
        for publisher_id, module_id in modules.items():
            await conn.execute(
                "INSERT INTO lms.cmi5_blocks (module_id, course_id, publisher_id) VALUES ($1, $2, $3)"
                " ON CONFLICT (module_id) DO NOTHING",
                module_id, cid, publisher_id,
            )  # fmt: skip
        for au, _ in structure.aus():
            await conn.execute(
                "INSERT INTO lms.cmi5_aus (lesson_id, course_id, publisher_id, activity_id, title, url, launch_method,"
                " move_on, mastery_score, launch_parameters, entitlement_key, activity_type)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (lesson_id) DO UPDATE SET"
                " title = EXCLUDED.title, url = EXCLUDED.url, launch_method = EXCLUDED.launch_method,"
                " move_on = EXCLUDED.move_on, mastery_score = EXCLUDED.mastery_score,"
                " launch_parameters = EXCLUDED.launch_parameters, entitlement_key = EXCLUDED.entitlement_key,"
                " activity_type = EXCLUDED.activity_type",
                lessons[au.id], cid, au.id, lms_iri(cid, "au", au.id), au.title, au.url, au.launch_method,
                au.move_on, au.mastery_score, au.launch_parameters, au.entitlement_key, au.activity_type,
            )  # fmt: skip
        await conn.execute("DELETE FROM lms.cmi5_files WHERE course_id = $1", cid)
        if package.files:
            await conn.copy_records_to_table(
                "cmi5_files", schema_name="lms", columns=["course_id", "path", "content"],
                records=[(cid, path, content) for path, content in package.files.items()],
            )  # fmt: skip

    async def course(self, course_id: int) -> CourseRecord | None:
        found = [c for c in await self._courses("WHERE c.course_id = $1", course_id)]
        return found[0] if found else None

    async def courses(self) -> list[CourseRecord]:
        return await self._courses("")

    async def _courses(self, where: str, *args: Any) -> list[CourseRecord]:
        pool = await self._lms.pool()
        rows = await pool.fetch(
            "SELECT c.course_id, c.publisher_id, c.activity_id, c.title, c.members, c.blocks,"
            " (SELECT count(*) FROM lms.cmi5_files f WHERE f.course_id = c.course_id) AS files"
            f" FROM lms.cmi5_courses c {where} ORDER BY c.course_id",
            *args,
        )
        if not rows:
            return []
        aus = await pool.fetch(
            "SELECT * FROM lms.cmi5_aus WHERE course_id = ANY($1::int[]) ORDER BY lesson_id",
            [r["course_id"] for r in rows],
        )
        by_course: dict[int, dict[str, AuRecord]] = {}
        for row in aus:
            by_course.setdefault(row["course_id"], {})[row["publisher_id"]] = _au(row)
        return [
            CourseRecord(
                course_id=r["course_id"],
                publisher_id=r["publisher_id"],
                activity_id=r["activity_id"],
                title=r["title"],
                blocks=orjson.loads(r["blocks"]),
                files=r["files"],
                members=tuple(Member(m["au"], tuple(m["blocks"])) for m in orjson.loads(r["members"])),
                aus=by_course.get(r["course_id"], {}),
            )  # fmt: skip
            for r in rows
        ]

    async def file(self, course_id: int, path: str) -> bytes | None:
        return await (await self._lms.pool()).fetchval(
            "SELECT content FROM lms.cmi5_files WHERE course_id = $1 AND path = $2", course_id, path
        )

    # --- registrations and sessions ----------------------------------------------------------------

    @asynccontextmanager
    async def registration(
        self, course_id: int, student_id: int, actor: dict[str, Any], name: str = ""
    ) -> AsyncIterator[tuple[PgRegistration, bool]]:
        async with (await self._lms.pool()).acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO lms.cmi5_registrations (registration, course_id, student_id, actor)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (course_id, student_id) DO NOTHING RETURNING registration",
                uuid.uuid4(), course_id, student_id, orjson.dumps(actor),
            )  # fmt: skip
            created = row is not None
            if created:  # the learner joins the catalog, so the pipeline maps their statements
                await conn.execute(
                    "INSERT INTO lms.students (student_id, name) VALUES ($1, $2) ON CONFLICT (student_id) DO NOTHING",
                    student_id, name,
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO lms.student_identities (agent_key, student_id) VALUES ($1, $2)"
                    " ON CONFLICT (agent_key) DO UPDATE SET student_id = EXCLUDED.student_id",
                    ifi_key(actor), student_id,
                )  # fmt: skip
                await conn.execute(f"NOTIFY {CATALOG_CHANNEL}")
            locked = await conn.fetchrow(
                "SELECT registration, actor FROM lms.cmi5_registrations WHERE course_id = $1 AND student_id = $2"
                " FOR UPDATE",
                course_id, student_id,
            )  # fmt: skip
            yield (
                PgRegistration(conn, str(locked["registration"]), course_id, orjson.loads(locked["actor"])),
                created,
            )

    @asynccontextmanager
    async def locked(self, registration: str) -> AsyncIterator[PgRegistration | None]:
        async with (await self._lms.pool()).acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT registration, course_id, actor FROM lms.cmi5_registrations WHERE registration = $1 FOR UPDATE",
                uuid.UUID(registration),
            )  # fmt: skip
            yield (
                PgRegistration(conn, registration, row["course_id"], orjson.loads(row["actor"]))
                if row
                else None
            )

    async def fetch(
        self, fetch_hash: bytes, now: datetime, token_key: str, token_hash: bytes
    ) -> tuple[str, SessionRecord | None]:
        async with (await self._lms.pool()).acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT session_id, fetched_at, fetch_expires, ended_at FROM lms.cmi5_sessions WHERE fetch_hash = $1"
                " FOR UPDATE",
                fetch_hash,
            )  # fmt: skip
            if row is None:
                return "unknown", None
            if row["fetched_at"] is not None:
                return "used", None
            if row["fetch_expires"] <= now or row["ended_at"] is not None:
                return "expired", None
            await conn.execute(
                "UPDATE lms.cmi5_sessions SET fetched_at = $2, token_key = $3, token_hash = $4 WHERE session_id = $1",
                row["session_id"], now, token_key, token_hash,
            )  # fmt: skip
            session = await conn.fetchrow(f"{_SESSION} WHERE s.session_id = $1", row["session_id"])
        return "ok", _session(session)

    async def by_token(self, token_key: str) -> tuple[SessionRecord, bytes] | None:
        row = await (await self._lms.pool()).fetchrow(
            _SESSION.replace("SELECT ", "SELECT s.token_hash, ", 1) + " WHERE s.token_key = $1", token_key
        )
        return (_session(row), bytes(row["token_hash"])) if row else None

    async def session(self, session_id: str) -> SessionRecord | None:
        try:
            key = uuid.UUID(session_id)
        except ValueError:
            return None
        row = await (await self._lms.pool()).fetchrow(f"{_SESSION} WHERE s.session_id = $1", key)
        return _session(row) if row else None

    async def course_of(self, registration: str) -> int | None:
        return await (await self._lms.pool()).fetchval(
            "SELECT course_id FROM lms.cmi5_registrations WHERE registration = $1", uuid.UUID(registration)
        )

    async def stale(self, before: datetime) -> list[SessionRecord]:
        rows = await (await self._lms.pool()).fetch(
            f"{_SESSION} WHERE s.ended_at IS NULL AND s.last_at < $1 ORDER BY s.last_at LIMIT 500", before
        )
        return [_session(r) for r in rows]


def _blocks_with_aus(package: Package) -> list[str]:
    """Blocks that hold AUs directly, in document order: the catalog's modules."""
    seen: list[str] = []
    for _, blocks in package.structure.aus():
        if blocks and blocks[-1] not in seen:
            seen.append(blocks[-1])
    return seen


def _catalog(cid: int, package: Package, lessons: dict[str, int], modules: dict[str, int]) -> CatalogDocument:
    """The catalog rows of a cmi5 course: the course, each block holding AUs as a module (titled
    by its path of block titles), each AU as a lesson of kind ``cmi5`` with its moveOn."""
    structure = package.structure
    titles = {block.id: block.title for block, _ in structure.blocks()}

    def lesson(au: AU) -> LessonIn:
        return LessonIn(
            id=lessons[au.id], title=au.title, kind="cmi5", iri=lms_iri(cid, "au", au.id), move_on=au.move_on
        )

    grouped: dict[str, list[LessonIn]] = {block: [] for block in modules}
    top: list[LessonIn] = []
    paths: dict[str, str] = {}
    for au, blocks in structure.aus():
        if blocks:
            grouped[blocks[-1]].append(lesson(au))
            paths[blocks[-1]] = " / ".join(titles[b] for b in blocks)
        else:
            top.append(lesson(au))
    course = CourseIn(
        id=cid, title=structure.title, iri=lms_iri(cid, "course", structure.id), lessons=top,
        modules=[
            ModuleIn(id=modules[block], title=paths[block], iri=lms_iri(cid, "block", block), position=index,
                     lessons=grouped[block])
            for index, block in enumerate(modules)
        ],
    )  # fmt: skip
    return CatalogDocument(courses=[course])
