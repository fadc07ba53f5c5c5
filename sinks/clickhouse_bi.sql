-- BI views: the stable, documented surface for BI tools, Grafana and the instructor page.
--
-- What every column means is defined once, in docs/analytics.md; dashboards/README.md lists the
-- views for BI users. Loaded after clickhouse_schema.sql, in the same database as the sink's
-- tables (a separate `bi` database would have to name the sink's database, which a server URL
-- chooses). Column names and types of bi_* views only ever grow: renaming or retyping one is a
-- breaking change.
--
-- The per-statement rules (completes_lesson, completes_course, quiz_attempt, quiz_passed,
-- item_response, the sessions) are columns the pipeline's enrichment fills; the views only
-- aggregate. Voided statements: a statement counts while it has no -1 row.
-- Tenants (docs/tenants.md): every view has a tenant column and keeps tenants apart in every
-- group, join and window; a dashboard or BI query filters on it (Grafana's $tenant variable).
-- Time: timestamps are the statements' own, in UTC. Views that say "now" evaluate now() per query.

-- One row per statement that counts, with the time it counts for: outside a cmi5 session its
-- own duration; within one (learner, course, cmi5 session id) only the session's largest
-- duration counts, on the statement that carries it (ties: the lowest statement id).
CREATE OR REPLACE VIEW bi_events AS
SELECT tenant, statement_id, timestamp, toDate(timestamp) AS day, stored, learner_key, student_id,
       course_id, module_id, lesson_id, quiz_id, verb_id, verb_class, activity_id, activity_type,
       duration_seconds, score_scaled, score_percent, success, completion, completes, response,
       video_time, video_length, progress, session_id, platform, registration,
       completes_course, quiz_attempt, toUInt8(ifNull(quiz_passed, 0)) AS quiz_passed,
       object_kind, completes_lesson, item_response, cmi5_session,
       if(cmi5_session = '' OR row_number() OVER (
              PARTITION BY tenant, learner_key, course_id, cmi5_session
              ORDER BY duration_seconds DESC, toString(statement_id)) = 1,
          duration_seconds, 0) AS time_seconds,
       cmi5_outcome
FROM learning_events
WHERE sign > 0
  AND (tenant, statement_id) NOT IN (SELECT tenant, statement_id FROM learning_events WHERE sign < 0)
COMMENT 'One row per statement that counts (voided ones left out), with the rules of docs/analytics.md';

-- Per tenant: its statements that count (each statement has one +1 row, and one -1 row once
-- voided) and when the latest arrived. Dashboards list the tenants from here.
CREATE OR REPLACE VIEW bi_tenants AS
SELECT tenant, countIf(sign > 0) - countIf(sign < 0) AS statements, max(stored) AS last_stored
FROM learning_events
GROUP BY tenant
COMMENT 'Per tenant: statements that count (voided ones left out), when the latest was stored';

-- Per learner, course and lesson (catalog or template): when the learner completed it. An
-- ordinary lesson: its first statement completing it. A cmi5 AU (a catalog lesson with a moveOn,
-- docs/analytics.md "cmi5 courses"): when its cmi5 outcomes first satisfied its moveOn (the
-- earliest completed / passed / waived; CompletedAndPassed: the later of completed and passed;
-- waived satisfies any moveOn), or, NotApplicable, from the learner's first statement in the course.
-- '2200-01-01' stands for "never" (no such outcome).
CREATE OR REPLACE VIEW bi_lessons_done AS
SELECT tenant, course_id, learner_key, lesson_id, done_at
FROM (
    SELECT tenant, course_id, learner_key, lesson_id, min(timestamp) AS done_at
    FROM bi_events
    WHERE completes_lesson = 1
      AND (tenant, lesson_id) NOT IN (SELECT tenant, item_id FROM catalog_items WHERE kind = 'lesson' AND move_on != '')
    GROUP BY tenant, course_id, learner_key, lesson_id
    UNION ALL
    SELECT o.tenant, o.course_id, o.learner_key, o.lesson_id,
           multiIf(c.move_on = 'Completed', least(o.completed, o.waived),
                   c.move_on = 'Passed', least(o.passed, o.waived),
                   c.move_on = 'CompletedOrPassed', least(o.completed, o.passed, o.waived),
                   least(greatest(o.completed, o.passed), o.waived))
    FROM (
        SELECT tenant, course_id, learner_key, lesson_id,
               min(if(cmi5_outcome = 'completed', timestamp, toDateTime64('2200-01-01 00:00:00', 3, 'UTC'))) AS completed,
               min(if(cmi5_outcome = 'passed', timestamp, toDateTime64('2200-01-01 00:00:00', 3, 'UTC'))) AS passed,
               min(if(cmi5_outcome = 'waived', timestamp, toDateTime64('2200-01-01 00:00:00', 3, 'UTC'))) AS waived
        FROM bi_events
        WHERE cmi5_outcome != ''
        GROUP BY tenant, course_id, learner_key, lesson_id
    ) AS o
    INNER JOIN (
        SELECT tenant, course_id, item_id, move_on FROM catalog_items
        WHERE kind = 'lesson' AND move_on NOT IN ('', 'NotApplicable')
    ) AS c ON c.tenant = o.tenant AND c.course_id = o.course_id AND c.item_id = o.lesson_id
    UNION ALL
    SELECT a.tenant, a.course_id, a.learner_key, c.item_id, a.first_event
    FROM (
        SELECT tenant, course_id, learner_key, min(timestamp) AS first_event
        FROM bi_events WHERE course_id != 0 GROUP BY tenant, course_id, learner_key
    ) AS a
    INNER JOIN (
        SELECT tenant, course_id, item_id FROM catalog_items WHERE kind = 'lesson' AND move_on = 'NotApplicable'
    ) AS c ON c.tenant = a.tenant AND c.course_id = a.course_id
)
WHERE done_at < toDateTime64('2200-01-01 00:00:00', 3, 'UTC')
COMMENT 'Per course, learner and lesson: when the learner completed it (a cmi5 AU: when its moveOn was satisfied)';

-- Per learner, course and catalog item: when the learner first completed it (a lesson:
-- bi_lessons_done; a quiz: first passing attempt). Only the catalog's required items.
CREATE OR REPLACE VIEW bi_items_done AS
SELECT d.tenant AS tenant, d.course_id AS course_id, d.learner_key AS learner_key, d.kind AS kind,
       d.item_id AS item_id, d.done_at AS done_at
FROM (
    SELECT tenant, course_id, learner_key, 'lesson' AS kind, lesson_id AS item_id, done_at
    FROM bi_lessons_done
    UNION ALL
    SELECT tenant, course_id, learner_key, 'quiz' AS kind, quiz_id AS item_id, min(timestamp) AS done_at
    FROM bi_events WHERE quiz_passed = 1
    GROUP BY tenant, course_id, learner_key, quiz_id
) AS d
INNER JOIN catalog_items AS c
    ON c.tenant = d.tenant AND c.course_id = d.course_id AND c.kind = d.kind AND c.item_id = d.item_id
COMMENT 'Per course, learner and required catalog item (lesson or quiz): when the learner first completed it';

-- Per learner and course: the learner's activity, progress, completion and risk.
CREATE OR REPLACE VIEW bi_learner_activity AS
SELECT a.tenant AS tenant, a.course_id AS course_id, a.learner_key AS learner_key,
       a.student_id AS student_id,
       a.first_event AS first_event,
       a.last_event AS last_event,
       toInt32(floor(dateDiff('second', a.last_event, now()) / 86400)) AS days_inactive,
       a.active_days AS active_days,
       a.events AS events,
       a.time_spent_seconds AS time_spent_seconds,
       l.lessons AS lessons_completed,
       a.quiz_attempts AS quiz_attempts,
       a.quizzes_passed AS quizzes_passed,
       toUInt8(if(r.required > 0, d.done = r.required, a.course_completions > 0)) AS completed,
       if(completed = 1, if(r.required > 0, d.last_done_at, a.course_completed_at), NULL) AS completed_at,
       dateDiff('second', a.first_event, completed_at) AS seconds_to_complete,
       toUInt8(completed = 0 AND a.last_event <= now() - INTERVAL 7 DAY) AS at_risk,
       d.done AS items_completed,
       r.required AS items_required
FROM (
    SELECT tenant, course_id, learner_key,
           max(student_id) AS student_id,
           min(timestamp) AS first_event,
           max(timestamp) AS last_event,
           uniqExact(day) AS active_days,
           count() AS events,
           sum(time_seconds) AS time_spent_seconds,
           countIf(quiz_attempt = 1) AS quiz_attempts,
           uniqExactIf(quiz_id, quiz_passed = 1) AS quizzes_passed,
           countIf(completes_course = 1) AS course_completions,
           minIf(timestamp, completes_course = 1) AS course_completed_at
    FROM bi_events
    WHERE course_id != 0
    GROUP BY tenant, course_id, learner_key
) AS a
-- (a learner or course without a row on the right gets 0s: no required items, none done)
LEFT JOIN (SELECT tenant, course_id, count() AS required FROM catalog_items GROUP BY tenant, course_id) AS r
    ON r.tenant = a.tenant AND r.course_id = a.course_id
LEFT JOIN (
    SELECT tenant, course_id, learner_key, count() AS done, max(done_at) AS last_done_at
    FROM bi_items_done GROUP BY tenant, course_id, learner_key
) AS d ON d.tenant = a.tenant AND d.course_id = a.course_id AND d.learner_key = a.learner_key
LEFT JOIN (
    SELECT tenant, course_id, learner_key, count() AS lessons
    FROM bi_lessons_done GROUP BY tenant, course_id, learner_key
) AS l ON l.tenant = a.tenant AND l.course_id = a.course_id AND l.learner_key = a.learner_key
COMMENT 'Per course and learner: first/last event, activity, lessons and quizzes done, completion, at risk';

-- Per course: the seeds' course metrics (learners, completion rate, average days to complete…).
CREATE OR REPLACE VIEW bi_course_overview AS
SELECT tenant, course_id,
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
GROUP BY tenant, course_id
COMMENT 'Per course: learners, active and new in 7 days, completion rate, average days to complete, at risk';

-- Per day and course: active, new and completing learners, events and time spent.
CREATE OR REPLACE VIEW bi_course_daily AS
SELECT tenant, day, course_id,
       sum(active) AS active_learners,
       sum(started) AS new_learners,
       sum(finished) AS completions,
       sum(n) AS events,
       sum(seconds) AS time_spent_seconds
FROM (
    SELECT tenant, day, course_id, uniqExact(learner_key) AS active, toUInt64(0) AS started,
           toUInt64(0) AS finished, count() AS n, sum(time_seconds) AS seconds
    FROM bi_events
    WHERE course_id != 0
    GROUP BY tenant, day, course_id
    UNION ALL
    SELECT tenant, toDate(first_event), course_id, 0, count(), 0, 0, 0
    FROM bi_learner_activity
    GROUP BY tenant, toDate(first_event), course_id
    UNION ALL
    SELECT tenant, toDate(assumeNotNull(completed_at)), course_id, 0, 0, count(), 0, 0
    FROM bi_learner_activity
    WHERE completed = 1
    GROUP BY tenant, toDate(assumeNotNull(completed_at)), course_id
)
GROUP BY tenant, day, course_id
COMMENT 'Per day and course: active learners, new learners (first event), completions, events, time spent';

-- Per course, lesson and hour (lesson 0: statements on the course, a module, a quiz or a question).
-- A cmi5 AU is completed by no single statement (bi_lessons_done): its rows count no completions.
CREATE OR REPLACE VIEW bi_lesson_engagement AS
SELECT tenant, course_id, lesson_id,
       toStartOfHour(toDateTime(timestamp, 'UTC')) AS hour_start,
       toDate(hour_start) AS day,
       toHour(hour_start) AS hour,
       count() AS events,
       uniqExact(learner_key) AS learners,
       sum(time_seconds) AS time_spent_seconds,
       countIf(completes_lesson = 1 OR (lesson_id = 0 AND completes_course = 1)) AS completions
FROM bi_events
GROUP BY tenant, course_id, lesson_id, hour_start
COMMENT 'Per course, lesson and UTC hour: events, distinct learners, time spent, statements completing the lesson';

-- Per video and 5-second segment: in how many viewing sessions it was played, by how many learners.
CREATE OR REPLACE VIEW bi_video_segments AS
SELECT tenant, course_id, lesson_id, activity_id, segment,
       toUInt32(segment * 5) AS second_from,
       toUInt32(segment * 5 + 5) AS second_to,
       uniqExact(learner_key, session_key) AS views,
       uniqExact(learner_key) AS viewers
FROM video_segments
WHERE sign > 0
  AND (tenant, statement_id) NOT IN (SELECT tenant, statement_id FROM video_segments WHERE sign < 0)
GROUP BY tenant, course_id, lesson_id, activity_id, segment
COMMENT 'Per video activity and 5-second segment: viewing sessions that played it, distinct learners';

-- Per quiz: attempts (statements about the quiz itself with an outcome), passes, scores, learners.
CREATE OR REPLACE VIEW bi_quiz_performance AS
SELECT tenant, course_id, quiz_id,
       count() AS attempts,
       countIf(quiz_passed = 1) AS passed,
       countIf(quiz_passed = 0) AS failed,
       passed / attempts AS pass_rate,
       avg(score_percent) AS avg_score_percent,
       uniqExact(learner_key) AS learners,
       uniqExactIf(learner_key, quiz_passed = 1) AS learners_passed
FROM bi_events
WHERE quiz_attempt = 1
GROUP BY tenant, course_id, quiz_id
COMMENT 'Per quiz: attempts, passed, failed, pass rate, average score percent, learners attempting and passing';

-- Per question (item responses: "answered" statements on a question): answers, correct rate,
-- the most common response.
CREATE OR REPLACE VIEW bi_quiz_items AS
SELECT tenant, course_id, quiz_id, activity_id AS question_id,
       count() AS answers,
       countIf(ifNull(success, 0) = 1) AS correct,
       correct / answers AS correct_rate,
       uniqExact(learner_key) AS learners,
       arrayElement(topK(1)(response), 1) AS most_common_response
FROM bi_events
WHERE item_response = 1
GROUP BY tenant, course_id, quiz_id, activity_id
COMMENT 'Per question (answered statements): answers, correct, correct rate, learners, most common response';

-- Learners inactive for 7 days or more who have not completed the course.
CREATE OR REPLACE VIEW bi_at_risk_learners AS
SELECT tenant, course_id, learner_key, student_id, first_event, last_event, days_inactive, active_days, events,
       time_spent_seconds, lessons_completed, quiz_attempts, quizzes_passed
FROM bi_learner_activity
WHERE at_risk = 1
COMMENT 'Learners whose last event is 7 or more days before now() and who have not completed the course';

-- --- the worker's older view names (GET /analytics/{view}), each an aggregate of a bi_* view ---

-- Engagement by course × lesson × day × hour: events, learners and time spent.
CREATE OR REPLACE VIEW engagement_hourly AS
SELECT tenant, course_id, lesson_id, day, hour, events, learners, time_spent_seconds AS seconds
FROM bi_lesson_engagement;

-- Learners with at least one counted statement per day / ISO week, per course (course 0:
-- statements outside the catalog).
CREATE OR REPLACE VIEW active_learners_daily AS
SELECT tenant, day, course_id, uniqExact(learner_key) AS active_learners
FROM bi_events
GROUP BY tenant, day, course_id;

CREATE OR REPLACE VIEW active_learners_weekly AS
SELECT tenant, toMonday(day) AS week, course_id, uniqExact(learner_key) AS active_learners
FROM bi_events
GROUP BY tenant, week, course_id;

CREATE OR REPLACE VIEW video_heatmap AS
SELECT tenant, course_id, lesson_id, activity_id, segment, second_from, views
FROM bi_video_segments;

CREATE OR REPLACE VIEW quiz_performance AS
SELECT tenant, course_id, quiz_id, attempts, passed, avg_score_percent
FROM bi_quiz_performance;

CREATE OR REPLACE VIEW question_performance AS
SELECT tenant, course_id, quiz_id, question_id, answers, correct, correct_rate
FROM bi_quiz_items;

-- Learners per course reaching each stage: started (any statement), progressed (a required item
-- completed), passed (a quiz passed), completed (the course completed).
CREATE OR REPLACE VIEW completion_funnel AS
SELECT tenant, course_id,
       count() AS started,
       countIf(items_completed > 0) AS progressed,
       countIf(quizzes_passed > 0) AS passed,
       countIf(completed = 1) AS completed
FROM bi_learner_activity
GROUP BY tenant, course_id;

CREATE OR REPLACE VIEW time_to_complete AS
SELECT tenant, course_id, learner_key, first_event, assumeNotNull(completed_at) AS completed_at, seconds_to_complete
FROM bi_learner_activity
WHERE completed = 1;
