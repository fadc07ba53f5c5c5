"""The statement relay: statement store → ``xapi.statements``, at least once, in store order.

The statement table is the outbox. The relay reads statements past its position whose
``stored`` is earlier than the store's consistent-through instant (every transaction that could
still add a statement with an earlier ``stored`` has finished, so nothing can appear behind
it), publishes them, waits for the broker's acknowledgement, and only then moves on. A broker
outage stops the relay, never a POST; it resumes where it was.

Where it starts: at the lowest position any sink has recorded for any partition. Sinks are
idempotent, so re-publishing what a sink already holds is harmless; this is what makes a
restarted worker, a lost message, or an embedded broker that forgot everything catch up from
the statement store. Only one relay runs per statement store (a PostgreSQL advisory lock elects
it); workers that do not hold the lock wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
import orjson

from lrs.store.postgres.pool import APPLICATION_NAME, create_pool

from . import position as positions
from .enrich import learner_key
from .envelope import Envelope, partition_of

log = logging.getLogger(__name__)

RELAY_LOCK = 0x4C52535231  # "LRSR1"
REWIND_CHANNEL = "lrs_relay_rewind"
"""``NOTIFY lrs_relay_rewind`` (sent by ``lrs replay``) makes the relay start again from the sinks."""
READ_LIMIT = 5000
HEARTBEAT_SECONDS = 1.0

_READ = """
SELECT s.seq, s.stored, coalesce(s.exact::text, s.document::text) AS document, s.voided,
       CASE WHEN s.is_voiding THEN s.ref_target::text END AS target,
       coalesce(t.document, s.document) -> 'actor' AS actor
FROM lrs_statements s
LEFT JOIN lrs_statements t ON s.is_voiding AND t.id = s.ref_target
WHERE (s.stored, s.seq) > ($1, $2) AND s.stored < $3
ORDER BY s.stored, s.seq
LIMIT $4
"""
_CONSISTENT = (
    "SELECT coalesce(min(xact_start), now()) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = $1 AND xact_start IS NOT NULL"
)

Send = Callable[[int, bytes, bytes | None], Awaitable[None]]
"""Publish (partition, value, key) and resolve once the broker acknowledged it."""


class StatementRelay:
    def __init__(
        self,
        dsn: str,
        send: Send,
        partitions: int,
        start_position: Callable[[], Awaitable[str]],
        batch: int = 200,
        interval: float = 0.05,
    ) -> None:
        self._dsn = dsn
        self._send = send
        self._partitions = partitions
        self._start_position = start_position
        self._batch = batch
        self._interval = interval
        self._wake = asyncio.Event()
        self._rewind = False
        self.position = positions.START
        self.epoch = ""
        self.published = 0
        self.leading = False

    def rewind(self) -> None:
        """Start again from the sinks' positions (after ``lrs replay`` reset a sink)."""
        self._rewind = True
        self._wake.set()

    async def run(self) -> None:
        lock = await asyncpg.connect(self._dsn, server_settings={"application_name": "lrs-relay-lock"})
        pool = await create_pool(self._dsn, min_size=1, max_size=2, application_name="lrs-relay")
        try:
            while not await lock.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                await asyncio.sleep(1.0)  # another worker relays; take over if it goes away
            self.leading = True
            await lock.add_listener(REWIND_CHANNEL, lambda *_: self.rewind())
            self.position = await self._start_position()
            self.epoch = await self._now(pool)
            log.info("relay starts at position %r", self.position or "the beginning")
            heartbeat_at = 0.0
            while True:
                if self._rewind:
                    self._rewind = False
                    self.position = await self._start_position()
                    self.epoch = await self._now(pool)
                    log.info("relay rewound to %r", self.position or "the beginning")
                count = await self._round(pool)
                now = time.monotonic()
                if count == 0 and now - heartbeat_at >= HEARTBEAT_SECONDS:
                    await self._heartbeat(set(range(self._partitions)))
                    heartbeat_at = now
                if count < READ_LIMIT:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._interval)
                    except TimeoutError:
                        pass
        finally:
            self.leading = False
            await pool.close()
            await lock.close()

    @staticmethod
    async def _now(pool: asyncpg.Pool) -> str:
        return positions.encode(await pool.fetchval("SELECT clock_timestamp()"), 0)

    async def _round(self, pool: asyncpg.Pool) -> int:
        """Publish what became consistent since the last round; returns how many statements."""
        async with pool.acquire() as conn:
            consistent: datetime = await conn.fetchval(_CONSISTENT, APPLICATION_NAME)
            after_stored, after_seq = (
                positions.decode(self.position) if self.position else (positions.EPOCH, 0)
            )
            rows = await conn.fetch(_READ, after_stored, after_seq, consistent, READ_LIMIT)
        items: dict[int, list[tuple[str, bytes, str]]] = defaultdict(list)  # partition → (pos, item, learner)
        for row in rows:
            # a voiding statement goes to the partition of the learner whose statement it voids
            learner = learner_key(orjson.loads(row["actor"]))
            pos = positions.encode(row["stored"], row["seq"])
            target = b'"target":%s,' % orjson.dumps(row["target"]) if row["target"] else b""
            item = b'{"pos":"%s","learner":%s,"voided":%s,%s"statement":%s}' % (
                pos.encode(), orjson.dumps(learner), b"true" if row["voided"] else b"false", target,
                row["document"].encode(),
            )  # fmt: skip
            items[partition_of(learner, self._partitions)].append((pos, item, learner))
        # with nothing new, everything stored before the consistent instant has been sent
        last = (
            positions.encode(rows[-1]["stored"], rows[-1]["seq"])
            if rows
            else max(self.position, positions.encode(consistent, 0))
        )
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
                    self._send(partition, _envelope(through, self.epoch, [i for _, i, _ in chunk]), key)
                )
        if sends:
            await asyncio.gather(*sends)
            quiet = set(range(self._partitions)) - set(items)
            if quiet:
                await self._heartbeat(quiet, last)
        self.position = last
        self.published += len(rows)
        return len(rows)

    async def _heartbeat(self, partitions: set[int], through: str | None = None) -> None:
        value = Envelope(through=through or self.position, epoch=self.epoch).encode()
        await asyncio.gather(*(self._send(p, value, None) for p in sorted(partitions)))


def _envelope(through: str, epoch: str, items: list[bytes]) -> bytes:
    return b'{"v":1,"through":"%s","epoch":"%s","items":[%s]}' % (
        through.encode(),
        epoch.encode(),
        b",".join(items),
    )
