-- BI views: the stable, documented surface for BI tools and Grafana (dashboards/README.md).
--
-- Loaded after clickhouse_schema.sql, in the same database as the sink's tables (a separate `bi`
-- database would have to name the sink's database, which a server URL chooses). Column names and
-- types of bi_* views only ever grow: renaming or retyping one is a breaking change.
--
-- Voided statements: bi_events keeps a statement only while it counts. The sink inserts a
-- statement's +1 row once and, when the statement is voided, one -1 copy (sinks/clickhouse.py),
-- so "has a -1 row" is "voided" and every view below, built on bi_events, leaves it out.
-- Time: timestamps are the statements' own (UTC). Views that say "now" evaluate now() per query.
--
-- Rules shared with the PostgreSQL rollups (README "Progress rules"), decided once in bi_events:
--   completes_course  a statement completing the course activity itself (completed, passed,
--                     satisfied, result.completion, on the course, not on a lesson/quiz/module)
--   quiz_attempt      a passed/failed, success-carrying or scored statement on a quiz
--   quiz_passed       an attempt that passes (passed, or result.success true and not failed)

CREATE OR REPLACE VIEW bi_events AS
SELECT statement_id, timestamp, toDate(timestamp) AS day, stored, learner_key, student_id,
       course_id, module_id, lesson_id, quiz_id, verb_id, verb_class, activity_id, activity_type,
       duration_seconds, score_scaled, score_percent, success, completion, completes, response,
       video_time, video_length, progress, session_id, platform, registration,
       toUInt8(completes = 1 AND course_id != 0 AND module_id = 0 AND lesson_id = 0 AND quiz_id = 0)
           AS completes_course,
       toUInt8(quiz_id != 0 AND (verb_class IN ('passed', 'failed') OR success IS NOT NULL
                                 OR score_percent IS NOT NULL)) AS quiz_attempt,
       toUInt8(quiz_attempt = 1 AND (verb_class = 'passed' OR (verb_class != 'failed' AND ifNull(success, 0) = 1)))
           AS quiz_passed
FROM learning_events
WHERE sign > 0
  AND statement_id NOT IN (SELECT statement_id FROM learning_events WHERE sign < 0)
COMMENT 'One row per statement that counts (voided ones left out), with the completion and quiz rules';

-- Per learner and course: the learner's activity, progress, completion and risk.
CREATE OR REPLACE VIEW bi_learner_activity AS
SELECT course_id, learner_key,
       max(student_id) AS student_id,
       min(timestamp) AS first_event,
       max(timestamp) AS last_event,
       toInt32(floor(dateDiff('second', last_event, now()) / 86400)) AS days_inactive,
       uniqExact(day) AS active_days,
       count() AS events,
       sum(duration_seconds) AS time_spent_seconds,
       uniqExactIf(lesson_id, lesson_id != 0 AND completes = 1) AS lessons_completed,
       countIf(quiz_attempt = 1) AS quiz_attempts,
       uniqExactIf(quiz_id, quiz_passed = 1) AS quizzes_passed,
       toUInt8(countIf(completes_course = 1) > 0) AS completed,
       if(completed = 1, minIf(timestamp, completes_course = 1), NULL) AS completed_at,
       dateDiff('second', first_event, completed_at) AS seconds_to_complete,
       toUInt8(completed = 0 AND last_event <= now() - INTERVAL 7 DAY) AS at_risk
FROM bi_events
WHERE course_id != 0
GROUP BY course_id, learner_key
COMMENT 'Per course and learner: first/last event, activity, lessons and quizzes done, completion, at risk';

-- Per course: the seeds' course metrics (learners, completion rate, average days to complete…).
CREATE OR REPLACE VIEW bi_course_overview AS
SELECT course_id,
       count() AS learners,
       countIf(last_event >= now() - INTERVAL 7 DAY) AS active_learners_7d,
       countIf(first_event >= now() - INTERVAL 7 DAY) AS new_learners_7d,
       countIf(completed = 1) AS completed_learners,
       100 * completed_learners / learners AS completion_rate_percent,
       if(completed_learners > 0, avgIf(seconds_to_complete, completed = 1) / 86400, NULL)
           AS avg_days_to_complete,
       countIf(at_risk = 1) AS at_risk_learners,
       sum(events) AS events,
       sum(time_spent_seconds) AS time_spent_seconds,
       min(first_event) AS first_activity,
       max(last_event) AS last_activity
FROM bi_learner_activity
GROUP BY course_id
COMMENT 'Per course: learners, active and new in 7 days, completion rate, average days to complete, at risk';

-- Per day and course: active, new and completing learners, events and time spent.
CREATE OR REPLACE VIEW bi_course_daily AS
SELECT day, course_id,
       sum(active) AS active_learners,
       sum(started) AS new_learners,
       sum(finished) AS completions,
       sum(n) AS events,
       sum(seconds) AS time_spent_seconds
FROM (
    SELECT day, course_id, uniqExact(learner_key) AS active, toUInt64(0) AS started,
           toUInt64(0) AS finished, count() AS n, sum(duration_seconds) AS seconds
    FROM bi_events
    WHERE course_id != 0
    GROUP BY day, course_id
    UNION ALL
    SELECT toDate(first_event), course_id, 0, count(), 0, 0, 0
    FROM bi_learner_activity
    GROUP BY toDate(first_event), course_id
    UNION ALL
    SELECT toDate(assumeNotNull(completed_at)), course_id, 0, 0, count(), 0, 0
    FROM bi_learner_activity
    WHERE completed = 1
    GROUP BY toDate(assumeNotNull(completed_at)), course_id
)
GROUP BY day, course_id
COMMENT 'Per day and course: active learners, new learners (first event), completions, events, time spent';

-- Per course, lesson and hour (lesson 0: statements on the course, a quiz or a question).
CREATE OR REPLACE VIEW bi_lesson_engagement AS
SELECT course_id, lesson_id,
       toStartOfHour(toDateTime(timestamp, 'UTC')) AS hour_start,
       toDate(hour_start) AS day,
       toHour(hour_start) AS hour,
       count() AS events,
       uniqExact(learner_key) AS learners,
       sum(duration_seconds) AS time_spent_seconds,
       countIf(completes = 1) AS completions
FROM bi_events
GROUP BY course_id, lesson_id, hour_start
COMMENT 'Per course, lesson and UTC hour: events, distinct learners, time spent, completing statements';

-- Per video and 5-second segment: how often it was played and by how many learners.
CREATE OR REPLACE VIEW bi_video_segments AS
SELECT course_id, lesson_id, activity_id, segment,
       toUInt32(segment * 5) AS second_from,
       toUInt32(segment * 5 + 5) AS second_to,
       count() AS views,
       uniqExact(learner_key) AS viewers
FROM video_segments
WHERE sign > 0
  AND statement_id NOT IN (SELECT statement_id FROM video_segments WHERE sign < 0)
GROUP BY course_id, lesson_id, activity_id, segment
COMMENT 'Per video activity and 5-second segment: plays covering it and distinct learners';

-- Per quiz: attempts, passes, scores, learners.
CREATE OR REPLACE VIEW bi_quiz_performance AS
SELECT course_id, quiz_id,
       count() AS attempts,
       countIf(quiz_passed = 1) AS passed,
       countIf(quiz_passed = 0) AS failed,
       passed / attempts AS pass_rate,
       avg(score_percent) AS avg_score_percent,
       uniqExact(learner_key) AS learners,
       uniqExactIf(learner_key, quiz_passed = 1) AS learners_passed
FROM bi_events
WHERE quiz_attempt = 1
GROUP BY course_id, quiz_id
COMMENT 'Per quiz: attempts, passed, failed, pass rate, average score percent, learners attempting and passing';

-- Per question ("answered" statements): answers, correct rate, the most common response.
CREATE OR REPLACE VIEW bi_quiz_items AS
SELECT course_id, quiz_id, activity_id AS question_id,
       count() AS answers,
       countIf(ifNull(success, 0) = 1) AS correct,
       correct / answers AS correct_rate,
       uniqExact(learner_key) AS learners,
       arrayElement(topK(1)(response), 1) AS most_common_response
FROM bi_events
WHERE verb_class = 'answered'
GROUP BY course_id, quiz_id, activity_id
COMMENT 'Per question (answered statements): answers, correct, correct rate, learners, most common response';

-- Learners inactive for 7 days or more who have not completed the course.
CREATE OR REPLACE VIEW bi_at_risk_learners AS
SELECT course_id, learner_key, student_id, first_event, last_event, days_inactive, active_days, events,
       time_spent_seconds, lessons_completed, quiz_attempts, quizzes_passed
FROM bi_learner_activity
WHERE at_risk = 1
COMMENT 'Learners whose last event is 7 or more days before now() and who have not completed the course';
