-- Learner erasure (issue 16, docs/data-rights.md).
--
-- lms.erasures is the audit record and holds no personal data: keyed hashes (HMAC-SHA256,
-- lrs.xapi.erasure.keyed_hash) of every identity key erased, when, by which credential, and the
-- counts per store. The sinks' write path drops statements of any hashed identity (statements
-- still in flight on Kafka); identities is what it reads.
CREATE TABLE lms.erasures (
    id           uuid PRIMARY KEY,
    subject      text NOT NULL,              -- keyed hash of the identifier the erasure was asked for
    identities   text[] NOT NULL,            -- keyed hashes of every identity key (and student id) erased
    requested_by text NOT NULL,              -- the credential's key
    requested_at timestamptz NOT NULL DEFAULT now(),
    sinks        text[] NOT NULL,            -- the sinks that must erase too (LRS_STREAM_SINKS)
    counts       jsonb NOT NULL DEFAULT '{}',  -- per store: what was removed
    completed_at timestamptz
);
CREATE INDEX erasures_subject ON lms.erasures (subject) WHERE completed_at IS NULL;

-- The work an erasure still has in the sinks, with what the sinks need to find the rows (identity
-- keys, student ids, statement ids, redacted statements): personal data, kept only until every
-- sink of the record has erased (then the row is deleted).
CREATE TABLE lms.erasure_tasks (
    erasure_id    uuid PRIMARY KEY REFERENCES lms.erasures ON DELETE CASCADE,
    identity_keys text[] NOT NULL,
    student_ids   integer[] NOT NULL,
    statement_ids text[] NOT NULL,
    redacted      jsonb NOT NULL DEFAULT '{}'   -- statement id -> the statement as kept
);

-- Which sinks have erased (a worker records each as it finishes).
CREATE TABLE lms.erasure_sinks (
    erasure_id uuid NOT NULL REFERENCES lms.erasures ON DELETE CASCADE,
    sink       text NOT NULL,
    counts     jsonb NOT NULL,
    done_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (erasure_id, sink)
);

-- The key of the keyed hashes when LRS_DATA_RIGHTS_SECRET is unset (generated once; set the
-- variable in production so that the key does not live beside the hashes).
CREATE TABLE lms.data_rights_secret (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    secret bytea NOT NULL
);

-- The sinks workers feed (each worker registers its own on start): an erasure waits for these.
CREATE TABLE lms.pipeline_sinks (
    sink          text PRIMARY KEY,
    registered_at timestamptz NOT NULL DEFAULT now()
);
