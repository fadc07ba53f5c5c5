-- ClickHouse schema of the analytics sink (the same for chdb and a ClickHouse server).
--
-- learning_events is the flattened event table (one row per statement, seeds' learning_events /
-- user_activity), partitioned by month. A voided statement is retracted by a second row with
-- sign = -1, so every aggregate is a sum over sign: a voided statement nets to nothing, and a
-- statement is "applied" while its rows net to +1 (the sink's idempotency check).
--
-- Aggregates are projections: ClickHouse keeps them inside each data part, computed on insert,
-- so a part holds its rows and their aggregates together or not at all (a crash between a table
-- and a separate materialized-view target could not leave them out of step). The named views
-- below read through them.

CREATE TABLE IF NOT EXISTS learning_events
(
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
    INDEX statement_lookup statement_id TYPE bloom_filter GRANULARITY 1,
    INDEX stored_range stored TYPE minmax GRANULARITY 1,     -- idempotency checks read recent parts only
    PROJECTION engagement_hourly
    (
        SELECT course_id, lesson_id, toDate(timestamp), toHour(timestamp), learner_key,
               sum(sign), sum(sign * duration_seconds)
        GROUP BY course_id, lesson_id, toDate(timestamp), toHour(timestamp), learner_key
    ),
    PROJECTION learners_daily
    (
        SELECT toDate(timestamp), course_id, learner_key, sum(sign)
        GROUP BY toDate(timestamp), course_id, learner_key
    ),
    PROJECTION funnel
    (
        SELECT course_id, verb_class, learner_key, sum(sign)
        GROUP BY course_id, verb_class, learner_key
    ),
    PROJECTION assessments
    (
        SELECT course_id, quiz_id, activity_id, verb_class, sum(sign), sum(sign * ifNull(success, 0)),
               sum(sign * ifNull(score_percent, 0)), sum(sign * isNotNull(score_percent))
        GROUP BY course_id, quiz_id, activity_id, verb_class
    )
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (course_id, lesson_id, timestamp, statement_id)
SETTINGS old_parts_lifetime = 30;  -- merged-away parts are freed in 30 s, not 8 min

-- One row per 5-second segment of video a played statement covered (xAPI video profile).
CREATE TABLE IF NOT EXISTS video_segments
(
    statement_id UUID,
    sign         Int8,
    timestamp    DateTime64(3, 'UTC'),
    stored       DateTime64(6, 'UTC'),
    learner_key  String,
    course_id    UInt32,
    lesson_id    UInt32,
    activity_id  String,
    segment      UInt32,               -- [segment * 5, segment * 5 + 5) seconds
    INDEX statement_lookup statement_id TYPE bloom_filter GRANULARITY 1,
    INDEX stored_range stored TYPE minmax GRANULARITY 1,
    PROJECTION heatmap
    (
        SELECT course_id, lesson_id, activity_id, segment, sum(sign)
        GROUP BY course_id, lesson_id, activity_id, segment
    )
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (course_id, lesson_id, activity_id, segment, statement_id)
SETTINGS old_parts_lifetime = 30;

-- How far the sink got per partition (see streams.position).
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

-- Engagement by course × lesson × day × hour: events, learners and time spent.
CREATE OR REPLACE VIEW engagement_hourly AS
SELECT course_id, lesson_id, day, hour,
       sum(learner_events) AS events, countIf(learner_events > 0) AS learners, sum(learner_seconds) AS seconds
FROM (
    SELECT course_id, lesson_id, toDate(timestamp) AS day, toHour(timestamp) AS hour, learner_key,
           sum(sign) AS learner_events, sum(sign * duration_seconds) AS learner_seconds
    FROM learning_events
    GROUP BY course_id, lesson_id, toDate(timestamp), toHour(timestamp), learner_key
)
GROUP BY course_id, lesson_id, day, hour
HAVING events != 0;

-- Learners with at least one (not voided) event per day, per course and overall (course 0 rows
-- of the statement table are statements outside the catalog).
CREATE OR REPLACE VIEW active_learners_daily AS
SELECT day, course_id, countIf(events > 0) AS active_learners
FROM (
    SELECT toDate(timestamp) AS day, course_id, learner_key, sum(sign) AS events
    FROM learning_events
    GROUP BY toDate(timestamp), course_id, learner_key
)
GROUP BY day, course_id
HAVING active_learners > 0;

CREATE OR REPLACE VIEW active_learners_weekly AS
SELECT toMonday(day) AS week, course_id, uniqExactIf(learner_key, events > 0) AS active_learners
FROM (
    SELECT toDate(timestamp) AS day, course_id, learner_key, sum(sign) AS events
    FROM learning_events
    GROUP BY toDate(timestamp), course_id, learner_key
)
GROUP BY week, course_id
HAVING active_learners > 0;

-- Views per 5-second segment of each video.
CREATE OR REPLACE VIEW video_heatmap AS
SELECT course_id, lesson_id, activity_id, segment, segment * 5 AS second_from, sum(sign) AS views
FROM video_segments
GROUP BY course_id, lesson_id, activity_id, segment
HAVING views > 0;

-- Quizzes (scored or passed/failed statements on a quiz activity) and questions (answered).
CREATE OR REPLACE VIEW quiz_performance AS
SELECT course_id, quiz_id,
       sum(n) AS attempts, sum(successes) AS passed,
       if(sum(scored) > 0, sum(score_sum) / sum(scored), NULL) AS avg_score_percent
FROM (
    SELECT course_id, quiz_id, verb_class, sum(sign) AS n, sum(sign * ifNull(success, 0)) AS successes,
           sum(sign * ifNull(score_percent, 0)) AS score_sum, sum(sign * isNotNull(score_percent)) AS scored
    FROM learning_events
    WHERE quiz_id != 0 AND verb_class IN ('passed', 'failed', 'completed', 'scored')
    GROUP BY course_id, quiz_id, activity_id, verb_class
)
GROUP BY course_id, quiz_id
HAVING attempts > 0;

CREATE OR REPLACE VIEW question_performance AS
SELECT course_id, quiz_id, activity_id AS question_id, sum(sign) AS answers,
       sum(sign * ifNull(success, 0)) AS correct,
       if(sum(sign) > 0, sum(sign * ifNull(success, 0)) / sum(sign), NULL) AS correct_rate
FROM learning_events
WHERE verb_class = 'answered'
GROUP BY course_id, quiz_id, activity_id
HAVING answers > 0;

-- Learners per course reaching each stage (launched/initialized → progressed → completed → passed).
CREATE OR REPLACE VIEW completion_funnel AS
SELECT course_id,
       uniqExactIf(learner_key, stage_started) AS started,
       uniqExactIf(learner_key, stage_progressed) AS progressed,
       uniqExactIf(learner_key, stage_completed) AS completed,
       uniqExactIf(learner_key, stage_passed) AS passed
FROM (
    SELECT course_id, learner_key,
           sumIf(events, verb_class IN ('launched', 'initialized')) > 0 AS stage_started,
           sumIf(events, verb_class IN ('progressed', 'experienced', 'played', 'completed', 'passed')) > 0
               AS stage_progressed,
           sumIf(events, verb_class = 'completed') > 0 AS stage_completed,
           sumIf(events, verb_class = 'passed') > 0 AS stage_passed
    FROM (
        SELECT course_id, verb_class, learner_key, sum(sign) AS events
        FROM learning_events
        GROUP BY course_id, verb_class, learner_key
    )
    GROUP BY course_id, learner_key
)
WHERE course_id != 0
GROUP BY course_id;

-- Per learner and course: first event, and first statement completing the course activity itself
-- (an LMS or cmi5 "completed"/"satisfied" on the course; lesson completions do not count here).
CREATE OR REPLACE VIEW time_to_complete AS
SELECT course_id, learner_key, first_event, completed_at,
       dateDiff('second', first_event, completed_at) AS seconds_to_complete
FROM (
    SELECT course AS course_id, learner AS learner_key,
           min(at) AS first_event,
           minIf(at, done = 1 AND lesson = 0 AND module = 0 AND quiz = 0) AS completed_at
    FROM (
        SELECT statement_id, any(course_id) AS course, any(lesson_id) AS lesson, any(module_id) AS module,
               any(quiz_id) AS quiz, any(learner_key) AS learner, any(timestamp) AS at, any(completes) AS done
        FROM learning_events
        GROUP BY statement_id
        HAVING sum(sign) > 0
    )
    WHERE course != 0
    GROUP BY course, learner
)
WHERE completed_at > toDateTime64(0, 3, 'UTC');
