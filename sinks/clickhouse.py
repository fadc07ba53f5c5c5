"""ClickHouse sink, through clickhouse-connect: chdb (in-process, the default) or a server.

``clickhouse_connect.get_client(dsn="chdb:///path")`` opens the embedded engine and a URL opens
a server; both speak the same schema (``clickhouse_schema.sql``) and queries. The client is
synchronous (chdb only offers that), so every call runs on one dedicated thread.

Idempotency: before inserting, the sink asks which of the batch's statements the table already
has rows of and skips them (so a voided statement, whose rows net to 0, never comes back); a
retraction inserts sign -1 copies of the rows a statement contributed, only while they net to +1. Each table checks itself, so a crash between the two
tables' inserts heals on replay. Watermarks are written after the data, so a crash can only
make the sink replay more, never skip.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from importlib import resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson

from streams.enrich import LearningEvent
from streams.position import since_position

from .buckets import watched_segments
from .ports import Batch, advanced, net_all

RETRACT_CHUNK = 1000
WATERMARK_COLUMNS = ("partition", "position", "epoch", "updated")

EVENT_COLUMNS = (
    "statement_id", "sign", "position", "timestamp", "stored", "learner_key", "student_id", "course_id",
    "module_id", "lesson_id", "quiz_id", "verb_id", "verb_class", "activity_id", "activity_type",
    "duration_seconds", "score_scaled", "score_percent", "success", "completion", "completes", "response",
    "video_time", "video_length", "progress", "session_id", "platform", "registration",
)  # fmt: skip
SEGMENT_COLUMNS = (
    "statement_id", "sign", "timestamp", "stored", "learner_key", "course_id", "lesson_id", "activity_id", "segment",
)  # fmt: skip


_AT = "toDateTime64(%%(%s)s, 6, 'UTC')"
"""A bound instant with its microseconds (clickhouse-connect renders datetimes to the second)."""


def _micros(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def event_row(e: LearningEvent) -> tuple:
    where = e.location
    return (
        e.statement_id, 1, e.position, e.timestamp, e.stored, e.learner_key, e.student_id or 0,
        where.course_id or 0, where.module_id or 0, where.lesson_id or 0, where.quiz_id or 0,
        e.verb_id, e.verb_class, e.activity_id, e.activity_type, e.duration_seconds or 0.0,
        e.score_scaled, e.score_percent, _flag(e.success), _flag(e.completion), int(e.completes),
        e.response or "", e.video_time, e.video_length, e.progress, e.session_id or "", e.platform or "",
        e.registration or "",
    )  # fmt: skip


def segment_rows(e: LearningEvent) -> list[tuple]:
    """One row per 5-second segment the statement's played segments touch (each counted once)."""
    where = e.location
    return [
        (
            e.statement_id,
            1,
            e.timestamp,
            e.stored,
            e.learner_key,
            where.course_id or 0,
            where.lesson_id or 0,
            e.activity_id,
            s,
        )
        for s in watched_segments(e)
    ]


def connect(url: str | None, data_dir: Path) -> Any:
    """A clickhouse-connect client: the server at ``url``, else chdb in ``data_dir/clickhouse``."""
    if url:
        return clickhouse_connect.get_client(dsn=url)
    path = data_dir / "clickhouse"
    path.mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(dsn=f"chdb://{path.resolve()}")


SCHEMA_FILES = ("clickhouse_schema.sql", "clickhouse_bi.sql")
"""Run in this order: the BI views (``clickhouse_bi.sql``) read the base tables."""


def schema_statements() -> list[str]:
    """Every statement of the schema files (whole-line ``--`` comments dropped, split on ``;``)."""
    statements: list[str] = []
    for name in SCHEMA_FILES:
        text = (resources.files("sinks") / name).read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
        statements += [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
    return statements


class ClickHouseSink:
    name = "clickhouse"

    def __init__(self, client_factory, partitions: int = 1) -> None:
        self._factory = client_factory
        self._partitions = partitions
        self._client: Any = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    async def _run(self, function, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: function(*args, **kwargs)
        )

    async def start(self) -> None:
        def setup() -> None:
            self._client = self._factory()
            for statement in schema_statements():
                self._client.command(statement)

        await self._run(setup)

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

    # --- applying --------------------------------------------------------------------------------

    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        """Rows as JSONCompactEachRow, serialised by orjson: ClickHouse parses them natively,
        several times cheaper for this process than clickhouse-connect's Python encoder."""
        self._client.raw_insert(
            table, list(columns), b"\n".join(map(orjson.dumps, rows)), fmt="JSONCompactEachRow",
            settings={"date_time_input_format": "best_effort"},
        )  # fmt: skip

    def _applied(self, table: str, events: list[LearningEvent]) -> set[str]:
        """Which of these statements ``table`` already has rows of (counted, or counted and then
        retracted: a voided statement never comes back). Asks for the statements
        stored within the events' range (the minmax index on ``stored`` skips every older part;
        no id list in the query text, whatever the batch size) and intersects."""
        if not events:
            return set()
        rows = self._client.query(
            f"SELECT DISTINCT toString(statement_id) FROM {table}"
            f" WHERE stored BETWEEN {_AT % 'low'} AND {_AT % 'high'}",
            parameters={
                "low": _micros(min(e.stored for e in events)),
                "high": _micros(max(e.stored for e in events)),
            },
        ).result_rows
        return {r[0] for r in rows} & {e.statement_id for e in events}

    def _still_counted(self, table: str, ids: list[str]) -> list[str]:
        rows = self._client.query(
            f"SELECT toString(statement_id) FROM {table} WHERE statement_id IN %(ids)s"
            " GROUP BY statement_id HAVING sum(sign) > 0",
            parameters={"ids": ids},
        ).result_rows
        return sorted(r[0] for r in rows)

    def _retract(self, table: str, columns: tuple[str, ...], ids: list[str]) -> None:
        applied = self._still_counted(table, ids)
        if not applied:
            return
        cols = ", ".join(c if c != "sign" else "toInt8(-1) AS retracting" for c in columns)
        rows = self._client.query(
            f"SELECT {cols} FROM {table} WHERE statement_id IN %(ids)s AND sign = 1",
            parameters={"ids": applied},
        ).result_rows
        self._insert(table, columns, rows)

    def _apply(self, batches: Sequence[Batch]) -> None:
        events, retractions = net_all(batches)
        if events:
            applied = self._applied("learning_events", events)
            rows = [event_row(e) for e in events if e.statement_id not in applied]
            if rows:
                self._insert("learning_events", EVENT_COLUMNS, rows)
            watched = [e for e in events if e.video_segments]
            if watched:
                done = self._applied("video_segments", watched)
                segments = [r for e in watched if e.statement_id not in done for r in segment_rows(e)]
                if segments:
                    self._insert("video_segments", SEGMENT_COLUMNS, segments)
        voided = [r.statement_id for r in retractions]
        for start in range(0, len(voided), RETRACT_CHUNK):  # id lists stay far below max_query_size
            chunk = voided[start : start + RETRACT_CHUNK]
            self._retract("learning_events", EVENT_COLUMNS, chunk)
            self._retract("video_segments", SEGMENT_COLUMNS, chunk)
        self._record([b for b in batches if b.through])

    def _record(self, batches: list[Batch]) -> None:
        """Move each partition's position: a newer relay epoch restarts it, an older is ignored."""
        if not batches:
            return
        rows = self._client.query(
            "SELECT partition, position, epoch FROM sink_watermarks FINAL WHERE partition IN %(p)s",
            parameters={"p": [b.partition for b in batches]},
        ).result_rows
        current = {int(p): (position, epoch) for p, position, epoch in rows}
        now, marks = datetime.now(timezone.utc), []
        for batch in batches:
            if (mark := advanced(current.get(batch.partition), batch)) is not None:
                marks.append((batch.partition, *mark, now))
        if marks:
            self._insert("sink_watermarks", WATERMARK_COLUMNS, marks)

    async def apply(self, batches: Sequence[Batch]) -> None:
        await self._run(self._apply, batches)

    async def watermarks(self, partitions: int) -> list[str]:
        rows = await self.query("SELECT partition, position FROM sink_watermarks FINAL")
        found = {int(p): pos for p, pos in rows}
        return [found.get(p, "") for p in range(partitions)]

    async def reset(self, since: datetime | None, epoch: str) -> None:
        """Forget what the sink holds from ``since`` on (everything without it), for a replay."""

        def wipe() -> None:
            for table in ("learning_events", "video_segments"):
                if since is None:
                    self._client.command(f"TRUNCATE TABLE {table}")
                else:
                    # a mutation rewrites the affected parts with their projections (rare: replays)
                    self._client.command(
                        f"ALTER TABLE {table} DELETE WHERE stored >= {_AT % 'since'}",
                        parameters={"since": _micros(since)}, settings={"mutations_sync": 2},
                    )  # fmt: skip
            start, now = since_position(since) if since is not None else "", datetime.now(timezone.utc)
            self._client.command("TRUNCATE TABLE sink_watermarks")
            rows = [(p, start, epoch, now) for p in range(self._partitions)]
            self._insert("sink_watermarks", WATERMARK_COLUMNS, rows)

        await self._run(wipe)
