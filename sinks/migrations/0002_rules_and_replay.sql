-- The rules of docs/analytics.md on every fact, and replays that build beside the live tables.
--
-- A fact now says what its statement counts for: completes (completes the lesson that is its
-- object), completes_course (completes the course activity itself), attempt (an attempt of the
-- quiz that is its object; answers to questions are not), and the cmi5 session whose largest
-- duration is the session's time. Facts of installations from before this migration keep the
-- older meaning until `lrs replay` rebuilds them (which announces only what really changes).
ALTER TABLE lms.learning_facts
    ADD COLUMN student_id       integer,
    ADD COLUMN course_id        integer,
    ADD COLUMN session          text,
    ADD COLUMN completes_course boolean NOT NULL DEFAULT false,
    ADD COLUMN attempt          boolean NOT NULL DEFAULT false;

UPDATE lms.learning_facts f SET student_id = e.student_id, course_id = e.course_id
FROM lms.enrollments e WHERE e.id = f.enrollment_id;
UPDATE lms.learning_facts SET
    attempt = quiz_id IS NOT NULL AND (passed IS NOT NULL OR score IS NOT NULL),
    completes_course = completes AND lesson_id IS NULL AND module_id IS NULL AND quiz_id IS NULL;

ALTER TABLE lms.learning_facts
    ALTER COLUMN student_id SET NOT NULL,
    ALTER COLUMN course_id SET NOT NULL;

-- A replay's facts, built while the live tables keep serving and keep taking new statements;
-- swapped in (with every rollup recomputed and only real differences announced) in one
-- transaction once the replay has caught up. Keyed by learner and course, not enrollment, so
-- that building it creates no enrollment anybody could see.
CREATE TABLE lms.learning_facts_replay (
    statement_id     uuid PRIMARY KEY,
    student_id       integer NOT NULL,
    course_id        integer NOT NULL,
    module_id        integer,
    lesson_id        integer,
    quiz_id          integer,
    at               timestamptz NOT NULL,
    stored           timestamptz NOT NULL,
    seconds          double precision NOT NULL DEFAULT 0,
    session          text,
    completes        boolean NOT NULL DEFAULT false,
    completes_course boolean NOT NULL DEFAULT false,
    attempt          boolean NOT NULL DEFAULT false,
    passed           boolean,
    score            double precision,
    retracted        boolean NOT NULL DEFAULT false
);

-- A replay in progress (at most one per sink): facts stored from `since` (all when NULL) are being
-- rebuilt; `epoch` is the relay epoch it started in; it is complete when every partition's
-- replay watermark (sink_watermarks, sink '<sink>/replay') reaches `target`.
CREATE TABLE lms.sink_replays (
    sink    text PRIMARY KEY,
    since   timestamptz,
    epoch   text NOT NULL,
    target  text NOT NULL,
    started timestamptz NOT NULL DEFAULT now()
);
