-- Top-N access paths (issue 14): every GET /statements filter walks an index in (stored, seq)
-- order and stops after `limit` rows, instead of collecting every match through the GIN index on
-- `keys` and sorting them.
--
-- lrs_statement_keys holds one row per (statement, distinct key value): the value's 64-bit hash,
-- the statement's (stored, seq), and `kinds`, a bit set of the kinds the value has in this
-- statement (an actor is both 'a:' and 'A:', an object activity 'o:' and 'O:', so one row serves
-- both). Its btree (hash, stored, seq) INCLUDE (kinds) gives, for one key, its statements in
-- stored order in either direction, and answers "does statement (stored, seq) have this key"
-- with one index-only probe (the other keys of a combined filter). `keys` on lrs_statements stays
-- the truth: queries re-check it, so a hash collision can never return a wrong statement.
--
-- The statement store's INSERTs add the key rows of the statements they insert, in the same SQL
-- statement (lrs/store/postgres/statements.py, _KEY_ROWS: the same rows as the fill below; a
-- statement-level insert trigger did the same at about 0.3 ms more per INSERT). Triggers keep the
-- table in step with every other change to lrs_statements: key inheritance through StatementRef
-- updates, deletes, truncation.

CREATE FUNCTION lrs_key_hash(value text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || left(md5(value), 16))::bit(64)::bigint
$$;

-- The kind bit of a lookup key (see lrs.xapi.statements for the prefixes); an unknown prefix
-- gets a bit of its own, so its keys still index (and the re-check keeps them exact).
CREATE FUNCTION lrs_key_kind(key text) RETURNS smallint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (CASE left(key, 2)
                WHEN 'a:' THEN 1 WHEN 'A:' THEN 2 WHEN 'v:' THEN 4 WHEN 'o:' THEN 8
                WHEN 'O:' THEN 16 WHEN 'r:' THEN 32 WHEN 'u:' THEN 64 ELSE 16384 END)::smallint
$$;

CREATE TABLE lrs_statement_keys (
    hash   bigint      NOT NULL,
    stored timestamptz NOT NULL,
    seq    bigint      NOT NULL,
    kinds  smallint    NOT NULL
);

-- The bulk paths (this fill, the store's INSERTs) write lrs_key_hash and lrs_key_kind out instead
-- of calling them: called per key inside an aggregate they cost ten times the rest of the insert.
-- (Grouped per statement, so filling a store of any size needs no big sort.)
INSERT INTO lrs_statement_keys (hash, stored, seq, kinds)
SELECT x.hash, s.stored, s.seq, x.kinds
FROM lrs_statements s
CROSS JOIN LATERAL (
    SELECT ('x' || left(md5(substr(k, 3)), 16))::bit(64)::bigint AS hash,
           bit_or(CASE left(k, 2) WHEN 'a:' THEN 1 WHEN 'A:' THEN 2 WHEN 'v:' THEN 4 WHEN 'o:' THEN 8
                  WHEN 'O:' THEN 16 WHEN 'r:' THEN 32 WHEN 'u:' THEN 64 ELSE 16384 END)::smallint AS kinds
    FROM unnest(s.keys) AS k GROUP BY 1
) x;

CREATE INDEX lrs_statement_keys_lookup ON lrs_statement_keys (hash, stored, seq) INCLUDE (kinds);
DROP INDEX lrs_statements_keys;

-- Only rows whose keys changed are re-indexed (voiding updates leave keys alone).
CREATE FUNCTION lrs_statement_keys_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lrs_statement_keys k
    USING lrs_old o JOIN lrs_new n ON n.seq = o.seq
    WHERE n.keys IS DISTINCT FROM o.keys
      AND k.hash = ANY(ARRAY(SELECT lrs_key_hash(substr(x, 3)) FROM unnest(o.keys) AS x))
      AND k.stored = o.stored AND k.seq = o.seq;
    INSERT INTO lrs_statement_keys (hash, stored, seq, kinds)
    SELECT x.hash, n.stored, n.seq, x.kinds
    FROM lrs_old o JOIN lrs_new n ON n.seq = o.seq
    CROSS JOIN LATERAL (
        SELECT lrs_key_hash(substr(k, 3)) AS hash, bit_or(lrs_key_kind(k))::smallint AS kinds
        FROM unnest(n.keys) AS k GROUP BY 1
    ) x
    WHERE n.keys IS DISTINCT FROM o.keys;
    RETURN NULL;
END
$$;

CREATE FUNCTION lrs_statement_keys_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lrs_statement_keys k
    USING lrs_old o
    WHERE k.hash = ANY(ARRAY(SELECT lrs_key_hash(substr(x, 3)) FROM unnest(o.keys) AS x))
      AND k.stored = o.stored AND k.seq = o.seq;
    RETURN NULL;
END
$$;

CREATE FUNCTION lrs_statement_keys_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE lrs_statement_keys;
    RETURN NULL;
END
$$;

CREATE TRIGGER lrs_statement_keys_updated AFTER UPDATE ON lrs_statements
    REFERENCING OLD TABLE AS lrs_old NEW TABLE AS lrs_new
    FOR EACH STATEMENT EXECUTE FUNCTION lrs_statement_keys_updated();
CREATE TRIGGER lrs_statement_keys_deleted AFTER DELETE ON lrs_statements
    REFERENCING OLD TABLE AS lrs_old FOR EACH STATEMENT EXECUTE FUNCTION lrs_statement_keys_deleted();
CREATE TRIGGER lrs_statement_keys_truncated AFTER TRUNCATE ON lrs_statements
    FOR EACH STATEMENT EXECUTE FUNCTION lrs_statement_keys_truncated();

-- Disk: documents (and keys) are compressed in the row rather than stored as written. MAIN
-- storage compresses a value once the row passes toast_tuple_target but moves it out of line
-- only when the row would not fit a page otherwise, so a statement stays one heap tuple.
ALTER TABLE lrs_statements ALTER COLUMN document SET STORAGE MAIN;
ALTER TABLE lrs_statements ALTER COLUMN keys SET STORAGE MAIN;
ALTER TABLE lrs_statements SET (toast_tuple_target = 128);
