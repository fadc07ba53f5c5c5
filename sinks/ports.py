"""The sink contract: what the worker hands every sink (``Sink``, ``Batch``), and the few
capabilities some sinks add (``AnalyticsViews``, ``LearnerHistory``, ``DomainEventOutbox``,
``CatalogStore``). The pipeline (``streams``) depends on these ports; the adapters implement them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from lrs.store.ports import DEFAULT_TENANT

from .catalog import Catalog, CatalogDocument
from .events import LearningEvent


@dataclass(slots=True, frozen=True)
class Retraction:
    """A voided statement: whatever it contributed is taken back."""

    statement_id: str
    position: str
    """Position of the voiding statement."""
    statement: dict[str, Any] | None = field(default=None, compare=False)
    """The voiding statement itself, kept only for sinks that need statements whole (forwarding)."""
    source: dict[str, Any] | None = field(default=None, compare=False)
    """The voiding statement as stored when ``statement`` holds pseudonyms."""
    tenant: str = DEFAULT_TENANT
    """The tenant of both statements."""


Operation = LearningEvent | Retraction


@dataclass(slots=True)
class Batch:
    """Operations of one partition in store order, and how far they reach."""

    partition: int
    operations: list[Operation] = field(default_factory=list)
    through: str = ""
    """Every statement of this partition up to this position is in this batch or earlier ones."""
    epoch: str = ""
    """The relay epoch ``through`` comes from: a sink reset later than it must not take it."""

    def net(self) -> tuple[list[LearningEvent], list[Retraction]]:
        """Events to add and retractions to apply, a retraction of an event in this very batch
        cancelling both."""
        events: dict[tuple[str, str], LearningEvent] = {}
        retractions: list[Retraction] = []
        for op in self.operations:
            if isinstance(op, Retraction):
                if events.pop((op.tenant, op.statement_id), None) is None:
                    retractions.append(op)
            else:
                events.setdefault((op.tenant, op.statement_id), op)
        return list(events.values()), retractions

    def of_tenant(self, tenant: str) -> Batch:
        """This batch with only ``tenant``'s operations (same partition, position and epoch)."""
        if all(op.tenant == tenant for op in self.operations):
            return self
        kept = [op for op in self.operations if op.tenant == tenant]
        return Batch(self.partition, kept, self.through, self.epoch)


def net_all(batches: Sequence[Batch]) -> tuple[list[LearningEvent], list[Retraction]]:
    """Every batch's :meth:`Batch.net`, together (batches are of different partitions)."""
    events: list[LearningEvent] = []
    retractions: list[Retraction] = []
    for batch in batches:
        added, taken = batch.net()
        events += added
        retractions += taken
    return events, retractions


def advanced(current: tuple[str, str] | None, batch: Batch) -> tuple[str, str] | None:
    """A partition's ``(position, epoch)`` once ``batch`` is applied, from ``current`` (``None``:
    nothing recorded yet); ``None`` when the batch must not move it. A newer relay epoch restarts
    the position (the relay rewound), the same epoch only moves it forward, an older one is
    ignored (messages sent before a reset)."""
    position, epoch = current or ("", "")
    if batch.epoch < epoch:
        return None
    return (batch.through if batch.epoch > epoch else max(position, batch.through)), batch.epoch


@dataclass(slots=True, frozen=True)
class ReplayStatus:
    """A sink's replay in progress: it rebuilds what was stored from ``since`` (all when
    ``None``) and swaps it in once ``position`` reaches ``target`` in every partition."""

    sink: str
    since: datetime | None
    target: str
    position: str
    """The lowest partition position the rebuild has reached."""


class Sink(Protocol):
    name: str
    serves_tenants: bool
    """Whether the sink keys and filters its rows by tenant; one that does not is given the
    default tenant's operations only (the pipeline filters, docs/tenants.md)."""

    async def start(self) -> None:
        """Connect and create or migrate the schema."""

    async def apply(self, batches: Sequence[Batch]) -> None:
        """Apply batches (at most one per partition) idempotently and all together, and record
        each one's ``through`` for its partition; a crash midway leaves what a replay repairs."""

    async def watermarks(self, partitions: int) -> list[str]:
        """How far the sink got in each partition (``""`` = nothing yet)."""

    async def begin_replay(self, since: datetime | None, epoch: str, target: str) -> None:
        """Start rebuilding what came from statements stored from ``since`` on (all of it
        without), from the statements the relay sends again, positions counting from ``since``
        as of ``epoch`` (messages sent before ``epoch`` move nothing). Until the rebuild reaches
        ``target`` in every partition, readers see what the sink held before (and the new
        statements that keep arriving); then the rebuilt state replaces it at once.
        ``watermarks`` reports the lower of both positions meanwhile, so a restarted relay
        re-sends what the rebuild still needs."""

    async def replay_status(self) -> ReplayStatus | None:
        """The replay in progress (``None`` when there is none)."""

    async def catalog_changed(self, catalogs: Mapping[str, Catalog]) -> None:
        """The catalogs were reloaded (tenant → catalog; sinks that keep a copy refresh theirs)."""

    async def close(self) -> None: ...


class AnalyticsViews(Protocol):
    """Read queries on the analytics views (ClickHouse): the worker's ``/analytics`` and reports."""

    async def records(self, sql: str, parameters: dict | None = None) -> list[dict[str, Any]]: ...


class LearnerHistory(Protocol):
    """A learner's daily engagement and weekly progress (the Cassandra time series)."""

    async def learner_history(
        self, learner: Any, days: int, until: date | None, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        """``learner``: a ``user_id`` or an identity key of a learner of ``tenant``."""


class DomainEventOutbox(Protocol):
    """Domain events written with the rollups, waiting to be published on Kafka ``lms.events``."""

    async def unpublished_events(self, limit: int = 500) -> list[tuple[str, bytes, str]]:
        """(id, payload, key) of events not yet published, oldest first."""

    async def mark_published(self, ids: list[str]) -> None: ...


class CatalogStore(Protocol):
    """Every tenant's catalog in the LMS database (``sinks.lms.LmsDatabase``)."""

    async def read_catalog(self, tenant: str = DEFAULT_TENANT) -> Catalog: ...

    async def save_catalog(self, document: CatalogDocument, tenant: str = DEFAULT_TENANT) -> dict[str, int]:
        """Merge a catalog document into the tenant's; how many courses, modules, lessons, quizzes,
        students it held."""

    async def courses(self, tenant: str = DEFAULT_TENANT) -> list[dict[str, Any]]:
        """Every course (``id``, ``title``) with its lessons (``id``, ``title``, ``kind``) in order."""

    async def student_names(self, student_ids: list[int], tenant: str = DEFAULT_TENANT) -> dict[int, str]:
        """The tenant's catalog's names of these students (scope ``analytics/names``)."""

    async def close(self) -> None: ...


class IgnoresCatalog:
    """For sinks that keep no copy of the catalog (they read it through the callable they were given)."""

    async def catalog_changed(self, catalogs: Mapping[str, Catalog]) -> None:
        return None


class RebuildsInPlace:
    """For sinks whose replay forgets and rebuilds in the live collections (``reset``): readers
    see the rebuild happen (docs/analytics.md, "Voiding, crashes and replays")."""

    async def reset(self, since: datetime | None, epoch: str) -> None:
        raise NotImplementedError

    async def begin_replay(self, since: datetime | None, epoch: str, target: str) -> None:
        await self.reset(since, epoch)

    async def replay_status(self) -> ReplayStatus | None:
        return None  # the rebuild moves the live positions themselves


# --- erasure (docs/data-rights.md) ---------------------------------------------------------------


@dataclass(slots=True)
class ErasureTask:
    """What the sinks must erase for one learner (``lms.erasure_tasks``, kept until all have)."""

    id: str
    identity_keys: list[str]
    """The learner's identity keys (``learner_key`` of the events)."""
    student_ids: list[int]
    statement_ids: list[str]
    """Every statement the erasure deleted (the learner's own, those about them, voidings of them)."""
    redacted: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Statements kept with the learner taken out: id → the statement as it is now."""
    sinks: list[str] = field(default_factory=list)
    """The sinks that must erase (the record's)."""
    tenant: str = DEFAULT_TENANT
    """The tenant the learner is erased in: every sink erases that tenant's rows only."""


class ErasesLearners(Protocol):
    """A sink that can erase a learner: every row of the task's identities, student ids and
    statements, and every aggregate recomputed without them; idempotent. Returns counts of what it
    removed (by table or collection)."""

    async def erase(self, task: ErasureTask) -> dict[str, int]: ...


class ErasureLedger(Protocol):
    """Erasure records, tasks and the LMS's own learner data (``sinks.erasures.LmsErasures``)."""

    async def secret(self) -> bytes:
        """The key of the keyed hashes."""

    async def students_of(
        self, keys: set[str], student_ids: set[int], tenant: str = DEFAULT_TENANT
    ) -> tuple[set[str], set[int]]:
        """Close ``keys`` and ``student_ids`` under the tenant's catalog's student mapping."""

    async def open_task(
        self, subject: str, identities: list[str] | None = None, tenant: str = DEFAULT_TENANT
    ) -> ErasureTask | None:
        """The tenant's unfinished erasure of this subject hash, or of any of these identity
        hashes, to complete (``None``: none)."""

    async def begin(self, task: ErasureTask, subject: str, identities: list[str], requested_by: str) -> None:
        """Write (or widen) the record and the task; from now on the sinks drop these identities."""

    async def forget_learner(self, task: ErasureTask) -> dict[str, int]:
        """Delete the LMS's own data of the task's tenant's learner (catalog mapping; for the
        default tenant also cmi5 registrations and queued forwards of deleted statements); counts
        per table."""

    async def add_counts(self, erasure_id: str, store: str, counts: dict[str, int]) -> None: ...

    async def settle(self, task: ErasureTask) -> None:
        """Complete the record (and delete the task) if every sink of it has erased."""

    async def wake_workers(self) -> None:
        """Tell the workers an erasure waits for their sinks."""

    async def report(self, erasure_id: str) -> dict[str, Any] | None:
        """The record as reported (no personal data)."""
