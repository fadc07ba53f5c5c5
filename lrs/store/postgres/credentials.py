"""``CredentialStore`` on PostgreSQL."""

from __future__ import annotations

import asyncpg
import orjson

from ..ports import Credential

_COLUMNS = "key, secret_hash, scopes, name, authority, created, revoked, tenant"


def _credential(row: asyncpg.Record) -> Credential:
    return Credential(
        key=row["key"],
        secret_hash=row["secret_hash"],
        scopes=frozenset(row["scopes"]),
        name=row["name"],
        authority=orjson.loads(row["authority"]),
        created=row["created"],
        revoked=row["revoked"],
        tenant=row["tenant"],
    )


class PostgresCredentialStore:
    CHANNEL = "lrs_credentials"
    """Changes are announced with NOTIFY on this channel so servers drop cached verifications."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, key: str) -> Credential | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM lrs_credentials WHERE key = $1", key)
        return None if row is None else _credential(row)

    async def save(self, credential: Credential) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO lrs_credentials (key, secret_hash, scopes, name, authority, created, tenant)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO UPDATE SET secret_hash = EXCLUDED.secret_hash,"
                " scopes = EXCLUDED.scopes, name = EXCLUDED.name, authority = EXCLUDED.authority, revoked = NULL,"
                " tenant = EXCLUDED.tenant",
                credential.key, credential.secret_hash, sorted(credential.scopes), credential.name,
                orjson.dumps(credential.authority), credential.created, credential.tenant,
            )  # fmt: skip
            await conn.execute(f"NOTIFY {self.CHANNEL}")

    async def all(self) -> list[Credential]:
        return [
            _credential(r)
            for r in await self._pool.fetch(f"SELECT {_COLUMNS} FROM lrs_credentials ORDER BY created")
        ]

    async def revoke(self, key: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "UPDATE lrs_credentials SET revoked = now() WHERE key = $1 AND revoked IS NULL RETURNING 1",
                key,
            )
            await conn.execute(f"NOTIFY {self.CHANNEL}")
        return done is not None
