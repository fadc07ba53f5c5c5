"""The relay's rounds against an in-memory outbox (a stand-in for the store port, which the
store contract suite covers on both adapters): every statement is published once and in store
order when rounds read ahead, a failed round is sent again from where it stopped (its read ahead
is not used), and a rewind starts over from the sinks' position."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from lrs.store.ports import OutboxEntry, OutboxRead
from sinks import positions
from streams import relay as relay_module
from streams.envelope import decode
from streams.relay import StatementRelay

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class MemoryOutbox:
    def __init__(self, count: int) -> None:
        self.entries = [
            OutboxEntry(
                T0 + timedelta(milliseconds=i),
                i,
                orjson.dumps({"id": f"s{i}", "actor": {"mbox": f"mailto:l{i % 7}@example.org"}}),
                False,
                None,
                orjson.dumps({"mbox": f"mailto:l{i % 7}@example.org"}),
            )  # fmt: skip
            for i in range(count)
        ]
        self.reads: list[tuple[datetime, int] | None] = []

    async def now(self) -> datetime:
        return T0 + timedelta(days=1)

    async def read(self, after, limit):
        self.reads.append(after)
        await asyncio.sleep(0)  # a read takes a turn of the loop, as a database's does
        found = [e for e in self.entries if after is None or (e.stored, e.seq) > after][:limit]
        return OutboxRead(found, T0 + timedelta(days=1))


class Broker:
    """Records what was published; fails the sends of one chosen round once."""

    def __init__(self, fail_round: int | None = None) -> None:
        self.values: list[bytes] = []
        self.round = 0
        self.fail_round = fail_round

    async def send(self, partition: int, value: bytes, key: bytes | None) -> None:
        await asyncio.sleep(0)
        if self.round == self.fail_round:
            self.fail_round = None
            raise ConnectionError("broker went away")
        self.values.append(value)

    def published(self) -> list[str]:
        return [item.statement["id"] for v in self.values for item in decode(v).items]


async def start() -> str:
    return positions.START


@pytest.fixture
def small_rounds(monkeypatch):
    monkeypatch.setattr(relay_module, "READ_LIMIT", 10)


async def rounds(relay: StatementRelay, broker: Broker, count: int) -> None:
    await relay._restart("starts at")
    for _ in range(count):
        try:
            await relay._round()
        except ConnectionError:
            pass  # the round is sent again: its position did not move
        broker.round += 1


def test_reading_ahead_publishes_every_statement_once_in_order(small_rounds):
    asyncio.run(_reading_ahead())


async def _reading_ahead() -> None:
    outbox, broker = MemoryOutbox(95), Broker()
    relay = StatementRelay(outbox, broker.send, partitions=1, start_position=start, batch=4)
    await rounds(relay, broker, 12)
    assert broker.published() == [f"s{i}" for i in range(95)]
    # nine full rounds read the next one ahead, each from the last statement of the one before
    assert [r[1] if r else None for r in outbox.reads[:11]] == [None, *range(9, 90, 10), 94]


def test_a_failed_round_is_sent_again_and_its_read_ahead_is_not_used(small_rounds):
    asyncio.run(_failed_round())


async def _failed_round() -> None:
    outbox, broker = MemoryOutbox(45), Broker(fail_round=2)
    relay = StatementRelay(outbox, broker.send, partitions=1, start_position=start, batch=100)
    await rounds(relay, broker, 8)
    published = broker.published()
    assert published == [f"s{i}" for i in range(45)], "nothing skipped, nothing repeated, in order"
    assert relay.position >= positions.encode(outbox.entries[-1].stored, 44)


def test_a_rewind_starts_over_whatever_was_read_ahead(small_rounds):
    asyncio.run(_rewind())


async def _rewind() -> None:
    outbox, broker = MemoryOutbox(30), Broker()
    relay = StatementRelay(outbox, broker.send, partitions=1, start_position=start, batch=100)
    await rounds(relay, broker, 2)  # 20 sent, the third round read ahead
    assert relay._ahead is not None
    await rounds(relay, broker, 4)  # _restart: from the start again
    assert broker.published() == [f"s{i}" for i in range(20)] + [f"s{i}" for i in range(30)]


def test_an_idle_relay_waits_four_times_as_long_as_an_empty_read_took():
    """Reads that find nothing (over many tenants' schemas they cost tens of ms) take at most a
    fifth of an idle relay's time; a quick one leaves the configured interval."""

    class SlowWhenEmpty(MemoryOutbox):
        async def read(self, after, limit):
            found = await super().read(after, limit)
            if not found.entries:
                await asyncio.sleep(0.05)
            return found

    async def idle_after(outbox: MemoryOutbox) -> float:
        relay = StatementRelay(outbox, Broker().send, 3, start, interval=0.01)
        await relay._restart("starts at")
        await relay._round()  # publishes what there is
        await relay._round()  # finds nothing
        return relay._idle_seconds

    assert asyncio.run(idle_after(SlowWhenEmpty(5))) >= 0.2
    assert asyncio.run(idle_after(MemoryOutbox(5))) == pytest.approx(0.01, abs=0.01)
