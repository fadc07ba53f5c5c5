"""ClickHouse sink, through clickhouse-connect: chdb (in-process, the default) or a server.

``clickhouse_connect.get_client(dsn="chdb:///path")`` opens the embedded engine and a URL opens
a server; both speak the same schema (``clickhouse_schema.sql``, ``clickhouse_bi.sql``) and
queries. The client is synchronous (chdb only offers that), so every call runs on one
dedicated thread.

Idempotency: before inserting, the sink asks which of the batch's statements the table already
has rows of and skips them (so a voided statement, whose rows net to 0, never comes back); a
retraction inserts sign -1 copies of the rows a statement contributed, only while they net to
+1. Each table checks itself, so a crash between the two tables' inserts heals on replay.
Watermarks are written after the data, so a crash can only make the sink replay more, never skip.

Replays build shadow tables (``*_replay``) from the statements the relay sends again while the
live tables keep serving and keep taking new statements (each batch goes to both); once the
shadow's watermarks reach the replay's target, ``EXCHANGE TABLES`` swaps each shadow in
atomically. The swap's phases are recorded, so a crash midway finishes it at the next start.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson

from lrs.runtime import embedded_engine
from lrs.store.ports import DEFAULT_TENANT
from sinks.positions import since_position

from .catalog import Catalog
from .events import LearningEvent

from .buckets import watched_segments
from .ports import Batch, ErasureTask, ReplayStatus, advanced, net_all
from .settings import RetentionSettings

RETRACT_CHUNK = 1000
RAW_TABLES = ("learning_events", "video_segments")
"""Per-statement tables: ``LRS_RETENTION_DAYS`` is their TTL."""
WATERMARK_COLUMNS = ("partition", "position", "epoch", "updated")
REPLAY_COLUMNS = ("since", "epoch", "target", "phase", "updated")
CATALOG_COLUMNS = ("tenant", "course_id", "kind", "item_id", "module_id", "move_on")

EVENT_COLUMNS = (
    "tenant", "statement_id", "sign", "position", "timestamp", "stored", "learner_key", "student_id", "course_id",
    "module_id", "lesson_id", "quiz_id", "verb_id", "verb_class", "activity_id", "activity_type",
    "duration_seconds", "score_scaled", "score_percent", "success", "completion", "completes", "response",
    "video_time", "video_length", "progress", "session_id", "platform", "registration", "object_kind",
    "completes_lesson", "completes_course", "quiz_attempt", "quiz_passed", "item_response", "cmi5_session",
    "cmi5_outcome",
)  # fmt: skip
SEGMENT_COLUMNS = (
    "tenant", "statement_id", "sign", "timestamp", "stored", "learner_key", "course_id", "lesson_id", "activity_id", "segment",
    "session_key",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tables:
    """Where a batch goes: the live tables, or a replay's shadow tables."""

    events: str
    segments: str
    watermarks: str


LIVE = Tables("learning_events", "video_segments", "sink_watermarks")
SHADOW = Tables("learning_events_replay", "video_segments_replay", "sink_watermarks_replay")


_AT = "toDateTime64(%%(%s)s, 6, 'UTC')"
"""A bound instant with its microseconds (clickhouse-connect renders datetimes to the second)."""


def _micros(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def event_row(e: LearningEvent) -> tuple:
    where = e.location
    return (
        e.tenant, e.statement_id, 1, e.position, e.timestamp, e.stored, e.learner_key, e.student_id or 0,
        where.course_id or 0, where.module_id or 0, where.lesson_id or 0, where.quiz_id or 0,
        e.verb_id, e.verb_class, e.activity_id, e.activity_type, e.duration_seconds or 0.0,
        e.score_scaled, e.score_percent, _flag(e.success), _flag(e.completion), int(e.completes),
        e.response or "", e.video_time, e.video_length, e.progress, e.session_id or "", e.platform or "",
        e.registration or "", e.object_kind, int(e.completes_lesson), int(e.completes_course),
        int(e.quiz_attempt), _flag(e.quiz_passed), int(e.item_response), e.cmi5_session or "",
        e.cmi5_outcome or "",
    )  # fmt: skip


def segment_rows(e: LearningEvent) -> list[tuple]:
    """One row per 5-second segment the statement's played segments touch (each counted once)."""
    where = e.location
    session = e.view_session
    return [
        (e.tenant, e.statement_id, 1, e.timestamp, e.stored, e.learner_key, where.course_id or 0, where.lesson_id or 0,
         e.activity_id, s, session)
        for s in watched_segments(e)
    ]  # fmt: skip


def catalog_rows(catalog: Catalog, tenant: str = DEFAULT_TENANT) -> list[tuple]:
    """Every course's required items (``catalog_items``) of the tenant's catalog."""
    rows = []
    for course_id in sorted(catalog.courses):
        lessons, quizzes = catalog.required_items(course_id)
        rows += [
            (
                tenant,
                course_id,
                "lesson",
                i,
                catalog.lessons[i].module_id or 0,
                catalog.lessons[i].move_on or "",
            )
            for i in lessons
        ]
        rows += [(tenant, course_id, "quiz", i, catalog.quizzes[i].module_id or 0, "") for i in quizzes]
    return rows


def connect(url: str | None, data_dir: Path, *, own_process: bool = False) -> Any:
    """A clickhouse-connect client: the server at ``url``, else chdb in ``data_dir/clickhouse`` —
    in this process, or with ``own_process`` in a child process of its own
    (``sinks.chdb_process``: the worker's choice, ``LRS_CHDB_OWN_PROCESS``)."""
    if url:
        return clickhouse_connect.get_client(dsn=url)
    embedded_engine("chdb", "ClickHouse in-process (chdb)", "LRS_CLICKHOUSE_URL", load=False)
    path = data_dir / "clickhouse"
    path.mkdir(parents=True, exist_ok=True)
    if own_process:
        from .chdb_process import ChdbProcess

        return ChdbProcess(path.resolve())
    return clickhouse_connect.get_client(dsn=f"chdb://{path.resolve()}")


TABLES, VIEWS = "clickhouse_schema.sql", "clickhouse_bi.sql"
"""Run at every start (both idempotent): the tables, then (after any migration) the views."""
MIGRATIONS = "clickhouse_migrations"
"""``NNNN_*.sql``: what an installation made by an older schema runs once to become current."""


def statements_of(name: str) -> list[str]:
    """The statements of one of the sink's SQL files (whole-line ``--`` comments dropped, split on ``;``)."""
    text = (resources.files("sinks") / name).read_text("utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrations() -> list[tuple[int, list[str]]]:
    """(version, statements) of every migration, in order."""
    names = [e.name for e in (resources.files("sinks") / MIGRATIONS).iterdir() if e.name.endswith(".sql")]
    return sorted((int(name.split("_", 1)[0]), statements_of(f"{MIGRATIONS}/{name}")) for name in names)


def create_schema(client: Any) -> None:
    """Create what is missing and run the migrations an older installation has not run (a new
    installation is created current: its tables already have what migrations would add); then
    the views."""
    existed = bool(client.query("EXISTS TABLE learning_events").result_rows[0][0])
    for statement in statements_of(TABLES):
        client.command(statement)
    rows = client.query("SELECT version FROM schema_version FINAL").result_rows
    steps = migrations()
    latest = steps[-1][0] if steps else 1
    current = rows[0][0] if rows else (1 if existed else latest)
    for version, statements in steps:
        if version > current:
            for statement in statements:
                client.command(statement)
    if current != latest or not rows:
        client.command("INSERT INTO schema_version VALUES (%(v)s, now64(6))", parameters={"v": latest})
    for table in RAW_TABLES:
        align_shadow(client, table)
    for statement in statements_of(VIEWS):
        client.command(statement)


def align_shadow(client: Any, table: str) -> None:
    """Give a replay's shadow of ``table`` (one begun before an upgrade, ``<table>_replay``) the
    columns the migrations added to ``table`` since, so the replay goes on and what it swaps in
    has them."""

    def columns(name: str) -> dict[str, tuple[str, str, str]]:
        found = client.query(
            "SELECT name, type, default_kind, default_expression FROM system.columns"
            " WHERE database = currentDatabase() AND table = %(t)s", parameters={"t": name},
        ).result_rows  # fmt: skip
        return {n: (t, kind, expression) for n, t, kind, expression in found}

    shadow = columns(f"{table}_replay")
    if not shadow:
        return
    for name, (kind, default_kind, expression) in columns(table).items():
        if name not in shadow:
            default = f" {default_kind} {expression}" if default_kind else ""
            client.command(f"ALTER TABLE {table}_replay ADD COLUMN IF NOT EXISTS `{name}` {kind}{default}")


@dataclass(slots=True)
class _Replay:
    since: datetime | None
    epoch: str
    target: str
    phase: str


class ClickHouseSink:
    name = "clickhouse"
    serves_tenants = True

    def __init__(
        self, client_factory, partitions: int = 1, catalog: Callable[[], Mapping[str, Catalog]] | None = None,
        retention: RetentionSettings | None = None,
    ) -> None:  # fmt: skip
        self._retention = retention or RetentionSettings()
        self._factory = client_factory
        self._partitions = partitions
        self._catalog = catalog
        self._client: Any = None
        self._replay: _Replay | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    async def _run(self, function, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: function(*args, **kwargs)
        )

    async def start(self) -> None:
        def setup() -> None:
            self._client = self._factory()
            create_schema(self._client)
            self._replay = self._read_replay()
            if self._replay is not None and self._replay.phase == "swapping":
                self._swap()  # a crash interrupted the swap: finish it
            if self._catalog is not None:
                self._write_catalog(self._catalog())
            self._apply_retention()

        await self._run(setup)

    def _apply_retention(self) -> None:
        """``LRS_RETENTION_DAYS`` as the raw tables' TTL (ClickHouse deletes expired rows as it
        merges); unset: no TTL."""
        days = self._retention.retention_days
        for table in (*RAW_TABLES, *(f"{t}_replay" for t in RAW_TABLES)):
            if not self._client.query(f"EXISTS TABLE {table}").result_rows[0][0]:
                continue
            ddl = self._client.query(f"SHOW CREATE TABLE {table}").result_rows[0][0]
            has_ttl = re.search(r"^TTL ", ddl, re.MULTILINE) is not None
            if days is not None:
                self._client.command(
                    f"ALTER TABLE {table} MODIFY TTL toDateTime(timestamp) + toIntervalDay({int(days)})"
                )
            elif has_ttl:
                self._client.command(f"ALTER TABLE {table} REMOVE TTL")

    async def close(self) -> None:
        if self._client is not None:
            await self._run(self._client.close)
        self._thread.shutdown(wait=True)

    async def query(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        """Run a read query on the sink's connection (the worker's analytics endpoint uses it)."""
        return await self._run(lambda: self._client.query(sql, parameters=parameters).result_rows)

    async def records(self, sql: str, parameters: dict | None = None) -> list[dict[str, Any]]:
        """A read query's rows as dicts by column name."""

        def run() -> list[dict[str, Any]]:
            result = self._client.query(sql, parameters=parameters)
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

        return await self._run(run)

    # --- the catalog -----------------------------------------------------------------------------

    async def catalog_changed(self, catalogs: Mapping[str, Catalog]) -> None:
        """Replace ``catalog_items`` with every tenant's required items (atomically)."""
        await self._run(self._write_catalog, catalogs)

    def _write_catalog(self, catalogs: Mapping[str, Catalog]) -> None:
        self._client.command("DROP TABLE IF EXISTS catalog_items_next")
        self._client.command("CREATE TABLE catalog_items_next AS catalog_items")
        rows = [row for tenant, catalog in sorted(catalogs.items()) for row in catalog_rows(catalog, tenant)]
        if rows:
            self._insert("catalog_items_next", CATALOG_COLUMNS, rows)
        self._client.command("EXCHANGE TABLES catalog_items AND catalog_items_next")
        self._client.command("DROP TABLE catalog_items_next")

    # --- applying --------------------------------------------------------------------------------

    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        """Rows as JSONCompactColumns (one JSON array per column), serialised by orjson in one
        call: ClickHouse parses it natively, and this process spends about a microsecond a row
        (a call per row cost ten; clickhouse-connect's Python encoder more still)."""
        if not rows:
            return
        self._client.raw_insert(
            table, list(columns), orjson.dumps(list(zip(*rows, strict=True))), fmt="JSONCompactColumns",
            settings={"date_time_input_format": "best_effort"},
        )  # fmt: skip

    def _applied(self, table: str, events: list[LearningEvent]) -> set[tuple[str, str]]:
        """Which of these statements (tenant, id) ``table`` already has rows of (counted, or
        counted and then retracted: a voided statement never comes back). Asks for the statements
        stored within the events' range (the minmax index on ``stored`` skips every older part;
        no id list in the query text, whatever the batch size) and intersects."""
        if not events:
            return set()
        rows = self._client.query(
            f"SELECT DISTINCT tenant, toString(statement_id) FROM {table}"
            f" WHERE stored BETWEEN {_AT % 'low'} AND {_AT % 'high'}",
            parameters={
                "low": _micros(min(e.stored for e in events)),
                "high": _micros(max(e.stored for e in events)),
            },
        ).result_rows
        return {(r[0], r[1]) for r in rows} & {(e.tenant, e.statement_id) for e in events}

    def _still_counted(self, table: str, tenant: str, ids: list[str]) -> list[str]:
        rows = self._client.query(
            f"SELECT toString(statement_id) FROM {table} WHERE tenant = %(tenant)s AND statement_id IN %(ids)s"
            " GROUP BY statement_id HAVING sum(sign) > 0",
            parameters={"tenant": tenant, "ids": ids},
        ).result_rows
        return sorted(r[0] for r in rows)

    def _retract(self, table: str, columns: tuple[str, ...], tenant: str, ids: list[str]) -> None:
        applied = self._still_counted(table, tenant, ids)
        if not applied:
            return
        cols = ", ".join(c if c != "sign" else "toInt8(-1) AS retracting" for c in columns)
        rows = self._client.query(
            f"SELECT {cols} FROM {table} WHERE tenant = %(tenant)s AND statement_id IN %(ids)s AND sign = 1",
            parameters={"tenant": tenant, "ids": applied},
        ).result_rows
        self._insert(table, columns, rows)

    def _apply_to(self, tables: Tables, batches: Sequence[Batch]) -> None:
        events, retractions = net_all(batches)
        if events:
            applied = self._applied(tables.events, events)
            rows = [event_row(e) for e in events if (e.tenant, e.statement_id) not in applied]
            if rows:
                self._insert(tables.events, EVENT_COLUMNS, rows)
            watched = [e for e in events if e.video_segments]
            if watched:
                done = self._applied(tables.segments, watched)
                segments = [
                    r for e in watched if (e.tenant, e.statement_id) not in done for r in segment_rows(e)
                ]
                if segments:
                    self._insert(tables.segments, SEGMENT_COLUMNS, segments)
        voided: dict[str, list[str]] = {}
        for retraction in retractions:
            voided.setdefault(retraction.tenant, []).append(retraction.statement_id)
        for tenant, ids in voided.items():
            for start in range(0, len(ids), RETRACT_CHUNK):  # id lists stay far below max_query_size
                chunk = ids[start : start + RETRACT_CHUNK]
                self._retract(tables.events, EVENT_COLUMNS, tenant, chunk)
                self._retract(tables.segments, SEGMENT_COLUMNS, tenant, chunk)
        self._record(tables.watermarks, [b for b in batches if b.through])

    def _positions(self, table: str) -> dict[int, tuple[str, str]]:
        rows = self._client.query(f"SELECT partition, position, epoch FROM {table} FINAL").result_rows
        return {int(p): (position, epoch) for p, position, epoch in rows}

    def _record(self, table: str, batches: list[Batch]) -> None:
        """Move each partition's position: a newer relay epoch restarts it, an older is ignored."""
        if not batches:
            return
        current = self._positions(table)
        now, marks = datetime.now(timezone.utc), []
        for batch in batches:
            if (mark := advanced(current.get(batch.partition), batch)) is not None:
                marks.append((batch.partition, *mark, now))
        if marks:
            self._insert(table, WATERMARK_COLUMNS, marks)

    def _apply(self, batches: Sequence[Batch]) -> None:
        self._apply_to(LIVE, batches)
        if self._replay is not None:
            self._apply_to(SHADOW, batches)
            if self._caught_up():
                self._swap()

    async def apply(self, batches: Sequence[Batch]) -> None:
        await self._run(self._apply, batches)

    # --- erasure (docs/data-rights.md) -----------------------------------------------------------

    async def erase(self, task: ErasureTask) -> dict[str, int]:
        """Delete every row of the learner (identity keys, student ids) and of the statements the
        erasure deleted, counted and retraction rows alike, in the live and the replay tables;
        the views aggregate what is left, so every figure is recomputed without them."""
        return await self._run(self._erase, task)

    def _erase(self, task: ErasureTask) -> dict[str, int]:
        parameters = {
            "tenant": task.tenant,
            "keys": task.identity_keys or ["-"],
            "students": [s for s in task.student_ids if s > 0] or [0],
            "ids": task.statement_ids or ["00000000-0000-0000-0000-000000000000"],
        }
        learner = "learner_key IN %(keys)s OR statement_id IN %(ids)s"
        counts: dict[str, int] = {}
        existing = {
            r[0]
            for r in self._client.query(
                "SELECT name FROM system.tables WHERE database = currentDatabase()"
            ).result_rows
        }
        for tables in (LIVE, SHADOW):
            for table, where in (
                (
                    tables.events,
                    f"tenant = %(tenant)s AND ({learner} OR (student_id IN %(students)s AND student_id > 0))",
                ),
                (tables.segments, f"tenant = %(tenant)s AND ({learner})"),
            ):
                if table not in existing:
                    continue
                found = self._client.query(
                    f"SELECT count() FROM {table} WHERE {where}", parameters=parameters
                )
                rows = int(found.result_rows[0][0])
                if rows:
                    self._client.command(
                        f"ALTER TABLE {table} DELETE WHERE {where}", parameters=parameters,
                        settings={"mutations_sync": 2},
                    )  # fmt: skip
                counts[table] = counts.get(table, 0) + rows
        return counts

    async def watermarks(self, partitions: int) -> list[str]:
        def read() -> list[str]:
            live = self._positions(LIVE.watermarks)
            marks = [live.get(p, ("", ""))[0] for p in range(partitions)]
            if self._replay is not None:
                rebuilt = self._positions(SHADOW.watermarks)
                marks = [min(m, rebuilt.get(p, ("", ""))[0]) for p, m in enumerate(marks)]
            return marks

        return await self._run(read)

    # --- replays ---------------------------------------------------------------------------------

    def _read_replay(self) -> _Replay | None:
        rows = self._client.query(
            "SELECT since, epoch, target, phase FROM sink_replay FINAL ORDER BY updated DESC LIMIT 1"
        ).result_rows
        if not rows or rows[0][3] == "done":
            return None
        since, epoch, target, phase = rows[0]
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        return _Replay(since, epoch, target, phase)

    def _set_phase(self, phase: str) -> None:
        replay = self._replay
        replay.phase = phase
        self._insert(
            "sink_replay", REPLAY_COLUMNS,
            [(replay.since, replay.epoch, replay.target, phase, datetime.now(timezone.utc))],
        )  # fmt: skip

    async def begin_replay(self, since: datetime | None, epoch: str, target: str) -> None:
        """Start rebuilding, in shadow tables, what came from statements stored from ``since``
        (all without it); rows stored before ``since`` are copied over as they are."""

        def begin() -> None:
            for live, shadow in ((LIVE.events, SHADOW.events), (LIVE.segments, SHADOW.segments)):
                self._client.command(f"DROP TABLE IF EXISTS {shadow}")
                self._client.command(f"CREATE TABLE {shadow} AS {live}")
                if since is not None:
                    self._client.command(
                        f"INSERT INTO {shadow} SELECT * FROM {live} WHERE stored < {_AT % 'since'}",
                        parameters={"since": _micros(since)},
                    )
            start, now = since_position(since) if since is not None else "", datetime.now(timezone.utc)
            self._client.command(f"TRUNCATE TABLE {SHADOW.watermarks}")
            self._insert(
                SHADOW.watermarks,
                WATERMARK_COLUMNS,
                [(p, start, epoch, now) for p in range(self._partitions)],
            )
            self._replay = _Replay(since, epoch, target, "building")
            self._set_phase("building")

        await self._run(begin)

    async def replay_status(self) -> ReplayStatus | None:
        def read() -> ReplayStatus | None:
            replay = self._replay
            if replay is None:
                return None
            rebuilt = self._positions(SHADOW.watermarks)
            position = min(rebuilt.get(p, ("", ""))[0] for p in range(self._partitions))
            return ReplayStatus(self.name, replay.since, replay.target, position)

        return await self._run(read)

    def _caught_up(self) -> bool:
        rebuilt = self._positions(SHADOW.watermarks)
        return min(rebuilt.get(p, ("", ""))[0] for p in range(self._partitions)) >= self._replay.target

    def _swap(self) -> None:
        """Swap each shadow table in (``EXCHANGE TABLES`` is atomic), take over its positions,
        drop what was live. Every step can run again: a crash midway is finished at the next start
        (a swapped-in table carries the replay's epoch as its comment, so it is not swapped back)."""
        self._set_phase("swapping")
        for live, shadow in ((LIVE.events, SHADOW.events), (LIVE.segments, SHADOW.segments)):
            self._exchange(live, shadow)
        marks = self._positions(SHADOW.watermarks)
        now = datetime.now(timezone.utc)
        self._insert(
            LIVE.watermarks, WATERMARK_COLUMNS, [(p, pos, ep, now) for p, (pos, ep) in marks.items()]
        )
        self._set_phase("done")
        for table in (SHADOW.events, SHADOW.segments):
            self._client.command(f"DROP TABLE IF EXISTS {table}")
        self._replay = None

    def _exchange(self, live: str, shadow: str) -> None:
        marker = f"replay {self._replay.epoch}"
        comment = self._client.query(
            "SELECT comment FROM system.tables WHERE database = currentDatabase() AND name = %(t)s",
            parameters={"t": live},
        ).result_rows
        if comment and comment[0][0] == marker:
            return  # swapped in before a crash
        self._client.command(f"ALTER TABLE {shadow} MODIFY COMMENT '{marker}'")
        self._client.command(f"EXCHANGE TABLES {live} AND {shadow}")
