"""``CredentialStore`` on MongoDB.

Servers learn of changes from a change stream on the collection (see ``MongoStores``), the
counterpart of the PostgreSQL adapter's NOTIFY.
"""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase

from ..ports import DEFAULT_TENANT, Credential
from .schema import CREDENTIALS, text


def _credential(row: dict[str, Any]) -> Credential:
    return Credential(
        key=row["_id"],
        secret_hash=row["secret_hash"],
        scopes=frozenset(row["scopes"]),
        name=row["name"],
        authority=row["authority"],
        created=row["created"],
        revoked=row.get("revoked"),
        tenant=row.get("tenant", DEFAULT_TENANT),
    )


class MongoCredentialStore:
    def __init__(self, db: AsyncIOMotorDatabase) -> None:
        self._credentials = db[CREDENTIALS]

    async def find(self, key: str) -> Credential | None:
        row = await self._credentials.find_one({"_id": text(key)})
        return None if row is None else _credential(row)

    async def save(self, credential: Credential) -> None:
        await self._credentials.update_one(
            {"_id": text(credential.key)},
            {
                "$set": {
                    "secret_hash": credential.secret_hash,
                    "scopes": sorted(credential.scopes),
                    "name": credential.name,
                    "authority": credential.authority,
                    "revoked": None,
                    "tenant": credential.tenant,
                },
                "$setOnInsert": {"created": credential.created},
            },
            upsert=True,
        )

    async def all(self) -> list[Credential]:
        return [_credential(row) async for row in self._credentials.find().sort("created", 1)]

    async def revoke(self, key: str) -> bool:
        result = await self._credentials.update_one(
            {"_id": text(key), "revoked": None}, {"$currentDate": {"revoked": True}}
        )
        return result.modified_count == 1
