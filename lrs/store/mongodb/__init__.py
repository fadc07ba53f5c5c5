"""MongoDB adapters for the storage ports (motor), selected by a ``mongodb://`` store URL.

The database is the URL's path (``mongodb://host/lrs_prod``), ``lrs`` when it names none.
Statements are written in multi-document transactions and credential changes are followed
with a change stream, so the server must be a replica set (a single-node one will do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo.errors import PyMongoError

from ..ports import DEFAULT_TENANT
from .credentials import MongoCredentialStore
from .documents import MongoDocumentStore
from .outbox import MongoOutbox
from .schema import CREDENTIALS, ensure_schema
from .statements import MongoStatementStore
from .tenants import MongoTenantStore, tenant_database

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "lrs"
_WATCH_RETRY_SECONDS = 1.0


@dataclass
class MongoStores:
    """The three MongoDB adapters over one client; ``close()`` stops watching and disconnects."""

    statements: MongoStatementStore
    documents: MongoDocumentStore
    credentials: MongoCredentialStore
    tenants: MongoTenantStore
    outbox: MongoOutbox
    client: AsyncIOMotorClient
    db: AsyncIOMotorDatabase
    _watchers: list[asyncio.Task] = field(default_factory=list, repr=False)

    async def ping(self) -> None:
        await self.db.command("ping")

    async def watch_credentials(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` whenever a credential is created, changed or revoked (by any server),
        until ``close()``. Returns once the change stream is open."""
        opened = asyncio.get_running_loop().create_future()
        self._watchers.append(asyncio.create_task(self._watch(on_change, opened)))
        await opened

    async def _watch(self, on_change: Callable[[], None], opened: asyncio.Future) -> None:
        while True:
            try:
                async with self.db[CREDENTIALS].watch() as stream:
                    if opened.done():  # reopened: changes may have been missed meanwhile
                        on_change()
                    else:
                        opened.set_result(None)
                    async for _ in stream:
                        on_change()
            except PyMongoError as exc:
                if not opened.done():
                    opened.set_exception(exc)
                    return
                log.warning("credential change stream failed (%s); reopening", exc)
                on_change()
                await asyncio.sleep(_WATCH_RETRY_SECONDS)

    async def close(self) -> None:
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.client.close()


async def open_stores(
    url: str, *, pool_min: int = 2, pool_max: int = 10, tenant: str | None = None
) -> MongoStores:
    """Connect, create the indexes, and build the adapters; ``tenant``: that tenant's (its own
    database, ``tenants.tenant_database``)."""
    client = AsyncIOMotorClient(url, tz_aware=True, minPoolSize=pool_min, maxPoolSize=pool_max, appname="lrs")
    db = client.get_default_database(DEFAULT_DATABASE)
    if tenant:
        db = client[tenant_database(db.name, tenant)]
    try:
        await ensure_schema(db)
    except BaseException:
        client.close()
        raise
    return MongoStores(
        MongoStatementStore(client, db),
        MongoDocumentStore(db),
        MongoCredentialStore(db),
        MongoTenantStore(db),
        MongoOutbox(db, tenant=tenant or DEFAULT_TENANT),
        client,
        db,
    )


async def open_outbox(url: str) -> MongoOutbox:
    """The statements collection as the pipeline's outbox, on a client of its own (closed with it)."""
    client = AsyncIOMotorClient(url, tz_aware=True, minPoolSize=1, maxPoolSize=4, appname="lrs-outbox")
    db = client.get_default_database(DEFAULT_DATABASE)
    try:
        await ensure_schema(db)
    except BaseException:
        client.close()
        raise
    return MongoOutbox(db, client, every_tenant=True)


__all__ = [
    "DEFAULT_DATABASE",
    "MongoCredentialStore",
    "MongoDocumentStore",
    "MongoStatementStore",
    "MongoStores",
    "open_stores",
]
