"""The LMS database: PostgreSQL schema ``lms`` (``sinks/migrations``) holding the catalog tables,
the progress rollups and the domain-event outbox.

Every tenant has a catalog of its own (docs/tenants.md): the default tenant's is the catalog
tables; another tenant's is its merged catalog document in ``lms.tenant_catalogs`` (courses and
students by id, a later upload replacing what it names). Every catalog method takes the tenant.

Which database that is (``LRS_LMS_DATABASE_URL``, else the store's PostgreSQL, else an embedded
one) is decided in one place, ``lrs.databases``; this module is how everything else reaches it,
and the only place its migrations run from (``migrate``, which every opener calls).

Two notification channels run through it, because every worker and the LRS can reach it whatever
the statement store is: ``CATALOG_CHANNEL`` (a catalog was loaded: workers reload theirs) and
``REWIND_CHANNEL`` (``lrs replay`` began: the leading relay starts again from the sinks' positions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from lrs.store.postgres.pool import create_pool
from lrs.store.postgres.pool import migrate as run_migrations

from lrs.store.ports import DEFAULT_TENANT

from .catalog import Catalog, CatalogDocument, CourseIn, Lesson, Quiz

log = logging.getLogger(__name__)

CATALOG_CHANNEL = "lms_catalog"
REWIND_CHANNEL = "lrs_relay_rewind"
MIGRATIONS = ("sinks", "lms_schema_migrations")

_COURSES = """
SELECT c.course_id AS id, c.title,
       coalesce(json_agg(json_build_object('id', l.lesson_id, 'title', l.title, 'kind', l.kind)
                ORDER BY m.position, l.position, l.lesson_id) FILTER (WHERE l.lesson_id IS NOT NULL), '[]') AS lessons
FROM lms.courses c
LEFT JOIN lms.lessons l ON l.course_id = c.course_id
LEFT JOIN lms.modules m ON m.module_id = l.module_id
GROUP BY c.course_id, c.title
ORDER BY c.course_id
"""


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Bring schema ``lms`` up to date (concurrent callers serialise; applied ones are skipped)."""
    return await run_migrations(pool, *MIGRATIONS)


class LmsDatabase:
    """A small pool on the LMS database, opened (and migrated) on first use, so that a server
    whose LMS database is away still starts and serves xAPI."""

    def __init__(self, dsn: str, *, max_size: int = 2, application_name: str = "lrs-lms") -> None:
        self.dsn = dsn
        self._max_size = max_size
        self._name = application_name
        self._pool: asyncpg.Pool | None = None

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            pool = await create_pool(
                self.dsn, min_size=1, max_size=self._max_size, application_name=self._name
            )
            try:
                await migrate(pool)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # --- the catalog ---------------------------------------------------------------------------

    async def read_catalog(self, tenant: str = DEFAULT_TENANT) -> Catalog:
        """The tenant's whole catalog, as a snapshot."""
        if tenant != DEFAULT_TENANT:
            return Catalog.of(await self._document(tenant))
        catalog = Catalog()
        async with (await self.pool()).acquire() as conn, conn.transaction(isolation="repeatable_read"):
            for r in await conn.fetch("SELECT course_id, iri FROM lms.courses"):
                catalog.add_course(r["course_id"], r["iri"])
            for r in await conn.fetch(
                "SELECT module_id, course_id, iri FROM lms.modules ORDER BY position, module_id"
            ):
                catalog.add_module(r["module_id"], r["course_id"], r["iri"])
            for r in await conn.fetch(
                "SELECT lesson_id, module_id, course_id, kind, duration_seconds, iri, move_on FROM lms.lessons"
                " ORDER BY position, lesson_id"
            ):
                lesson = Lesson(
                    r["lesson_id"],
                    r["module_id"],
                    r["course_id"],
                    r["kind"],
                    r["duration_seconds"],
                    r["move_on"],
                )
                catalog.add_lesson(lesson, r["iri"])
            for r in await conn.fetch(
                "SELECT quiz_id, module_id, course_id, pass_percentage, iri FROM lms.quizzes ORDER BY quiz_id"
            ):
                catalog.add_quiz(
                    Quiz(r["quiz_id"], r["module_id"], r["course_id"], float(r["pass_percentage"])), r["iri"]
                )
            for r in await conn.fetch("SELECT agent_key, student_id FROM lms.student_identities"):
                catalog.students[r["agent_key"]] = r["student_id"]
        return catalog

    async def read_catalogs(self) -> dict[str, Catalog]:
        """Every tenant's catalog (the default tenant's always, maybe empty)."""
        catalogs = {DEFAULT_TENANT: await self.read_catalog()}
        for r in await (await self.pool()).fetch("SELECT tenant, document FROM lms.tenant_catalogs"):
            catalogs[r["tenant"]] = Catalog.of(CatalogDocument.model_validate_json(r["document"]))
        return catalogs

    async def save_catalog(self, document: CatalogDocument, tenant: str = DEFAULT_TENANT) -> dict[str, int]:
        """Merge a catalog document into the tenant's catalog in one transaction and tell the
        workers to reload; how many of each kind it held."""
        async with (await self.pool()).acquire() as conn, conn.transaction():
            if tenant == DEFAULT_TENANT:
                counts = await _save(conn, document)
            else:
                counts = await _save_document(conn, tenant, document)
            await conn.execute(f"NOTIFY {CATALOG_CHANNEL}")
        return counts

    async def courses(self, tenant: str = DEFAULT_TENANT) -> list[dict[str, Any]]:
        """Every course of the tenant with its lessons in order (``id``, ``title``, ``lessons``:
        id, title, kind)."""
        if tenant != DEFAULT_TENANT:
            return _courses_of(await self._document(tenant))
        rows = await (await self.pool()).fetch(_COURSES)
        return [{"id": r["id"], "title": r["title"], "lessons": orjson.loads(r["lessons"])} for r in rows]

    async def student_names(self, student_ids: list[int], tenant: str = DEFAULT_TENANT) -> dict[int, str]:
        """The tenant's catalog's names of these students (those it knows)."""
        if tenant != DEFAULT_TENANT:
            wanted = set(student_ids)
            return {s.id: s.name for s in (await self._document(tenant)).students if s.id in wanted}
        rows = await (await self.pool()).fetch(
            "SELECT student_id, name FROM lms.students WHERE student_id = ANY($1::int[])", student_ids
        )
        return {r["student_id"]: r["name"] for r in rows}

    async def forget_students(self, tenant: str, keys: set[str], student_ids: set[int]) -> dict[str, int]:
        """Take students and identities out of a tenant's catalog document (an erasure); counts."""
        async with (await self.pool()).acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                "SELECT document FROM lms.tenant_catalogs WHERE tenant = $1 FOR UPDATE", tenant
            )
            if found is None:
                return {"students": 0, "student_identities": 0}
            document = CatalogDocument.model_validate_json(found)
            students, identities = [], 0
            for student in document.students:
                if student.id in student_ids:
                    identities += len(student.identities)
                    continue
                kept = [i for i, k in zip(student.identities, student.identity_keys()) if k not in keys]
                identities += len(student.identities) - len(kept)
                students.append(student.model_copy(update={"identities": kept}))
            gone = len(document.students) - len(students)
            document = document.model_copy(update={"students": students})
            await conn.execute(
                "UPDATE lms.tenant_catalogs SET document = $2::jsonb, updated = now() WHERE tenant = $1",
                tenant, document.model_dump_json(exclude_defaults=True).encode(),
            )  # fmt: skip
            await conn.execute(f"NOTIFY {CATALOG_CHANNEL}")
        return {"students": gone, "student_identities": identities}

    async def _document(self, tenant: str) -> CatalogDocument:
        found = await (await self.pool()).fetchval(
            "SELECT document FROM lms.tenant_catalogs WHERE tenant = $1", tenant
        )
        return CatalogDocument() if found is None else CatalogDocument.model_validate_json(found)

    # --- notifications -------------------------------------------------------------------------

    async def notify(self, channel: str) -> None:
        await (await self.pool()).execute(f"NOTIFY {channel}")

    async def listen(self, channel: str, callback: Callable[[], None]) -> asyncpg.Connection:
        """Call ``callback`` on every notification of ``channel`` until the returned connection
        is closed."""
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": f"{self._name}-listen"})
        await conn.add_listener(channel, lambda *_: callback())
        return conn


async def _save(conn: asyncpg.Connection, document: CatalogDocument) -> dict[str, int]:
    counts = {"courses": 0, "modules": 0, "lessons": 0, "quizzes": 0, "students": 0}
    for course in document.courses:
        await conn.execute(
            "INSERT INTO lms.courses (course_id, title, iri) VALUES ($1, $2, $3) ON CONFLICT (course_id)"
            " DO UPDATE SET title = EXCLUDED.title, iri = EXCLUDED.iri",
            course.id, course.title, course.iri,
        )  # fmt: skip
        counts["courses"] += 1
        for module in course.modules:
            await conn.execute(
                "INSERT INTO lms.modules (module_id, course_id, position, title, iri) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (module_id) DO UPDATE SET course_id = EXCLUDED.course_id,"
                " position = EXCLUDED.position, title = EXCLUDED.title, iri = EXCLUDED.iri",
                module.id, course.id, module.position, module.title, module.iri,
            )  # fmt: skip
            counts["modules"] += 1
        for module_id, lessons, quizzes in course.groups():
            for index, lesson in enumerate(lessons):
                await conn.execute(
                    "INSERT INTO lms.lessons (lesson_id, module_id, course_id, position, title, kind,"
                    " duration_seconds, iri, move_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    " ON CONFLICT (lesson_id) DO UPDATE SET module_id = EXCLUDED.module_id,"
                    " course_id = EXCLUDED.course_id, position = EXCLUDED.position, title = EXCLUDED.title,"
                    " kind = EXCLUDED.kind, duration_seconds = EXCLUDED.duration_seconds, iri = EXCLUDED.iri,"
                    " move_on = EXCLUDED.move_on",
                    lesson.id, module_id, course.id, index, lesson.title, lesson.kind,
                    lesson.duration_seconds, lesson.iri, lesson.move_on,
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
    for student in document.students:
        await conn.execute(
            "INSERT INTO lms.students (student_id, name) VALUES ($1, $2)"
            " ON CONFLICT (student_id) DO UPDATE SET name = EXCLUDED.name",
            student.id, student.name,
        )  # fmt: skip
        for key in student.identity_keys():
            await conn.execute(
                "INSERT INTO lms.student_identities (agent_key, student_id) VALUES ($1, $2)"
                " ON CONFLICT (agent_key) DO UPDATE SET student_id = EXCLUDED.student_id",
                key, student.id,
            )  # fmt: skip
        counts["students"] += 1
    return counts


def merged(stored: CatalogDocument, document: CatalogDocument) -> CatalogDocument:
    """``document`` merged into ``stored`` as the catalog tables merge one: a course or student it
    names replaces the stored one of that id whole; a module, lesson or quiz it names leaves
    whatever stored course had it, and an identity it gives a student leaves whichever stored
    student had it (an id or identity belongs to one place). The others stay, in their order,
    the new ones after them."""
    modules = {m.id for c in document.courses for m in c.modules}
    lessons = {lesson.id for c in document.courses for _, group, _ in c.groups() for lesson in group}
    quizzes = {q.id for c in document.courses for _, _, group in c.groups() for q in group}
    keys = {k for student in document.students for k in student.identity_keys()}
    courses = {c.id: _without(c, modules, lessons, quizzes) for c in stored.courses}
    courses |= {c.id: c for c in document.courses}
    students = {
        s.id: s.model_copy(
            update={"identities": [i for i, k in zip(s.identities, s.identity_keys()) if k not in keys]}
        )
        for s in stored.students
    }
    students |= {s.id: s for s in document.students}
    return CatalogDocument(courses=list(courses.values()), students=list(students.values()))


def _without(course: CourseIn, modules: set[int], lessons: set[int], quizzes: set[int]) -> CourseIn:
    """The course without these modules, lessons and quizzes."""

    def kept(items: list, ids: set[int]) -> list:
        return [item for item in items if item.id not in ids]

    return course.model_copy(update={
        "modules": [
            m.model_copy(update={"lessons": kept(m.lessons, lessons), "quizzes": kept(m.quizzes, quizzes)})
            for m in course.modules if m.id not in modules
        ],
        "lessons": kept(course.lessons, lessons),
        "quizzes": kept(course.quizzes, quizzes),
    })  # fmt: skip


def _counts(document: CatalogDocument) -> dict[str, int]:
    return {
        "courses": len(document.courses),
        "modules": sum(len(c.modules) for c in document.courses),
        "lessons": sum(len(lessons) for c in document.courses for _, lessons, _ in c.groups()),
        "quizzes": sum(len(quizzes) for c in document.courses for _, _, quizzes in c.groups()),
        "students": len(document.students),
    }


async def _save_document(conn: asyncpg.Connection, tenant: str, document: CatalogDocument) -> dict[str, int]:
    """Merge into a tenant's catalog document (its row made if need be, then locked while it is
    merged: concurrent uploads merge one after the other)."""
    await conn.execute(
        "INSERT INTO lms.tenant_catalogs (tenant, document) VALUES ($1, '{}') ON CONFLICT (tenant) DO NOTHING",
        tenant,
    )
    found = await conn.fetchval(
        "SELECT document FROM lms.tenant_catalogs WHERE tenant = $1 FOR UPDATE", tenant
    )
    stored = CatalogDocument() if found is None else CatalogDocument.model_validate_json(found)
    await conn.execute(
        "INSERT INTO lms.tenant_catalogs (tenant, document) VALUES ($1, $2::jsonb) ON CONFLICT (tenant)"
        " DO UPDATE SET document = EXCLUDED.document, updated = now()",
        tenant, merged(stored, document).model_dump_json(exclude_defaults=True).encode(),
    )  # fmt: skip
    return _counts(document)


def _courses_of(document: CatalogDocument) -> list[dict[str, Any]]:
    """The courses of a catalog document as ``LmsDatabase.courses`` answers (by id; lessons by
    module position, then within their module)."""
    out = []
    for course in sorted(document.courses, key=lambda c: c.id):
        groups = [(None, course.lessons)] + [(m, m.lessons) for m in course.modules]
        groups.sort(key=lambda g: (1, 0) if g[0] is None else (0, g[0].position))  # as SQL: NULLs last
        lessons = [
            {"id": lesson.id, "title": lesson.title, "kind": lesson.kind}
            for _, group in groups
            for lesson in group
        ]
        out.append({"id": course.id, "title": course.title, "lessons": lessons})
    return out


async def merge_catalog(conn: asyncpg.Connection, document: CatalogDocument) -> dict[str, int]:
    """Merge a catalog document inside the caller's transaction (``lrs cmi5 import`` writes its
    course's catalog rows with its own tables); the caller notifies ``CATALOG_CHANNEL``."""
    return await _save(conn, document)
