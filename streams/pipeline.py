"""Everything a worker's agents share: the sinks and their lanes, the catalog, the relay.

``prepare`` turns envelopes into one batch of operations per partition (statements flattened by
``streams.enrich``; what cannot be read goes to the dead-letter topic with the reason); the sink
lanes (``streams.lanes``) apply them, each sink retried with backoff and never skipped. The
catalog is reloaded when the LMS database says it changed; ``lrs replay`` rewinds the relay
through it too (whichever worker leads the relay hears it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson
from prometheus_client import Counter, Gauge, Histogram

from lrs.store import open_outbox
from lrs.store.ports import DEFAULT_TENANT, Outbox
from sinks import positions
from sinks.catalog import Catalog
from sinks.factory import SinkSet, build_sinks
from sinks.lms import CATALOG_CHANNEL, REWIND_CHANNEL, LmsDatabase
from sinks.ports import Batch, Operation, Retraction, Sink
from sinks.erasures import ERASURE_CHANNEL, LmsErasures
from sinks.settings import (
    CassandraSettings,
    ClickHouseSettings,
    DataRightsSettings,
    ForwardSettings,
    MongoSettings,
)

from .enrich import flatten
from .envelope import BadEnvelope, Item, decode
from .erasure import ErasedLearners, SinkErasures
from .lanes import Lanes
from .locate import Locator
from .relay import Send, StatementRelay
from .settings import CatalogSettings, StreamSettings

log = logging.getLogger(__name__)

EVENTS = Counter("lrs_pipeline_events_total", "Statements (and retractions) applied, per sink", ["sink"])
DEAD_LETTERS = Counter(
    "lrs_pipeline_dead_letters_total", "Messages or statements sent to the dead-letter topic"
)
SINK_SECONDS = Histogram(
    "lrs_sink_batch_seconds", "Time to apply one batch to a sink", ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip
SINK_ERRORS = Counter("lrs_sink_errors_total", "Failed attempts to apply a batch", ["sink"])
RELAYED = Gauge("lrs_relay_published_total", "Statements published by this worker's relay")
LAG = Gauge("lrs_sink_lag_seconds", "How far a sink is behind the relay, in stored time", ["sink"])

DeadLetter = Callable[[bytes, str, int], Awaitable[None]]
"""Send (raw value, reason, partition) to the dead-letter topic."""


@dataclass
class SinkSettings:
    clickhouse: ClickHouseSettings
    mongodb: MongoSettings
    cassandra: CassandraSettings
    forward: ForwardSettings = field(default_factory=ForwardSettings)

    @classmethod
    def from_environment(cls) -> SinkSettings:
        return cls(ClickHouseSettings(), MongoSettings(), CassandraSettings(), ForwardSettings())


def _as_sent(item: Item, envelope: bytes) -> bytes:
    """What the dead-letter topic gets for a statement it cannot take: the statement's JSON, or
    the whole envelope where that JSON cannot be written again (nested deeper than orjson goes)."""
    try:
        return item.raw
    except (TypeError, ValueError):
        return envelope


class Pipeline:
    def __init__(
        self, store_url: str, lms_dsn: str, data_dir: Path, stream: StreamSettings, catalog: CatalogSettings,
        sinks: SinkSettings | None = None,
    ) -> None:  # fmt: skip
        """``store_url``: the statement store (the outbox the relay reads; PostgreSQL or MongoDB);
        ``lms_dsn``: the LMS database (catalog, rollups, notifications)."""
        self.store_url, self.data_dir = store_url, data_dir
        self.lms = LmsDatabase(lms_dsn, max_size=4, application_name="lrs-worker")
        self.outbox: Outbox | None = None
        self.stream, self.catalog_settings = stream, catalog
        self.sink_settings = sinks or SinkSettings.from_environment()
        self.catalogs: dict[str, Catalog] = {DEFAULT_TENANT: Catalog()}
        """Every tenant's catalog (docs/tenants.md); a tenant without one has an empty one."""
        self.locators: dict[str, Locator] = {}
        self._uncatalogued = self._locator(Catalog())
        self.found = SinkSet()
        self.relay: StatementRelay | None = None
        self.lanes: Lanes | None = None
        self.stopping = False
        """Set when the worker begins to stop: its web pages answer 503 from then on."""
        self._listeners: list[asyncpg.Connection] = []
        self.erased = ErasedLearners()
        """Learners erased: their statements still in flight are dropped (docs/data-rights.md)."""
        self.erasures: SinkErasures | None = None

    @property
    def sinks(self) -> list[Sink]:
        return self.found.sinks

    async def start(self, send: Send) -> None:
        self.outbox = await open_outbox(self.store_url)
        settings = self.sink_settings
        self.found = build_sinks(
            self.stream.sinks(), partitions=self.stream.stream_partitions, data_dir=self.data_dir,
            lms_dsn=self.lms.dsn, catalogs=lambda: self.catalogs, clickhouse=settings.clickhouse,
            mongodb=settings.mongodb, cassandra=settings.cassandra, forward=settings.forward,
            store_url=self.store_url,
        )  # fmt: skip
        for sink in self.sinks:
            await sink.start()
        self.lanes = Lanes(self.sinks, self._apply_with_retry, self._lane_failed)
        self.lanes.start()
        await self.reload_catalog()
        self._listeners.append(await self.lms.listen(CATALOG_CHANNEL, self._catalog_changed))
        rights = DataRightsSettings()
        secret = rights.data_rights_secret.get_secret_value() if rights.data_rights_secret else None
        self.erased.pseudonyms = rights.analytics_pseudonyms
        self.erasures = SinkErasures(LmsErasures(self.lms, secret), self.sinks, self.lanes.drain, self.erased)
        await self.erasures.start()
        self._listeners.append(await self.lms.listen(ERASURE_CHANNEL, self.erasures.wake))
        self.erasures.wake()  # erasures a crash interrupted
        self.relay = StatementRelay(
            self.outbox, send, self.stream.stream_partitions, self.start_position,
            batch=self.stream.stream_batch, interval=self.stream.relay_interval,
        )  # fmt: skip
        self._listeners.append(await self.lms.listen(REWIND_CHANNEL, self.relay.rewind))

    def begin_stopping(self) -> None:
        self.stopping = True

    def _lane_failed(self, exc: BaseException) -> None:
        log.critical("a sink lane failed; stopping the worker", exc_info=exc)
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor (or the orchestrator) restarts it

    async def stop(self) -> None:
        if self.erasures is not None:
            await self.erasures.close()
        if self.lanes is not None:
            await self.lanes.stop()
        for listener in self._listeners:
            await listener.close()
        for sink in self.sinks:
            await sink.close()
        if self.outbox is not None:
            await self.outbox.close()
        await self.lms.close()

    # --- the catalog ---------------------------------------------------------------------------

    def _catalog_changed(self) -> None:
        asyncio.ensure_future(self.reload_catalog())

    def _locator(self, catalog: Catalog) -> Locator:
        return Locator(catalog, self.catalog_settings.iri_templates, self.catalog_settings.student_homepage)

    @property
    def catalog(self) -> Catalog:
        """The default tenant's catalog."""
        return self.catalogs[DEFAULT_TENANT]

    async def reload_catalog(self) -> None:
        """Read every tenant's catalog again (after any tenant's upload)."""
        self.catalogs = await self.lms.read_catalogs()
        self.locators = {tenant: self._locator(catalog) for tenant, catalog in self.catalogs.items()}
        for sink in self.sinks:
            await sink.catalog_changed(self.catalogs)

    # --- replays -------------------------------------------------------------------------------

    async def begin_replay(self, since, chosen: list[Sink]) -> str:
        """Make ``chosen`` rebuild what was stored from ``since`` and the relay send it again;
        returns the replay's target (and epoch): done once every statement stored before it has
        been sent again."""
        epoch = positions.encode(await self.outbox.now(), 0)
        await self.lanes.drain()  # every batch after this goes to the rebuild too
        for sink in chosen:
            await sink.begin_replay(since, epoch, target=epoch)
        await self.lms.notify(REWIND_CHANNEL)  # whichever worker leads the relay
        return epoch

    async def start_position(self) -> str:
        """The lowest position any sink recorded for any partition: the relay starts there."""
        lowest = None
        for sink in self.sinks:
            low = min(await sink.watermarks(self.stream.stream_partitions))
            lowest = low if lowest is None else min(lowest, low)
        return lowest or positions.START

    # --- applying ------------------------------------------------------------------------------

    async def prepare(self, messages: list[tuple[int, bytes]], dead_letter: DeadLetter) -> list[Batch]:
        """Envelopes (partition, raw value) → one batch of operations per partition; what cannot
        be read or flattened goes to the dead-letter topic."""
        batches: dict[int, Batch] = {}
        keep, locators = self.found.keeps_statements, self.locators
        for partition, raw in messages:
            batch = batches.setdefault(partition, Batch(partition))
            try:
                envelope = decode(raw)
            except BadEnvelope as exc:
                await dead_letter(raw, str(exc), partition)
                continue
            if envelope.epoch > batch.epoch:  # the relay rewound: positions start over
                batch.epoch, batch.through = envelope.epoch, envelope.through
            elif envelope.epoch == batch.epoch:
                batch.through = max(batch.through, envelope.through)
            await asyncio.sleep(0)  # an envelope at a time: the relay and the sink lanes go on meanwhile
            for item in envelope.items:
                try:
                    operation = self._operation(item, locators.get(item.tenant, self._uncatalogued), keep)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    await dead_letter(_as_sent(item, raw), f"cannot flatten statement: {exc!r}", partition)
                    continue
                if operation is not None:
                    batch.operations.append(operation)
        return list(batches.values())

    def _operation(self, item: Item, locator: Locator, keep: bool) -> Operation | None:
        """What one envelope item asks of the sinks (``locator``: of its tenant's catalog): a
        retraction (a voiding), an event, or nothing (an erased learner's, or voided before it was read). Raises ``KeyError``/
        ``TypeError``/``ValueError``/``AttributeError`` for a statement no LRS would have stored."""
        statement = self.erased.screen_item(item)  # JSON, or a dict if it had to be screened
        if statement is None:  # an erased learner's, still in flight
            return None
        if item.target is not None:
            kept = None
            if keep:
                kept = orjson.loads(statement) if isinstance(statement, bytes) else statement
            return Retraction(
                item.target,
                item.position,
                self.erased.pseudonymous_statement(kept),
                source=kept if self.erased.pseudonyms else None,
                tenant=item.tenant,
            )
        if item.voided:  # voided before it was read: it never counts
            return None
        event = flatten(statement, item.position, locator, keep, item.tenant)
        if self.erased.erased_student(event.student_id, event.stored, event.tenant):
            return None
        return self.erased.pseudonymous(event)

    async def _apply_with_retry(self, sink: Sink, batches: list[Batch]) -> None:
        if not sink.serves_tenants:
            batches = [b.of_tenant(DEFAULT_TENANT) for b in batches]
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                await sink.apply(batches)
            except Exception:  # noqa: BLE001 - any sink failure: retry, never skip the batch
                SINK_ERRORS.labels(sink.name).inc()
                log.exception("sink %s failed on a batch; retrying in %.1f s", sink.name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            SINK_SECONDS.labels(sink.name).observe(time.perf_counter() - started)
            EVENTS.labels(sink.name).inc(sum(len(b.operations) for b in batches))
            self._record_lag(sink, batches)
            return

    def _record_lag(self, sink: Sink, batches: list[Batch]) -> None:
        through = min((b.through for b in batches if b.through), default="")
        if through and self.relay and self.relay.position:
            lag = positions.stored_of(self.relay.position) - positions.stored_of(through)
            LAG.labels(sink.name).set(max(lag.total_seconds(), 0.0))
