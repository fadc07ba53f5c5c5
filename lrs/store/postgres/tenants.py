"""``TenantStore`` on PostgreSQL, and where a tenant's tables live.

The registry is ``lrs_tenants`` in the default tenant's schema. Every other tenant has a schema
of its own, ``lrs_tenant_<name>``: its adapters run on connections whose ``search_path`` is that
schema alone, so no statement they prepare can reach another tenant's tables.
"""

from __future__ import annotations

import asyncpg

from ..ports import DEFAULT_TENANT, Tenant

_COLUMNS = "name, created, disabled, statements_per_second, storage_bytes"


def tenant_schema(name: str) -> str | None:
    """The schema of a tenant's tables; ``None`` for the default tenant (the connection's own)."""
    return None if name == DEFAULT_TENANT else f"lrs_tenant_{name}"


def _tenant(row: asyncpg.Record) -> Tenant:
    return Tenant(
        row["name"], row["created"], row["disabled"], row["statements_per_second"], row["storage_bytes"]
    )


class PostgresTenantStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, name: str) -> Tenant | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM lrs_tenants WHERE name = $1", name)
        return None if row is None else _tenant(row)

    async def all(self) -> list[Tenant]:
        return [
            _tenant(r) for r in await self._pool.fetch(f"SELECT {_COLUMNS} FROM lrs_tenants ORDER BY name")
        ]

    async def save(self, tenant: Tenant) -> None:
        await self._pool.execute(
            f"INSERT INTO lrs_tenants ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE"
            " SET disabled = EXCLUDED.disabled, statements_per_second = EXCLUDED.statements_per_second,"
            " storage_bytes = EXCLUDED.storage_bytes",
            tenant.name, tenant.created, tenant.disabled, tenant.statements_per_second, tenant.storage_bytes,
        )  # fmt: skip

    async def usage(self, name: str) -> int:
        schema = tenant_schema(name)
        return await self._pool.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = coalesce($1, current_schema()) AND c.relkind IN ('r', 'm')",
            schema,
        )  # fmt: skip

    async def namespace_exists(self, name: str) -> bool:
        schema = tenant_schema(name)
        if schema is None:
            return True
        return bool(await self._pool.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema))
