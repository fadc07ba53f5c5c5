"""``DocumentStore`` on PostgreSQL: one table for state, activity profile and agent profile.

The scope's activity and agent and the document id are looked up by their index keys
(``lrs.xapi.indexkeys``: bounded width, so any length fits the primary key); ``doc_id`` keeps
the full id, which listing the ids returns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg

from lrs.xapi.indexkeys import index_key

from ..ports import Change, Delete, Document, DocumentScope, Write

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
