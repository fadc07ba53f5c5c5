"""The outbox port on MongoDB: the ``statements`` collection read in ``seq`` order.

``stored`` and ``seq`` come from one counter document, ``stored`` never decreasing along ``seq``
(see ``statements``), so store order is ``seq`` order, served by the ``seq`` index. The same
counter records the writers in flight, which gives the consistent instant: every statement
stored before it is committed. One relay per store is elected with a lease document that its
holder renews; a holder that stops renewing loses it after ``LEASE`` (a change stream could wake
the relay sooner, but correctness never depends on one: the relay polls).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import orjson
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo.errors import DuplicateKeyError

from ..ports import (
    DEFAULT_TENANT,
    OutboxEntry,
    OutboxPosition,
    OutboxRead,
    after_in_tenant,
    merged_read,
    tenant_order,
)
from .schema import COUNTERS, STATEMENTS
from .statements import LIVE, Clock
from .tenants import TENANTS, tenant_database

RELAY = "relay"
LEASE = timedelta(seconds=10)
_MS = timedelta(milliseconds=1)


class MongoElection:
    def __init__(self, db: AsyncIOMotorDatabase) -> None:
        self._counters = db[COUNTERS]
        self._token = uuid.uuid4().hex

    async def _claim(self) -> bool:
        """Take the lease if it is free, lapsed or ours, for another ``LEASE``."""
        now = {"$toLong": "$$NOW"}
        lease_ms = int(LEASE.total_seconds() * 1000)
        free = {"$or": [{"$eq": ["$holder", self._token]}, {"$lt": ["$until", now]}]}
        try:
            await self._counters.find_one_and_update(
                {"_id": RELAY, "$expr": free},
                [{"$set": {"holder": self._token, "until": {"$add": [now, lease_ms]}}}],
                upsert=True,
            )
        except DuplicateKeyError:  # held by another relay (the upsert found the _id taken)
            return False
        return True

    async def acquire(self) -> None:
        while not await self._claim():
            await asyncio.sleep(1.0)

    async def still_leading(self) -> bool:
        return await self._claim()

    async def release(self) -> None:
        await self._counters.update_one({"_id": RELAY, "holder": self._token}, {"$set": {"until": 0}})


class MongoOutbox:
    """``tenant``: the outbox of the tenant whose database ``db`` is; with ``every_tenant`` (the
    pipeline's, on the default tenant's database) of every tenant's database, read one by one and
    merged into store order (``merged_read``)."""

    def __init__(
        self, db: AsyncIOMotorDatabase, client: AsyncIOMotorClient | None = None, *,
        tenant: str = DEFAULT_TENANT, every_tenant: bool = False,
    ) -> None:  # fmt: skip
        self._db = db
        self._client = client
        """A client of the outbox's own, closed with it (``None``: the store's, closed with the store)."""
        self._tenant, self._every_tenant = tenant, every_tenant
        self._clock = Clock(db)
        self._ready: dict[str, AsyncIOMotorDatabase] = {tenant: db}
        """Tenants whose database holds a statement counter (made when its stores first open)."""

    async def _tenants(self) -> list[tuple[str, AsyncIOMotorDatabase]]:
        names = await self._db[TENANTS].distinct("_id")
        for name in names:
            if name not in self._ready:
                db = self._db.client[tenant_database(self._db.name, name)]
                if await db[COUNTERS].find_one({"_id": STATEMENTS}, {"_id": 1}) is not None:
                    self._ready[name] = db
        return [(name, db) for name, db in self._ready.items() if name == self._tenant or name in names]

    async def read(self, after: OutboxPosition | None, limit: int) -> OutboxRead:
        if not self._every_tenant:
            return await _read(self._db, self._tenant, after, limit)
        clock = await self._clock.now()  # before the list of tenants is read (``merged_read``)
        tenants = await self._tenants()
        reads = await asyncio.gather(*(_read(db, name, after, limit) for name, db in tenants))
        return merged_read(list(reads), clock, limit)

    async def now(self) -> datetime:
        return await self._clock.now()

    async def newest(self) -> OutboxPosition | None:
        found = []
        for name, db in await self._tenants() if self._every_tenant else [(self._tenant, self._db)]:
            row = await db[STATEMENTS].find_one({}, {"stored": 1, "seq": 1}, sort=[("seq", -1)])
            if row:
                found.append((row["stored"], row["seq"], name))
        return max(found, key=lambda p: (p[0], p[1], tenant_order(p[2])), default=None)

    async def count(self, since: datetime | None, upto: OutboxPosition | None) -> int:
        total = 0
        for name, db in await self._tenants() if self._every_tenant else [(self._tenant, self._db)]:
            query: dict = {}
            if since is not None:
                query["stored"] = {"$gte": since}
            if upto is not None:
                stored, seq = after_in_tenant(upto, name)
                if (upto[2] if len(upto) > 2 else DEFAULT_TENANT) == name:
                    query["seq"] = {"$lte": seq}  # its own sequence
                else:  # everything of this tenant at or before the position: (stored, seq) <= upto
                    query["$or"] = [{"stored": {"$lt": stored}}, {"stored": stored, "seq": {"$lte": seq}}]
            total += await db[STATEMENTS].count_documents(query)
        return total

    def election(self) -> MongoElection:
        return MongoElection(self._db)

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()


async def _read(
    db: AsyncIOMotorDatabase, tenant: str, after: OutboxPosition | None, limit: int
) -> OutboxRead:
    """One tenant's statements after the position, in its store order (``seq``)."""
    statements = db[STATEMENTS]
    _, consistent_through = await Clock(db).read()
    consistent = consistent_through + _MS  # through (inclusive, ms) → before (exclusive)
    fields = {"seq": 1, "stored": 1, "doc": 1, "keys": 1, "voiding": 1, "ref": 1}
    if after is None or (after[2] if len(after) > 2 else DEFAULT_TENANT) == tenant:
        query: dict = {"stored": {"$lt": consistent}}
        if after is not None:  # stored never decreases along seq: (stored, seq) > after
            query["seq"] = {"$gt": after[1]}
            query["stored"]["$gte"] = after[0]
        rows = await statements.find(query, fields).sort("seq", 1).to_list(limit)
    else:  # another tenant's position: those at its instant past its seq, then those after it
        stored, seq = after_in_tenant(after, tenant)
        order = [("stored", 1), ("seq", 1)]
        rows = (
            await statements.find({"stored": stored, "seq": {"$gt": seq}}, fields).sort(order).to_list(limit)
        )
        if stored < consistent and len(rows) < limit:
            later = {"stored": {"$gt": stored, "$lt": consistent}}
            rows += await statements.find(later, fields).sort(order).to_list(limit - len(rows))
        rows = [r for r in rows if r["stored"] < consistent]
    targets = [r["ref"] for r in rows if r.get("voiding")]
    actors = await _actors(statements, targets) if targets else {}
    entries = []
    for r in rows:
        document = bytes(r["doc"])
        voiding = bool(r.get("voiding"))
        if voiding and r["ref"] in actors:
            actor = actors[r["ref"]]
        else:
            actor = orjson.dumps(orjson.loads(document)["actor"])
        entries.append(
            OutboxEntry(
                r["stored"], r["seq"], document, not voiding and LIVE not in r["keys"],
                r["ref"] if voiding else None, actor, tenant,
            )
        )  # fmt: skip
    return OutboxRead(entries, consistent)


async def _actors(statements, ids: list[str]) -> dict[str, bytes]:
    found = statements.find({"_id": {"$in": ids}}, {"doc": 1})
    return {d["_id"]: orjson.dumps(orjson.loads(d["doc"])["actor"]) async for d in found}
