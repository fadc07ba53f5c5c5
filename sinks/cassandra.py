"""Cassandra sink: seed 004's time-series tables, through cassandra-driver.

Seed tables (``cassandra_schema.cql``), all UTC:

* ``user_engagement ((user_id), date)``: per learner and day: events, distinct pages (activities),
  sessions, minutes (statement durations), and ``engagement_score`` = minutes + 2 per distinct
  page + 5 per completion.
* ``learning_progress ((user_id, subject), week_start)``: per learner, course (subject
  ``course:<id>``) and ISO week: lessons completed, minutes, average score (percent), and
  ``topics_mastered`` (``lesson:<id>`` completed, ``quiz:<id>`` passed).
* ``page_view_stats ((date), hour, page)``: statements per activity and hour.
* ``events ((partition_key YYYY-MM-DD-HH), event_time, event_id)``: each statement, kept until
  7 days after ``event_time`` (the TTL is what is left of those 7 days, so a replay of old
  statements does not refill it).

``user_id`` is a UUID derived from the learner's identity key (``user_uuid``), the same for
every statement of the learner.

Tenants (docs/tenants.md) are in every partition key: for a tenant other than the default, a
learner's ``user_id`` is derived from ``<tenant>/<identity key>``, a statement's id in these
tables from ``<tenant>/<statement id>`` (``statement_uuid``; the ``events`` row's properties keep
the statement's own id and name the tenant), and a page is ``<tenant>/<activity IRI>``. So the
same learner, statement or activity of two tenants are different rows and no aggregate mixes
them; the default tenant's keys are what they were before tenants.

Why replays never double count. Nothing is ever incremented: no counter columns (the seed's
``view_count counter`` is a ``bigint`` here) and no read-add-write of totals. Each applied
statement is one row of ``statement_facts ((user_id, week_start), statement_id)`` (and of
``page_views ((date, hour, page), statement_id)``); writing it again is the same upsert. After
each batch the sink recomputes, from those rows, every aggregate row the batch touches and
writes it whole: user_engagement and learning_progress from the learner's week partition (one
partition read per learner and week, which covers both), page_view_stats from a ``COUNT(*)``
of the view partition. A replay rewrites the same values; a crash between writes leaves rows
the replay's recomputation counts. A statement's fact row is written after its other rows, so a
fact row present means the statement was fully written and a replay writes nothing for it but
the aggregates.

Voiding: ``statement_index`` says where the statement's rows are; its fact row stays with
``voided = true`` (so a re-sent copy is recognised and skipped), its view and event rows are
deleted, and the aggregates are recomputed. Reset: ``statements_by_stored`` lists statements by
stored day in position order, so the sink deletes every row of statements stored from
``since`` on and recomputes what they were in; without ``since`` it truncates.

Requests are prepared statements run with ``execute_async``, at most LRS_CASSANDRA_CONCURRENCY
at a time, retried with backoff on timeouts and unavailable replicas (all writes are
idempotent). Watermarks (``sink_watermarks``) are written after the data.

Learners are spread over the stream's partitions by identity, so one worker writes a learner's
rows. ``page_view_stats`` rows are shared by learners of every partition: with several workers,
two recomputing the same (date, hour, page) at the same instant can leave the older count
(last write wins) until the next statement on that page and hour rewrites it.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from typing import Any

from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable

from lrs.store.ports import DEFAULT_TENANT
from sinks.positions import since_position, stored_of

from .events import LearningEvent
from .settings import CassandraSettings

from .buckets import day_of, utc, week_start
from .ports import Batch, ErasureTask, IgnoresCatalog, RebuildsInPlace, Retraction, advanced, net_all

EVENT_TTL = timedelta(days=7)
LEARNER_NAMESPACE = uuid.UUID("3c4f6c2e-6a53-4f0e-9a51-2f0b8f3b6d1a")
STATEMENT_NAMESPACE = uuid.UUID("066ffcfc-a34b-4fb8-aa37-44ae1340c558")
"""Of the ids a tenant's statements have in these tables (``statement_uuid``)."""
RETRYABLE = (OperationTimedOut, ReadTimeout, WriteTimeout, Unavailable, NoHostAvailable)
TABLES = (
    "user_engagement", "learning_progress", "page_view_stats", "events", "statement_facts", "page_views",
    "statement_index", "statements_by_stored", "stored_dates", "sink_watermarks",
)  # fmt: skip

FACT_COLUMNS = (
    "statement_id", "date", "hour", "event_time", "page", "session", "subject", "lesson", "quiz", "seconds",
    "completes", "passed", "score", "voided",
)  # fmt: skip
PLACE_COLUMNS = ("statement_id", "user_id", "week_start", "date", "hour", "page", "event_time")

CQL = {
    "fact": f"INSERT INTO statement_facts (user_id, week_start, {', '.join(FACT_COLUMNS)})"
    f" VALUES (?, ?{', ?' * len(FACT_COLUMNS)})",
    "facts": f"SELECT {', '.join(FACT_COLUMNS)} FROM statement_facts WHERE user_id = ? AND week_start = ?",
    "void": "UPDATE statement_facts SET voided = true"
    " WHERE user_id = ? AND week_start = ? AND statement_id = ?",
    "forget": "DELETE FROM statement_facts WHERE user_id = ? AND week_start = ? AND statement_id = ?",
    "index": "INSERT INTO statement_index (statement_id, user_id, week_start, date, hour, page, event_time,"
    " position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "locate": f"SELECT {', '.join(PLACE_COLUMNS)} FROM statement_index WHERE statement_id = ?",
    "locate_at": f"SELECT position, {', '.join(PLACE_COLUMNS)} FROM statement_index WHERE statement_id = ?",
    "unindex": "DELETE FROM statement_index WHERE statement_id = ?",
    "by_stored": "INSERT INTO statements_by_stored (stored_date, position, statement_id, user_id, week_start,"
    " date, hour, page, event_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "stored_since": f"SELECT position, {', '.join(PLACE_COLUMNS)} FROM statements_by_stored"
    " WHERE stored_date = ? AND position >= ?",
    "unstore": "DELETE FROM statements_by_stored WHERE stored_date = ? AND position = ? AND statement_id = ?",
    "stored_date": "INSERT INTO stored_dates (shard, stored_date) VALUES (0, ?)",
    "stored_dates": "SELECT stored_date FROM stored_dates WHERE shard = 0 AND stored_date >= ?",
    "undate": "DELETE FROM stored_dates WHERE shard = 0 AND stored_date = ?",
    "view": "INSERT INTO page_views (date, hour, page, statement_id) VALUES (?, ?, ?, ?)",
    "unview": "DELETE FROM page_views WHERE date = ? AND hour = ? AND page = ? AND statement_id = ?",
    "views": "SELECT COUNT(*) FROM page_views WHERE date = ? AND hour = ? AND page = ?",
    "event": "INSERT INTO events (partition_key, event_time, event_id, event_type, user_id, properties)"
    " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
    "unevent": "DELETE FROM events WHERE partition_key = ? AND event_time = ? AND event_id = ?",
    "engagement": "INSERT INTO user_engagement (user_id, date, total_events, unique_pages, session_count,"
    " total_time_minutes, engagement_score) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "unengage": "DELETE FROM user_engagement WHERE user_id = ? AND date = ?",
    "engagement_days": "SELECT date, total_events, unique_pages, session_count, total_time_minutes,"
    " engagement_score FROM user_engagement WHERE user_id = ? AND date >= ? AND date <= ?",
    "progress": "INSERT INTO learning_progress (user_id, subject, week_start, lessons_completed,"
    " time_spent_minutes, average_score, topics_mastered) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "unprogress": "DELETE FROM learning_progress WHERE user_id = ? AND subject = ? AND week_start = ?",
    "progress_weeks": "SELECT week_start, lessons_completed, time_spent_minutes, average_score,"
    " topics_mastered FROM learning_progress"
    " WHERE user_id = ? AND subject = ? AND week_start >= ? AND week_start <= ?",
    "page_stat": "INSERT INTO page_view_stats (date, hour, page, view_count) VALUES (?, ?, ?, ?)",
    "unpage_stat": "DELETE FROM page_view_stats WHERE date = ? AND hour = ? AND page = ?",
    "mark": "INSERT INTO sink_watermarks (sink, partition, position, epoch, updated) VALUES (?, ?, ?, ?, ?)",
    "marks": "SELECT partition, position, epoch FROM sink_watermarks WHERE sink = ?",
}


@functools.lru_cache(maxsize=1 << 16)
def user_uuid(learner_key: str, tenant: str = DEFAULT_TENANT) -> uuid.UUID:
    """The ``user_id`` of a learner of a tenant: a name-based UUID of its identity key."""
    return uuid.uuid5(
        LEARNER_NAMESPACE, learner_key if tenant == DEFAULT_TENANT else f"{tenant}/{learner_key}"
    )


def statement_uuid(statement_id: str, tenant: str = DEFAULT_TENANT) -> uuid.UUID:
    """A statement's ``statement_id`` in these tables: its own id for the default tenant."""
    if tenant == DEFAULT_TENANT:
        return uuid.UUID(statement_id)
    return uuid.uuid5(STATEMENT_NAMESPACE, f"{tenant}/{statement_id}")


def page_of(activity_id: str | None, tenant: str = DEFAULT_TENANT) -> str | None:
    """A statement's ``page``: its activity, after ``<tenant>/`` for a tenant other than the default."""
    if not activity_id:
        return None
    return activity_id if tenant == DEFAULT_TENANT else f"{tenant}/{activity_id}"


def schema_statements() -> list[str]:
    text = (resources.files("sinks") / "cassandra_schema.cql").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def connect(settings: CassandraSettings) -> Any:
    """A driver session on the configured cluster (blocking: run it off the event loop)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)),
        consistency_level=ConsistencyLevel.name_to_value[settings.cassandra_consistency],
    )
    auth = None
    if settings.cassandra_username:
        secret = settings.cassandra_password.get_secret_value() if settings.cassandra_password else ""
        auth = PlainTextAuthProvider(username=settings.cassandra_username, password=secret)
    cluster = Cluster(
        settings.hosts(), port=settings.cassandra_port, auth_provider=auth,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )  # fmt: skip
    return cluster.connect()


def _day(value: Any) -> date | None:
    """A ``date`` column's value as read (the driver returns ``cassandra.util.Date``)."""
    if value is None or isinstance(value, date):
        return value
    return value.date()


def _instant(value: datetime | None) -> datetime | None:
    """A ``timestamp`` column's value as read (the driver returns naive UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


# --- per-statement facts and the aggregates computed from them ----------------------------------


@dataclass(slots=True, frozen=True)
class Fact:
    """What a statement contributes, as ``statement_facts`` holds it."""

    statement_id: uuid.UUID
    date: date | None
    hour: int | None
    event_time: datetime | None
    page: str | None = None
    session: str | None = None
    subject: str | None = None
    lesson: int | None = None
    quiz: int | None = None
    seconds: float = 0.0
    completes: bool = False
    passed: bool | None = None
    score: float | None = None
    voided: bool = False

    @classmethod
    def of(cls, e: LearningEvent) -> Fact:
        where, moment = e.location, utc(e.timestamp)
        return cls(
            statement_uuid(e.statement_id, e.tenant), moment.date(), moment.hour, moment,
            page_of(e.activity_id, e.tenant),
            e.session_id, None if where.course_id is None else f"course:{where.course_id}", where.lesson_id,
            where.quiz_id,
            e.duration_seconds or 0.0, e.completes_lesson, e.quiz_passed, e.score_percent if e.quiz_attempt else None,
        )  # fmt: skip

    @classmethod
    def read(cls, row: Any) -> Fact:
        return cls(
            row.statement_id, _day(row.date), row.hour, _instant(row.event_time), row.page, row.session,
            row.subject, row.lesson, row.quiz, row.seconds or 0.0, bool(row.completes), row.passed, row.score,
            bool(row.voided),
        )  # fmt: skip

    def row(self, user: uuid.UUID) -> tuple:
        """The values of CQL ``fact``: the learner's week, then ``FACT_COLUMNS``."""
        return (
            user, week_start(self.date), self.statement_id, self.date, self.hour, self.event_time, self.page,
            self.session, self.subject, self.lesson, self.quiz, self.seconds, self.completes, self.passed,
            self.score, self.voided,
        )  # fmt: skip

    @property
    def topic(self) -> str | None:
        """What this statement masters: a lesson it completes or a quiz it passes (an attempt of
        the quiz itself: ``passed`` is only set on those, see ``streams.enrich``)."""
        if self.passed:
            return f"quiz:{self.quiz}"
        if self.lesson is not None and self.completes:
            return f"lesson:{self.lesson}"
        return None


def engagement_values(facts: Sequence[Fact]) -> tuple[int, int, int, int, float]:
    """``user_engagement`` of one learner and day: events, distinct pages, sessions, minutes, score."""
    pages = {f.page for f in facts if f.page}
    sessions = {f.session for f in facts if f.session}
    minutes = int(sum(f.seconds for f in facts) // 60)
    completions = sum(1 for f in facts if f.completes or f.passed)  # lessons completed, quizzes passed
    return len(facts), len(pages), len(sessions), minutes, float(minutes + 2 * len(pages) + 5 * completions)


def progress_values(facts: Sequence[Fact]) -> tuple[int, int, float | None, set[str]]:
    """``learning_progress`` of one learner, subject and week: lessons completed, minutes,
    average score, topics mastered."""
    scores = [f.score for f in facts if f.score is not None]
    lessons = {f.lesson for f in facts if f.lesson is not None and f.completes and f.quiz is None}
    return (
        len(lessons),
        int(sum(f.seconds for f in facts) // 60),
        round(sum(scores) / len(scores), 4) if scores else None,
        {t for f in facts if (t := f.topic) is not None},
    )


@dataclass(slots=True, frozen=True)
class Place:
    """Where a statement's rows are (``statement_index`` / ``statements_by_stored``)."""

    statement_id: uuid.UUID
    user_id: uuid.UUID
    week_start: date
    date: date
    hour: int
    page: str | None
    event_time: datetime

    @classmethod
    def of(cls, user: uuid.UUID, fact: Fact) -> Place:
        return cls(
            fact.statement_id, user, week_start(fact.date), fact.date, fact.hour, fact.page, fact.event_time
        )

    @classmethod
    def read(cls, row: Any) -> Place:
        return cls(
            row.statement_id, row.user_id, _day(row.week_start), _day(row.date), row.hour, row.page,
            _instant(row.event_time),
        )  # fmt: skip

    @property
    def week(self) -> tuple[uuid.UUID, date]:
        return self.user_id, self.week_start


def hour_key(day: date, hour: int) -> str:
    """``events.partition_key``: ``YYYY-MM-DD-HH``."""
    return f"{day.isoformat()}-{hour:02d}"


def event_properties(e: LearningEvent) -> dict[str, str]:
    where = e.location
    values = {
        "statement_id": e.statement_id, "verb_id": e.verb_id, "activity_id": e.activity_id or None,
        "activity_type": e.activity_type or None, "course_id": where.course_id, "module_id": where.module_id,
        "lesson_id": where.lesson_id, "quiz_id": where.quiz_id, "duration_seconds": e.duration_seconds,
        "score_percent": e.score_percent, "success": e.success, "completion": e.completion,
        "session_id": e.session_id, "platform": e.platform, "registration": e.registration,
        "cmi5_outcome": e.cmi5_outcome, "tenant": None if e.tenant == DEFAULT_TENANT else e.tenant,
    }  # fmt: skip
    return {k: v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in values.items() if v is not None}  # fmt: skip


@dataclass(slots=True)
class Touched:
    """Aggregate rows to recompute."""

    days: set[tuple[uuid.UUID, date]] = field(default_factory=set)
    subjects: set[tuple[uuid.UUID, str, date]] = field(default_factory=set)
    pages: set[tuple[date, int, str]] = field(default_factory=set)

    def add(self, user: uuid.UUID, week: date, fact: Fact | None, place: Place | None = None) -> None:
        """The rows ``fact`` counts in; ``place`` tells what a missing fact row or a tombstone lacks."""
        day = fact.date if fact is not None and fact.date is not None else place.date if place else None
        hour = fact.hour if fact is not None and fact.hour is not None else place.hour if place else None
        page = fact.page if fact is not None and fact.page else place.page if place else None
        if day is not None:
            self.days.add((user, day))
        if fact is not None and fact.subject is not None:
            self.subjects.add((user, fact.subject, week))
        if day is not None and hour is not None and page:
            self.pages.add((day, hour, page))


# --- requests ------------------------------------------------------------------------------------


class _Group:
    """Requests whose results are awaited together."""

    __slots__ = ("results", "left", "done")

    def __init__(self, size: int, done: asyncio.Future[list[list[Any]]]) -> None:
        self.results: list[list[Any]] = [[] for _ in range(size)]
        self.left, self.done = size, done


class _Request:
    __slots__ = ("statement", "values", "group", "index", "attempt", "rows")

    def __init__(self, statement: Any, values: tuple, group: _Group, index: int) -> None:
        self.statement, self.values, self.group, self.index = statement, values, group, index
        self.attempt = 0
        self.rows: list[Any] = []


class Requests:
    """Runs statements with ``execute_async``: at most ``concurrency`` in flight over all callers,
    every page of a result collected, retried on ``RETRYABLE`` errors with exponential backoff.

    No task per request: requests wait in a queue and each completion (the driver calls back on
    its I/O thread, handed to the event loop) sends the next, which keeps the event loop's cost
    per request to a few function calls.
    """

    def __init__(self, session: Any, concurrency: int, retries: int, backoff: float = 0.05) -> None:
        self._session = session
        self._concurrency, self._retries, self._backoff = concurrency, retries, backoff
        self._queue: deque[_Request] = deque()
        self._in_flight = 0
        self.sent = 0
        """Requests sent (retries included, further pages of a result not)."""

    async def run(self, statement: Any, values: Sequence[Any] = ()) -> list[Any]:
        return (await self.all([(statement, values)]))[0]

    async def all(self, requests: Iterable[tuple[Any, Sequence[Any]]]) -> list[list[Any]]:
        """The rows of each request, in order; the first failure (after retries) is raised."""
        listed = list(requests)
        if not listed:
            return []
        done: asyncio.Future[list[list[Any]]] = asyncio.get_running_loop().create_future()
        group = _Group(len(listed), done)
        self._queue.extend(_Request(s, tuple(v), group, i) for i, (s, v) in enumerate(listed))
        self._pump()
        return await done

    def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue and self._in_flight < self._concurrency:
            request = self._queue.popleft()
            if request.group.done.done():
                continue  # its group already failed
            self._in_flight += 1
            self.sent += 1
            self._send(loop, request)

    def _send(self, loop: asyncio.AbstractEventLoop, request: _Request) -> None:
        future = self._session.execute_async(request.statement, request.values)

        def page(rows: Any) -> None:  # on the driver's I/O thread
            request.rows.extend(rows or ())
            if future.has_more_pages:
                future.start_fetching_next_page()
            else:
                loop.call_soon_threadsafe(self._finished, request, None)

        def failed(error: BaseException) -> None:
            loop.call_soon_threadsafe(self._finished, request, error)

        future.add_callbacks(page, failed)

    def _finished(self, request: _Request, error: BaseException | None) -> None:
        self._in_flight -= 1
        group = request.group
        if error is not None and isinstance(error, RETRYABLE) and request.attempt < self._retries:
            request.attempt += 1
            request.rows = []
            asyncio.get_running_loop().call_later(
                self._backoff * 2 ** (request.attempt - 1), self._retry, request
            )  # backoff before the retry, not synchronisation
        elif error is not None:
            if not group.done.done():
                group.done.set_exception(error)
        else:
            group.results[request.index] = request.rows
            group.left -= 1
            if group.left == 0 and not group.done.done():
                group.done.set_result(group.results)
        self._pump()

    def _retry(self, request: _Request) -> None:
        self._queue.appendleft(request)
        self._pump()


# --- the sink ------------------------------------------------------------------------------------


class CassandraSink(IgnoresCatalog, RebuildsInPlace):
    name = "cassandra"
    serves_tenants = True

    def __init__(
        self, session_factory: Callable[[], Any], settings: CassandraSettings, partitions: int = 1,
        backoff: float = 0.05,
    ) -> None:  # fmt: skip
        self._factory, self.settings = session_factory, settings
        self._partitions, self._backoff = partitions, backoff
        self.session: Any = None
        self.requests: Requests | None = None
        self._cql: dict[str, Any] = {}
        self._adhoc: dict[str, Any] = {}

    async def _blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    async def start(self) -> None:
        settings = self.settings
        self.session = await self._blocking(self._factory)
        keyspace = settings.cassandra_keyspace
        await self._blocking(
            self.session.execute,
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {settings.cassandra_replication}",
        )
        await self._blocking(self.session.set_keyspace, keyspace)
        for statement in schema_statements():
            await self._blocking(self.session.execute, statement)
        level = ConsistencyLevel.name_to_value[settings.cassandra_consistency]
        for name, cql in CQL.items():
            prepared = await self._blocking(self.session.prepare, cql)
            prepared.consistency_level = level
            prepared.is_idempotent = True  # every write is an upsert or a delete
            self._cql[name] = prepared
        self.requests = Requests(self.session, settings.cassandra_concurrency, settings.cassandra_retries,
                                 self._backoff)  # fmt: skip

    async def close(self) -> None:
        if self.session is not None:
            await self._blocking(self.session.cluster.shutdown)

    async def _run(self, name: str, values: Sequence[Any] = ()) -> list[Any]:
        return await self.requests.run(self._cql[name], values)

    async def _all(self, requests: Iterable[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        return await self.requests.all((self._cql[name], values) for name, values in requests)

    async def query(self, cql: str, values: Sequence[Any] = ()) -> list[Any]:
        """Run any CQL (prepared once) on the sink's session: reads for tests and operators."""
        if cql not in self._adhoc:
            self._adhoc[cql] = await self._blocking(self.session.prepare, cql)
        return await self.requests.run(self._adhoc[cql], values)

    # --- applying --------------------------------------------------------------------------------

    async def apply(self, batches: Sequence[Batch]) -> None:
        events, retractions = net_all(batches)
        arriving = [(user_uuid(e.learner_key, e.tenant), Fact.of(e), e) for e in events]
        at = {f.statement_id: Place.of(user, f) for user, f, _ in arriving}
        places = await self._locate(retractions)
        located = {p.statement_id for p in places}
        # voided in this very call by another partition's batch: not indexed yet, but arriving
        places += [
            at[i]
            for r in retractions
            if (i := statement_uuid(r.statement_id, r.tenant)) in at and i not in located
        ]
        partitions = await self._partitions_of({p.week for p in at.values()} | {p.week for p in places})
        # a fact row (or the tombstone of a voided statement) means the statement was written whole
        new = [(u, f, e) for u, f, e in arriving if f.statement_id not in partitions[at[f.statement_id].week]]
        await self._write_statements(new)
        touched = Touched()
        for user, fact, _ in arriving:
            place = at[fact.statement_id]
            touched.add(user, place.week_start, partitions[place.week].setdefault(fact.statement_id, fact))
        for place in places:
            partition = partitions[place.week]
            before = partition.get(place.statement_id)
            touched.add(place.user_id, place.week_start, before, place)
            tombstone = before or Fact(place.statement_id, None, None, None)
            partition[place.statement_id] = replace(tombstone, voided=True)
        await self._void(places)
        await self._write_aggregates(partitions, touched)
        await self._record([b for b in batches if b.through])

    async def _locate(self, retractions: list[Retraction]) -> list[Place]:
        found = await self._all(("locate", (statement_uuid(r.statement_id, r.tenant),)) for r in retractions)
        return [Place.read(rows[0]) for rows in found if rows]

    async def _partitions_of(self, weeks: set[tuple[uuid.UUID, date]]) -> dict[tuple, dict[uuid.UUID, Fact]]:
        """The fact rows of these learner weeks, by statement id (tombstones of voided ones too)."""
        ordered = sorted(weeks)
        read = await self._all(("facts", week) for week in ordered)
        return {week: {row.statement_id: Fact.read(row) for row in rows} for week, rows in zip(ordered, read)}

    async def _write_statements(self, new: list[tuple[uuid.UUID, Fact, LearningEvent]]) -> None:
        """Every row of these statements, the fact rows last."""
        if not new:
            return
        now = datetime.now(timezone.utc)
        first: list[tuple[str, Sequence[Any]]] = []
        stored_days: set[date] = set()
        for user, f, e in new:
            week, stored = week_start(f.date), day_of(e.stored)
            stored_days.add(stored)
            place = (f.statement_id, user, week, f.date, f.hour, f.page, f.event_time)
            first.append(("index", (*place, e.position)))
            first.append(("by_stored", (stored, e.position, *place)))
            if f.page:
                first.append(("view", (f.date, f.hour, f.page, f.statement_id)))
            ttl = int(min(EVENT_TTL, f.event_time + EVENT_TTL - now).total_seconds())
            if ttl > 0:  # an event older than 7 days is not recent any more
                kind = f"xapi.statement.{e.verb_class}"
                key = (hour_key(f.date, f.hour), f.event_time, f.statement_id)
                first.append(("event", (*key, kind, user, event_properties(e), ttl)))
        first += [("stored_date", (day,)) for day in sorted(stored_days)]
        await self._all(first)
        await self._all(("fact", f.row(user)) for user, f, _ in new)

    async def _void(self, places: list[Place]) -> None:
        requests: list[tuple[str, Sequence[Any]]] = []
        for p in places:
            requests.append(("void", (p.user_id, p.week_start, p.statement_id)))
            if p.page:
                requests.append(("unview", (p.date, p.hour, p.page, p.statement_id)))
            requests.append(("unevent", (hour_key(p.date, p.hour), p.event_time, p.statement_id)))
        await self._all(requests)

    async def _write_aggregates(
        self, partitions: dict[tuple, dict[uuid.UUID, Fact]], touched: Touched
    ) -> None:
        """Rewrite the touched aggregate rows from the facts (a row with no facts left is deleted)."""
        requests: list[tuple[str, Sequence[Any]]] = []
        for user, day in sorted(touched.days):
            facts = [
                f for f in partitions[(user, week_start(day))].values() if f.date == day and not f.voided
            ]
            requests.append(("engagement", (user, day, *engagement_values(facts))) if facts
                            else ("unengage", (user, day)))  # fmt: skip
        for user, subject, week in sorted(touched.subjects):
            facts = [f for f in partitions[(user, week)].values() if f.subject == subject and not f.voided]
            requests.append(("progress", (user, subject, week, *progress_values(facts))) if facts
                            else ("unprogress", (user, subject, week)))  # fmt: skip
        pages = sorted(touched.pages)
        counts = await self._all(("views", key) for key in pages)
        for key, rows in zip(pages, counts, strict=True):
            views = rows[0][0]
            requests.append(("page_stat", (*key, views)) if views else ("unpage_stat", key))
        await self._all(requests)

    async def _record(self, batches: list[Batch]) -> None:
        if not batches:
            return
        current = {row.partition: (row.position, row.epoch) for row in await self._run("marks", (self.name,))}
        now = datetime.now(timezone.utc)
        await self._all(
            ("mark", (self.name, batch.partition, *mark, now))
            for batch in batches
            if (mark := advanced(current.get(batch.partition), batch)) is not None
        )

    # --- positions and replays -------------------------------------------------------------------

    async def watermarks(self, partitions: int) -> list[str]:
        found = {row.partition: row.position for row in await self._run("marks", (self.name,))}
        return [found.get(p, "") for p in range(partitions)]

    async def reset(self, since: datetime | None, epoch: str) -> None:
        """Forget every row of statements stored from ``since`` on (everything without it) and
        recompute the aggregates they were in."""
        if since is None:
            for table in TABLES:
                await self._blocking(self.session.execute, f"TRUNCATE {table}")
        else:
            await self._forget(since)
        start = since_position(since) if since is not None else ""
        now = datetime.now(timezone.utc)
        await self._all(("mark", (self.name, p, start, epoch, now)) for p in range(self._partitions))

    async def erase(self, task: ErasureTask) -> dict[str, int]:
        """Delete every row of the statements the erasure deleted (facts, tombstones, views, events,
        indexes: ``statement_index`` says where they are) and rewrite the aggregates they were in
        from what is left: the learner's own rows go, page_view_stats are recounted without them."""
        ids = sorted({statement_uuid(i, task.tenant) for i in task.statement_ids})
        found = await self._all(("locate_at", (i,)) for i in ids)
        gone = [(row.position, Place.read(row)) for rows in found for row in rows]
        partitions = await self._partitions_of({place.week for _, place in gone})
        touched = Touched()
        deletes: list[tuple[str, Sequence[Any]]] = []
        for position, p in gone:
            touched.add(p.user_id, p.week_start, partitions[p.week].pop(p.statement_id, None), p)
            deletes.append(("forget", (p.user_id, p.week_start, p.statement_id)))
            if p.page:
                deletes.append(("unview", (p.date, p.hour, p.page, p.statement_id)))
            deletes.append(("unevent", (hour_key(p.date, p.hour), p.event_time, p.statement_id)))
            deletes.append(("unstore", (day_of(stored_of(position)), position, p.statement_id)))
        await self._all(deletes)
        await self._write_aggregates(partitions, touched)
        await self._all(("unindex", (p.statement_id,)) for _, p in gone)  # last: a rerun finds the rest
        return {"statements": len(gone)}

    async def _forget(self, since: datetime) -> None:
        start = since_position(since)
        days = [_day(row.stored_date) for row in await self._run("stored_dates", (day_of(since),))]
        listed = await self._all(("stored_since", (day, start)) for day in days)
        gone = [(day, row.position, Place.read(row)) for day, rows in zip(days, listed) for row in rows]
        partitions = await self._partitions_of({place.week for _, _, place in gone})
        touched = Touched()
        deletes: list[tuple[str, Sequence[Any]]] = []
        for day, position, p in gone:
            touched.add(p.user_id, p.week_start, partitions[p.week].pop(p.statement_id, None), p)
            deletes.append(("forget", (p.user_id, p.week_start, p.statement_id)))
            if p.page:
                deletes.append(("unview", (p.date, p.hour, p.page, p.statement_id)))
            deletes.append(("unevent", (hour_key(p.date, p.hour), p.event_time, p.statement_id)))
            deletes.append(("unindex", (p.statement_id,)))
            deletes.append(("unstore", (day, position, p.statement_id)))
        await self._all(deletes)
        await self._all(("undate", (day,)) for day in days if day > day_of(since))
        await self._write_aggregates(partitions, touched)

    # --- reading ---------------------------------------------------------------------------------

    async def learner_history(
        self,
        learner: str | uuid.UUID,
        days: int = 30,
        until: date | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> dict[str, Any]:
        """A learner's last ``days`` days up to ``until`` (today, UTC): engagement per day, newest
        first, and weekly progress per subject. ``learner``: its ``user_id`` or identity key (a
        learner of ``tenant``)."""
        user = learner if isinstance(learner, uuid.UUID) else user_uuid(learner, tenant)
        until = until or datetime.now(timezone.utc).date()
        first = until - timedelta(days=days - 1)
        daily = await self._run("engagement_days", (user, first, until))
        weeks, week = [], week_start(first)
        while week <= until:
            weeks.append((user, week))
            week += timedelta(days=7)
        partitions = await self._partitions_of(set(weeks))
        subjects = sorted({
            f.subject for facts in partitions.values() for f in facts.values()
            if f.subject and not f.voided and f.date and first <= f.date <= until
        })  # fmt: skip
        progress = await self._all(("progress_weeks", (user, s, week_start(first), until)) for s in subjects)
        return {
            "user_id": str(user),
            "from": first.isoformat(),
            "until": until.isoformat(),
            "days": [
                {
                    "date": _day(r.date).isoformat(),
                    "total_events": r.total_events,
                    "unique_pages": r.unique_pages,
                    "session_count": r.session_count,
                    "total_time_minutes": r.total_time_minutes,
                    "engagement_score": r.engagement_score,
                }
                for r in daily
            ],
            "progress": [
                {
                    "subject": subject,
                    "weeks": [
                        {
                            "week_start": _day(r.week_start).isoformat(),
                            "lessons_completed": r.lessons_completed,
                            "time_spent_minutes": r.time_spent_minutes,
                            "average_score": r.average_score,
                            "topics_mastered": sorted(r.topics_mastered or ()),
                        }
                        for r in rows
                    ],
                }
                for subject, rows in zip(subjects, progress, strict=True)
            ],
        }
