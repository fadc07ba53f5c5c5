-- Index keys of bounded width (lrs/xapi/indexkeys.py): an identifier longer than 256 bytes, or
-- one starting with '#sha256:', is indexed as '#sha256:' || its SHA-256 in hex, so no index entry
-- can outgrow PostgreSQL's limit (about 2.7 KB) whatever IRI, mbox or document id a client sends.
-- lrs_index_key is index_key() in SQL; this migration rewrites the rows stored before it.
CREATE FUNCTION lrs_index_key(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN octet_length(value) <= 256 AND left(value, 8) <> '#sha256:' THEN value
                ELSE '#sha256:' || encode(sha256(convert_to(value, 'UTF8')), 'hex') END
$$;

-- A statement lookup key keeps its two-character kind ('v:', 'a:' …); its value is bounded.
CREATE FUNCTION lrs_lookup_key(key text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT left(key, 2) || lrs_index_key(substr(key, 3))
$$;

UPDATE lrs_statements
SET keys = ARRAY(SELECT lrs_lookup_key(k) FROM unnest(keys) WITH ORDINALITY AS t(k, i) ORDER BY i)
WHERE EXISTS (SELECT FROM unnest(keys) AS k WHERE lrs_lookup_key(k) <> k);

-- Canonical definitions, verb displays and agent names are looked up by their key only.
UPDATE lrs_activities SET id = lrs_index_key(id) WHERE lrs_index_key(id) <> id;
UPDATE lrs_verbs SET id = lrs_index_key(id) WHERE lrs_index_key(id) <> id;
UPDATE lrs_agents SET key = lrs_index_key(key) WHERE lrs_index_key(key) <> key;

-- Documents: the scope's activity and agent become keys; doc_id keeps the full id (GET of the
-- ids lists it) and doc_key, its index key, takes its place in the primary key.
ALTER TABLE lrs_documents ADD COLUMN doc_key text;
UPDATE lrs_documents
SET doc_key = lrs_index_key(doc_id),
    activity_id = lrs_index_key(activity_id),
    agent_key = lrs_index_key(agent_key);
ALTER TABLE lrs_documents ALTER COLUMN doc_key SET NOT NULL;
ALTER TABLE lrs_documents DROP CONSTRAINT lrs_documents_pkey;
ALTER TABLE lrs_documents ADD PRIMARY KEY (kind, activity_id, agent_key, registration, doc_key);
