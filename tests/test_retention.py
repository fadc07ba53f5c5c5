"""Retention (docs/data-rights.md, "Retention"): ``LRS_RETENTION_DAYS`` becomes the TTL of the
ClickHouse raw tables (expired rows go at the next merge; the views aggregate what is left) and of
the MongoDB raw collections, ``LRS_RETENTION_AGGREGATE_DAYS`` that of the MongoDB heatmaps;
unset, nothing expires (and a TTL set before is removed)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sinks.clickhouse import ClickHouseSink, connect
from sinks.mongodb import RETENTION_INDEX, MongoSink
from sinks.settings import RetentionSettings

from .sink_events import batch, events, lesson, statement, student


def test_clickhouse_drops_raw_rows_older_than_the_retention_and_keeps_the_rest(tmp_path: Path):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    old = statement(
        student(1), now - timedelta(days=45), "completed", lesson(1, 1), video={"segments": "0[.]9"}
    )
    recent = statement(
        student(2), now - timedelta(days=5), "completed", lesson(1, 1), video={"segments": "0[.]9"}
    )

    async def run(retention: RetentionSettings, feed: bool) -> tuple[list[str], list[str], str]:
        sink = ClickHouseSink(lambda: connect(None, tmp_path, own_process=True), 1, None, retention)
        await sink.start()
        try:
            if feed:
                await sink.apply([batch(0, events([old, recent]))])
            for table in ("learning_events", "video_segments"):
                await sink._run(sink._client.command, f"OPTIMIZE TABLE {table} FINAL")
            kept = [r[0] for r in await sink.query("SELECT toString(statement_id) FROM learning_events")]
            segments = [
                r[0] for r in await sink.query("SELECT DISTINCT toString(statement_id) FROM video_segments")
            ]
            ddl = (await sink.query("SHOW CREATE TABLE learning_events"))[0][0]
            return kept, segments, ddl
        finally:
            await sink.close()

    kept, segments, ddl = asyncio.run(run(RetentionSettings(retention_days=30), feed=True))
    assert kept == [recent["id"]] and segments == [recent["id"]]
    assert "toIntervalDay(30)" in ddl
    kept, _, ddl = asyncio.run(run(RetentionSettings(), feed=False))
    assert kept == [recent["id"]] and "TTL" not in ddl


def test_mongodb_keeps_raw_and_aggregate_documents_by_ttl_indexes_that_follow_the_settings(mongo_dsn: str):
    database = f"retention_{uuid.uuid4().hex[:8]}"

    async def ttls(retention: RetentionSettings) -> dict[str, int | None]:
        sink = MongoSink(mongo_dsn, database, 1, retention)
        await sink.start()
        try:
            found = {}
            for collection in ("xapi_statements", "learning_progress", "course_engagement"):
                index = (await sink.db[collection].index_information()).get(RETENTION_INDEX)
                found[collection] = None if index is None else index["expireAfterSeconds"]
            return found
        finally:
            if retention == RetentionSettings():
                await sink.db.client.drop_database(database)
            await sink.close()

    both = RetentionSettings(retention_days=10, retention_aggregate_days=20)
    assert asyncio.run(ttls(both)) == {
        "xapi_statements": 10 * 86400, "learning_progress": 10 * 86400, "course_engagement": 20 * 86400,
    }  # fmt: skip
    assert asyncio.run(ttls(RetentionSettings(retention_days=3))) == {
        "xapi_statements": 3 * 86400, "learning_progress": 3 * 86400, "course_engagement": None,
    }  # fmt: skip
    assert asyncio.run(ttls(RetentionSettings())) == dict.fromkeys(
        ("xapi_statements", "learning_progress", "course_engagement")
    )


def test_retention_settings_refuse_nonsense(monkeypatch):
    import pytest
    from pydantic import ValidationError

    monkeypatch.setenv("LRS_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError):
        RetentionSettings()
    monkeypatch.setenv("LRS_RETENTION_DAYS", "90")
    assert RetentionSettings().retention_days == 90
