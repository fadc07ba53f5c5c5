"""PostgreSQL adapters for the storage ports, the migrations, and the embedded server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from ..ports import DEFAULT_TENANT
from .credentials import PostgresCredentialStore
from .documents import PostgresDocumentStore
from .outbox import PostgresOutbox
from .pool import create_pool, migrate, quote_identifier, writers_name
from .statements import PostgresStatementStore
from .tenants import PostgresTenantStore, tenant_schema


@dataclass
class PostgresStores:
    """The PostgreSQL adapters over their pools; ``close()`` releases the pools. The outbox opens
    its own connections when first read (only the pipeline reads it)."""

    statements: PostgresStatementStore
    documents: PostgresDocumentStore
    credentials: PostgresCredentialStore
    tenants: PostgresTenantStore
    outbox: PostgresOutbox
    pool: asyncpg.Pool
    query_pool: asyncpg.Pool
    dsn: str
    _listeners: list[asyncpg.Connection] = field(default_factory=list, repr=False)

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def watch_credentials(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` whenever a credential is created, changed or revoked (by any server),
        until ``close()``: a connection of its own LISTENs to the credential store's NOTIFY."""
        listener = await asyncpg.connect(self.dsn)
        self._listeners.append(listener)
        await listener.add_listener(PostgresCredentialStore.CHANNEL, lambda *_: on_change())

    async def close(self) -> None:
        for listener in self._listeners:
            await listener.close()
        await self.outbox.close()
        await self.query_pool.close()
        await self.pool.close()


async def open_stores(
    dsn: str, *, pool_min: int = 2, pool_max: int = 10, tenant: str | None = None
) -> PostgresStores:
    """Connect, apply pending migrations, and build the adapters.

    Statement queries get their own pool with custom plans (see ``create_pool``); everything
    else shares the main pool. ``tenant``: the stores of that tenant (its schema, created and
    migrated if need be; its pools close idle connections soon, as a deployment may have many).
    """
    schema = tenant_schema(tenant) if tenant else None
    name = writers_name(tenant)
    if schema is not None:
        await _create_schema(dsn, schema)
    idle = 300.0 if schema is None else 30.0
    pool = await create_pool(
        dsn, min_size=pool_min, max_size=pool_max, schema=schema, idle_seconds=idle, application_name=name
    )
    try:
        await migrate(pool)
        query_pool = await create_pool(
            dsn, min_size=min(pool_min, 1), max_size=max(2, pool_max // 2), custom_plans=True, schema=schema,
            idle_seconds=idle, application_name=name,
        )  # fmt: skip
    except BaseException:
        await pool.close()
        raise
    return PostgresStores(
        PostgresStatementStore(pool, query_pool, application_name=name),
        PostgresDocumentStore(pool),
        PostgresCredentialStore(pool),
        PostgresTenantStore(pool),
        PostgresOutbox(dsn, tenant or DEFAULT_TENANT),
        pool,
        query_pool,
        dsn,
    )


async def _create_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
    except asyncpg.UniqueViolationError:
        pass  # created concurrently by another server
    finally:
        await conn.close()


__all__ = [
    "PostgresCredentialStore",
    "PostgresDocumentStore",
    "PostgresOutbox",
    "PostgresStatementStore",
    "PostgresStores",
    "create_pool",
    "migrate",
    "open_stores",
]
