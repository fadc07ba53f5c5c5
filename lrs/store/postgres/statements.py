"""``StatementStore`` on PostgreSQL: JSONB documents plus one GIN-indexed array of lookup keys.

Every filter of GET /statements is a containment test on ``keys`` (``keys @> ARRAY[...]``),
so one inverted index answers any combination of agent, verb, activity and registration, and
``(stored, seq)`` orders results and positions cursors. ``stored`` is the database's
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
from ..ports import AttachmentContent, StatementPage, StatementQuery, StoredStatement
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
_INSERT = """
INSERT INTO lrs_statements (id, stored, document, exact, keys, ref_target, is_voiding, voided)
SELECT id, $2, document, exact, string_to_array(keys, E'\\x1f'), ref_target, is_voiding, voided
FROM unnest($1::uuid[], $3::jsonb[], $4::json[], $5::text[], $6::uuid[], $7::bool[], $8::bool[])
     AS t(id, document, exact, keys, ref_target, is_voiding, voided)
"""
# The plain path: stored (and a missing timestamp) set from the transaction time, and nothing
# inserted at all if any id exists already or is the target of a stored statement.
_INSERT_PLAIN = """
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
               || CASE WHEN t.document ? 'timestamp' THEN '{}'::jsonb
                       ELSE jsonb_build_object('timestamp', stamp.at) END,
           string_to_array(t.keys, E'\\x1f')
    FROM unnest($1::uuid[], $2::jsonb[], $3::text[]) AS t(id, document, keys), stamp
    WHERE NOT EXISTS (SELECT FROM blocked)
    RETURNING 1
)
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


class PostgresStatementStore(CoalescedStatementWrites):
    def __init__(self, pool: asyncpg.Pool, query_pool: asyncpg.Pool | None = None) -> None:
        self._pool = pool
        self._query_pool = query_pool or pool  # GET /statements queries (custom plans)
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

    async def query(self, query: StatementQuery) -> StatementPage:
        snapshot = query.snapshot or await self._query_pool.fetchval("SELECT now()")
        where = ["NOT voided", "stored <= $1"]
        args: list[Any] = [snapshot]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.keys:
            where.append(f"keys @> {arg(sorted(set(query.keys)))}::text[]")
        if query.since is not None:
            where.append(f"stored > {arg(query.since)}")
        if query.until is not None:
            where.append(f"stored <= {arg(query.until)}")
        if query.cursor:
            stored_at, seq = parse_cursor(query.cursor)
            cmp = ">" if query.ascending else "<"
            where.append(f"(stored, seq) {cmp} ({arg(stored_at)}, {arg(seq)})")
        order = "ASC" if query.ascending else "DESC"
        sql = (
            f"SELECT id::text, document, exact, stored, seq FROM lrs_statements WHERE {' AND '.join(where)}"
            f" ORDER BY stored {order}, seq {order} LIMIT {arg(query.limit + 1)}"
        )
        rows = await self._query_pool.fetch(sql, *args)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = encode_cursor(rows[-1]["stored"], rows[-1]["seq"]) if more else None
        return StatementPage(
            [StoredStatement(r["id"], r["exact"] or r["document"], r["stored"], False) for r in rows],
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
            APPLICATION_NAME,
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
