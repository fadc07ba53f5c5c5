-- The LMS side: course catalog, learner identities, and the progress rollups the pipeline
-- maintains (seed 002: enrollments, progress; seed 000: lesson_progress, quiz_attempts).
CREATE SCHEMA IF NOT EXISTS lms;

-- Catalog: courses → modules → lessons / quizzes, each with the activity IRI content uses.
CREATE TABLE lms.courses (
    course_id integer PRIMARY KEY,
    title     text NOT NULL DEFAULT '',
    iri       text UNIQUE
);
CREATE TABLE lms.modules (
    module_id integer PRIMARY KEY,
    course_id integer NOT NULL REFERENCES lms.courses ON DELETE CASCADE,
    position  integer NOT NULL DEFAULT 0,
    title     text NOT NULL DEFAULT '',
    iri       text UNIQUE
);
CREATE TABLE lms.lessons (
    lesson_id        integer PRIMARY KEY,
    module_id        integer REFERENCES lms.modules ON DELETE CASCADE,
    course_id        integer NOT NULL REFERENCES lms.courses ON DELETE CASCADE,
    position         integer NOT NULL DEFAULT 0,
    title            text NOT NULL DEFAULT '',
    kind             text NOT NULL DEFAULT 'lesson',   -- video, reading, scorm, …
    duration_seconds integer,
    iri              text UNIQUE
);
CREATE TABLE lms.quizzes (
    quiz_id         integer PRIMARY KEY,
    module_id       integer REFERENCES lms.modules ON DELETE CASCADE,
    course_id       integer NOT NULL REFERENCES lms.courses ON DELETE CASCADE,
    title           text NOT NULL DEFAULT '',
    pass_percentage numeric(5, 2) NOT NULL DEFAULT 70,
    iri             text UNIQUE
);
CREATE TABLE lms.students (
    student_id integer PRIMARY KEY,
    name       text NOT NULL DEFAULT ''
);
-- xAPI agent identity (lrs.xapi.agents.ifi_key) → student
CREATE TABLE lms.student_identities (
    agent_key  text PRIMARY KEY,
    student_id integer NOT NULL REFERENCES lms.students ON DELETE CASCADE
);

-- Rollups (seed 002).
CREATE TABLE lms.enrollments (
    id                    serial PRIMARY KEY,
    student_id            integer NOT NULL,
    course_id             integer NOT NULL,
    status                text NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'completed', 'dropped', 'suspended')),
    enrolled_at           timestamptz NOT NULL DEFAULT now(),
    started_at            timestamptz,
    completed_at          timestamptz,
    dropped_at            timestamptz,
    completion_percentage numeric(5, 2) NOT NULL DEFAULT 0
                          CHECK (completion_percentage >= 0 AND completion_percentage <= 100),
    last_accessed_at      timestamptz,
    enrollment_source     text NOT NULL DEFAULT 'xapi',
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (student_id, course_id)
);
CREATE INDEX enrollments_course ON lms.enrollments (course_id);
CREATE INDEX enrollments_status ON lms.enrollments (status);

CREATE TABLE lms.progress (
    id                 serial PRIMARY KEY,
    enrollment_id      integer NOT NULL UNIQUE REFERENCES lms.enrollments ON DELETE CASCADE,
    completed_modules  integer[] NOT NULL DEFAULT '{}',
    completed_lessons  integer[] NOT NULL DEFAULT '{}',
    total_modules      integer NOT NULL DEFAULT 0,
    total_lessons      integer NOT NULL DEFAULT 0,
    completed_quizzes  integer[] NOT NULL DEFAULT '{}',
    quiz_scores        jsonb NOT NULL DEFAULT '{}',
    time_spent_minutes integer NOT NULL DEFAULT 0,
    current_module_id  integer,
    current_lesson_id  integer,
    last_accessed_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- seed 000 §3
CREATE TABLE lms.lesson_progress (
    enrollment_id      integer NOT NULL REFERENCES lms.enrollments ON DELETE CASCADE,
    lesson_id          integer NOT NULL,
    student_id         integer NOT NULL,
    is_completed       boolean NOT NULL DEFAULT false,
    completed_at       timestamptz,
    time_spent_seconds integer NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enrollment_id, lesson_id)
);
CREATE TABLE lms.quiz_attempts (
    statement_id       uuid PRIMARY KEY,         -- one attempt per scored statement
    enrollment_id      integer NOT NULL REFERENCES lms.enrollments ON DELETE CASCADE,
    quiz_id            integer NOT NULL,
    student_id         integer NOT NULL,
    score              numeric(6, 2),            -- percent
    passed             boolean,
    time_taken_seconds integer,
    attempted_at       timestamptz NOT NULL
);
CREATE INDEX quiz_attempts_enrollment ON lms.quiz_attempts (enrollment_id, quiz_id);

-- The facts every rollup is computed from: one row per applied (not voided) statement that
-- concerns an enrollment. Its primary key makes applying a statement twice a no-op; a voided
-- statement's fact stays as a tombstone (retracted), so it cannot come back either.
CREATE TABLE lms.learning_facts (
    statement_id  uuid PRIMARY KEY,
    enrollment_id integer NOT NULL REFERENCES lms.enrollments ON DELETE CASCADE,
    module_id     integer,
    lesson_id     integer,
    quiz_id       integer,
    at            timestamptz NOT NULL,
    stored        timestamptz NOT NULL,
    seconds       double precision NOT NULL DEFAULT 0,
    completes     boolean NOT NULL DEFAULT false,  -- completes its lesson
    passed        boolean,                          -- quiz outcome when scored
    score         double precision,                 -- quiz score in percent
    retracted     boolean NOT NULL DEFAULT false    -- voided: kept so a re-sent copy is not counted again
);
CREATE INDEX learning_facts_enrollment ON lms.learning_facts (enrollment_id);
CREATE INDEX learning_facts_stored ON lms.learning_facts (stored);

-- Domain events (seed 002), written with the rollup change that caused them, then published
-- to Kafka lms.events by the worker.
CREATE TABLE lms.domain_events (
    id            uuid PRIMARY KEY,
    type          text NOT NULL,
    enrollment_id integer NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX domain_events_unpublished ON lms.domain_events (created_at) WHERE published_at IS NULL;

-- How far the progress sink got in each partition (see streams.position).
CREATE TABLE lms.sink_watermarks (
    sink      text NOT NULL,
    partition integer NOT NULL,
    position  text NOT NULL,
    epoch     text NOT NULL DEFAULT '',   -- relay epoch the position came from (see streams.envelope)
    updated   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, partition)
);
