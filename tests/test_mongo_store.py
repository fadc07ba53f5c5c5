"""What only the MongoDB adapter has to prove (the contract tests cover what both promise):
consistent-through follows the writers in flight recorded in the counter document."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pymongo.errors import PyMongoError

from lrs.settings import StoreSettings
from lrs.store import open_stores
from lrs.store.mongodb import MongoStores
from lrs.store.mongodb.schema import COUNTERS, STATEMENTS
from lrs.store.mongodb.statements import LEASE, _Reservation, _StaleReservation


@pytest.fixture()
def mongo(mongo_dsn: str) -> Iterator[tuple[asyncio.Runner, MongoStores]]:
    with asyncio.Runner() as runner:
        backend = runner.run(open_stores(mongo_dsn, pool_min=1, pool_max=2))
        assert isinstance(backend, MongoStores)
        yield runner, backend
        runner.run(backend.close())


def test_consistent_through_stays_before_a_writer_in_flight(mongo):
    runner, backend = mongo
    statements = backend.statements

    async def check() -> None:
        async with statements._clock.reserve(1) as reservation:
            assert await statements.consistent_through() < reservation.stored
            assert (await statements._clock.read())[0] >= reservation.stored  # the clock goes on
        assert await statements.consistent_through() >= reservation.stored

    runner.run(check())


def test_a_writer_in_flight_for_longer_than_the_lease_is_ignored(mongo):
    """A writer that died without clearing its entry holds consistent-through back for one lease
    at most; and a live writer that took half a lease gives up rather than commit late."""
    runner, backend = mongo

    async def check() -> None:
        now, _ = await backend.statements._clock.read()
        lapsed = int((now - LEASE - timedelta(seconds=1)).timestamp() * 1000)
        await backend.db[COUNTERS].update_one(
            {"_id": STATEMENTS}, {"$push": {"inflight": {"t": "crashed", "ms": lapsed}}}
        )
        try:
            assert await backend.statements.consistent_through() >= now - timedelta(milliseconds=1)
        finally:
            await backend.db[COUNTERS].update_one(
                {"_id": STATEMENTS}, {"$pull": {"inflight": {"t": "crashed"}}}
            )

    runner.run(check())
    slow = _Reservation("t", 1, time.monotonic(), time.monotonic() - LEASE.total_seconds() / 2 - 1)
    with pytest.raises(_StaleReservation):
        slow.check_fresh()


def test_credential_changes_reach_a_watcher(mongo, mongo_dsn: str):
    """The change stream a server keeps open tells it of every credential change made elsewhere."""
    runner, backend = mongo
    from lrs.auth.credentials import new_credential

    async def check() -> None:
        changed = asyncio.Event()
        await backend.watch_credentials(changed.set)
        other = await open_stores(mongo_dsn, pool_min=1, pool_max=1)  # another process's stores
        try:
            credential, _ = new_credential("watched", ["all"], "urn:test")
            await other.credentials.save(credential)
            await asyncio.wait_for(changed.wait(), 10)
            changed.clear()
            assert await other.credentials.revoke(credential.key)
            await asyncio.wait_for(changed.wait(), 10)
        finally:
            await other.close()

    runner.run(check())


def test_store_setting_takes_only_mongodb_urls(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LRS_STORE", "mongodb://db.example/lrs?replicaSet=rs0")
    assert StoreSettings().store == "mongodb://db.example/lrs?replicaSet=rs0"
    monkeypatch.setenv("LRS_STORE", "")
    assert StoreSettings().store is None
    monkeypatch.setenv("LRS_STORE", "postgresql://db.example/lrs")
    with pytest.raises(ValueError, match="LRS_DATABASE_URL"):
        StoreSettings()


def test_an_unreachable_server_fails_at_start(tmp_path):
    async def start() -> None:
        await open_stores("mongodb://127.0.0.1:9/lrs?serverSelectionTimeoutMS=200")

    with pytest.raises(PyMongoError):
        asyncio.run(start())
