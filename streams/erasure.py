"""The worker's side of learner erasure (docs/data-rights.md).

``ErasedLearners`` screens every statement before it is flattened: one keyed hash per identity a
statement names, looked up in the set of erased hashes (refreshed from the LMS database when an
erasure begins). A statement of an erased learner (actor, object, or a voiding of theirs) is
dropped; one that names them elsewhere is redacted first, by the same rules as the store
(``lrs.xapi.erasure``). With no erasure recorded the check is one empty-set test.

``SinkErasures`` runs the erasure tasks in this worker's sinks: on the LMS database's
notification (and at start, to finish what a crash interrupted) it refreshes the hashes, drains
the sink lanes (so nothing taken before the refresh lands after the erasure) and asks each sink
that has not yet done so to erase, recording it as done.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import replace
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lrs.store.ports import DEFAULT_TENANT
from lrs.xapi.formats import parse_timestamp
from lrs.xapi.erasure import (
    identities_in,
    keyed_hash,
    pseudonymise,
    pseudonymous_key,
    redact,
    student_key,
    verdict,
)
from sinks.erasures import ERASURE_CHANNEL, LmsErasures
from sinks.events import LearningEvent
from sinks.ports import ErasureTask, Sink

from .envelope import Item

log = logging.getLogger(__name__)


class ErasedLearners:
    def __init__(self) -> None:
        self.hashes: dict[tuple[str, str], datetime] = {}
        """(tenant, keyed hash of an erased identity) → when it was erased."""
        self.secret = b""
        self.pseudonyms = False
        """``LRS_ANALYTICS_PSEUDONYMS``: events reach the sinks with pseudonyms (``pseudonymous``)."""
        self._hash: Callable[[str], str] = lambda key: key

    def update(self, secret: bytes, hashes: dict[tuple[str, str], datetime]) -> None:
        self._hash = functools.lru_cache(maxsize=1 << 16)(functools.partial(keyed_hash, secret))
        self.secret = secret
        self.hashes = dict(hashes)

    def pseudonymous(self, event: LearningEvent) -> LearningEvent:
        """The event with its learner and every agent of its statement replaced by pseudonyms
        (when ``pseudonyms`` is on; the event itself otherwise)."""
        if self.pseudonyms:
            event.learner_key = pseudonymous_key(self.secret, event.learner_key)
            if event.statement is not None:
                event.source, event.statement = event.statement, pseudonymise(event.statement, self.secret)
        return event

    def pseudonymous_statement(self, statement: dict[str, Any] | None) -> dict[str, Any] | None:
        return (
            pseudonymise(statement, self.secret) if self.pseudonyms and statement is not None else statement
        )

    def _erased(self, key: str, stored: datetime | None, tenant: str) -> bool:
        """Whether the tenant's identity ``key`` was erased after a statement ``stored`` then (a
        learner erased and back later has their new statements counted again)."""
        at = self.hashes.get((tenant, self._hash(key)))
        return at is not None and (stored is None or stored <= at)

    def erased_student(
        self, student_id: int | None, stored: datetime | None, tenant: str = DEFAULT_TENANT
    ) -> bool:
        """Whether the tenant's student was erased (another tenant's student of the same id is
        another person)."""
        return (
            bool(self.hashes)
            and student_id is not None
            and self._erased(student_key(student_id), stored, tenant)
        )

    def screen_item(self, item: Item) -> bytes | dict[str, Any] | None:
        """An envelope item's statement as the sinks may see it: its JSON as sent while no erasure
        is recorded (nothing to screen, nothing decoded), else ``screen`` of the statement against
        its tenant's erasures (another tenant's statements about someone with the same
        identifiers are another person's, docs/tenants.md)."""
        return item.raw if not self.hashes else self.screen(item.statement, item.tenant)

    def screen(self, statement: dict[str, Any] | None, tenant: str = DEFAULT_TENANT) -> dict[str, Any] | None:
        """The statement as the sinks may see it: itself, redacted, or ``None`` (dropped)."""
        if not self.hashes or not isinstance(statement, dict):
            return statement
        try:
            stored = parse_timestamp(statement["stored"])
        except (KeyError, TypeError, ValueError):
            stored = None
        erased = {k for k in identities_in(statement) if self._erased(k, stored, tenant)}
        if not erased:
            return statement
        decided = verdict(statement, erased)
        if decided == "erase":
            return None
        return redact(statement, erased) if decided == "redact" else statement


class SinkErasures:
    def __init__(self, ledger: LmsErasures, sinks: list[Sink], drain, erased: ErasedLearners) -> None:
        self.ledger, self.sinks, self.drain, self.erased = ledger, sinks, drain, erased
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.ledger.register_sinks([s.name for s in self.sinks])
        await self.refresh()

    async def refresh(self) -> None:
        self.erased.update(await self.ledger.secret(), await self.ledger.erased_hashes())

    def wake(self) -> None:
        """Run the pending tasks (again) in the background."""
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self.run())

    _wanted = False

    async def run(self) -> None:
        delay = 0.2
        while self._wanted:
            self._wanted = False
            try:
                async with self._lock:
                    await self.refresh()
                    tasks = await self.ledger.pending_tasks()
                    if tasks:
                        await self.drain()
                    for task in tasks:
                        await self._erase(task)
            except Exception:  # noqa: BLE001 - a sink or the LMS database away: try again
                log.exception("erasure in the sinks failed; retrying in %.1f s", delay)
                self._wanted = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _erase(self, task: ErasureTask) -> None:
        done = await self.ledger.sinks_done(task.id)
        if self.erased.pseudonyms:  # the sinks count the learner by pseudonym
            secret = self.erased.secret
            task = replace(
                task,
                identity_keys=task.identity_keys + [pseudonymous_key(secret, k) for k in task.identity_keys],
            )
        for sink in self.sinks:
            if sink.name not in task.sinks or sink.name in done:
                continue
            erase = getattr(sink, "erase", None)
            counts = await erase(task) if erase is not None else {}
            await self.ledger.sink_done(task, sink.name, counts)
            log.info("erasure %s: sink %s erased %s", task.id, sink.name, counts)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


__all__ = ["ERASURE_CHANNEL", "ErasedLearners", "SinkErasures"]
