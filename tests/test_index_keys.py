"""Index keys of bounded width (``lrs.xapi.indexkeys``), and the migration of rows stored before.

The store contract tests (``test_store_contract.py``) prove long identifiers are stored and
found on every adapter; these prove the rule itself, that PostgreSQL's ``lrs_index_key`` (which
rewrote the stored rows) is the same function, and that data stored in the earlier layout of
either store is still found after the migration.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import datetime, timezone
from importlib import resources

import asyncpg
import orjson
import pymongo
import pytest

from lrs.store import open_stores
from lrs.store.ports import DocumentKind, DocumentScope, StatementQuery
from lrs.xapi.indexkeys import DIGEST_MARK, INDEX_KEY_MAX_BYTES, index_key, lookup_key

from .pipeline_stack import create_database

SAMPLES = [
    "",
    "https://lms.example/a",
    "x" * INDEX_KEY_MAX_BYTES,
    "x" * (INDEX_KEY_MAX_BYTES + 1),
    "é" * (INDEX_KEY_MAX_BYTES // 2),  # exactly the limit in UTF-8
    "é" * (INDEX_KEY_MAX_BYTES // 2 + 1),  # a character over it
    "😀" * 70,
    DIGEST_MARK + "abc",  # short, but spelled like a digest
    "https://lms.example/" + "a" * 3_000,
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: f"{len(v)}:{v[:12]}")
def test_index_key_keeps_short_values_and_digests_long_ones(value: str):
    key = index_key(value)
    raw = value.encode()
    if len(raw) <= INDEX_KEY_MAX_BYTES and not value.startswith(DIGEST_MARK):
        assert key == value
    else:
        assert key == DIGEST_MARK + hashlib.sha256(raw).hexdigest()
        assert len(key.encode()) == 72
    assert len(key.encode()) <= INDEX_KEY_MAX_BYTES


def test_lookup_key_keeps_the_kind_of_a_statement_key():
    long_iri = "https://lms.example/" + "v" * 1_000
    assert lookup_key("v:" + long_iri) == "v:" + index_key(long_iri)
    assert lookup_key("a:mbox:mailto:a@example.com") == "a:mbox:mailto:a@example.com"
    assert index_key(index_key(long_iri)) != index_key(long_iri)  # a digest is never taken for a value


def test_postgres_lrs_index_key_is_index_key(pg_dsn: str):
    """The migration rewrote stored rows with the SQL function: it must be the same rule."""

    async def compare() -> list[tuple[str, str, str]]:
        conn = await asyncpg.connect(pg_dsn)
        try:
            rows = await conn.fetch(
                "SELECT v, lrs_index_key(v) AS k, lrs_lookup_key('v:' || v) AS l FROM unnest($1::text[]) AS v",
                SAMPLES,
            )
        finally:
            await conn.close()
        return [(r["v"], r["k"], r["l"]) for r in rows]

    open_and_close(pg_dsn)  # the migrations are applied
    for value, sql_key, sql_lookup in asyncio.run(compare()):
        assert sql_key == index_key(value), value[:20]
        assert sql_lookup == lookup_key("v:" + value), value[:20]


def open_and_close(url: str) -> None:
    async def run() -> None:
        backend = await open_stores(url, pool_min=1, pool_max=1)
        await backend.close()

    asyncio.run(run())


# --- rows stored in the earlier layout are found after the migration ------------------------------------

LONG_VERB = "https://lms.example/verbs/" + "v" * 1_000  # long, yet short enough for the old indexes
LONG_ACTIVITY = "https://lms.example/activities/" + "a" * 1_000
LONG_AGENT = "mbox:mailto:" + "m" * 1_000 + "@example.com"
LONG_DOC_ID = "d" * 1_000
POSING_DOC_ID = DIGEST_MARK + "posing"  # a short id spelled like a digest: keyed by its own digest now
STATEMENT_ID = str(uuid.uuid4())
STATEMENT = {
    "id": STATEMENT_ID,
    "actor": {"mbox": LONG_AGENT.removeprefix("mbox:"), "name": "Old"},
    "verb": {"id": LONG_VERB},
    "object": {"id": LONG_ACTIVITY},
    "stored": "2024-01-01T00:00:00.000000Z",
    "timestamp": "2024-01-01T00:00:00.000000Z",
}
_STORED = datetime(2024, 1, 1, tzinfo=timezone.utc)
OLD_KEYS = [
    "v:" + LONG_VERB,
    "o:" + LONG_ACTIVITY,
    "O:" + LONG_ACTIVITY,
    "a:" + LONG_AGENT,
    "A:" + LONG_AGENT,
]


async def _postgres_old_layout(dsn: str) -> None:
    """The schema of migration 0001 only, holding rows keyed by full identifiers."""
    first = (resources.files("lrs.store.postgres") / "migrations" / "0001_init.sql").read_text()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(first)
        await conn.execute(
            "CREATE TABLE lrs_schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
            " applied timestamptz NOT NULL DEFAULT now());"
            " INSERT INTO lrs_schema_migrations VALUES (1, '0001_init.sql')"
        )
        await conn.execute(
            "INSERT INTO lrs_statements (id, stored, document, keys) VALUES ($1, now(), $2::text::jsonb, $3)",
            STATEMENT_ID, orjson.dumps(STATEMENT).decode(), OLD_KEYS,
        )  # fmt: skip
        await conn.execute(
            'INSERT INTO lrs_activities (id, definition) VALUES ($1, \'{"name": {"en": "old"}}\')',
            LONG_ACTIVITY,
        )
        await conn.execute('INSERT INTO lrs_verbs (id, display) VALUES ($1, \'{"en": "did"}\')', LONG_VERB)
        await conn.execute("INSERT INTO lrs_agents (key, names) VALUES ($1, ARRAY['Old'])", LONG_AGENT)
        for doc_id in (LONG_DOC_ID, POSING_DOC_ID):
            await conn.execute(
                "INSERT INTO lrs_documents (kind, activity_id, agent_key, registration, doc_id, content,"
                " content_type, etag, updated) VALUES ($1, $2, $3, '', $4, $5, 'text/plain', '\"e\"', now())",
                int(DocumentKind.STATE), LONG_ACTIVITY, LONG_AGENT, doc_id, doc_id.encode(),
            )  # fmt: skip
    finally:
        await conn.close()


def _mongo_old_layout(url: str) -> None:
    """The collections as the adapter wrote them before index keys (no schema version yet)."""
    with pymongo.MongoClient(url) as client:
        db = client.get_default_database()
        db["statements"].insert_one(
            {"_id": STATEMENT_ID, "seq": 1, "stored": _STORED, "doc": orjson.dumps(STATEMENT),
             "keys": sorted(OLD_KEYS) + ["*"], "voiding": False}
        )  # fmt: skip
        db["counters"].insert_one({"_id": "statements", "seq": 1, "inflight": []})
        db["activities"].insert_one({"_id": LONG_ACTIVITY, "definition": b'{"name": {"en": "old"}}'})
        db["verbs"].insert_one({"_id": LONG_VERB, "display": b'{"en": "did"}'})
        db["agents"].insert_one({"_id": LONG_AGENT, "names": ["Old"]})
        db["documents"].create_index(
            [(f, 1) for f in ("kind", "activity", "agent", "registration", "doc_id")],
            name="identity",
            unique=True,
        )
        for doc_id in (LONG_DOC_ID, POSING_DOC_ID):
            db["documents"].insert_one(
                {"kind": int(DocumentKind.STATE), "activity": LONG_ACTIVITY, "agent": LONG_AGENT, "registration": "",
                 "doc_id": doc_id, "content": doc_id.encode(), "content_type": "text/plain", "etag": '"e"',
                 "rev": 1, "updated": _STORED}
            )  # fmt: skip


async def _found_after_migration(url: str) -> None:
    backend = await open_stores(url, pool_min=1, pool_max=2)
    try:
        statements, documents = backend.statements, backend.documents
        for key in OLD_KEYS:
            page = await statements.query(StatementQuery(keys=[lookup_key(key)], limit=5))
            assert [s.id for s in page.statements] == [STATEMENT_ID], key[:30]
        assert await statements.activity_definition(LONG_ACTIVITY) == {"name": {"en": "old"}}
        assert (await statements.canonical([LONG_ACTIVITY], [LONG_VERB]))[1] == {LONG_VERB: {"en": "did"}}
        assert await statements.agent_names(LONG_AGENT) == ["Old"]
        scope = DocumentScope(DocumentKind.STATE, LONG_ACTIVITY, LONG_AGENT, "")
        for doc_id in (LONG_DOC_ID, POSING_DOC_ID):
            found = await documents.get(scope, doc_id)
            assert found is not None and found.content == doc_id.encode(), doc_id[:20]
        ids, _ = await documents.ids(scope, None)
        assert sorted(ids) == sorted([LONG_DOC_ID, POSING_DOC_ID])
    finally:
        await backend.close()


def test_postgres_rows_of_the_earlier_layout_are_found_after_the_migration(pg_dsn: str):
    async def run() -> None:
        dsn = await create_database(pg_dsn, "lrs_migration")
        await _postgres_old_layout(dsn)
        await _found_after_migration(dsn)

    asyncio.run(run())


def test_mongodb_documents_of_the_earlier_layout_are_found_after_the_migration(mongo_dsn: str):
    head, _, query = mongo_dsn.partition("?")
    url = f"{head.rstrip('/')}/lrs_migration_{uuid.uuid4().hex[:8]}?{query}"
    _mongo_old_layout(url)
    asyncio.run(_found_after_migration(url))
    asyncio.run(_found_after_migration(url))  # a second start changes nothing (the steps are idempotent)
