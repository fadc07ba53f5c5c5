"""Storage: ports (``ports``), their adapters (``postgres``, ``mongodb``), and ``open_stores``,
which picks the adapter a store URL names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lrs.cmi5.ports import Cmi5Store

from .ports import DEFAULT_TENANT, CredentialStore, DocumentStore, Outbox, StatementStore, TenantStore

MONGODB_SCHEMES = ("mongodb://", "mongodb+srv://")


class Backend(Protocol):
    """The stores of one database, with what a server needs besides them; ``outbox`` is the
    statement store as the stream pipeline reads it."""

    statements: StatementStore
    documents: DocumentStore
    credentials: CredentialStore
    tenants: TenantStore
    """The tenant registry (read in the default tenant's stores only)."""
    outbox: Outbox

    async def ping(self) -> None:
        """Raise unless the database answers (readiness)."""

    async def watch_credentials(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` whenever any server changes a credential, until ``close()``."""

    async def close(self) -> None: ...


def is_mongodb(url: str) -> bool:
    return url.startswith(MONGODB_SCHEMES)


async def open_stores(
    url: str, *, pool_min: int = 2, pool_max: int = 10, tenant: str | None = None
) -> Backend:
    """Open the stores at ``url``: MongoDB for ``mongodb://`` and ``mongodb+srv://`` URLs,
    PostgreSQL for anything else (a DSN). ``tenant``: the stores of that tenant, in its own
    namespace (a schema, a database: docs/tenants.md); none, or the default tenant: the URL's."""
    if tenant == DEFAULT_TENANT:
        tenant = None
    if is_mongodb(url):
        from .mongodb import open_stores as open_mongodb

        return await open_mongodb(url, pool_min=pool_min, pool_max=pool_max, tenant=tenant)
    from .postgres import open_stores as open_postgres

    return await open_postgres(url, pool_min=pool_min, pool_max=pool_max, tenant=tenant)


async def open_outbox(url: str) -> Outbox:
    """The statement store at ``url`` as the stream pipeline's outbox (see ``open_stores``)."""
    if is_mongodb(url):
        from .mongodb import open_outbox as open_mongodb

        return await open_mongodb(url)
    from .postgres.outbox import PostgresOutbox

    return PostgresOutbox(url)


def cmi5_store(lms: object) -> Cmi5Store:
    """The cmi5 port on the LMS database (a ``sinks.lms.LmsDatabase``: cmi5 lives beside the catalog)."""
    from .postgres.cmi5 import PgCmi5Store

    return PgCmi5Store(lms)  # type: ignore[arg-type]
