"""Tenants: several organisations on one deployment (docs/tenants.md).

A tenant owns its statements, documents and attachments: the stores of each tenant are adapters
bound to a namespace of its own (a PostgreSQL schema, a MongoDB database), opened by ``Tenancy``
for the tenant of the authenticated principal. That is the one place isolation is decided: a
request's use cases receive only its tenant's ``Stores``, and an adapter bound to one namespace
cannot reach another. ``Tenancy`` also enforces each tenant's limits (statements per second,
storage), answered with 429.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Protocol

from lrs.auth.credentials import Principal
from lrs.store.ports import DEFAULT_TENANT, Tenant, TenantStore, tenant_problem

from .errors import BadRequest, Busy, Conflict, Forbidden, NotFound, TooManyRequests
from .stores import Stores

log = logging.getLogger(__name__)


class TenantBackend(Protocol):
    """What ``Tenancy`` opens per tenant (a ``lrs.store.Backend`` bound to its namespace)."""

    statements: object
    documents: object

    async def close(self) -> None: ...


OpenTenant = Callable[[str], Awaitable[TenantBackend]]


@dataclass(frozen=True, slots=True)
class DefaultLimits:
    """Limits of tenants that set none of their own (``None``: unlimited)."""

    statements_per_second: int | None = None
    storage_bytes: int | None = None
    refresh_seconds: float = 5.0
    """How long a tenant's registry entry (disabled, limits) and storage use are reused."""


class _Bucket:
    """A token bucket of ``rate`` statements a second, holding at most one second's worth."""

    def __init__(self, rate: int) -> None:
        self.rate, self.tokens, self.at = rate, float(rate), time.monotonic()

    def take(self, count: int) -> float:
        """Take ``count`` tokens; 0.0 when granted, else seconds until they would be there."""
        now = time.monotonic()
        self.tokens = min(float(self.rate), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if count <= self.tokens or (count > self.rate and self.tokens >= self.rate):
            self.tokens -= count  # a batch larger than a second's worth passes on a full bucket
            return 0.0
        return (min(count, self.rate) - self.tokens) / self.rate


@dataclass(slots=True)
class _Entry:
    tenant: Tenant | None
    read_at: float
    used: int | None = None
    used_at: float = 0.0


class Tenancy:
    """The stores of the caller's tenant, and its limits.

    ``default``: the default tenant's stores (the deployment's own URL); ``registry``: the tenant
    registry; ``open_tenant``: opens a tenant's stores in its namespace (done once per tenant and
    process, on first use)."""

    def __init__(
        self, default: Stores, registry: TenantStore, open_tenant: OpenTenant, limits: DefaultLimits | None = None
    ) -> None:  # fmt: skip
        self.default = default
        self._registry = registry
        self._open = open_tenant
        self._limits = limits or DefaultLimits()
        self._stores: dict[str, Stores] = {DEFAULT_TENANT: default}
        self._backends: list[TenantBackend] = []
        self._opening: dict[str, asyncio.Future[Stores]] = {}
        self._entries: dict[str, _Entry] = {}
        self._buckets: dict[str, _Bucket] = {}

    async def admit(self, principal: Principal) -> str:
        """The principal's tenant; ``Forbidden`` if it is disabled or unknown."""
        name = principal.tenant
        tenant = await self._tenant(name)
        if tenant is None:
            raise Forbidden(f"the credential's tenant {name!r} does not exist")
        if tenant.disabled is not None:
            raise Forbidden(f"tenant {name!r} is disabled")
        return name

    async def stores(self, principal: Principal) -> Stores:
        """The stores of the principal's tenant; ``Forbidden`` if it is disabled or unknown."""
        name = await self.admit(principal)
        found = self._stores.get(name)
        return found if found is not None else await self._open_once(name)

    async def admit_statements(self, principal: Principal, count: int) -> None:
        """Before storing ``count`` statements: ``TooManyRequests`` past the tenant's rate."""
        tenant = await self._tenant(principal.tenant)
        rate = self._limit(tenant, "statements_per_second")
        if rate is None or count == 0:
            return
        bucket = self._buckets.get(principal.tenant)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[principal.tenant] = _Bucket(rate)
        wait = bucket.take(count)
        if wait > 0:
            raise TooManyRequests(
                f"tenant {principal.tenant!r} may store {rate} statements per second; retry later",
                retry_after=max(1, math.ceil(wait)),
            )

    async def admit_write(self, principal: Principal) -> None:
        """Before any write that adds data: ``TooManyRequests`` once the tenant's storage is full."""
        name = principal.tenant
        tenant = await self._tenant(name)
        limit = self._limit(tenant, "storage_bytes")
        if limit is None:
            return
        entry = self._entries[name]
        now = time.monotonic()
        if entry.used is None or now - entry.used_at >= self._limits.refresh_seconds:
            entry.used, entry.used_at = await self._registry.usage(name), now
        if entry.used >= limit:
            raise TooManyRequests(
                f"tenant {name!r} has used its storage ({entry.used:,} of {limit:,} bytes)",
                retry_after=max(1, math.ceil(self._limits.refresh_seconds)),
            )

    async def close(self) -> None:
        for backend in self._backends:
            await backend.close()
        self._backends.clear()
        self._stores = {DEFAULT_TENANT: self.default}

    def _limit(self, tenant: Tenant | None, what: str) -> int | None:
        own = getattr(tenant, what) if tenant is not None else None
        return own if own is not None else getattr(self._limits, what)

    async def _tenant(self, name: str) -> Tenant | None:
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is None or now - entry.read_at >= self._limits.refresh_seconds:
            tenant = await self._registry.find(name)
            if entry is None:
                entry = self._entries[name] = _Entry(tenant, now)
            else:
                entry.tenant, entry.read_at = tenant, now
        return entry.tenant

    async def _open_once(self, name: str) -> Stores:
        pending = self._opening.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Stores] = asyncio.get_running_loop().create_future()
        self._opening[name] = future
        try:
            try:
                backend = await self._open(name)
            except Exception as exc:  # the database refuses (too many connections, away): retry later
                log.warning("cannot open the stores of tenant %r: %s", name, exc)
                raise Busy(f"tenant {name!r}: its stores cannot be opened now; retry later") from exc
            # credentials are the deployment's (one registry for all tenants), never the namespace's
            stores = Stores(backend.statements, backend.documents, self.default.credentials)  # type: ignore[arg-type]
            self._backends.append(backend)
            self._stores[name] = stores
            future.set_result(stores)
            return stores
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._opening[name]


class TenantAdmin:
    """Creating, listing, disabling tenants (``lrs tenants``)."""

    def __init__(self, registry: TenantStore, open_tenant: OpenTenant) -> None:
        self._registry = registry
        self._open = open_tenant

    async def create(
        self, name: str, statements_per_second: int | None = None, storage_bytes: int | None = None
    ) -> Tenant:
        """A new tenant with its namespace created (empty); ``Conflict`` if it exists."""
        if (problem := tenant_problem(name)) is not None:
            raise BadRequest(f"cannot create tenant {name!r}: {problem}")
        if await self._registry.find(name) is not None:
            raise Conflict(f"tenant {name!r} exists")
        if await self._registry.namespace_exists(name):  # left behind: never handed to a new tenant
            raise Conflict(f"the namespace of a tenant {name!r} exists already (data of an earlier one?)")
        backend = await self._open(name)  # creates and migrates its namespace
        await backend.close()
        tenant = Tenant(name, datetime.now(timezone.utc), None, statements_per_second, storage_bytes)
        await self._registry.save(tenant)
        return tenant

    async def all(self) -> list[Tenant]:
        return await self._registry.all()

    async def usage(self, name: str) -> int:
        return await self._registry.usage(name)

    async def set_disabled(self, name: str, disabled: bool) -> Tenant:
        """Disable a tenant (its credentials are refused; its data stays) or enable it again."""
        tenant = await self.existing(name)
        if name == DEFAULT_TENANT and disabled:
            raise BadRequest("the default tenant cannot be disabled")
        changed = replace(tenant, disabled=datetime.now(timezone.utc) if disabled else None)
        await self._registry.save(changed)
        return changed

    async def set_limits(
        self, name: str, statements_per_second: int | None, storage_bytes: int | None
    ) -> Tenant:
        tenant = replace(
            await self.existing(name),
            statements_per_second=statements_per_second,
            storage_bytes=storage_bytes,
        )
        await self._registry.save(tenant)
        return tenant

    async def existing(self, name: str) -> Tenant:
        tenant = await self._registry.find(name)
        if tenant is None:
            raise NotFound(f"no tenant {name!r}")
        return tenant
