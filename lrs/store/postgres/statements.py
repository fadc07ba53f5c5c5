"""``StatementStore`` on PostgreSQL: JSONB documents plus one GIN-indexed array of lookup keys.

Every filter of GET /statements is a containment test on ``keys`` (``keys @> ARRAY[...]``),
so one inverted index answers any combination of agent, verb, activity and registration, and
``(stored, seq)`` orders results and positions cursors. ``stored`` is the database's
transaction time, which makes consistent-through exact: no statement can appear later with a
``stored`` earlier than the oldest open LRS transaction.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import asyncpg
import orjson

from lrs.xapi.formats import format_timestamp
from lrs.xapi.statements import INHERITED_PREFIXES, PreparedStatement

from ..coalesce import Submission, WriteCoalescer
from ..ports import (
    AttachmentContent,
    ConflictError,
    InvalidCursor,
    SameStatement,
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


def _parse_cursor(cursor: str) -> tuple[datetime, int]:
    stored_text, sep, seq_text = cursor.partition("/")
    try:
        stored_at, seq = datetime.fromisoformat(stored_text), int(seq_text)
        if not sep or stored_at.tzinfo is None or not 0 < seq < 2**63:
            raise ValueError(cursor)
        return stored_at.astimezone(timezone.utc), seq
    except (ValueError, OverflowError):
        raise InvalidCursor(cursor) from None


def _inheritable(keys: set[str] | list[str]) -> set[str]:
    return {k for k in keys if k.startswith(INHERITED_PREFIXES)}


@dataclass(slots=True)
class _Upserts:
    names: list[tuple[str, str]]
    activities: list[tuple[str, bytes]]
    verbs: list[tuple[str, bytes]]

    def __bool__(self) -> bool:
        return bool(self.names or self.activities or self.verbs)


class _SeenCache:
    """A bounded set of recently applied upserts (tag, id, payload), to skip repeating them."""

    def __init__(self, size: int = 50_000) -> None:
        self._items: OrderedDict[tuple, None] = OrderedDict()
        self._size = size

    def __contains__(self, item: tuple) -> bool:
        if item in self._items:
            self._items.move_to_end(item)
            return True
        return False

    def add(self, item: tuple) -> None:
        self._items[item] = None
        if len(self._items) > self._size:
            self._items.popitem(last=False)


class PostgresStatementStore:
    def __init__(self, pool: asyncpg.Pool, query_pool: asyncpg.Pool | None = None) -> None:
        self._pool = pool
        self._query_pool = query_pool or pool  # GET /statements queries (custom plans)
        self._seen = _SeenCache()  # canonical definitions and agent names already applied
        self._coalescer = WriteCoalescer(self._write_group)

    # --- writing ---------------------------------------------------------------------------------

    async def store(
        self,
        statements: list[PreparedStatement],
        attachments: list[AttachmentContent],
        same: SameStatement,
        define: bool,
    ) -> None:
        await self._coalescer.submit(Submission(statements, attachments, same, define))

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
        statements, attachments, defining = self._settle(group, stored_docs)
        if not statements:
            return
        stored = format_timestamp(now)
        await self._inherit_ref_keys(conn, statements)
        by_id = {s.id: s for s in statements}
        voided = {r.removesuffix("/voided") for r in pre["referred"] if r.endswith("/voided")}
        has_referrers = bool(pre["referred"])
        outside_targets = []
        for s in statements:
            if s.is_voiding and s.ref_target:
                if s.ref_target in by_id:
                    if not by_id[s.ref_target].is_voiding:
                        voided.add(s.ref_target)
                else:
                    outside_targets.append(s.ref_target)
        documents, exacts = [], []
        for s in statements:
            doc = s.document
            doc["stored"] = stored
            doc.setdefault("timestamp", stored)
            document, exact = _document_columns(orjson.dumps(doc))
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

    @staticmethod
    def _settle(group: list[Submission], stored_docs: dict[str, dict]):
        """Decide each submission: conflicting ones fail alone, identical re-sends are dropped."""
        accepted: dict[str, PreparedStatement] = {}
        attachments: list[AttachmentContent] = []
        defining: list[PreparedStatement] = []
        for sub in group:
            sub.error = None
            keep = []
            for s in sub.statements:
                earlier = stored_docs.get(s.id) or (accepted[s.id].document if s.id in accepted else None)
                if earlier is None:
                    keep.append(s)
                elif not sub.same(earlier, s.document):
                    sub.error = ConflictError(s.id)
                    break
            if sub.error is not None:
                continue
            accepted.update((s.id, s) for s in keep)
            attachments.extend(sub.attachments)
            if sub.define:
                defining.extend(keep)
        return list(accepted.values()), attachments, defining

    async def _inherit_ref_keys(self, conn, statements: list[PreparedStatement]) -> None:
        """Statements whose object is a StatementRef match filters their target matches."""
        referring = [s for s in statements if s.ref_target]
        if not referring:
            return
        in_batch = {s.id: s for s in statements}
        outside = [s.ref_target for s in referring if s.ref_target not in in_batch]
        target_keys: dict[str, set[str]] = {}
        if outside:
            for row in await conn.fetch(
                "SELECT id::text, keys FROM lrs_statements WHERE id = ANY($1::uuid[])", outside
            ):
                target_keys[row["id"]] = _inheritable(row["keys"])
        changed = True
        while changed:  # chains inside one batch resolve in a few rounds; keys only grow
            changed = False
            for s in referring:
                target = in_batch.get(s.ref_target)
                inherited = _inheritable(target.keys) if target else target_keys.get(s.ref_target, set())
                if not inherited <= s.keys:
                    s.keys |= inherited
                    changed = True

    async def _propagate_to_referrers(self, conn, statements: list[PreparedStatement]) -> None:
        """A target arrived after statements referring to it: they inherit its keys now."""
        frontier = {s.id: _inheritable(s.keys) for s in statements}
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
                    next_frontier[row["id"]] = _inheritable(merged)
            if updates:
                await conn.executemany("UPDATE lrs_statements SET keys = $2 WHERE seq = $1", updates)
            frontier = next_frontier

    def _pending(self, statements: list[PreparedStatement], defining: list[PreparedStatement]) -> _Upserts:
        """Agent names and canonical definitions these statements add (not yet applied here).

        Sorted by key: concurrent writers then lock shared rows in one order and cannot deadlock
        (the sort is stable, so several definitions of one activity keep their batch order).
        """

        def fresh(tag: str, pairs) -> list[tuple[str, bytes]]:
            items = (
                (i, _document_columns(orjson.dumps(v, option=orjson.OPT_SORT_KEYS))[0]) for i, v in pairs
            )
            return sorted(dict.fromkeys(i for i in items if (tag, *i) not in self._seen), key=lambda i: i[0])

        names = sorted(
            {p for s in statements for p in s.names if "\x00" not in p[1] and ("name", *p) not in self._seen}
        )
        activities = fresh("def", (d for s in defining for d in s.definitions))
        verbs = fresh("def", ((s.document["verb"]["id"], s.document["verb"]["display"])
                              for s in defining if "display" in s.document["verb"]))  # fmt: skip
        return _Upserts(names, activities, verbs)

    async def _apply(self, conn, upserts: _Upserts, applied: list[tuple]) -> None:
        if upserts.names:
            await conn.executemany(
                "INSERT INTO lrs_agents (key, names) VALUES ($1, ARRAY[$2::text]) ON CONFLICT (key) DO UPDATE"
                " SET names = lrs_agents.names || $2::text WHERE NOT $2::text = ANY(lrs_agents.names)",
                upserts.names,
            )
        if upserts.activities:
            await conn.executemany(
                "INSERT INTO lrs_activities AS a (id, definition) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE"
                " SET definition = lrs_merge_definition(a.definition, EXCLUDED.definition), updated = now()",
                upserts.activities,
            )
        if upserts.verbs:
            await conn.executemany(
                "INSERT INTO lrs_verbs AS v (id, display) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE"
                " SET display = v.display || EXCLUDED.display",
                upserts.verbs,
            )
        applied.extend(("name", *pair) for pair in upserts.names)
        applied.extend(("def", *item) for item in (*upserts.activities, *upserts.verbs))

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
            stored_at, seq = _parse_cursor(query.cursor)
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
        cursor = f"{rows[-1]['stored'].isoformat()}/{rows[-1]['seq']}" if more else None
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
        raw = await self._pool.fetchval("SELECT definition FROM lrs_activities WHERE id = $1", activity_id)
        return None if raw is None else orjson.loads(raw)

    async def canonical(self, activity_ids: list[str], verb_ids: list[str]) -> tuple[dict, dict]:
        activities = await self._pool.fetch(
            "SELECT id, definition FROM lrs_activities WHERE id = ANY($1::text[])", activity_ids
        )
        verbs = await self._pool.fetch(
            "SELECT id, display FROM lrs_verbs WHERE id = ANY($1::text[])", verb_ids
        )
        return (
            {r["id"]: orjson.loads(r["definition"]) for r in activities},
            {r["id"]: orjson.loads(r["display"]) for r in verbs},
        )

    async def agent_names(self, key: str) -> list[str]:
        return list(await self._pool.fetchval("SELECT names FROM lrs_agents WHERE key = $1", key) or [])
