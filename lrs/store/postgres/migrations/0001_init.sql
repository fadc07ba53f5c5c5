-- Statements: the document as stored plus precomputed lookup keys (see lrs.xapi.statements).
-- jsonb cannot hold the character U+0000; the rare statement with one keeps its exact text in
-- "exact" (served instead of "document", whose copy has U+FFFD in its place).
CREATE TABLE lrs_statements (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         uuid        NOT NULL,
    stored     timestamptz NOT NULL,
    document   jsonb       NOT NULL,
    exact      json,
    keys       text[]      NOT NULL,
    ref_target uuid,
    is_voiding boolean     NOT NULL DEFAULT false,
    voided     boolean     NOT NULL DEFAULT false,
    CONSTRAINT lrs_statements_id_key UNIQUE (id)
);
CREATE INDEX lrs_statements_stored ON lrs_statements (stored, seq);
CREATE INDEX lrs_statements_keys ON lrs_statements USING gin (keys);
CREATE INDEX lrs_statements_ref_target ON lrs_statements (ref_target) WHERE ref_target IS NOT NULL;

-- Attachment content, deduplicated by SHA-256.
CREATE TABLE lrs_attachments (
    sha2         text PRIMARY KEY,
    content_type text        NOT NULL,
    content      bytea       NOT NULL,
    created      timestamptz NOT NULL DEFAULT now()
);

-- Canonical activity definitions and verb displays (format=canonical, GET /activities).
CREATE TABLE lrs_activities (
    id         text PRIMARY KEY,
    definition jsonb       NOT NULL,
    updated    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE lrs_verbs (
    id      text PRIMARY KEY,
    display jsonb NOT NULL
);

-- Names seen per agent identity (the Person object of GET /agents).
CREATE TABLE lrs_agents (
    key   text PRIMARY KEY,
    names text[] NOT NULL
);

-- Language maps merge per language; other definition properties are replaced by newer ones.
CREATE FUNCTION lrs_merge_definition(old jsonb, new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT old || new
        || CASE WHEN old ? 'name' AND new ? 'name'
                THEN jsonb_build_object('name', (old -> 'name') || (new -> 'name')) ELSE '{}' END
        || CASE WHEN old ? 'description' AND new ? 'description'
                THEN jsonb_build_object('description', (old -> 'description') || (new -> 'description')) ELSE '{}' END
        || CASE WHEN old ? 'extensions' AND new ? 'extensions'
                THEN jsonb_build_object('extensions', (old -> 'extensions') || (new -> 'extensions')) ELSE '{}' END
$$;

-- State, activity profile and agent profile documents; '' where a key part does not apply.
CREATE TABLE lrs_documents (
    kind         smallint    NOT NULL,
    activity_id  text        NOT NULL,
    agent_key    text        NOT NULL,
    registration text        NOT NULL,
    doc_id       text        NOT NULL,
    content      bytea       NOT NULL,
    content_type text        NOT NULL,
    etag         text        NOT NULL,
    updated      timestamptz NOT NULL,
    PRIMARY KEY (kind, activity_id, agent_key, registration, doc_id)
);

CREATE TABLE lrs_credentials (
    key         text PRIMARY KEY,
    secret_hash text        NOT NULL,
    scopes      text[]      NOT NULL,
    name        text        NOT NULL,
    authority   jsonb       NOT NULL,
    created     timestamptz NOT NULL DEFAULT now(),
    revoked     timestamptz
);
