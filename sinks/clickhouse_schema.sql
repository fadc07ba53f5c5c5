-- ClickHouse schema of the analytics sink (the same for chdb and a ClickHouse server).
--
-- learning_events is the flattened event table (one row per statement, seeds' learning_events /
-- user_activity), partitioned by month. A voided statement is retracted by a second row with
-- sign = -1, so a statement counts while its rows net to +1 (the sink's idempotency check) and
-- the views (clickhouse_bi.sql) leave out every statement that has a -1 row.
--
-- The per-statement rules of docs/analytics.md (completes_lesson, completes_course, quiz_attempt,
-- quiz_passed, item_response, the sessions) are decided by the pipeline's enrichment and stored
-- as columns; the views only aggregate them. Installations from before a rule change keep the
-- older values in old rows until `lrs replay` rebuilds the tables (shadow tables, swapped in with
-- EXCHANGE TABLES once the rebuild has caught up).

CREATE TABLE IF NOT EXISTS learning_events
(
    tenant           LowCardinality(String) DEFAULT 'default',  -- whose statement (docs/tenants.md)
    statement_id     UUID,
    sign             Int8,
    position         String,
    timestamp        DateTime64(3, 'UTC'),
    stored           DateTime64(6, 'UTC'),
    learner_key      String,
    student_id       UInt32,            -- 0 = learner not in the catalog
    course_id        UInt32,            -- 0 = unknown (also module, lesson, quiz)
    module_id        UInt32,
    lesson_id        UInt32,
    quiz_id          UInt32,
    verb_id          LowCardinality(String),
    verb_class       LowCardinality(String),
    activity_id      String,
    activity_type    LowCardinality(String),
    duration_seconds Float64,           -- 0 when the statement has no duration
    score_scaled     Nullable(Float64),
    score_percent    Nullable(Float64),
    success          Nullable(UInt8),
    completion       Nullable(UInt8),
    completes        UInt8,
    response         String,
    video_time       Nullable(Float64),
    video_length     Nullable(Float64),
    progress         Nullable(Float64),
    session_id       String,
    platform         LowCardinality(String),
    registration     String,
    object_kind      LowCardinality(String),  -- what the object itself is: course, module, lesson, quiz or ''
    completes_lesson UInt8,             -- completes the catalog lesson that is its object
    completes_course UInt8,             -- completes the course activity itself
    quiz_attempt     UInt8,             -- an attempt of the quiz that is its object (not a question's answer)
    quiz_passed      Nullable(UInt8),   -- the attempt's outcome (NULL: not an attempt, or not told)
    item_response    UInt8,             -- an answer to a question (verb answered, not on a catalog item)
    cmi5_session     String,            -- cmi5 session id ('' outside cmi5 sessions)
    cmi5_outcome     LowCardinality(String),  -- a cmi5 statement about a lesson: completed, passed, waived or ''
    INDEX statement_lookup statement_id TYPE bloom_filter GRANULARITY 1,
    INDEX stored_range stored TYPE minmax GRANULARITY 1,
    -- the idempotency check (which statements of a batch's stored range are here) reads this
    -- copy of three columns in stored order; kept in each part, so always in step with the rows
    PROJECTION by_stored (SELECT tenant, statement_id, stored ORDER BY stored)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant, course_id, lesson_id, timestamp, statement_id)
SETTINGS old_parts_lifetime = 30;  -- merged-away parts are freed in 30 s, not 8 min

-- One row per statement and 5-second segment of video its played-segments cover (xAPI video
-- profile: every verb may carry them, cumulative within a session).
CREATE TABLE IF NOT EXISTS video_segments
(
    tenant       LowCardinality(String) DEFAULT 'default',
    statement_id UUID,
    sign         Int8,
    timestamp    DateTime64(3, 'UTC'),
    stored       DateTime64(6, 'UTC'),
    learner_key  String,
    course_id    UInt32,
    lesson_id    UInt32,
    activity_id  String,
    segment      UInt32,               -- [segment * 5, segment * 5 + 5) seconds
    session_key  String,               -- the viewing session (video session id, else cmi5 session, else statement)
    INDEX statement_lookup statement_id TYPE bloom_filter GRANULARITY 1,
    INDEX stored_range stored TYPE minmax GRANULARITY 1,
    PROJECTION by_stored (SELECT tenant, statement_id, stored ORDER BY stored)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant, course_id, lesson_id, activity_id, segment, statement_id)
SETTINGS old_parts_lifetime = 30;

-- How far the sink got per partition (see sinks.positions).
CREATE TABLE IF NOT EXISTS sink_watermarks
(
    partition UInt32,
    position  String,
    epoch     String,                  -- relay epoch the position came from (see streams.envelope)
    updated   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated)
ORDER BY partition
SETTINGS old_parts_lifetime = 30;

-- The catalog's required items per course (lessons and quizzes), replaced whole whenever the
-- worker reloads the catalog: a course is complete for a learner when all of them are (a cmi5
-- AU, a lesson with a moveOn, when its cmi5 outcomes satisfy it).
CREATE TABLE IF NOT EXISTS catalog_items
(
    tenant    LowCardinality(String) DEFAULT 'default',  -- whose catalog
    course_id UInt32,
    kind      LowCardinality(String),  -- lesson or quiz
    item_id   UInt32,
    module_id UInt32,
    move_on   LowCardinality(String)   -- a cmi5 AU's moveOn ('' for ordinary lessons and quizzes)
)
ENGINE = MergeTree
ORDER BY (tenant, course_id, kind, item_id);

-- A replay in progress (the latest row counts): phase building → swapping-events →
-- swapping-segments → done. Its watermarks are in sink_watermarks_replay.
CREATE TABLE IF NOT EXISTS sink_replay
(
    since   Nullable(DateTime64(6, 'UTC')),
    epoch   String,
    target  String,
    phase   String,
    updated DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated)
ORDER BY tuple()
SETTINGS old_parts_lifetime = 30;

CREATE TABLE IF NOT EXISTS sink_watermarks_replay AS sink_watermarks;

-- Which of clickhouse_migrations/*.sql an installation has run (the latest row counts).
CREATE TABLE IF NOT EXISTS schema_version
(
    version UInt32,
    applied DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(applied)
ORDER BY tuple();
