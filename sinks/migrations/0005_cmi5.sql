-- cmi5 (issue 18): imported course structures, registrations, launch sessions and what the LMS
-- knows of each AU in a registration. The catalog rows (lms.courses / modules / lessons) the
-- import writes are the pipeline's; these tables are the LMS's launch side (lrs.usecases.cmi5).

CREATE TABLE lms.cmi5_courses (
    course_id    integer PRIMARY KEY REFERENCES lms.courses ON DELETE CASCADE,
    publisher_id text NOT NULL UNIQUE,
    activity_id  text NOT NULL,
    title        text NOT NULL DEFAULT '',
    -- every AU with the publisher ids of the blocks around it (outermost first), and each block's
    -- activity id: what block and course satisfaction is judged on
    members      jsonb NOT NULL,
    blocks       jsonb NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lms.cmi5_aus (
    lesson_id         integer PRIMARY KEY,
    course_id         integer NOT NULL REFERENCES lms.cmi5_courses ON DELETE CASCADE,
    publisher_id      text NOT NULL,
    activity_id       text NOT NULL UNIQUE,
    title             text NOT NULL DEFAULT '',
    url               text NOT NULL,
    launch_method     text NOT NULL,
    move_on           text NOT NULL,
    mastery_score     double precision,
    launch_parameters text,
    entitlement_key   text,
    activity_type     text,
    UNIQUE (course_id, publisher_id)
);

-- blocks that directly hold AUs are catalog modules
CREATE TABLE lms.cmi5_blocks (
    module_id    integer PRIMARY KEY,
    course_id    integer NOT NULL REFERENCES lms.cmi5_courses ON DELETE CASCADE,
    publisher_id text NOT NULL,
    UNIQUE (course_id, publisher_id)
);

-- the files of a zip package, served to launched AUs (relative AU urls)
CREATE TABLE lms.cmi5_files (
    course_id integer NOT NULL REFERENCES lms.cmi5_courses ON DELETE CASCADE,
    path      text NOT NULL,
    content   bytea NOT NULL,
    PRIMARY KEY (course_id, path)
);

CREATE TABLE lms.cmi5_registrations (
    registration uuid PRIMARY KEY,
    course_id    integer NOT NULL REFERENCES lms.cmi5_courses ON DELETE CASCADE,
    student_id   integer NOT NULL,
    actor        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (course_id, student_id)
);

-- what the registration's statements said of each AU (completed, passed, waived)
CREATE TABLE lms.cmi5_au_status (
    registration uuid NOT NULL REFERENCES lms.cmi5_registrations ON DELETE CASCADE,
    lesson_id    integer NOT NULL,
    completed    boolean NOT NULL DEFAULT false,
    passed       boolean NOT NULL DEFAULT false,
    waived       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (registration, lesson_id)
);

-- blocks and the course the LMS issued satisfied for (once per registration)
CREATE TABLE lms.cmi5_satisfied (
    registration uuid NOT NULL REFERENCES lms.cmi5_registrations ON DELETE CASCADE,
    publisher_id text NOT NULL,
    statement_id uuid NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (registration, publisher_id)
);

CREATE TABLE lms.cmi5_sessions (
    session_id    uuid PRIMARY KEY,
    registration  uuid NOT NULL REFERENCES lms.cmi5_registrations ON DELETE CASCADE,
    lesson_id     integer NOT NULL,
    launch_mode   text NOT NULL,
    return_url    text,
    launch_url    text NOT NULL,
    fetch_hash    bytea NOT NULL UNIQUE,
    fetch_expires timestamptz NOT NULL,
    fetched_at    timestamptz,
    token_key     text UNIQUE,
    token_hash    bytea,
    launched_at   timestamptz NOT NULL,
    last_at       timestamptz NOT NULL,
    verbs         text[] NOT NULL DEFAULT '{}',
    ended_at      timestamptz,
    ended_by      text CHECK (ended_by IN ('terminated', 'abandoned'))
);
CREATE INDEX cmi5_sessions_open ON lms.cmi5_sessions (last_at) WHERE ended_at IS NULL;
CREATE INDEX cmi5_sessions_registration ON lms.cmi5_sessions (registration);
