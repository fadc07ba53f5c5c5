"""The outbox port on PostgreSQL: ``lrs_statements`` read in ``(stored, seq)`` order.

``stored`` is each writer's transaction time, so a statement can still appear with a ``stored``
earlier than one already visible while its transaction is open. The consistent instant is the
start of the oldest open transaction of the LRS's writers (connections named
``APPLICATION_NAME``; the outbox's own connections are named otherwise and never count): every
statement stored before it is committed and visible. One relay per store is elected with a
session-level advisory lock, held by a connection of its own for as long as it leads.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg

from ..ports import OutboxEntry, OutboxRead
from .pool import APPLICATION_NAME, create_pool

RELAY_LOCK = 0x4C52535231  # "LRSR1"
OUTBOX_NAME = "lrs-outbox"

_READ = """
SELECT s.seq, s.stored, coalesce(s.exact::text, s.document::text) AS document, s.voided,
       CASE WHEN s.is_voiding THEN s.ref_target::text END AS target,
       (coalesce(t.document, s.document) -> 'actor')::text AS actor
FROM lrs_statements s
LEFT JOIN lrs_statements t ON s.is_voiding AND t.id = s.ref_target
WHERE (s.stored, s.seq) > ($1, $2) AND s.stored < $3
ORDER BY s.stored, s.seq
LIMIT $4
"""
_CONSISTENT = (
    "SELECT coalesce(min(xact_start), now()) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = $1 AND xact_start IS NOT NULL"
)
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


class PostgresElection:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None

    async def acquire(self) -> None:
        while True:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "lrs-relay-lock"}
                )
            if await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                return
            await asyncio.sleep(1.0)  # another worker relays; take over if it goes away

    async def still_leading(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def release(self) -> None:
        if self._conn is not None:
            await self._conn.close()  # the session lock goes with the session
            self._conn = None


class PostgresOutbox:
    """``schema`` and ``writers``: a tenant's schema and the name its writers announce (the
    default tenant's: the connection's own schema, ``APPLICATION_NAME``)."""

    def __init__(self, dsn: str, schema: str | None = None, writers: str = APPLICATION_NAME) -> None:
        self._dsn = dsn
        self._schema, self._writers = schema, writers
        self._pool: asyncpg.Pool | None = None

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await create_pool(
                self._dsn, min_size=1, max_size=2, application_name=OUTBOX_NAME, schema=self._schema
            )
        return self._pool

    async def read(self, after: tuple[datetime, int] | None, limit: int) -> OutboxRead:
        stored, seq = after or (_EPOCH, 0)
        async with (await self._connections()).acquire() as conn:
            consistent: datetime = await conn.fetchval(_CONSISTENT, self._writers)
            rows = await conn.fetch(_READ, stored, seq, consistent, limit)
        entries = [
            OutboxEntry(
                r["stored"], r["seq"], r["document"].encode(), r["voided"], r["target"], r["actor"].encode()
            )
            for r in rows
        ]
        return OutboxRead(entries, consistent)

    async def now(self) -> datetime:
        return await (await self._connections()).fetchval("SELECT clock_timestamp()")

    async def newest(self) -> tuple[datetime, int] | None:
        row = await (await self._connections()).fetchrow(
            "SELECT stored, seq FROM lrs_statements ORDER BY stored DESC, seq DESC LIMIT 1"
        )
        return (row["stored"], row["seq"]) if row else None

    async def count(self, since: datetime | None, upto: tuple[datetime, int] | None) -> int:
        stored, seq = upto or (None, None)
        return await (await self._connections()).fetchval(
            "SELECT count(*) FROM lrs_statements WHERE ($1::timestamptz IS NULL OR stored >= $1)"
            " AND ($2::timestamptz IS NULL OR (stored, seq) <= ($2, $3::bigint))",
            since, stored, seq,
        )  # fmt: skip

    def election(self) -> PostgresElection:
        return PostgresElection(self._dsn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
