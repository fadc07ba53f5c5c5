"""Progress rollups in PostgreSQL: enrollments, progress, lesson_progress, quiz_attempts.

Rules (a course's required items are its catalog lessons and quizzes):

* A **lesson** is complete once a statement on it completes it: verb completed, passed or
  satisfied, ``result.completion: true``, or a video watched to ≥ 90 % (video ``progress``).
* A **quiz** is complete once passed: verb passed, or ``result.success: true``. Every scored or
  passed/failed statement on a quiz is a row of ``quiz_attempts``; ``quiz_scores`` keeps the best
  score (percent) per quiz.
* A **module** is complete when all its lessons and quizzes are; the **course** (the enrollment)
  when all required items are, at the time the last of them was first completed. A course with
  no required items completes with a statement completing the course activity itself.
* ``completion_percentage`` is done items over required items; ``time_spent_minutes`` sums
  statement durations; ``started_at`` / ``last_accessed_at`` are the first and last statement;
  ``current_lesson_id`` / ``current_module_id`` are where the latest statement was.
* **Voiding** removes the voided statement's fact and everything is recomputed, so completions
  it caused are undone (status back to ``active``).

Every rollup is recomputed from ``lms.learning_facts`` (one row per applied statement, keyed by
statement id), in one transaction with the facts and the partition's watermark: applying a
statement twice changes nothing, and a crash leaves either all of it or none.

Domain events (seed 002) are written in the same transaction when something really changes:
``progress.updated`` for each lesson or quiz whose completion changed (either way: a voiding
can undo one), ``progress.module_completed`` for each module that became complete,
``enrollment.completed`` when the enrollment became completed. Replays change nothing, so they
emit nothing; the worker publishes the events to Kafka ``lms.events``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
import orjson

from lrs.store.postgres.pool import create_pool, migrate
from streams.catalog import Catalog
from streams.enrich import LearningEvent
from streams.position import since_position

from .ports import Batch

EVENT_NAMESPACE = uuid.UUID("6f2c1e52-94a4-4f44-9f4e-6a3d3b7b1c11")
EVENT_TYPES = ("progress.updated", "progress.module_completed", "enrollment.completed")


@dataclass(slots=True)
class _Fact:
    statement_id: str
    student_id: int
    course_id: int
    module_id: int | None
    lesson_id: int | None
    quiz_id: int | None
    at: datetime
    stored: datetime
    seconds: float
    completes: bool
    passed: bool | None
    score: float | None

    @classmethod
    def of(cls, e: LearningEvent) -> _Fact | None:
        where = e.location
        if e.student_id is None or where.course_id is None:
            return None  # not an LMS learner or not an LMS course: no enrollment to roll up
        quiz = where.quiz_id is not None
        return cls(
            e.statement_id, e.student_id, where.course_id, where.module_id, where.lesson_id, where.quiz_id,
            e.timestamp, e.stored, e.duration_seconds or 0.0, e.completes,
            e.passes if quiz else None, e.score_percent if quiz else None,
        )  # fmt: skip


@dataclass(slots=True)
class _State:
    status: str
    completion_percentage: Decimal
    completed_at: datetime | None
    started_at: datetime | None
    last_accessed_at: datetime | None
    completed_modules: list[int]
    completed_lessons: list[int]
    completed_quizzes: list[int]
    quiz_scores: dict[str, float]
    time_spent_minutes: int
    current_module_id: int | None
    current_lesson_id: int | None


class ProgressSink:
    name = "progress"

    def __init__(self, dsn: str, catalog: Callable[[], Catalog], partitions: int = 1) -> None:
        self._dsn = dsn
        self._partitions = partitions
        self._catalog = catalog
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._pool = await create_pool(self._dsn, min_size=1, max_size=4, application_name="lrs-progress")
        await migrate(self._pool, "sinks", "lms_schema_migrations")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def watermarks(self, partitions: int) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT partition, position FROM lms.sink_watermarks WHERE sink = $1", self.name
        )
        found = {r["partition"]: r["position"] for r in rows}
        return [found.get(p, "") for p in range(partitions)]

    async def reset(self, since: datetime | None, epoch: str) -> None:
        """Forget facts stored from ``since`` on (all without it), for a replay.

        The rollups are left as they are: they are what the LMS has been told. Each enrollment is
        recomputed when its facts come back, and announces only what differs from them, so a
        rebuild that arrives at the same numbers announces nothing.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM lms.learning_facts WHERE $1::timestamptz IS NULL OR stored >= $1", since
            )
            await conn.execute(
                "DELETE FROM lms.quiz_attempts q WHERE NOT EXISTS"
                " (SELECT FROM lms.learning_facts f WHERE f.statement_id = q.statement_id AND NOT f.retracted)"
            )
            await conn.execute("DELETE FROM lms.sink_watermarks WHERE sink = $1", self.name)
            start = since_position(since) if since is not None else ""
            await conn.executemany(
                "INSERT INTO lms.sink_watermarks (sink, partition, position, epoch) VALUES ($1, $2, $3, $4)",
                [(self.name, p, start, epoch) for p in range(self._partitions)],
            )

    async def apply(self, batches: Sequence[Batch]) -> None:
        facts: list[_Fact] = []
        retracted: list[str] = []
        cause: dict[str, str] = {}  # statement → through of its batch (names its domain events)
        for batch in batches:
            events, retractions = batch.net()
            for e in events:
                if (fact := _Fact.of(e)) is not None:
                    facts.append(fact)
                    cause[fact.statement_id] = batch.through
            for r in retractions:
                retracted.append(r.statement_id)
                cause[r.statement_id] = batch.through
        async with self._pool.acquire() as conn, conn.transaction():
            touched: list[tuple[str, int]] = []  # (statement, enrollment) really added or removed
            if facts:
                touched += await self._insert_facts(conn, facts)
            if retracted:
                rows = await conn.fetch(
                    "UPDATE lms.learning_facts SET retracted = true WHERE statement_id = ANY($1::uuid[])"
                    " AND NOT retracted RETURNING statement_id::text, enrollment_id",
                    retracted,
                )
                await conn.execute(
                    "DELETE FROM lms.quiz_attempts WHERE statement_id = ANY($1::uuid[])", retracted
                )
                touched += [(r["statement_id"], r["enrollment_id"]) for r in rows]
            affected: dict[int, str] = {}
            for statement, enrollment in touched:
                affected[enrollment] = max(affected.get(enrollment, ""), cause[statement])
            if affected:
                await self._recompute(conn, affected, pruned=bool(retracted))
            marks = [b for b in batches if b.through]
            if marks:
                # a newer relay epoch restarts the position (a replay); an older one is ignored
                await conn.execute(
                    "INSERT INTO lms.sink_watermarks AS w (sink, partition, position, epoch)"
                    " SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[])"
                    " ON CONFLICT (sink, partition) DO UPDATE SET updated = now(), epoch = EXCLUDED.epoch,"
                    " position = CASE WHEN EXCLUDED.epoch > w.epoch THEN EXCLUDED.position"
                    " ELSE GREATEST(w.position, EXCLUDED.position) END"
                    " WHERE EXCLUDED.epoch >= w.epoch",
                    self.name, [b.partition for b in marks], [b.through for b in marks], [b.epoch for b in marks],
                )  # fmt: skip

    async def _insert_facts(self, conn, facts: list[_Fact]) -> list[tuple[str, int]]:
        """Insert facts not there yet; returns (statement, enrollment) of those inserted."""
        pairs = sorted({(f.student_id, f.course_id) for f in facts})
        first = {}
        for f in facts:
            key = (f.student_id, f.course_id)
            first[key] = min(first.get(key, f.at), f.at)
        await conn.execute(
            "INSERT INTO lms.enrollments (student_id, course_id, enrolled_at)"
            " SELECT * FROM unnest($1::int[], $2::int[], $3::timestamptz[]) ON CONFLICT DO NOTHING",
            [p[0] for p in pairs], [p[1] for p in pairs], [first[p] for p in pairs],
        )  # fmt: skip
        rows = await conn.fetch(
            "SELECT e.id, e.student_id, e.course_id FROM lms.enrollments e"
            " JOIN unnest($1::int[], $2::int[]) AS t(s, c) ON e.student_id = t.s AND e.course_id = t.c",
            [p[0] for p in pairs], [p[1] for p in pairs],
        )  # fmt: skip
        enrollment = {(r["student_id"], r["course_id"]): r["id"] for r in rows}
        columns = list(zip(*[
            (f.statement_id, enrollment[(f.student_id, f.course_id)], f.module_id, f.lesson_id, f.quiz_id, f.at,
             f.stored, f.seconds, f.completes, f.passed, f.score)
            for f in facts
        ], strict=True))  # fmt: skip
        inserted = await conn.fetch(
            "INSERT INTO lms.learning_facts (statement_id, enrollment_id, module_id, lesson_id, quiz_id, at, stored,"
            " seconds, completes, passed, score) SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[],"
            " $5::int[], $6::timestamptz[], $7::timestamptz[], $8::float8[], $9::bool[], $10::bool[], $11::float8[])"
            " ON CONFLICT (statement_id) DO NOTHING RETURNING statement_id::text, enrollment_id",
            *columns,
        )
        new = {r["statement_id"] for r in inserted}
        attempts = [
            (f.statement_id, enrollment[(f.student_id, f.course_id)], f.quiz_id, f.student_id, f.score, f.passed,
             int(f.seconds) if f.seconds else None, f.at)
            for f in facts
            if f.statement_id in new and f.quiz_id is not None and (f.passed is not None or f.score is not None)
        ]  # fmt: skip
        if attempts:
            await conn.executemany(
                "INSERT INTO lms.quiz_attempts (statement_id, enrollment_id, quiz_id, student_id, score, passed,"
                " time_taken_seconds, attempted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                attempts,
            )
        return [(r["statement_id"], r["enrollment_id"]) for r in inserted]

    # --- recomputing -----------------------------------------------------------------------------

    async def _recompute(self, conn, affected: dict[int, str], pruned: bool) -> None:
        """Recompute these enrollments from their facts and write what changed, set-wise.
        ``affected`` maps each enrollment to the position that caused the change; ``pruned``:
        facts were removed, so lesson rows may have to go."""
        catalog = self._catalog()
        enrollments = sorted(affected)
        rows = await conn.fetch(
            "SELECT e.id, e.student_id, e.course_id, e.status, e.completion_percentage, e.completed_at,"
            " e.started_at, e.last_accessed_at, p.completed_modules, p.completed_lessons, p.completed_quizzes,"
            " p.quiz_scores, p.time_spent_minutes, p.current_module_id, p.current_lesson_id"
            " FROM lms.enrollments e LEFT JOIN lms.progress p ON p.enrollment_id = e.id"
            " WHERE e.id = ANY($1::int[]) ORDER BY e.id FOR UPDATE OF e",
            enrollments,
        )
        lessons = defaultdict(dict)
        for r in await conn.fetch(
            "SELECT enrollment_id, lesson_id, bool_or(completes) AS done,"
            " min(at) FILTER (WHERE completes) AS done_at, sum(seconds) AS seconds"
            " FROM lms.learning_facts WHERE enrollment_id = ANY($1::int[]) AND lesson_id IS NOT NULL AND NOT retracted"
            " GROUP BY enrollment_id, lesson_id",
            enrollments,
        ):
            lessons[r["enrollment_id"]][r["lesson_id"]] = r
        quizzes = defaultdict(dict)
        for r in await conn.fetch(
            "SELECT enrollment_id, quiz_id, bool_or(passed IS TRUE) AS passed,"
            " min(at) FILTER (WHERE passed) AS passed_at, max(score) AS best"
            " FROM lms.learning_facts WHERE enrollment_id = ANY($1::int[]) AND quiz_id IS NOT NULL AND NOT retracted"
            " GROUP BY enrollment_id, quiz_id",
            enrollments,
        ):
            quizzes[r["enrollment_id"]][r["quiz_id"]] = r
        overall = {
            r["enrollment_id"]: r
            for r in await conn.fetch(
                "SELECT DISTINCT ON (enrollment_id) enrollment_id,"
                " min(at) OVER w AS first_at, max(at) OVER w AS last_at, sum(seconds) OVER w AS seconds,"
                " bool_or(completes AND lesson_id IS NULL AND module_id IS NULL AND quiz_id IS NULL) OVER w AS course_done,"
                " min(at) FILTER (WHERE completes AND lesson_id IS NULL AND module_id IS NULL AND quiz_id IS NULL)"
                " OVER w AS course_done_at, lesson_id, module_id"
                " FROM lms.learning_facts WHERE enrollment_id = ANY($1::int[]) AND NOT retracted"
                " WINDOW w AS (PARTITION BY enrollment_id)"
                " ORDER BY enrollment_id, (lesson_id IS NULL AND module_id IS NULL), at DESC, statement_id",
                enrollments,
            )
        }
        saved, lesson_rows, announced = [], [], []
        for row in rows:
            old = _State(
                row["status"], row["completion_percentage"], row["completed_at"], row["started_at"],
                row["last_accessed_at"], list(row["completed_modules"] or []), list(row["completed_lessons"] or []),
                list(row["completed_quizzes"] or []), orjson.loads(row["quiz_scores"]) if row["quiz_scores"] else {},
                row["time_spent_minutes"] or 0, row["current_module_id"], row["current_lesson_id"],
            )  # fmt: skip
            enrollment, student, course = row["id"], row["student_id"], row["course_id"]
            new = _rollup(
                catalog, course, old.status, lessons[enrollment], quizzes[enrollment], overall.get(enrollment)
            )
            required_lessons, _ = catalog.required_items(course)
            total_modules = len(catalog.courses[course].modules) if course in catalog.courses else 0
            saved.append((enrollment, new, total_modules, len(required_lessons)))
            lesson_rows += [
                (enrollment, lesson, student, bool(r["done"]), r["done_at"], int(r["seconds"] or 0))
                for lesson, r in sorted(lessons[enrollment].items())
            ]  # fmt: skip
            announced += _transitions(enrollment, student, course, old, new, affected[enrollment])
        await conn.executemany(
            "UPDATE lms.enrollments SET status = $2, completion_percentage = $3, completed_at = $4, started_at = $5,"
            " last_accessed_at = $6, updated_at = now() WHERE id = $1",
            [(e, s.status, s.completion_percentage, s.completed_at, s.started_at, s.last_accessed_at)
             for e, s, _, _ in saved],
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO lms.progress (enrollment_id, completed_modules, completed_lessons, total_modules,"
            " total_lessons, completed_quizzes, quiz_scores, time_spent_minutes, current_module_id,"
            " current_lesson_id, last_accessed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            " ON CONFLICT (enrollment_id) DO UPDATE SET completed_modules = EXCLUDED.completed_modules,"
            " completed_lessons = EXCLUDED.completed_lessons, total_modules = EXCLUDED.total_modules,"
            " total_lessons = EXCLUDED.total_lessons, completed_quizzes = EXCLUDED.completed_quizzes,"
            " quiz_scores = EXCLUDED.quiz_scores, time_spent_minutes = EXCLUDED.time_spent_minutes,"
            " current_module_id = EXCLUDED.current_module_id, current_lesson_id = EXCLUDED.current_lesson_id,"
            " last_accessed_at = EXCLUDED.last_accessed_at, updated_at = now()",
            [(e, s.completed_modules, s.completed_lessons, modules, lesson_count, s.completed_quizzes,
              orjson.dumps(s.quiz_scores), s.time_spent_minutes, s.current_module_id, s.current_lesson_id,
              s.last_accessed_at) for e, s, modules, lesson_count in saved],
        )  # fmt: skip
        if lesson_rows:
            await conn.executemany(
                "INSERT INTO lms.lesson_progress AS l (enrollment_id, lesson_id, student_id, is_completed,"
                " completed_at, time_spent_seconds) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (enrollment_id, lesson_id) DO UPDATE SET is_completed = EXCLUDED.is_completed,"
                " completed_at = EXCLUDED.completed_at, time_spent_seconds = EXCLUDED.time_spent_seconds,"
                " updated_at = now() WHERE (l.is_completed, l.completed_at, l.time_spent_seconds)"
                " IS DISTINCT FROM (EXCLUDED.is_completed, EXCLUDED.completed_at, EXCLUDED.time_spent_seconds)",
                lesson_rows,
            )  # fmt: skip
        if pruned:  # a lesson whose every fact was voided has no progress row any more
            await conn.execute(
                "DELETE FROM lms.lesson_progress l WHERE l.enrollment_id = ANY($1::int[]) AND NOT EXISTS"
                " (SELECT FROM lms.learning_facts f WHERE f.enrollment_id = l.enrollment_id AND f.lesson_id = l.lesson_id"
                " AND NOT f.retracted)",
                enrollments,
            )  # fmt: skip
        if announced:
            await conn.executemany(
                "INSERT INTO lms.domain_events (id, type, enrollment_id, payload) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (id) DO NOTHING",
                announced,
            )

    # --- domain event outbox ---------------------------------------------------------------------

    async def unpublished_events(self, limit: int = 500) -> list[tuple[str, bytes, str]]:
        """(id, payload, key) of domain events not yet on Kafka, oldest first."""
        rows = await self._pool.fetch(
            "SELECT id::text, payload::text, enrollment_id FROM lms.domain_events WHERE published_at IS NULL"
            " ORDER BY created_at, id LIMIT $1",
            limit,
        )
        return [(r["id"], r["payload"].encode(), str(r["enrollment_id"])) for r in rows]

    async def mark_published(self, ids: list[str]) -> None:
        await self._pool.execute(
            "UPDATE lms.domain_events SET published_at = now() WHERE id = ANY($1::uuid[])", ids
        )


def _percent(done: int, total: int) -> Decimal:
    return (
        (Decimal(100 * done) / Decimal(total)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if total
        else Decimal("0.00")
    )


def _rollup(catalog: Catalog, course: int, status: str, lessons: dict, quizzes: dict, overall) -> _State:
    required_lessons, required_quizzes = catalog.required_items(course)
    done_lessons = {
        lesson: r["done_at"] for lesson, r in lessons.items() if r["done"] and lesson in required_lessons
    }
    passed = {quiz: r["passed_at"] for quiz, r in quizzes.items() if r["passed"] and quiz in required_quizzes}
    modules = []
    for module in catalog.courses[course].modules if course in catalog.courses else ():
        items_l, items_q = catalog.module_lessons.get(module, []), catalog.module_quizzes.get(module, [])
        if (
            (items_l or items_q)
            and all(i in done_lessons for i in items_l)
            and all(q in passed for q in items_q)
        ):
            modules.append(module)
    total = len(required_lessons) + len(required_quizzes)
    done = len(done_lessons) + len(passed)
    course_done = bool(overall and overall["course_done"])
    complete = done == total if total else course_done
    completed_at = None
    if complete:
        completed_at = max([*done_lessons.values(), *passed.values()]) if total else overall["course_done_at"]
    new_status = "completed" if complete else ("active" if status == "completed" else status)
    return _State(
        status=new_status,
        completion_percentage=_percent(done, total) if total else Decimal("100.00" if complete else "0.00"),
        completed_at=completed_at,
        started_at=overall["first_at"] if overall else None,
        last_accessed_at=overall["last_at"] if overall else None,
        completed_modules=sorted(modules),
        completed_lessons=sorted(done_lessons),
        completed_quizzes=sorted(passed),
        quiz_scores={
            str(q): round(float(r["best"]), 2) for q, r in sorted(quizzes.items()) if r["best"] is not None
        },
        time_spent_minutes=int((overall["seconds"] or 0) // 60) if overall else 0,
        current_module_id=overall["module_id"] if overall else None,
        current_lesson_id=overall["lesson_id"] if overall else None,
    )


def _transitions(
    enrollment: int, student: int, course: int, old: _State, new: _State, cause: str
) -> list[tuple]:
    """Domain event rows for each real transition: each lesson or quiz whose completion changed
    (``progress.updated``), each module that became complete, the enrollment completing. The id
    is derived from the transition and the position that caused it, so writing it twice is one."""
    base = {"enrollment_id": enrollment, "student_id": student, "course_id": course}
    progress = {"completion_percentage": float(new.completion_percentage)}
    events = []
    for item, before, after in (
        ("lesson", old.completed_lessons, new.completed_lessons),
        ("quiz", old.completed_quizzes, new.completed_quizzes),
    ):
        for item_id in sorted(set(before) ^ set(after)):
            done = item_id in after
            events.append(("progress.updated", f"{item}:{item_id}:{done}",
                           base | progress | {f"{item}_id": item_id, "completed": done}))  # fmt: skip
    for module in sorted(set(new.completed_modules) - set(old.completed_modules)):
        events.append(("progress.module_completed", str(module), base | {"module_id": module}))
    if new.status == "completed" and old.status != "completed":
        events.append(("enrollment.completed", "", base | {"completed_at": new.completed_at.isoformat()}))
    rows = []
    for kind, key, payload in events:
        event_id = uuid.uuid5(EVENT_NAMESPACE, f"{kind}|{enrollment}|{key}|{cause}")
        rows.append((event_id, kind, enrollment, orjson.dumps(payload | {"id": str(event_id), "type": kind})))
    return rows
