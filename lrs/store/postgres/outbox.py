"""The outbox port on PostgreSQL: ``lrs_statements`` of every tenant read in ``(stored, seq,
tenant)`` order.

``stored`` is each writer's transaction time, so a statement can still appear with a ``stored``
earlier than one already visible while its transaction is open. The consistent instant is the
start of the oldest open transaction of the LRS's writers (connections named
``APPLICATION_NAME``, or ``APPLICATION_NAME:<tenant>`` for a tenant's; the outbox's own
connections are named otherwise and never count): every statement stored before it is committed
and visible. The pipeline's outbox reads every tenant's schema in one query (a merge of each
schema's ``(stored, seq)`` index, stopped after ``limit`` rows) up to the instant of the oldest
open transaction of any tenant's writers; a tenant's own outbox (``open_stores(tenant=…)``)
reads its schema only. One relay per store is elected with a session-level advisory lock, held
by a connection of its own for as long as it leads.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg

from ..ports import DEFAULT_TENANT, OutboxEntry, OutboxPosition, OutboxRead, tenant_order
from .pool import APPLICATION_NAME, create_pool, quote_identifier, writers_name
from .tenants import tenant_schema

RELAY_LOCK = 0x4C52535231  # "LRSR1"
OUTBOX_NAME = "lrs-outbox"

_BRANCH = """
(SELECT {tenant} AS tenant, {order} COLLATE "C" AS torder, s.seq, s.stored, coalesce(s.exact::text, s.document::text) AS document, s.voided,
       CASE WHEN s.is_voiding THEN s.ref_target::text END AS target,
       (coalesce(t.document, s.document) -> 'actor')::text AS actor
 FROM {schema}lrs_statements s
 LEFT JOIN {schema}lrs_statements t ON s.is_voiding AND t.id = s.ref_target
 WHERE (s.stored, s.seq) > ($1, $2::bigint - CASE WHEN $3::text COLLATE "C" < {order} COLLATE "C" THEN 1 ELSE 0 END)
   AND s.stored < $4
 ORDER BY s.stored, s.seq
 LIMIT $5)"""
"""One tenant's statements after the position ``($1, $2, $3)`` (``$3``: the position's tenant as
``tenant_order`` has it): those at the very ``(stored, seq)`` too when the tenant comes after."""
_NEWEST_BRANCH = "(SELECT {tenant} AS tenant, stored, seq FROM {schema}lrs_statements ORDER BY stored DESC, seq DESC LIMIT 1)"
_COUNT_BRANCH = """(SELECT count(*) AS n FROM {schema}lrs_statements WHERE ($1::timestamptz IS NULL OR stored >= $1)
 AND ($2::timestamptz IS NULL OR (stored, seq) <= ($2, $3::bigint - CASE WHEN $4::text COLLATE "C" < {order} COLLATE "C" THEN 1 ELSE 0 END)))"""
_CONSISTENT = (
    "SELECT coalesce(min(xact_start), now()) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = $1 AND xact_start IS NOT NULL"
)
_CONSISTENT_EVERY_TENANT = """
SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database()
                     AND (application_name = $1 OR application_name LIKE $1 || ':%') AND xact_start IS NOT NULL)),
       array(SELECT name FROM lrs_tenants WHERE name <> $2 ORDER BY name)
"""
"""The consistent instant over every tenant's writers, and the tenants. ``now()`` is when this
statement's transaction began, before the list was read: a tenant that is not on it stores
nothing before that instant."""
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
    """``tenant``: the outbox of that tenant's statements only; ``None``: of every tenant's (the
    pipeline's)."""

    def __init__(self, dsn: str, tenant: str | None = None) -> None:
        self._dsn = dsn
        self._tenant = tenant
        self._pool: asyncpg.Pool | None = None
        self._schemas: dict[str, str] = {}
        """Tenants whose tables exist → their schema, quoted, with a dot."""

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await create_pool(
                self._dsn, min_size=1, max_size=2, application_name=OUTBOX_NAME,
                schema=None if self._tenant is None else tenant_schema(self._tenant),
            )  # fmt: skip
        return self._pool

    async def _tenants(self, conn: asyncpg.Connection) -> tuple[datetime, list[str]]:
        """The consistent instant and the tenants (the default tenant first) to read."""
        if self._tenant is not None:
            return await conn.fetchval(_CONSISTENT, writers_name(self._tenant)), [self._tenant]
        try:
            consistent, names = await conn.fetchrow(
                _CONSISTENT_EVERY_TENANT, APPLICATION_NAME, DEFAULT_TENANT
            )
        except asyncpg.UndefinedTableError:  # a store from before tenants, not migrated yet
            return await conn.fetchval(_CONSISTENT, APPLICATION_NAME), [DEFAULT_TENANT]
        for name in names:
            if name not in self._schemas:  # its tables are made when its stores first open
                schema = tenant_schema(name)
                if await conn.fetchval(
                    "SELECT to_regclass($1)", f"{quote_identifier(schema)}.lrs_statements"
                ):
                    self._schemas[name] = quote_identifier(schema) + "."
        return consistent, [DEFAULT_TENANT, *(n for n in names if n in self._schemas)]

    def _union(self, template: str, tenants: list[str]) -> str:
        return " UNION ALL ".join(
            template.format(
                tenant=_literal(t),
                order=_literal(tenant_order(t)),
                schema="" if self._tenant is not None or t == DEFAULT_TENANT else self._schemas[t],
            )  # fmt: skip
            for t in tenants
        )

    async def read(self, after: OutboxPosition | None, limit: int) -> OutboxRead:
        stored, seq, tenant = after or (_EPOCH, 0, DEFAULT_TENANT)
        async with (await self._connections()).acquire() as conn:
            consistent, tenants = await self._tenants(conn)
            query = self._union(_BRANCH, tenants)
            if len(tenants) > 1:
                query = f"{query} ORDER BY stored, seq, torder LIMIT $5"
            rows = await conn.fetch(query, stored, seq, tenant_order(tenant), consistent, limit)
        entries = [
            OutboxEntry(
                r["stored"],
                r["seq"],
                r["document"].encode(),
                r["voided"],
                r["target"],
                r["actor"].encode(),
                r["tenant"],
            )  # fmt: skip
            for r in rows
        ]
        return OutboxRead(entries, consistent)

    async def now(self) -> datetime:
        return await (await self._connections()).fetchval("SELECT clock_timestamp()")

    async def newest(self) -> OutboxPosition | None:
        async with (await self._connections()).acquire() as conn:
            _, tenants = await self._tenants(conn)
            rows = await conn.fetch(self._union(_NEWEST_BRANCH, tenants))
        found = [(r["stored"], r["seq"], r["tenant"]) for r in rows]
        return max(found, key=lambda p: (p[0], p[1], tenant_order(p[2])), default=None)

    async def count(self, since: datetime | None, upto: OutboxPosition | None) -> int:
        stored, seq, tenant = upto or (None, None, DEFAULT_TENANT)
        async with (await self._connections()).acquire() as conn:
            _, tenants = await self._tenants(conn)
            counts = await conn.fetch(
                self._union(_COUNT_BRANCH, tenants), since, stored, seq, tenant_order(tenant)
            )
        return sum(r["n"] for r in counts)

    def election(self) -> PostgresElection:
        return PostgresElection(self._dsn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _literal(text: str) -> str:
    """A tenant name (``tenant_problem`` allows lowercase letters, digits and ``_``) as an SQL string."""
    return "'" + text.replace("'", "''") + "'::text"
