"""Progress rollups in PostgreSQL: enrollments, progress, lesson_progress, quiz_attempts.

What every column means is written once, in ``docs/analytics.md`` ("Rollups"); the
per-statement rules (what completes a lesson, what is a quiz attempt and whether it passes) are
decided once, in ``streams.enrich``; this module only aggregates:

* a **lesson** is complete once a statement completes it (its object is the lesson), a **cmi5
  AU** (a lesson with a moveOn) once its cmi5 outcomes satisfy its moveOn (``au_satisfied_at``),
  a **quiz** once an attempt of it passes; a **module** when all its lessons and quizzes are; the **course**
  (the enrollment) when all its catalog lessons and quizzes are, at the time the last of them was
  first completed (a course without any: a statement completing the course activity itself);
* **time spent** sums durations, except that a cmi5 session counts once: within a session
  (learner, course, cmi5 session id) only its largest duration counts;
* **voiding** removes the voided statement's fact and everything is recomputed.

Every rollup is recomputed from ``lms.learning_facts`` (one row per applied statement, keyed by
statement id), in one transaction with the facts and the partition's watermark: applying a
statement twice changes nothing, and a crash leaves either all of it or none.

Domain events (seed 002) are written in the same transaction when something really changes:
``progress.updated`` for each lesson or quiz whose completion changed (either way: a voiding
can undo one), ``progress.module_completed`` for each module that became complete,
``enrollment.completed`` when the enrollment became completed. The worker publishes them to
Kafka ``lms.events``.

**Replays** are invisible: ``begin_replay`` starts rebuilding the facts stored from an instant
into ``lms.learning_facts_replay`` while the live tables keep serving and keep taking new
statements (every batch is applied to both). Once the replay's watermark reaches the target in
every partition, one transaction swaps the rebuilt facts in, recomputes every enrollment they
concern and announces only the real differences: a replay under unchanged rules announces
nothing.
"""

from __future__ import annotations

import operator
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
import orjson

from lrs.store.postgres.pool import create_pool
from lrs.store.ports import DEFAULT_TENANT

from .catalog import Catalog
from .events import LearningEvent
from sinks.positions import since_position

from .lms import migrate
from .ports import Batch, ErasureTask, IgnoresCatalog, ReplayStatus

EVENT_NAMESPACE = uuid.UUID("6f2c1e52-94a4-4f44-9f4e-6a3d3b7b1c11")
EVENT_TYPES = ("progress.updated", "progress.module_completed", "enrollment.completed")


FACT_COLUMNS = (
    "statement_id", "student_id", "course_id", "module_id", "lesson_id", "quiz_id", "at", "stored", "seconds",
    "session", "completes", "completes_course", "attempt", "passed", "score", "outcome",
)  # fmt: skip
FACT_TYPES = (
    "uuid", "int", "int", "int", "int", "int", "timestamptz", "timestamptz", "float8", "text", "bool", "bool",
    "bool", "bool", "float8", "text",
)  # fmt: skip
REPLAY_SUFFIX = "/replay"
"""The replay's watermarks are kept as sink ``<name>/replay`` in ``lms.sink_watermarks``."""

_COUNTED_FACTS = """
    SELECT *, CASE WHEN session IS NULL OR row_number() OVER (
                   PARTITION BY enrollment_id, session ORDER BY seconds DESC, statement_id) = 1
              THEN seconds ELSE 0 END AS counted
    FROM lms.learning_facts WHERE enrollment_id = ANY($1::int[]) AND NOT retracted"""
"""An enrollment's facts with the seconds each counts: a cmi5 session's largest duration once."""


@dataclass(slots=True)
class _Fact:
    """What one statement counts for in a learner's enrollment (the columns of ``FACT_COLUMNS``)."""

    statement_id: str
    student_id: int
    course_id: int
    module_id: int | None
    lesson_id: int | None
    quiz_id: int | None
    at: datetime
    stored: datetime
    seconds: float
    session: str | None
    completes: bool
    completes_course: bool
    attempt: bool
    passed: bool | None
    score: float | None
    outcome: str | None
    """The statement's cmi5 outcome (completed, passed, waived), when it records one."""

    @classmethod
    def of(cls, e: LearningEvent) -> _Fact | None:
        where = e.location
        if e.student_id is None or where.course_id is None:
            return None  # not an LMS learner or not an LMS course: no enrollment to roll up
        attempt = e.quiz_attempt
        return cls(
            e.statement_id, e.student_id, where.course_id, where.module_id, where.lesson_id, where.quiz_id,
            e.timestamp, e.stored, e.duration_seconds or 0.0, e.cmi5_session, e.completes_lesson,
            e.completes_course, attempt, e.quiz_passed if attempt else None, e.score_percent if attempt else None,
            e.cmi5_outcome,
        )  # fmt: skip

    def row(self) -> tuple:
        """The values of ``FACT_COLUMNS``, in their order."""
        return _FACT_ROW(self)


_FACT_ROW = operator.attrgetter(*FACT_COLUMNS)


def _arrays(rows: list[tuple], width: int) -> list[list[Any]]:
    """Rows as one list per column (the arguments of ``unnest``)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _int_array(values: list[int]) -> str:
    """An integer array as PostgreSQL's text form (``unnest`` cannot take an array of arrays)."""
    return "{" + ",".join(map(str, values)) + "}"


def _columns(facts: list[_Fact]) -> list[list[Any]]:
    """Facts as one list per column (for ``unnest``)."""
    return _arrays([f.row() for f in facts], len(FACT_COLUMNS))


_UNNEST = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(FACT_TYPES))


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


@dataclass(slots=True, frozen=True)
class _Replay:
    since: datetime | None
    epoch: str
    target: str


@dataclass(slots=True)
class _Changes:
    """What one batch (or a replay's swap) adds and takes back."""

    facts: list[_Fact]
    retracted: list[str]
    cause: dict[str, str]
    """Statement → the position whose batch brought it (it names the domain events it causes)."""

    @classmethod
    def of(cls, batches: Sequence[Batch]) -> _Changes:
        changes = cls([], [], {})
        for batch in batches:
            events, retractions = batch.net()
            for e in events:
                if (fact := _Fact.of(e)) is not None:
                    changes.facts.append(fact)
                    changes.cause[fact.statement_id] = batch.through
            for r in retractions:
                changes.retracted.append(r.statement_id)
                changes.cause[r.statement_id] = batch.through
        return changes


class ProgressSink(IgnoresCatalog):
    name = "progress"
    serves_tenants = False  # the default tenant's only (docs/tenants.md)

    def __init__(self, dsn: str, catalog: Callable[[], Catalog], partitions: int = 1) -> None:
        self._dsn = dsn
        self._partitions = partitions
        self._catalog = catalog
        self._pool: asyncpg.Pool | None = None
        self._replay: _Replay | None = None

    async def start(self) -> None:
        self._pool = await create_pool(self._dsn, min_size=1, max_size=4, application_name="lrs-progress")
        await migrate(self._pool)
        row = await self._pool.fetchrow(
            "SELECT since, epoch, target FROM lms.sink_replays WHERE sink = $1", self.name
        )
        self._replay = _Replay(row["since"], row["epoch"], row["target"]) if row else None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    # --- positions -------------------------------------------------------------------------------

    async def _positions(self, conn, sink: str, partitions: int) -> list[str]:
        rows = await conn.fetch("SELECT partition, position FROM lms.sink_watermarks WHERE sink = $1", sink)
        found = {r["partition"]: r["position"] for r in rows}
        return [found.get(p, "") for p in range(partitions)]

    async def watermarks(self, partitions: int) -> list[str]:
        """Each partition's position; while a replay runs, the lower of the live one and the
        replay's, so that a restarted relay re-sends what the replay still needs."""
        async with self._pool.acquire() as conn:
            live = await self._positions(conn, self.name, partitions)
            if self._replay is None:
                return live
            rebuilt = await self._positions(conn, self.name + REPLAY_SUFFIX, partitions)
        return [min(a, b) for a, b in zip(live, rebuilt, strict=True)]

    async def _record(self, conn, sink: str, batches: Sequence[Batch]) -> None:
        """Move each partition's position: a newer relay epoch restarts it (a rewind), an older
        one is ignored (messages sent before a replay began)."""
        marks = [b for b in batches if b.through]
        if marks:
            await conn.execute(
                "INSERT INTO lms.sink_watermarks AS w (sink, partition, position, epoch)"
                " SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[])"
                " ON CONFLICT (sink, partition) DO UPDATE SET updated = now(), epoch = EXCLUDED.epoch,"
                " position = CASE WHEN EXCLUDED.epoch > w.epoch THEN EXCLUDED.position"
                " ELSE GREATEST(w.position, EXCLUDED.position) END"
                " WHERE EXCLUDED.epoch >= w.epoch",
                sink, [b.partition for b in marks], [b.through for b in marks], [b.epoch for b in marks],
            )  # fmt: skip

    # --- replays ---------------------------------------------------------------------------------

    async def begin_replay(self, since: datetime | None, epoch: str, target: str) -> None:
        """Start rebuilding the facts of statements stored from ``since`` (all without it); the
        live tables are untouched until the rebuild reaches ``target`` in every partition."""
        start = since_position(since) if since is not None else ""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("TRUNCATE lms.learning_facts_replay")
            await conn.execute("DELETE FROM lms.sink_watermarks WHERE sink = $1", self.name + REPLAY_SUFFIX)
            await conn.executemany(
                "INSERT INTO lms.sink_watermarks (sink, partition, position, epoch) VALUES ($1, $2, $3, $4)",
                [(self.name + REPLAY_SUFFIX, p, start, epoch) for p in range(self._partitions)],
            )
            await conn.execute(
                "INSERT INTO lms.sink_replays (sink, since, epoch, target) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (sink) DO UPDATE SET since = EXCLUDED.since, epoch = EXCLUDED.epoch,"
                " target = EXCLUDED.target, started = now()",
                self.name, since, epoch, target,
            )  # fmt: skip
        self._replay = _Replay(since, epoch, target)

    async def replay_status(self) -> ReplayStatus | None:
        """The replay in progress, if any: where it started, where it is, where it ends."""
        replay = self._replay  # read once: a swap may end the replay while this awaits
        if replay is None:
            return None
        async with self._pool.acquire() as conn:
            positions = await self._positions(conn, self.name + REPLAY_SUFFIX, self._partitions)
        return ReplayStatus(self.name, replay.since, replay.target, min(positions))

    async def _caught_up(self, conn) -> bool:
        positions = await self._positions(conn, self.name + REPLAY_SUFFIX, self._partitions)
        return min(positions) >= self._replay.target

    async def _swap(self, conn) -> None:
        """Put the rebuilt facts in place of the live ones they replace, recompute every
        enrollment either concerns, announce what really changed; one transaction."""
        replay = self._replay
        await conn.execute(
            "INSERT INTO lms.enrollments (student_id, course_id, enrolled_at)"
            " SELECT student_id, course_id, min(at) FROM lms.learning_facts_replay GROUP BY 1, 2"
            " ON CONFLICT DO NOTHING"
        )
        rows = await conn.fetch(
            "SELECT DISTINCT enrollment_id FROM lms.learning_facts WHERE $1::timestamptz IS NULL OR stored >= $1"
            " UNION SELECT DISTINCT e.id FROM lms.learning_facts_replay r"
            " JOIN lms.enrollments e USING (student_id, course_id)",
            replay.since,
        )
        await conn.execute(
            "DELETE FROM lms.learning_facts WHERE $1::timestamptz IS NULL OR stored >= $1", replay.since
        )
        columns = ", ".join(FACT_COLUMNS)
        await conn.execute(
            f"INSERT INTO lms.learning_facts ({columns}, retracted, enrollment_id)"
            f" SELECT {', '.join('r.' + c for c in FACT_COLUMNS)}, r.retracted, e.id"
            " FROM lms.learning_facts_replay r JOIN lms.enrollments e USING (student_id, course_id)"
        )
        await conn.execute("TRUNCATE lms.learning_facts_replay")
        await self._recompute(conn, {r["enrollment_id"]: replay.epoch for r in rows}, pruned=True)
        await conn.execute("DELETE FROM lms.sink_watermarks WHERE sink = $1", self.name)
        await conn.execute(
            "UPDATE lms.sink_watermarks SET sink = $1 WHERE sink = $2", self.name, self.name + REPLAY_SUFFIX
        )
        await conn.execute("DELETE FROM lms.sink_replays WHERE sink = $1", self.name)

    # --- applying --------------------------------------------------------------------------------

    async def apply(self, batches: Sequence[Batch]) -> None:
        changes = _Changes.of(batches)
        swapped = False
        async with self._pool.acquire() as conn, conn.transaction():
            await self._apply_changes(conn, changes)
            await self._record(conn, self.name, batches)
            if self._replay is not None:
                await self._rebuild(conn, changes)
                await self._record(conn, self.name + REPLAY_SUFFIX, batches)
                if await self._caught_up(conn):
                    await self._swap(conn)
                    swapped = True
        if swapped:
            self._replay = None

    async def _apply_changes(self, conn, changes: _Changes) -> None:
        """Insert the new facts, retract the retracted ones, recompute the enrollments either
        really changed."""
        touched: list[tuple[str, int]] = []  # (statement, enrollment) really added or removed
        if changes.facts:
            touched += await self._insert_facts(conn, changes.facts)
        if changes.retracted:
            touched += await self._retract(conn, changes.retracted)
        affected: dict[int, str] = {}
        for statement, enrollment in touched:
            affected[enrollment] = max(affected.get(enrollment, ""), changes.cause[statement])
        if affected:
            await self._recompute(conn, affected, pruned=bool(changes.retracted))

    async def erase(self, task: ErasureTask) -> dict[str, int]:
        """Erase a learner (docs/data-rights.md): their enrollments whole (facts, progress, lesson
        rows and quiz attempts go with them) and their domain events; the statements the erasure
        deleted that counted for other learners (about the learner, voidings of theirs) are
        retracted, those enrollments recomputed, and their fact rows deleted. One transaction.
        The rollups are the default tenant's: another tenant's erasure has nothing here."""
        if task.tenant != DEFAULT_TENANT:
            return {}
        students, ids = list(task.student_ids), list(task.statement_ids)
        counts: dict[str, int] = {}
        async with self._pool.acquire() as conn, conn.transaction():
            gone = [r[0] for r in await conn.fetch(
                "DELETE FROM lms.enrollments WHERE student_id = ANY($1::int[]) RETURNING id", students)]  # fmt: skip
            counts["enrollments"] = len(gone)
            done = await conn.execute(
                "DELETE FROM lms.domain_events WHERE enrollment_id = ANY($1::int[])"
                " OR (payload ->> 'student_id') = ANY($2::text[])",
                gone, [str(s) for s in students],
            )  # fmt: skip
            counts["domain_events"] = int(done.split()[-1])
            touched = await self._retract(conn, ids)
            if touched:
                await self._recompute(conn, {e: f"erasure:{task.id}" for _, e in touched}, pruned=True)
            done = await conn.execute(
                "DELETE FROM lms.learning_facts WHERE statement_id = ANY($1::uuid[])", ids
            )
            counts["learning_facts"] = int(done.split()[-1])
            done = await conn.execute(
                "DELETE FROM lms.learning_facts_replay WHERE student_id = ANY($1::int[])"
                " OR statement_id = ANY($2::uuid[])",
                students, ids,
            )  # fmt: skip
            counts["learning_facts_replay"] = int(done.split()[-1])
        return counts

    async def _rebuild(self, conn, changes: _Changes) -> None:
        """Apply a batch's facts and retractions to the replay's facts (no rollups: they follow
        at the swap)."""
        if changes.facts:
            await conn.execute(
                f"INSERT INTO lms.learning_facts_replay ({', '.join(FACT_COLUMNS)})"
                f" SELECT * FROM unnest({_UNNEST}) ON CONFLICT (statement_id) DO NOTHING",
                *_columns(changes.facts),
            )
        if changes.retracted:
            await conn.execute(
                "UPDATE lms.learning_facts_replay SET retracted = true WHERE statement_id = ANY($1::uuid[])",
                changes.retracted,
            )

    async def _retract(self, conn, statements: list[str]) -> list[tuple[str, int]]:
        rows = await conn.fetch(
            "UPDATE lms.learning_facts SET retracted = true WHERE statement_id = ANY($1::uuid[])"
            " AND NOT retracted RETURNING statement_id::text, enrollment_id",
            statements,
        )
        return [(r["statement_id"], r["enrollment_id"]) for r in rows]

    async def _insert_facts(self, conn, facts: list[_Fact]) -> list[tuple[str, int]]:
        """Insert facts not there yet; returns (statement, enrollment) of those inserted."""
        pairs = sorted({(f.student_id, f.course_id) for f in facts})
        first: dict[tuple[int, int], datetime] = {}
        for f in facts:
            key = (f.student_id, f.course_id)
            first[key] = min(first.get(key, f.at), f.at)
        await conn.execute(
            "INSERT INTO lms.enrollments (student_id, course_id, enrolled_at)"
            " SELECT * FROM unnest($1::int[], $2::int[], $3::timestamptz[]) ON CONFLICT DO NOTHING",
            [p[0] for p in pairs], [p[1] for p in pairs], [first[p] for p in pairs],
        )  # fmt: skip
        inserted = await conn.fetch(
            f"INSERT INTO lms.learning_facts ({', '.join(FACT_COLUMNS)}, enrollment_id)"
            f" SELECT f.*, e.id FROM unnest({_UNNEST}) AS f({', '.join(FACT_COLUMNS)})"
            f" JOIN lms.enrollments e ON e.student_id = f.student_id AND e.course_id = f.course_id"
            " ON CONFLICT (statement_id) DO NOTHING RETURNING statement_id::text, enrollment_id",
            *_columns(facts),
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
            f"WITH f AS ({_COUNTED_FACTS}) SELECT enrollment_id, lesson_id, bool_or(completes) AS done,"
            " min(at) FILTER (WHERE completes) AS done_at, sum(counted) AS seconds,"
            " min(at) FILTER (WHERE outcome = 'completed') AS completed_at,"
            " min(at) FILTER (WHERE outcome = 'passed') AS passed_at,"
            " min(at) FILTER (WHERE outcome = 'waived') AS waived_at"
            " FROM f WHERE lesson_id IS NOT NULL GROUP BY enrollment_id, lesson_id",
            enrollments,
        ):
            lessons[r["enrollment_id"]][r["lesson_id"]] = r
        quizzes = defaultdict(dict)
        for r in await conn.fetch(
            "SELECT enrollment_id, quiz_id, bool_or(passed IS TRUE) AS passed,"
            " min(at) FILTER (WHERE passed) AS passed_at, max(score) AS best"
            " FROM lms.learning_facts WHERE enrollment_id = ANY($1::int[]) AND attempt AND NOT retracted"
            " GROUP BY enrollment_id, quiz_id",
            enrollments,
        ):
            quizzes[r["enrollment_id"]][r["quiz_id"]] = r
        overall = {
            r["enrollment_id"]: r
            for r in await conn.fetch(
                f"WITH f AS ({_COUNTED_FACTS}) SELECT DISTINCT ON (enrollment_id) enrollment_id,"
                " min(at) OVER w AS first_at, max(at) OVER w AS last_at, sum(counted) OVER w AS seconds,"
                " bool_or(completes_course) OVER w AS course_done,"
                " min(at) FILTER (WHERE completes_course) OVER w AS course_done_at, lesson_id, module_id"
                " FROM f WINDOW w AS (PARTITION BY enrollment_id)"
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
            started = overall[enrollment]["first_at"] if enrollment in overall else None
            for lesson, r in sorted(lessons[enrollment].items()):
                done_at = _lesson_done_at(catalog.move_on(lesson), r, started)
                lesson_rows.append(
                    (enrollment, lesson, student, done_at is not None, done_at, int(r["seconds"] or 0))
                )
            announced += _transitions(enrollment, student, course, old, new, affected[enrollment])
        # each write is one statement over arrays (unnest): one execution for the whole batch
        await conn.execute(
            "UPDATE lms.enrollments e SET status = u.status, completion_percentage = u.percentage,"
            " completed_at = u.completed_at, started_at = u.started_at, last_accessed_at = u.last_accessed_at,"
            " enrolled_at = coalesce(u.started_at, e.enrolled_at), updated_at = now()"
            " FROM unnest($1::int[], $2::text[], $3::numeric[], $4::timestamptz[], $5::timestamptz[],"
            " $6::timestamptz[]) AS u(id, status, percentage, completed_at, started_at, last_accessed_at)"
            " WHERE e.id = u.id",
            *_arrays([(e, s.status, s.completion_percentage, s.completed_at, s.started_at, s.last_accessed_at)
                      for e, s, _, _ in saved], 6),
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO lms.progress (enrollment_id, completed_modules, completed_lessons, total_modules,"
            " total_lessons, completed_quizzes, quiz_scores, time_spent_minutes, current_module_id,"
            " current_lesson_id, last_accessed_at)"
            " SELECT u.e, u.m::int[], u.l::int[], u.tm, u.tl, u.q::int[], u.s::jsonb, u.t, u.cm, u.cl, u.a"
            " FROM unnest($1::int[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[],"
            " $8::int[], $9::int[], $10::int[], $11::timestamptz[]) AS u(e, m, l, tm, tl, q, s, t, cm, cl, a)"
            " ON CONFLICT (enrollment_id) DO UPDATE SET completed_modules = EXCLUDED.completed_modules,"
            " completed_lessons = EXCLUDED.completed_lessons, total_modules = EXCLUDED.total_modules,"
            " total_lessons = EXCLUDED.total_lessons, completed_quizzes = EXCLUDED.completed_quizzes,"
            " quiz_scores = EXCLUDED.quiz_scores, time_spent_minutes = EXCLUDED.time_spent_minutes,"
            " current_module_id = EXCLUDED.current_module_id, current_lesson_id = EXCLUDED.current_lesson_id,"
            " last_accessed_at = EXCLUDED.last_accessed_at, updated_at = now()",
            *_arrays([(e, _int_array(s.completed_modules), _int_array(s.completed_lessons), modules, lesson_count,
                       _int_array(s.completed_quizzes), orjson.dumps(s.quiz_scores).decode(), s.time_spent_minutes,
                       s.current_module_id, s.current_lesson_id, s.last_accessed_at)
                      for e, s, modules, lesson_count in saved], 11),
        )  # fmt: skip
        if lesson_rows:
            await conn.execute(
                "INSERT INTO lms.lesson_progress AS l (enrollment_id, lesson_id, student_id, is_completed,"
                " completed_at, time_spent_seconds)"
                " SELECT * FROM unnest($1::int[], $2::int[], $3::int[], $4::bool[], $5::timestamptz[], $6::int[])"
                " ON CONFLICT (enrollment_id, lesson_id) DO UPDATE SET is_completed = EXCLUDED.is_completed,"
                " completed_at = EXCLUDED.completed_at, time_spent_seconds = EXCLUDED.time_spent_seconds,"
                " updated_at = now() WHERE (l.is_completed, l.completed_at, l.time_spent_seconds)"
                " IS DISTINCT FROM (EXCLUDED.is_completed, EXCLUDED.completed_at, EXCLUDED.time_spent_seconds)",
                *_arrays(lesson_rows, 6),
            )  # fmt: skip
        if pruned:  # a lesson whose every fact was voided has no progress row any more
            await conn.execute(
                "DELETE FROM lms.lesson_progress l WHERE l.enrollment_id = ANY($1::int[]) AND NOT EXISTS"
                " (SELECT FROM lms.learning_facts f WHERE f.enrollment_id = l.enrollment_id AND f.lesson_id = l.lesson_id"
                " AND NOT f.retracted)",
                enrollments,
            )  # fmt: skip
        await self._sync_attempts(conn, enrollments)
        if announced:
            await conn.execute(
                "INSERT INTO lms.domain_events (id, type, enrollment_id, payload)"
                " SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::jsonb[]) ON CONFLICT (id) DO NOTHING",
                *_arrays(announced, 4),
            )

    @staticmethod
    async def _sync_attempts(conn, enrollments: list[int]) -> None:
        """``quiz_attempts`` of these enrollments = their counted attempt facts."""
        await conn.execute(
            "DELETE FROM lms.quiz_attempts q WHERE q.enrollment_id = ANY($1::int[]) AND NOT EXISTS"
            " (SELECT FROM lms.learning_facts f WHERE f.statement_id = q.statement_id AND f.attempt AND NOT f.retracted)",
            enrollments,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO lms.quiz_attempts AS q (statement_id, enrollment_id, quiz_id, student_id, score, passed,"
            " time_taken_seconds, attempted_at)"
            " SELECT statement_id, enrollment_id, quiz_id, student_id, score, passed,"
            " CASE WHEN seconds > 0 THEN floor(seconds)::int END, at"
            " FROM lms.learning_facts WHERE enrollment_id = ANY($1::int[]) AND attempt AND NOT retracted"
            " ON CONFLICT (statement_id) DO UPDATE SET enrollment_id = EXCLUDED.enrollment_id,"
            " quiz_id = EXCLUDED.quiz_id, student_id = EXCLUDED.student_id, score = EXCLUDED.score,"
            " passed = EXCLUDED.passed, time_taken_seconds = EXCLUDED.time_taken_seconds,"
            " attempted_at = EXCLUDED.attempted_at"
            " WHERE (q.enrollment_id, q.quiz_id, q.student_id, q.score, q.passed, q.time_taken_seconds, q.attempted_at)"
            " IS DISTINCT FROM (EXCLUDED.enrollment_id, EXCLUDED.quiz_id, EXCLUDED.student_id, EXCLUDED.score,"
            " EXCLUDED.passed, EXCLUDED.time_taken_seconds, EXCLUDED.attempted_at)",
            enrollments,
        )  # fmt: skip

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


def au_satisfied_at(
    move_on: str,
    completed: datetime | None,
    passed: datetime | None,
    waived: datetime | None,
    started: datetime | None,
) -> datetime | None:
    """When a cmi5 AU became satisfied (cmi5 §13.1.4), from the earliest statement recording each
    outcome and the enrollment's start: ``None`` while it is not. Waived satisfies whatever the
    moveOn; NotApplicable is satisfied from the enrollment's start."""
    if move_on == "NotApplicable":
        return started
    if move_on == "Completed":
        times = [completed]
    elif move_on == "Passed":
        times = [passed]
    elif move_on == "CompletedOrPassed":
        times = [completed, passed]
    else:  # CompletedAndPassed: once both are there, the later of the two
        times = [max(completed, passed) if completed and passed else None]
    found = [t for t in [*times, waived] if t is not None]
    return min(found) if found else None


def _lesson_done_at(move_on: str | None, r, started: datetime | None) -> datetime | None:
    """A lesson's completion time (``None``: not complete) from its facts' aggregate ``r`` (``None``
    without facts): an ordinary lesson's first completing statement, a cmi5 AU's satisfaction."""
    if move_on is not None:
        outcomes = (
            (r["completed_at"], r["passed_at"], r["waived_at"]) if r is not None else (None, None, None)
        )
        return au_satisfied_at(move_on, *outcomes, started)
    return r["done_at"] if r is not None and r["done"] else None


def _rollup(catalog: Catalog, course: int, status: str, lessons: dict, quizzes: dict, overall) -> _State:
    required_lessons, required_quizzes = catalog.required_items(course)
    started = overall["first_at"] if overall else None
    done_lessons = {
        lesson: at
        for lesson in required_lessons
        if (at := _lesson_done_at(catalog.move_on(lesson), lessons.get(lesson), started)) is not None
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
