"""Write coalescing: concurrent store requests share one database transaction.

A POST of one statement costs a transaction with several round trips and a WAL flush; with
many clients posting at once, most of that is the same fixed cost paid again and again. The
coalescer lets the first request write at once and gathers requests that arrive while a write
is in flight into the next one (no timer, so an idle LRS adds no latency). Each request keeps
its own outcome: an adapter's ``write_group`` settles every submission separately (a conflict
fails that request only), and if the group's transaction itself fails, every submission is
written again on its own so one request's problem never becomes another's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lrs.xapi.statements import PreparedStatement

from .ports import AttachmentContent, SameStatement


@dataclass(eq=False)
class Submission:
    """One request's statements, written atomically or not at all."""

    statements: list[PreparedStatement]
    attachments: list[AttachmentContent]
    same: SameStatement
    define: bool
    error: BaseException | None = None
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def size(self) -> int:
        return len(self.statements)


GroupWriter = Callable[[list[Submission]], Awaitable[None]]


class WriteCoalescer:
    """Up to ``writers`` groups are written concurrently (each its own transaction)."""

    def __init__(self, write_group: GroupWriter, *, max_statements: int = 2000, writers: int = 2) -> None:
        self._write_group = write_group
        self._max = max_statements
        self._queue: list[Submission] = []
        self._writers = writers
        self._active = 0

    async def submit(self, submission: Submission) -> None:
        self._queue.append(submission)
        if self._active < self._writers:
            self._active += 1
            asyncio.get_running_loop().create_task(self._drain())
        await submission.done
        if submission.error is not None:
            raise submission.error

    async def _drain(self) -> None:
        group: list[Submission] = []
        try:
            while self._queue:
                group, size = [], 0
                while self._queue and (not group or size + self._queue[0].size() <= self._max):
                    size += self._queue[0].size()
                    group.append(self._queue.pop(0))
                await self._write(group)
                group = []
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for submission in [*group, *self._queue]:
                if not submission.done.done():
                    submission.error = submission.error or RuntimeError(f"statement writer stopped: {exc!r}")
                    submission.done.set_result(None)
            self._queue.clear()
            raise
        finally:
            self._active -= 1

    async def _write(self, group: list[Submission]) -> None:
        try:
            await self._write_group(group)
        except Exception as exc:  # noqa: BLE001 - the group failed as a whole
            if len(group) == 1:
                group[0].error = exc
            else:  # settle each request alone, so one request's failure stays its own
                for submission in group:
                    submission.error = None
                    try:
                        await self._write_group([submission])
                    except Exception as own:  # noqa: BLE001
                        submission.error = own
        for submission in group:
            if not submission.done.done():
                submission.done.set_result(None)
