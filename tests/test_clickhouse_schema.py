"""The ClickHouse schema: created current on a new installation, migrated once on an older one."""

from __future__ import annotations

from pathlib import Path

from sinks.clickhouse import connect, create_schema, migrations

OLD_EVENTS = """
CREATE TABLE learning_events (
    statement_id UUID, sign Int8, position String, timestamp DateTime64(3, 'UTC'), stored DateTime64(6, 'UTC'),
    learner_key String, student_id UInt32, course_id UInt32, module_id UInt32, lesson_id UInt32, quiz_id UInt32,
    verb_id LowCardinality(String), verb_class LowCardinality(String), activity_id String,
    activity_type LowCardinality(String), duration_seconds Float64, score_scaled Nullable(Float64),
    score_percent Nullable(Float64), success Nullable(UInt8), completion Nullable(UInt8), completes UInt8,
    response String, video_time Nullable(Float64), video_length Nullable(Float64), progress Nullable(Float64),
    session_id String, platform LowCardinality(String), registration String,
    PROJECTION funnel (SELECT course_id, verb_class, learner_key, sum(sign) GROUP BY course_id, verb_class, learner_key)
) ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (course_id, lesson_id, timestamp, statement_id)
"""
OLD_SEGMENTS = """
CREATE TABLE video_segments (
    statement_id UUID, sign Int8, timestamp DateTime64(3, 'UTC'), stored DateTime64(6, 'UTC'), learner_key String,
    course_id UInt32, lesson_id UInt32, activity_id String, segment UInt32,
    PROJECTION heatmap (SELECT course_id, lesson_id, activity_id, segment, sum(sign)
                        GROUP BY course_id, lesson_id, activity_id, segment)
) ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (course_id, lesson_id, activity_id, segment, statement_id)
"""


def columns(client, table: str) -> set[str]:
    return {
        r[0] for r in client.query(f"SELECT name FROM system.columns WHERE table = '{table}'").result_rows
    }


def version(client) -> int:
    return client.query("SELECT version FROM schema_version FINAL").result_rows[0][0]


def test_an_older_installation_is_migrated_once_and_a_new_one_is_created_current(tmp_path: Path):
    latest = migrations()[-1][0]
    client = connect(None, tmp_path / "old")
    try:
        client.command(OLD_EVENTS)
        client.command(OLD_SEGMENTS)
        client.command(OLD_EVENTS.replace("learning_events", "learning_events_replay"))  # a replay under way
        client.command("INSERT INTO learning_events (statement_id, sign, timestamp, stored) VALUES"
                       " (generateUUIDv4(), 1, now64(3), now64(6))")  # fmt: skip
        create_schema(client)
        assert {"object_kind", "quiz_attempt", "quiz_passed", "cmi5_session"} <= columns(
            client, "learning_events"
        )
        assert "session_key" in columns(client, "video_segments")
        assert "cmi5_outcome" in columns(client, "learning_events") and "move_on" in columns(
            client, "catalog_items"
        )
        projections = client.query(
            "SELECT table, name FROM system.projections WHERE table NOT LIKE '%_replay' ORDER BY table"
        ).result_rows
        assert projections == [
            ("learning_events", "by_stored"),
            ("video_segments", "by_stored"),
        ]  # the old ones gone
        assert version(client) == latest
        assert client.query("SELECT count(), sum(quiz_attempt) FROM learning_events").result_rows == [(1, 0)]
        # tenants: rows from before them are the default tenant's; the replay's shadow gets the column too
        assert client.query("SELECT tenant FROM learning_events").result_rows == [("default",)]
        assert {"tenant", "cmi5_outcome"} <= columns(client, "learning_events_replay")
        ddl = client.query("SHOW CREATE TABLE learning_events").result_rows[0][0]
        assert "tenant" in ddl.split("PROJECTION by_stored", 1)[1].split("ORDER BY", 1)[0]
        create_schema(client)  # the next start: nothing to migrate
        assert version(client) == latest
        assert client.query("SELECT count() FROM bi_events").result_rows == [(1,)]
    finally:
        client.close()
    fresh = connect(None, tmp_path / "new")
    try:
        create_schema(fresh)
        assert version(fresh) == latest and "quiz_attempt" in columns(fresh, "learning_events")
    finally:
        fresh.close()
