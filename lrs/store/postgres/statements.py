"""``StatementStore`` on PostgreSQL: JSONB documents, their lookup keys, and a key table.

Every filter of GET /statements is a set of lookup keys a statement must all have (``keys``).
``lrs_statement_keys`` (migration 0003) holds one row per statement and key value with the
statement's ``(stored, seq)``, indexed in that order per key, so a page of any filter walks an
index in stored order and stops after ``limit`` rows (``_query_sql``); ``(stored, seq)`` orders
results and positions cursors. ``stored`` is the database's
transaction time, which makes consistent-through exact: no statement can appear later with a
``stored`` earlier than the oldest open LRS transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

from lrs.xapi.formats import format_timestamp
from lrs.xapi.indexkeys import index_key
from lrs.xapi.statements import PreparedStatement

from ..batch import (
    CoalescedStatementWrites,
    Upserts,
    encode_cursor,
    inherit_keys,
    inheritable,
    parse_cursor,
    pending_upserts,
    settle,
    stamped,
    voided_in_batch,
)
from ..coalesce import Submission
from ..ports import (
    AttachmentContent,
    ErasedStatements,
    Rewrite,
    StatementPage,
    StatementQuery,
    StoredStatement,
)
from .pool import APPLICATION_NAME

# One round trip before inserting a group: the transaction time (becomes ``stored``), which of
# the ids exist already, and which are targets of stored statements (voiding ones, or any).
# (No LIMIT in these subqueries: before the table has statistics, a LIMIT tempts the planner
# into a sequential scan "to find the first row early", which never ends early when none match.)
_PREFLIGHT = """
SELECT now() AS now,
       ARRAY(SELECT id::text FROM lrs_statements WHERE id = ANY($1::uuid[])) AS existing,
       ARRAY(SELECT ref_target::text || CASE WHEN is_voiding THEN '/voided' ELSE '' END
             FROM lrs_statements WHERE ref_target = ANY($1::uuid[])) AS referred
"""

# One INSERT for a whole group, columns as parallel arrays. Keys travel joined by U+001F, which
# no key can contain (IRIs, mailto and UUIDs exclude control characters; account names are
# JSON-escaped inside their key).
_KEY_SEPARATOR = "\x1f"
# The key rows (migration 0003) of the statements an INSERT returns (seq, stored, keys): one per
# statement and key value, its kinds or-ed. The same rows as the migration's (lrs_key_hash,
# lrs_key_kind written out); the adapter adds them in the INSERT itself, which costs a fraction
# of a trigger doing it (a statement-level trigger costs about 0.3 ms per INSERT).
_KEY_ROWS = """
INSERT INTO lrs_statement_keys (hash, stored, seq, kinds)
SELECT ('x' || left(md5(substr(k, 3)), 16))::bit(64)::bigint, i.stored, i.seq,
       bit_or(CASE left(k, 2) WHEN 'a:' THEN 1 WHEN 'A:' THEN 2 WHEN 'v:' THEN 4 WHEN 'o:' THEN 8
              WHEN 'O:' THEN 16 WHEN 'r:' THEN 32 WHEN 'u:' THEN 64 ELSE 16384 END)::smallint
FROM inserted i, unnest(i.keys) AS k
GROUP BY i.seq, i.stored, 1
"""
_INSERT = f"""
WITH inserted AS (
    INSERT INTO lrs_statements (id, stored, document, exact, keys, ref_target, is_voiding, voided)
    SELECT id, $2, document, exact, string_to_array(keys, E'\\x1f'), ref_target, is_voiding, voided
    FROM unnest($1::uuid[], $3::jsonb[], $4::json[], $5::text[], $6::uuid[], $7::bool[], $8::bool[])
         AS t(id, document, exact, keys, ref_target, is_voiding, voided)
    RETURNING seq, stored, keys
)
{_KEY_ROWS}"""
# The plain path: stored (and a missing timestamp) set from the transaction time, and nothing
# inserted at all if any id exists already or is the target of a stored statement.
_INSERT_PLAIN = f"""
WITH stamp AS (
    SELECT to_jsonb(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) AS at
), blocked AS (  -- per id, so any plan is two index probes per id (see _PREFLIGHT on planners)
    SELECT FROM unnest($1::uuid[]) AS n(id)
    WHERE EXISTS (SELECT FROM lrs_statements s WHERE s.id = n.id)
       OR EXISTS (SELECT FROM lrs_statements s WHERE s.ref_target = n.id)
), inserted AS (
    INSERT INTO lrs_statements (id, stored, document, keys)
    SELECT t.id, now(),
           t.document || jsonb_build_object('stored', stamp.at)
               || CASE WHEN t.document ? 'timestamp' THEN '{{}}'::jsonb
                       ELSE jsonb_build_object('timestamp', stamp.at) END,
           string_to_array(t.keys, E'\\x1f')
    FROM unnest($1::uuid[], $2::jsonb[], $3::text[]) AS t(id, document, keys), stamp
    WHERE NOT EXISTS (SELECT FROM blocked)
    RETURNING seq, stored, keys
), indexed AS ({_KEY_ROWS})
SELECT count(*) FROM inserted
"""
_NUL = b"\\u0000"  # how orjson writes U+0000, which jsonb refuses


def _document_columns(raw: bytes) -> tuple[bytes, bytes | None]:
    """(jsonb copy, exact text or None): see the "exact" column in the migration."""
    if _NUL in raw:
        return raw.replace(_NUL, b"\\ufffd"), raw
    return raw, None


def _keyed(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """(id, value) pairs with the id replaced by its index key, the column these tables key by."""
    return [(index_key(i), value) for i, value in pairs]


def _encode_canonical(value: Any) -> bytes:
    """A canonical definition or display as jsonb accepts it (keys sorted, so equal ones compare equal)."""
    return _document_columns(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))[0]


_COLUMNS = "s.id::text, s.document, s.exact, s.stored, s.seq, s.voided"

# Kinds of lookup key that few statements share (an agent, an activity as object, a
# registration) and kinds that a large part of the store may share (a verb, a context activity
# such as a course, the authority's identity): see ``_query_sql``.
_NARROW_KINDS = ("r:", "a:", "o:", "A:")


def _query_sql(query: StatementQuery, snapshot: datetime) -> tuple[str, list[Any], bool]:
    """The SELECT for one page of ``query``, its arguments, and whether it wants merge joins
    (see migration 0003 on the access paths; the query pool plans without them otherwise).

    Without keys the page walks ``lrs_statements_stored``. With keys it walks
    ``lrs_statement_keys`` in (stored, seq) order: one alias per walked key, all bound to the
    same (stored, seq) and merge-joined when there are several (each index is read only over the
    time the others cover, and the walk stops after ``limit`` matches). The walked keys are the
    narrow ones of the query (agent, activity, registration), or its broad ones when it has no
    narrow key. Broad keys beside a narrow one are not walked: each row the narrow walks produce
    is probed for them, one index-only lookup each (merging a verb's million entries with an
    agent's thousand would read the verb's over the agent's whole time span). ``OFFSET 0``
    keeps a probe a per-row subplan, and it names the first and the last walked alias so that
    it runs on the merged rows, not on one walk's. The joins run in the order written (the
    query pool's ``join_collapse_limit`` is 1): the walks, then the statements of the rows that
    pass. ``keys @>`` re-checks every key, so a hash collision never returns a wrong statement.
    Every alias carries the stored bounds (the planner does not carry inequalities across a
    join).
    """
    args: list[Any] = [snapshot]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    keys = sorted(set(query.keys))
    walked = [k for k in keys if k[:2] in _NARROW_KINDS] or keys
    aliases = [f"k{i}" for i in range(len(walked))] or ["s"]
    bounds = ["{a}.stored <= $1"]  # (stored, seq) conditions, applied to every alias
    if query.since is not None:
        bounds.append(f"{{a}}.stored > {arg(query.since)}")
    if query.until is not None:
        bounds.append(f"{{a}}.stored <= {arg(query.until)}")
    if query.cursor:
        stored_at, seq = parse_cursor(query.cursor)
        cmp = ">" if query.ascending else "<"
        bounds.append(f"({{a}}.stored, {{a}}.seq) {cmp} ({arg(stored_at)}, {arg(seq)})")
    where = [bound.format(a=alias) for alias in aliases for bound in bounds]
    joins = []
    for alias, key in zip(aliases, walked, strict=False):
        k = arg(key)
        where.append(f"{alias}.hash = lrs_key_hash(substr({k}, 3))")
        where.append(f"{alias}.kinds & lrs_key_kind({k}) <> 0")
        if alias != "k0":
            joins.append(
                f"JOIN lrs_statement_keys {alias} ON {alias}.stored = k0.stored AND {alias}.seq = k0.seq"
            )
    for key in keys:
        if key not in walked:
            k = arg(key)
            where.append(
                f"EXISTS (SELECT FROM lrs_statement_keys b WHERE b.stored = {aliases[-1]}.stored AND b.seq = k0.seq"
                f" AND b.hash = lrs_key_hash(substr({k}, 3)) AND b.kinds & lrs_key_kind({k}) <> 0 OFFSET 0)"
            )
    if keys:
        joins.append("JOIN lrs_statements s ON s.seq = k0.seq AND s.stored = k0.stored")
        where.append(f"s.keys @> {arg(keys)}::text[]")
        source = "lrs_statement_keys k0"
    else:
        source = "lrs_statements s"
    if not query.voided:
        where.append("NOT s.voided")
    order = "ASC" if query.ascending else "DESC"
    sql = (
        f"SELECT {_COLUMNS} FROM {source} {' '.join(joins)} WHERE {' AND '.join(where)}"
        f" ORDER BY {aliases[0]}.stored {order}, {aliases[0]}.seq {order} LIMIT {arg(query.limit + 1)}"
    )
    return sql, args, len(walked) > 1


class PostgresStatementStore(CoalescedStatementWrites):
    def __init__(
        self,
        pool: asyncpg.Pool,
        query_pool: asyncpg.Pool | None = None,
        application_name: str = APPLICATION_NAME,
    ) -> None:
        self._pool = pool
        self._query_pool = query_pool or pool  # GET /statements queries (custom plans)
        self._application_name = application_name
        """The name this store's writers announce (a tenant's own: its consistent instant waits
        for its writers only)."""
        super().__init__()

    # --- writing ---------------------------------------------------------------------------------

    async def _write_group(self, group: list[Submission]) -> None:
        """Write a group of submissions (see ``WriteCoalescer``): in one INSERT when nothing in
        it needs more than that, otherwise in one transaction that settles each submission."""
        async with self._pool.acquire() as conn:
            if await self._insert_plain(conn, group):
                return
            for attempt in range(3):
                try:
                    applied: list[tuple] = []
                    async with conn.transaction():
                        await self._store_group(conn, group, applied)
                    for item in applied:  # only once committed: a rollback must not be cached
                        self._seen.add(item)
                    return
                except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
                    # another writer stored one of these ids between our check and insert (run
                    # again, now seeing it, so identical re-sends still succeed), or a deadlock
                    # on the shared canonical rows was broken by rolling us back: retry.
                    if attempt == 2:
                        raise

    async def _insert_plain(self, conn, group: list[Submission]) -> bool:
        """The common case in one statement, atomic on its own: new statements with no
        StatementRef, attachments, U+0000 or canonical data to record, and no stored statement
        sharing or referring to their ids (the INSERT checks that itself and inserts nothing
        otherwise). Returns whether it wrote the group; if not, the transactional path runs."""
        statements = [s for sub in group for s in sub.statements]
        ids = [s.id for s in statements]
        defining = [s for sub in group if sub.define for s in sub.statements]
        if (
            any(sub.attachments for sub in group)
            or any(s.ref_target for s in statements)
            or len(set(ids)) != len(ids)
            or self._pending(statements, defining)
        ):
            return False
        documents = [orjson.dumps(s.document) for s in statements]
        if any(_NUL in d for d in documents):
            return False
        keys = [_KEY_SEPARATOR.join(sorted(s.keys)) for s in statements]
        try:
            inserted = await conn.fetchval(_INSERT_PLAIN, ids, documents, keys)
        except asyncpg.UniqueViolationError:  # a concurrent writer took an id: settle it properly
            return False
        if inserted != len(statements):
            return False
        for sub in group:
            sub.error = None
        return True

    async def _store_group(self, conn, group: list[Submission], applied: list[tuple]) -> None:
        ids = [s.id for sub in group for s in sub.statements]
        pre = await conn.fetchrow(_PREFLIGHT, ids)
        now: datetime = pre["now"]
        stored_docs: dict[str, dict] = {}
        if pre["existing"]:
            rows = await conn.fetch(
                "SELECT id::text, document, exact FROM lrs_statements WHERE id = ANY($1::uuid[])",
                pre["existing"],
            )
            stored_docs = {r["id"]: orjson.loads(r["exact"] or r["document"]) for r in rows}
        statements, attachments, defining = settle(group, stored_docs)
        if not statements:
            return
        stored = format_timestamp(now)
        await self._inherit_ref_keys(conn, statements)
        voided, outside_targets = voided_in_batch(statements)
        voided |= {r.removesuffix("/voided") for r in pre["referred"] if r.endswith("/voided")}
        has_referrers = bool(pre["referred"])
        documents, exacts = [], []
        for s in statements:
            document, exact = _document_columns(orjson.dumps(stamped(s.document, stored)))
            documents.append(document)
            exacts.append(exact)
        await conn.execute(
            _INSERT,
            [s.id for s in statements],
            now,
            documents,
            exacts,
            [_KEY_SEPARATOR.join(sorted(s.keys)) for s in statements],
            [s.ref_target for s in statements],
            [s.is_voiding for s in statements],
            [s.id in voided and not s.is_voiding for s in statements],
        )
        if outside_targets:
            await conn.execute(
                "UPDATE lrs_statements SET voided = true WHERE id = ANY($1::uuid[]) AND NOT is_voiding",
                outside_targets,
            )
        if has_referrers:
            await self._propagate_to_referrers(conn, statements)
        if attachments:
            await conn.executemany(
                "INSERT INTO lrs_attachments (sha2, content_type, content) VALUES ($1, $2, $3)"
                " ON CONFLICT (sha2) DO NOTHING",
                sorted({(a.sha2, a.content_type, a.content) for a in attachments}),
            )
        await self._apply(conn, self._pending(statements, defining), applied)

    async def _inherit_ref_keys(self, conn, statements: list[PreparedStatement]) -> None:
        """Statements whose object is a StatementRef match filters their target matches."""
        in_batch = {s.id for s in statements}
        outside = [s.ref_target for s in statements if s.ref_target and s.ref_target not in in_batch]
        target_keys: dict[str, set[str]] = {}
        if outside:
            for row in await conn.fetch(
                "SELECT id::text, keys FROM lrs_statements WHERE id = ANY($1::uuid[])", outside
            ):
                target_keys[row["id"]] = set(row["keys"])
        inherit_keys(statements, target_keys)

    async def _propagate_to_referrers(self, conn, statements: list[PreparedStatement]) -> None:
        """A target arrived after statements referring to it: they inherit its keys now."""
        frontier = {s.id: inheritable(s.keys) for s in statements}
        while frontier:
            rows = await conn.fetch(
                "SELECT seq, id::text, ref_target::text, keys FROM lrs_statements"
                " WHERE ref_target = ANY($1::uuid[]) FOR UPDATE",
                list(frontier),
            )
            updates, next_frontier = [], {}
            for row in rows:
                keys = set(row["keys"])
                merged = keys | frontier[row["ref_target"]]
                if merged != keys:
                    updates.append((row["seq"], sorted(merged)))
                    next_frontier[row["id"]] = inheritable(merged)
            if updates:
                await conn.executemany("UPDATE lrs_statements SET keys = $2 WHERE seq = $1", updates)
            frontier = next_frontier

    def _pending(self, statements: list[PreparedStatement], defining: list[PreparedStatement]) -> Upserts:
        return pending_upserts(self._seen, statements, defining, _encode_canonical)

    async def _apply(self, conn, upserts: Upserts, applied: list[tuple]) -> None:
        """Agent names and canonical definitions, keyed by the index keys of their ids."""
        if upserts.names:
            await conn.executemany(
                "INSERT INTO lrs_agents (key, names) VALUES ($1, ARRAY[$2::text]) ON CONFLICT (key) DO UPDATE"
                " SET names = lrs_agents.names || $2::text WHERE NOT $2::text = ANY(lrs_agents.names)",
                _keyed(upserts.names),
            )
        if upserts.activities:
            await conn.executemany(
                "INSERT INTO lrs_activities AS a (id, definition) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE"
                " SET definition = lrs_merge_definition(a.definition, EXCLUDED.definition), updated = now()",
                _keyed(upserts.activities),
            )
        if upserts.verbs:
            await conn.executemany(
                "INSERT INTO lrs_verbs AS v (id, display) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE"
                " SET display = v.display || EXCLUDED.display",
                _keyed(upserts.verbs),
            )
        applied.extend(upserts.applied())

    # --- reading ---------------------------------------------------------------------------------

    async def get(self, statement_id: str) -> StoredStatement | None:
        row = await self._pool.fetchrow(
            "SELECT id::text, document, exact, stored, voided FROM lrs_statements WHERE id = $1::uuid",
            statement_id,
        )
        if row is None:
            return None
        return StoredStatement(row["id"], row["exact"] or row["document"], row["stored"], row["voided"])

    async def existing(self, statement_ids: list[str]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT id::text FROM lrs_statements WHERE id = ANY($1::uuid[])", statement_ids
        )
        return {r["id"] for r in rows}

    async def query(self, query: StatementQuery) -> StatementPage:
        snapshot = query.snapshot or await self._query_pool.fetchval("SELECT now()")
        sql, args, merge = _query_sql(query, snapshot)
        if merge:
            async with self._query_pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL enable_mergejoin = on")
                rows = await conn.fetch(sql, *args)
        else:
            rows = await self._query_pool.fetch(sql, *args)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = encode_cursor(rows[-1]["stored"], rows[-1]["seq"]) if more else None
        return StatementPage(
            [StoredStatement(r["id"], r["exact"] or r["document"], r["stored"], r["voided"]) for r in rows],
            cursor,
            snapshot,
        )

    async def attachments(self, sha2s: list[str]) -> list[AttachmentContent]:
        rows = await self._pool.fetch(
            "SELECT sha2, content_type, content FROM lrs_attachments WHERE sha2 = ANY($1::text[])", sha2s
        )
        return [AttachmentContent(r["sha2"], r["content_type"], r["content"]) for r in rows]

    async def consistent_through(self) -> datetime:
        return await self._pool.fetchval(
            "SELECT coalesce(min(xact_start), now()) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $1 AND xact_start IS NOT NULL",
            self._application_name,
        )

    async def activity_definition(self, activity_id: str) -> dict[str, Any] | None:
        raw = await self._pool.fetchval(
            "SELECT definition FROM lrs_activities WHERE id = $1", index_key(activity_id)
        )
        return None if raw is None else orjson.loads(raw)

    async def canonical(self, activity_ids: list[str], verb_ids: list[str]) -> tuple[dict, dict]:
        activities = await self._by_id("SELECT id, definition FROM lrs_activities", activity_ids)
        verbs = await self._by_id("SELECT id, display FROM lrs_verbs", verb_ids)
        return activities, verbs

    async def _by_id(self, select: str, ids: list[str]) -> dict[str, Any]:
        """The rows of ``select`` (key, JSON) with these ids, keyed by the ids as given."""
        keys = {index_key(i): i for i in ids}
        rows = await self._pool.fetch(f"{select} WHERE id = ANY($1::text[])", list(keys))
        return {keys[r[0]]: orjson.loads(r[1]) for r in rows}

    async def agent_names(self, key: str) -> list[str]:
        names = await self._pool.fetchval("SELECT names FROM lrs_agents WHERE key = $1", index_key(key))
        return list(names or [])

    # --- erasure (docs/data-rights.md) -----------------------------------------------------------

    async def erase(
        self, delete: list[str], rewrite: list[Rewrite], agent_keys: list[str]
    ) -> ErasedStatements:
        """One transaction: the statements, their attachments no statement still refers to, the
        redactions and the recorded names (``lrs_statement_keys`` follows by its triggers)."""
        erased = ErasedStatements()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM lrs_statements WHERE id = ANY($1::uuid[]) RETURNING ARRAY(SELECT a ->> 'sha2'"
                " FROM jsonb_array_elements(CASE WHEN jsonb_typeof(document -> 'attachments') = 'array'"
                " THEN document -> 'attachments' ELSE '[]' END) a) AS sha2s",
                delete,
            )
            erased.statements = len(rows)
            for r in rewrite:
                document, exact = _document_columns(r.document)
                done = await conn.execute(
                    "UPDATE lrs_statements SET document = $2, exact = $3, keys = $4 WHERE id = $1::uuid",
                    r.id, document, exact, sorted(r.keys),
                )  # fmt: skip
                erased.redacted += int(done.split()[-1])
            sha2s = sorted({s for row in rows for s in row["sha2s"] if s})
            if sha2s:
                gone = await conn.execute(
                    "DELETE FROM lrs_attachments a WHERE a.sha2 = ANY($1::text[]) AND NOT EXISTS ("
                    " SELECT FROM lrs_statements s WHERE s.document -> 'attachments'"
                    " @> jsonb_build_array(jsonb_build_object('sha2', a.sha2)))",
                    sha2s,
                )
                erased.attachments = int(gone.split()[-1])
            if agent_keys:
                gone = await conn.execute(
                    "DELETE FROM lrs_agents WHERE key = ANY($1::text[])", [index_key(k) for k in agent_keys]
                )
                erased.agent_names = int(gone.split()[-1])
        self._seen = type(self._seen)()  # names cached as recorded are recorded again if they come back
        return erased
