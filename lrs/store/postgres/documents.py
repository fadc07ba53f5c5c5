"""``DocumentStore`` on PostgreSQL: one table for state, activity profile and agent profile.

The scope's activity and agent and the document id are looked up by their index keys
(``lrs.xapi.indexkeys``: bounded width, so any length fits the primary key); ``doc_id`` keeps
the full id, which listing the ids returns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg
import orjson

from lrs.xapi.indexkeys import index_key

from ..ports import (
    Change,
    Delete,
    Document,
    DocumentKind,
    DocumentScope,
    InvalidCursor,
    StoredDocument,
    Write,
)

_KEY = "kind = $1 AND activity_id = $2 AND agent_key = $3 AND registration = $4"


def _scope_args(scope: DocumentScope) -> tuple:
    return (int(scope.kind), index_key(scope.activity_id), index_key(scope.agent_key), scope.registration)


class PostgresDocumentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, scope: DocumentScope, doc_id: str) -> Document | None:
        row = await self._pool.fetchrow(
            f"SELECT content, content_type, etag, updated FROM lrs_documents WHERE {_KEY} AND doc_key = $5",
            *_scope_args(scope),
            index_key(doc_id),
        )
        return (
            None
            if row is None
            else Document(row["content"], row["content_type"], row["etag"], row["updated"])
        )

    async def ids(self, scope: DocumentScope, since: datetime | None) -> tuple[list[str], datetime | None]:
        rows = await self._pool.fetch(
            f"SELECT doc_id, updated FROM lrs_documents WHERE {_KEY} AND ($5::timestamptz IS NULL OR updated > $5)"
            " ORDER BY doc_id",
            *_scope_args(scope),
            since,
        )
        return [r["doc_id"] for r in rows], max((r["updated"] for r in rows), default=None)

    async def update(
        self, scope: DocumentScope, doc_id: str, decide: Callable[[Document | None], Change]
    ) -> None:
        args = (*_scope_args(scope), index_key(doc_id))
        async with self._pool.acquire() as conn:
            while True:
                async with conn.transaction():
                    row = await conn.fetchrow(
                        "SELECT content, content_type, etag, updated FROM lrs_documents"
                        f" WHERE {_KEY} AND doc_key = $5 FOR UPDATE",
                        *args,
                    )
                    current = None if row is None else Document(*row.values())
                    change = decide(current)
                    if isinstance(change, Delete) and current is not None:
                        await conn.execute(f"DELETE FROM lrs_documents WHERE {_KEY} AND doc_key = $5", *args)
                    elif isinstance(change, Write) and current is not None:
                        await conn.execute(
                            "UPDATE lrs_documents SET content = $6, content_type = $7, etag = $8, updated = now()"
                            f" WHERE {_KEY} AND doc_key = $5",
                            *args, change.content, change.content_type, change.etag,
                        )  # fmt: skip
                    elif isinstance(change, Write):
                        created = await conn.fetchval(
                            "INSERT INTO lrs_documents (kind, activity_id, agent_key, registration, doc_key,"
                            " content, content_type, etag, updated, doc_id)"
                            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9)"
                            " ON CONFLICT DO NOTHING RETURNING 1",
                            *args, change.content, change.content_type, change.etag, doc_id,
                        )  # fmt: skip
                        if created is None:
                            # created concurrently since our read: decide again against it
                            continue
                    return

    async def delete_all(self, scope: DocumentScope) -> None:
        await self._pool.execute(f"DELETE FROM lrs_documents WHERE {_KEY}", *_scope_args(scope))

    async def erase_agents(self, agent_keys: list[str]) -> int:
        done = await self._pool.execute(
            "DELETE FROM lrs_documents WHERE agent_key = ANY($1::text[]) AND kind = ANY($2::smallint[])",
            [index_key(k) for k in agent_keys], [int(DocumentKind.STATE), int(DocumentKind.AGENT_PROFILE)],
        )  # fmt: skip
        return int(done.split()[-1])

    # --- export and restore (``lrs export`` / ``lrs import``) --------------------------------------

    async def export(self, after: str | None, limit: int) -> tuple[list[StoredDocument], str | None]:
        where, args = "", []
        if after is not None:
            where, args = f"WHERE ({_IDENTITY}) > ($1, $2, $3, $4, $5)", _position(after)
        rows = await self._pool.fetch(
            f"SELECT {_IDENTITY}, doc_id, content, content_type, etag, updated FROM lrs_documents {where}"
            f" ORDER BY {_IDENTITY} LIMIT {int(limit) + 1}",
            *args,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        documents = [
            StoredDocument(DocumentKind(r["kind"]), r["activity_id"], r["agent_key"], r["registration"],
                           r["doc_id"], r["content"], r["content_type"], r["etag"], r["updated"])
            for r in rows
        ]  # fmt: skip
        last = rows[-1] if rows else None
        position = orjson.dumps([last[c] for c in _IDENTITY_COLUMNS]).decode() if more and last else None
        return documents, position

    async def restore(self, documents: list[StoredDocument]) -> list[StoredDocument]:
        conflicts = []
        async with self._pool.acquire() as conn, conn.transaction():
            for d in documents:
                identity = (int(d.kind), d.activity_key, d.agent_key, d.registration, index_key(d.doc_id))
                created = await conn.fetchval(
                    "INSERT INTO lrs_documents (kind, activity_id, agent_key, registration, doc_key, doc_id,"
                    " content, content_type, etag, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    *identity, d.doc_id, d.content, d.content_type, d.etag, d.updated,
                )  # fmt: skip
                if created is None:
                    row = await conn.fetchrow(
                        f"SELECT content, content_type FROM lrs_documents WHERE {_KEY} AND doc_key = $5",
                        *identity,
                    )
                    if row is not None and (row["content"], row["content_type"]) != (
                        d.content,
                        d.content_type,
                    ):
                        conflicts.append(d)
        return conflicts


_IDENTITY_COLUMNS = ("kind", "activity_id", "agent_key", "registration", "doc_key")
_IDENTITY = ", ".join(_IDENTITY_COLUMNS)


def _position(after: str) -> list:
    """The identity an export position names (``InvalidCursor`` for anything else)."""
    try:
        values = orjson.loads(after)
        if not (isinstance(values, list) and len(values) == 5 and isinstance(values[0], int)
                and all(isinstance(v, str) for v in values[1:])):  # fmt: skip
            raise ValueError(after)
    except ValueError:
        raise InvalidCursor(after) from None
    return values
