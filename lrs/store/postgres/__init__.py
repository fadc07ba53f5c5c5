"""PostgreSQL adapters for the storage ports, the migrations, and the embedded server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from .credentials import PostgresCredentialStore
from .documents import PostgresDocumentStore
from .outbox import PostgresOutbox
from .pool import create_pool, migrate
from .statements import PostgresStatementStore


@dataclass
class PostgresStores:
    """The PostgreSQL adapters over their pools; ``close()`` releases the pools. The outbox opens
    its own connections when first read (only the pipeline reads it)."""

    statements: PostgresStatementStore
    documents: PostgresDocumentStore
    credentials: PostgresCredentialStore
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


async def open_stores(dsn: str, *, pool_min: int = 2, pool_max: int = 10) -> PostgresStores:
    """Connect, apply pending migrations, and build the adapters.

    Statement queries get their own pool with custom plans (see ``create_pool``); everything
    else shares the main pool.
    """
    pool = await create_pool(dsn, min_size=pool_min, max_size=pool_max)
    try:
        await migrate(pool)
        query_pool = await create_pool(dsn, min_size=1, max_size=max(2, pool_max // 2), custom_plans=True)
    except BaseException:
        await pool.close()
        raise
    return PostgresStores(
        PostgresStatementStore(pool, query_pool),
        PostgresDocumentStore(pool),
        PostgresCredentialStore(pool),
        PostgresOutbox(dsn),
        pool,
        query_pool,
        dsn,
    )


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
