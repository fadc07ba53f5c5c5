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

from ..ports import OutboxEntry, OutboxRead
from .schema import COUNTERS, STATEMENTS
from .statements import LIVE, Clock

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
    def __init__(self, db: AsyncIOMotorDatabase, client: AsyncIOMotorClient | None = None) -> None:
        self._db = db
        self._client = client
        """A client of the outbox's own, closed with it (``None``: the store's, closed with the store)."""
        self._statements = db[STATEMENTS]
        self._clock = Clock(db)

    async def read(self, after: tuple[datetime, int] | None, limit: int) -> OutboxRead:
        _, consistent_through = await self._clock.read()
        consistent = consistent_through + _MS  # through (inclusive, ms) → before (exclusive)
        query: dict = {"stored": {"$lt": consistent}}
        if after is not None:  # stored never decreases along seq: (stored, seq) > after
            query["seq"] = {"$gt": after[1]}
            query["stored"]["$gte"] = after[0]
        rows = (
            await self._statements.find(
                query, {"seq": 1, "stored": 1, "doc": 1, "keys": 1, "voiding": 1, "ref": 1}
            )
            .sort("seq", 1)
            .to_list(limit)
        )
        targets = [r["ref"] for r in rows if r.get("voiding")]
        actors = await self._actors(targets) if targets else {}
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
                    r["ref"] if voiding else None, actor,
                )
            )  # fmt: skip
        return OutboxRead(entries, consistent)

    async def _actors(self, ids: list[str]) -> dict[str, bytes]:
        found = self._statements.find({"_id": {"$in": ids}}, {"doc": 1})
        return {d["_id"]: orjson.dumps(orjson.loads(d["doc"])["actor"]) async for d in found}

    async def now(self) -> datetime:
        return await self._clock.now()

    async def newest(self) -> tuple[datetime, int] | None:
        row = await self._statements.find_one({}, {"stored": 1, "seq": 1}, sort=[("seq", -1)])
        return (row["stored"], row["seq"]) if row else None

    async def count(self, since: datetime | None, upto: tuple[datetime, int] | None) -> int:
        query: dict = {}
        if since is not None:
            query["stored"] = {"$gte": since}
        if upto is not None:
            query["seq"] = {"$lte": upto[1]}
        return await self._statements.count_documents(query)

    def election(self) -> MongoElection:
        return MongoElection(self._db)

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
