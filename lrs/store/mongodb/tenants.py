"""``TenantStore`` on MongoDB, and where a tenant's collections live.

The registry is the ``tenants`` collection of the default tenant's database. Every other tenant
has a database of its own, ``<database>_t_<name>``: its adapters hold that database only.
"""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase

from ..ports import DEFAULT_TENANT, Tenant

TENANTS = "tenants"


def tenant_database(default: str, name: str) -> str:
    """The database of a tenant's collections (the default tenant's is the URL's own)."""
    return default if name == DEFAULT_TENANT else f"{default}_t_{name}"


def _tenant(row: dict[str, Any]) -> Tenant:
    return Tenant(
        row["_id"],
        row["created"],
        row.get("disabled"),
        row.get("statements_per_second"),
        row.get("storage_bytes"),
    )


class MongoTenantStore:
    def __init__(self, db: AsyncIOMotorDatabase) -> None:
        self._db = db
        self._tenants = db[TENANTS]

    async def find(self, name: str) -> Tenant | None:
        if name == DEFAULT_TENANT:
            await self._ensure_default()
        row = await self._tenants.find_one({"_id": name})
        return None if row is None else _tenant(row)

    async def all(self) -> list[Tenant]:
        await self._ensure_default()
        return [_tenant(row) async for row in self._tenants.find().sort("_id", 1)]

    async def save(self, tenant: Tenant) -> None:
        await self._tenants.update_one(
            {"_id": tenant.name},
            {
                "$set": {
                    "disabled": tenant.disabled,
                    "statements_per_second": tenant.statements_per_second,
                    "storage_bytes": tenant.storage_bytes,
                },
                "$setOnInsert": {"created": tenant.created},
            },
            upsert=True,
        )

    async def usage(self, name: str) -> int:
        db = self._db.client[tenant_database(self._db.name, name)]
        stats = await db.command("dbStats")
        return int(stats.get("dataSize", 0)) + int(stats.get("indexSize", 0))

    async def namespace_exists(self, name: str) -> bool:
        wanted = tenant_database(self._db.name, name)
        return wanted in await self._db.client.list_database_names()

    async def _ensure_default(self) -> None:
        """The default tenant is listed from the start, as on PostgreSQL."""
        from datetime import datetime, timezone

        await self._tenants.update_one(
            {"_id": DEFAULT_TENANT}, {"$setOnInsert": {"created": datetime.now(timezone.utc)}}, upsert=True
        )
