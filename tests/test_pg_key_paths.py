"""PostgreSQL key paths (migration ``0003_key_paths.sql``): a store of the earlier layout is
indexed by the migration without re-ingest, the key table follows every change to the statements
(inserts, key inheritance, deletes, truncation), and pages are index walks that stop early.

The store contract tests (``test_store_query_paths.py``) prove query results on every adapter;
these look at what only PostgreSQL has.
"""

from __future__ import annotations

import asyncio
import uuid
from importlib import resources

import asyncpg
import orjson

from lrs.store.batch import inheritable
from lrs.store.postgres import PostgresStatementStore, create_pool, migrate
from lrs.store.postgres.statements import _query_sql
from lrs.store.ports import StatementQuery
from lrs.xapi.compare import same_statement
from lrs.xapi.indexkeys import lookup_key
from lrs.xapi.models import XapiVersion
from lrs.xapi.statements import prepare

from .conftest import statement, unique_activity, unique_agent, voiding
from .pipeline_stack import create_database

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "urn:test", "name": "paths"}}
MIGRATIONS = resources.files("lrs.store.postgres") / "migrations"


def _prepared(*statements: dict) -> list:
    return [prepare(s, AUTHORITY, XapiVersion.V1) for s in statements]


async def layout_before(dsn: str, version: int) -> None:
    """A new database with the migrations before ``version`` applied (a store of that layout)."""
    names = sorted(entry.name for entry in MIGRATIONS.iterdir() if entry.name.endswith(".sql"))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE lrs_schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
            " applied timestamptz NOT NULL DEFAULT now())"
        )
        for name in names:
            if int(name.split("_", 1)[0]) >= version:
                break
            async with conn.transaction():
                await conn.execute((MIGRATIONS / name).read_text())
                await conn.execute(
                    "INSERT INTO lrs_schema_migrations VALUES ($1, $2)", int(name.split("_", 1)[0]), name
                )
    finally:
        await conn.close()


async def _ids(store: PostgresStatementStore, keys: list[str], limit: int = 2, **fields) -> list[str]:
    query = StatementQuery(keys=keys, limit=limit, **fields)
    found = []
    while True:
        page = await store.query(query)
        found.extend(s.id for s in page.statements)
        if page.cursor is None:
            return found
        query.cursor, query.snapshot = page.cursor, page.snapshot


def test_a_store_of_the_earlier_layout_is_indexed_by_the_migration(pg_dsn: str):
    async def main() -> None:
        dsn = await create_database(pg_dsn, "lrs_key_paths")
        await layout_before(dsn, 3)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            agent, lesson = unique_agent(), unique_activity()
            # statements as the LRS stored them before 0003, with their keys array only
            before = _prepared(
                *(statement(agent, verb, lesson) for verb in ("completed", "attempted", "completed"))
            )
            (ref,) = _prepared(statement(obj={"objectType": "StatementRef", "id": before[0].id}))
            ref.keys |= inheritable(before[0].keys)  # as the LRS stored a StatementRef
            for p in [*before, ref]:
                await pool.execute(
                    "INSERT INTO lrs_statements (id, stored, document, keys, ref_target)"
                    " VALUES ($1, clock_timestamp(), $2, $3, $4)",
                    p.id, orjson.dumps(p.document), sorted(p.keys), p.ref_target,
                )  # fmt: skip
            ids = [p.id for p in before]
            assert await pool.fetchval("SELECT to_regclass('lrs_statement_keys')") is None

            assert (await migrate(pool))[0] == "0003_key_paths.sql"  # and the later ones
            assert (
                await pool.fetchval(
                    "SELECT indexname FROM pg_indexes WHERE indexname = 'lrs_statements_keys'"
                )
                is None
            )  # the GIN index is gone: nothing answers from it any more

            store = PostgresStatementStore(pool)
            a = lookup_key("a:mbox:" + agent["mbox"])
            completed = lookup_key("v:http://adlnet.gov/expapi/verbs/completed")
            assert await _ids(store, [a]) == [ref.id, ids[2], ids[1], ids[0]]
            assert await _ids(store, [a, completed], ascending=True) == [ids[0], ids[2], ref.id]
            assert await _ids(store, [lookup_key("o:" + lesson["id"]), completed], limit=1) == [
                ref.id, ids[2], ids[0]]  # fmt: skip
            # a statement stored after the migration joins them
            (after,) = _prepared(statement(agent, "completed", lesson))
            await store.store([after], [], same_statement, True)
            assert await _ids(store, [a, completed], limit=1) == [after.id, ref.id, ids[2], ids[0]]
        finally:
            await pool.close()

    asyncio.run(main())


def test_key_rows_follow_inheritance_voiding_deletes_and_truncation(pg_dsn: str):
    async def main() -> None:
        dsn = await create_database(pg_dsn, "lrs_key_rows")
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            await migrate(pool)
            store = PostgresStatementStore(pool)
            agent, lesson = unique_agent(), unique_activity()
            target_id = str(uuid.uuid4())
            # a StatementRef first: its target's keys arrive later, by UPDATE of its keys
            (ref,) = _prepared(statement(obj={"objectType": "StatementRef", "id": target_id}))
            await store.store([ref], [], same_statement, True)
            o = lookup_key("o:" + lesson["id"])
            assert await _ids(store, [o]) == []
            (target,) = _prepared(statement(agent, obj=lesson, id=target_id))
            await store.store([target], [], same_statement, True)
            assert await _ids(store, [o]) == [target_id, ref.id]
            # voiding leaves the key rows alone but the target leaves results
            (void,) = _prepared(voiding(target_id))
            await store.store([void], [], same_statement, True)
            assert await _ids(store, [o]) == [void.id, ref.id]

            async def key_rows(statement_id: str) -> int:
                return await pool.fetchval(
                    "SELECT count(*) FROM lrs_statement_keys k JOIN lrs_statements s USING (seq)"
                    " WHERE s.id = $1::uuid",
                    statement_id,
                )

            # the target: actor (a|A), verb, object (o|O), authority (A|u) — one row per value
            assert await key_rows(target_id) == 4
            seq = await pool.fetchval("SELECT seq FROM lrs_statements WHERE id = $1::uuid", ref.id)
            await pool.execute("DELETE FROM lrs_statements WHERE id = $1::uuid", ref.id)
            assert await pool.fetchval("SELECT count(*) FROM lrs_statement_keys WHERE seq = $1", seq) == 0
            assert await _ids(store, [o]) == [void.id]
            await pool.execute("TRUNCATE lrs_statements")
            assert await pool.fetchval("SELECT count(*) FROM lrs_statement_keys") == 0
        finally:
            await pool.close()

    asyncio.run(main())


def test_a_page_walks_the_key_index_and_stops_after_the_limit(pg_dsn: str):
    """EXPLAIN ANALYZE of a first page: an index walk in stored order that reads about
    ``limit`` entries of the key's (no sort, no bitmap collecting every match), however many
    statements share the key."""

    async def main() -> None:
        dsn = await create_database(pg_dsn, "lrs_key_walk")
        pool = await create_pool(dsn, min_size=1, max_size=1)
        query_pool = await create_pool(dsn, min_size=1, max_size=1, custom_plans=True)
        try:
            await migrate(pool)
            store = PostgresStatementStore(pool, query_pool)
            agent, lesson = unique_agent(), unique_activity()
            for _ in range(10):
                await store.store(
                    _prepared(*(statement(agent, obj=lesson) for _ in range(50))), [], same_statement, True
                )
            await pool.execute("ANALYZE lrs_statements; ANALYZE lrs_statement_keys")
            snapshot = await pool.fetchval("SELECT now()")
            for keys in ([lookup_key("a:mbox:" + agent["mbox"])],
                         [lookup_key("o:" + lesson["id"]), lookup_key("v:http://adlnet.gov/expapi/verbs/completed")]):  # fmt: skip
                for ascending in (False, True):
                    sql, args, _ = _query_sql(
                        StatementQuery(keys=keys, limit=5, ascending=ascending), snapshot
                    )
                    plan = orjson.loads(
                        await query_pool.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
                    )[0]["Plan"]
                    nodes, walk = [plan], None
                    while nodes:
                        node = nodes.pop()
                        assert node["Node Type"] not in ("Sort", "Bitmap Heap Scan", "Seq Scan"), node
                        if node.get("Relation Name") == "lrs_statement_keys" and "k0" == node.get("Alias"):
                            walk = node
                        nodes.extend(node.get("Plans", []))
                    assert walk is not None and walk["Node Type"] == "Index Only Scan"
                    assert walk["Actual Rows"] == 6  # limit + 1 of the 500 statements with the key
        finally:
            await query_pool.close()
            await pool.close()

    asyncio.run(main())
