"""The statement relay: statement store → ``xapi.statements``, at least once, in store order.

The statement store is the outbox (``lrs.store.ports.Outbox``: PostgreSQL or MongoDB, the relay
does not know which). The relay reads statements past its position up to the store's consistent
instant (nothing can appear behind it), publishes them, waits for the broker's acknowledgement,
and only then moves on. A broker outage stops the relay, never a POST; it resumes where it was.

Where it starts: at the lowest position any sink has recorded for any partition. Sinks are
idempotent, so re-publishing what a sink already holds is harmless; this is what makes a
restarted worker, a lost message, or an embedded broker that forgot everything catch up from
the statement store. Only one relay runs per store (``Outbox.election``); workers that do not
lead wait to take over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

import orjson

from lrs.store.ports import DEFAULT_TENANT, Outbox, OutboxEntry, OutboxRead
from sinks import positions

from .enrich import learner_key
from .envelope import Envelope, partition_of

log = logging.getLogger(__name__)

READ_LIMIT = 5000
HEARTBEAT_SECONDS = 1.0
IDLE_READS_SHARE = 0.2
"""At most this share of an idle relay's time goes to reads that find nothing: it waits at least
four times as long as such a read took (a read over many tenants' schemas costs tens of ms)."""

Send = Callable[[int, bytes, bytes | None], Awaitable[None]]
"""Publish (partition, value, key) and resolve once the broker acknowledged it."""


def item(entry: OutboxEntry, learner: str) -> bytes:
    """One statement of an envelope (``streams.envelope``), written without re-encoding it."""
    target = b'"target":%s,' % orjson.dumps(entry.target) if entry.target else b""
    tenant = b'"tenant":"%s",' % entry.tenant.encode() if entry.tenant != DEFAULT_TENANT else b""
    return b'{"pos":"%s","learner":%s,"voided":%s,%s%s"statement":%s}' % (
        positions.encode(*entry.position).encode(), orjson.dumps(learner),
        b"true" if entry.voided else b"false", target, tenant, entry.document,
    )  # fmt: skip


def envelope(through: str, epoch: str, items: list[bytes]) -> bytes:
    return b'{"v":1,"through":"%s","epoch":"%s","items":[%s]}' % (
        through.encode(),
        epoch.encode(),
        b",".join(items),
    )


class StatementRelay:
    def __init__(
        self,
        outbox: Outbox,
        send: Send,
        partitions: int,
        start_position: Callable[[], Awaitable[str]],
        batch: int = 200,
        interval: float = 0.05,
    ) -> None:
        self._outbox = outbox
        self._send = send
        self._partitions = partitions
        self._start_position = start_position
        self._batch = batch
        self._interval = interval
        self._idle_seconds = interval
        self._wake = asyncio.Event()
        self._rewind = False
        self.position = positions.START
        self.epoch = ""
        self.published = 0
        self.leading = False
        self._ahead: tuple[str, asyncio.Task[OutboxRead]] | None = None
        """The next round's read, begun while the broker acknowledges this round: (from, read)."""

    def rewind(self) -> None:
        """Start again from the sinks' positions (after ``lrs replay`` began a rebuild)."""
        self._rewind = True
        self._wake.set()

    async def run(self) -> None:
        election = self._outbox.election()
        try:
            await election.acquire()
            self.leading = True
            await self._restart("starts at")
            heartbeat_at = 0.0
            while await election.still_leading():
                if self._rewind:
                    self._rewind = False
                    await self._restart("rewound to")
                count = await self._round()
                now = time.monotonic()
                if count == 0 and now - heartbeat_at >= HEARTBEAT_SECONDS:
                    await self._heartbeat(set(range(self._partitions)))
                    heartbeat_at = now
                if count < READ_LIMIT:
                    await self._idle()
            log.warning("the relay lost its election; another worker relays now")
        finally:
            self.leading = False
            self._forget_ahead()
            await election.release()

    async def _restart(self, what: str) -> None:
        self.position = await self._start_position()
        self.epoch = positions.encode(await self._outbox.now(), 0)
        log.info("relay %s %r", what, self.position or "the beginning")

    async def _idle(self) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), self._idle_seconds)
        except TimeoutError:
            pass

    def _read(self, after: str) -> Awaitable[OutboxRead]:
        return self._outbox.read(positions.decode(after) if after else None, READ_LIMIT)

    def _read_ahead(self, after: str) -> None:
        task = asyncio.ensure_future(self._read(after))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failure is read again
        self._ahead = (after, task)

    def _forget_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    async def _next_read(self) -> OutboxRead:
        """The read begun ahead if it starts where the relay is (not after a failed round or a
        rewind), else a new one."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == self.position:
            try:
                return await ahead[1]
            except Exception:  # noqa: BLE001 - read again below, and fail there if it still fails
                log.debug("the relay's read ahead failed; reading again", exc_info=True)
        elif ahead is not None:
            ahead[1].cancel()
        return await self._read(self.position)

    async def _round(self) -> int:
        """Publish what became consistent since the last round; returns how many statements. A
        full round begins reading the next one while the broker acknowledges it."""
        began = time.monotonic()
        read = await self._next_read()
        if not read.entries:  # an empty read: wait long enough that such reads stay a small share
            took = time.monotonic() - began
            self._idle_seconds = max(self._interval, took * (1 - IDLE_READS_SHARE) / IDLE_READS_SHARE)
        items: dict[int, list[tuple[str, bytes, str]]] = defaultdict(list)  # partition → (pos, item, learner)
        for entry in read.entries:
            # a voiding statement goes to the partition of the learner whose statement it voids
            learner = learner_key(orjson.loads(entry.actor))
            pos = positions.encode(*entry.position)
            items[partition_of(learner, self._partitions)].append((pos, item(entry, learner), learner))
        # with nothing new, everything stored before the consistent instant has been sent
        last = (
            positions.encode(*read.entries[-1].position)
            if read.entries
            else max(self.position, positions.encode(read.consistent, 0))
        )
        if len(read.entries) == READ_LIMIT:  # more is waiting
            self._read_ahead(last)
        sends = []
        for partition, entries in items.items():
            for start in range(0, len(entries), self._batch):
                chunk = entries[start : start + self._batch]
                final = start + self._batch >= len(entries)
                # a chunk vouches for its partition up to its own last statement, the final one up
                # to the end of the round: a sink that stops between chunks is replayed the rest
                through = last if final else chunk[-1][0]
                learners = {learner for _, _, learner in chunk}
                key = next(iter(learners)).encode() if len(learners) == 1 else None
                sends.append(
                    self._send(partition, envelope(through, self.epoch, [i for _, i, _ in chunk]), key)
                )
        if sends:
            await asyncio.gather(*sends)
            quiet = set(range(self._partitions)) - set(items)
            if quiet:
                await self._heartbeat(quiet, last)
        self.position = last
        self.published += len(read.entries)
        return len(read.entries)

    async def _heartbeat(self, partitions: set[int], through: str | None = None) -> None:
        value = Envelope(through=through or self.position, epoch=self.epoch).encode()
        await asyncio.gather(*(self._send(p, value, None) for p in sorted(partitions)))
