"""Sink lanes: every sink applies takes in order at its own pace; a take is acknowledged once
every sink has it.

The agent prepares take N+1 (decoding, flattening) while ClickHouse inserts take N and
PostgreSQL rolls up take N-1: the work of the worker's thread, the ClickHouse thread and the
database overlaps instead of adding up. At most ``depth`` takes are in flight; ``submit`` waits
for room, which is the back-pressure on the consumer. A lane that is behind applies the takes
waiting for it together (``merged``). Acknowledgements (Kafka offset commits)
happen in submission order and only after every sink applied the take, so a crash replays
whatever a sink may not have — never skips it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sinks.ports import Batch, Sink

Apply = Callable[[Sink, list[Batch]], Awaitable[None]]


MERGE_OPERATIONS = 20_000
"""A lane that is behind applies the takes waiting for it together, up to about this many
operations: fewer, larger writes (one rollup recomputation, one insert) where it matters most."""


@dataclass(slots=True)
class Take:
    batches: list[Batch]
    acknowledge: Callable[[], Awaitable[None]]
    waiting: int
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def size(self) -> int:
        return sum(len(b.operations) for b in self.batches)


def merged(takes: list[list[Batch]]) -> list[Batch]:
    """Consecutive takes as one (one batch per partition, operations in order). A later relay
    epoch restarts a partition's position, as it does within a take; an older one (messages sent
    before a rewind) adds its operations but not its position."""
    if len(takes) == 1:
        return takes[0]
    by_partition: dict[int, Batch] = {}
    for batches in takes:
        for batch in batches:
            into = by_partition.get(batch.partition)
            if into is None:
                by_partition[batch.partition] = Batch(
                    batch.partition, list(batch.operations), batch.through, batch.epoch
                )
                continue
            into.operations.extend(batch.operations)
            if batch.epoch > into.epoch:
                into.epoch, into.through = batch.epoch, batch.through
            elif batch.epoch == into.epoch:
                into.through = max(into.through, batch.through)
    return list(by_partition.values())


class Lanes:
    def __init__(
        self, sinks: Sequence[Sink], apply: Apply, failed: Callable[[BaseException], None], depth: int = 3
    ) -> None:
        self._sinks = list(sinks)
        self._apply = apply
        self._failed = failed
        self._queues = [asyncio.Queue[Take](maxsize=depth) for _ in self._sinks]
        self._acks = asyncio.Queue[Take](maxsize=depth)
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._lane(sink, queue), name=f"lane-{sink.name}")
            for sink, queue in zip(self._sinks, self._queues, strict=True)
        ]
        self._tasks.append(asyncio.create_task(self._acknowledge(), name="lane-acks"))
        for task in self._tasks:
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._failed(task.exception())  # the worker cannot go on without this lane

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, batches: list[Batch], acknowledge: Callable[[], Awaitable[None]]) -> None:
        """Queue a take for every sink (waits while ``depth`` takes are in flight)."""
        take = Take(batches, acknowledge, waiting=len(self._sinks))
        await self._acks.put(take)
        for queue in self._queues:
            await queue.put(take)
        if not self._sinks:
            take.done.set_result(None)

    async def drain(self) -> None:
        """Wait until everything submitted so far is applied and acknowledged."""
        await self._acks.join()

    async def _lane(self, sink: Sink, queue: asyncio.Queue[Take]) -> None:
        while True:
            takes = [await queue.get()]
            while not queue.empty() and sum(t.size for t in takes) < MERGE_OPERATIONS:
                takes.append(queue.get_nowait())  # behind on this sink: apply what waits at once
            try:
                await self._apply(sink, merged([t.batches for t in takes]))
            except Exception as exc:  # a bug, not a sink outage (those are retried in apply)
                for take in takes:
                    if not take.done.done():
                        take.done.set_exception(exc)
                raise
            for take in takes:
                take.waiting -= 1
                if take.waiting == 0:
                    take.done.set_result(None)

    async def _acknowledge(self) -> None:
        while True:
            take = await self._acks.get()
            await take.done
            await take.acknowledge()
            self._acks.task_done()
