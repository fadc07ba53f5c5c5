"""Storage ports: what the use cases need from a store, independent of the database.

Adapters (``lrs.store.postgres``, ``lrs.store.mongodb``) implement these protocols and are all
checked by one contract test suite. Adapters do not know xAPI rules: statement matching is
reduced to key lookups (see ``lrs.xapi.statements``), and document concurrency rules arrive as
a function the adapter runs inside its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
import re
from typing import Any, Protocol

from lrs.xapi.statements import PreparedStatement

DEFAULT_TENANT = "default"
"""The tenant of every credential made without one: an installation from before tenants is it."""


class InvalidCursor(ValueError):
    """A paging cursor that this adapter did not issue."""


class TooLargeError(Exception):
    """A statement, document or attachment larger than the store can hold as one record (HTTP
    413); nothing of the write was kept."""


class StoreBusyError(Exception):
    """A write kept conflicting with other writes until the adapter gave up (such as with a
    transaction a killed process left open, which the database ends after its lifetime):
    nothing of it was kept, and the same write may succeed later (``lrs import`` waits and
    retries)."""


class ConflictError(Exception):
    """A statement id is already stored with different content (HTTP 409)."""

    def __init__(self, statement_id: str) -> None:
        super().__init__(f"statement {statement_id} already exists with different content")
        self.statement_id = statement_id


# --- statements ----------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class AttachmentContent:
    sha2: str
    content_type: str
    content: bytes


@dataclass(slots=True, frozen=True)
class StoredStatement:
    id: str
    document: bytes
    """The statement as stored (JSON, UTF-8), ``stored`` and ``timestamp`` included."""
    stored: datetime
    voided: bool


@dataclass(slots=True)
class StatementQuery:
    """A normalised GET /statements query.

    ``keys`` must all be present on a statement (see ``lrs.xapi.statements`` for prefixes).
    ``until`` is inclusive, ``since`` exclusive. ``cursor`` is an adapter's own opaque
    position from a previous page; ``snapshot`` bounds ``stored`` so later pages of one result
    never grow while clients page through it.
    """

    keys: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    ascending: bool = False
    limit: int = 100
    cursor: str | None = None
    snapshot: datetime | None = None
    voided: bool = False
    """Voided statements too (``lrs export``; GET /statements never returns them), each with its
    ``StoredStatement.voided`` set."""


@dataclass(slots=True)
class StatementPage:
    statements: list[StoredStatement]
    cursor: str | None
    """Position after the last statement of this page, when more may follow."""
    snapshot: datetime


@dataclass(slots=True, frozen=True)
class Rewrite:
    """A statement kept by an erasure with the learner taken out (``lrs.xapi.erasure.redact``)."""

    id: str
    document: bytes
    """The redacted statement as stored (JSON, UTF-8, ``stored`` included)."""
    keys: set[str]
    """Its lookup keys from now on (``lrs.xapi.statements.index_keys`` form)."""


@dataclass(slots=True)
class ErasedStatements:
    """What ``StatementStore.erase`` removed."""

    statements: int = 0
    redacted: int = 0
    attachments: int = 0
    agent_names: int = 0


SameStatement = Callable[[dict[str, Any], dict[str, Any]], bool]
"""Decides whether a stored statement and a re-sent one are the same (xAPI immutability rules)."""


class StatementStore(Protocol):
    async def store(
        self,
        statements: list[PreparedStatement],
        attachments: list[AttachmentContent],
        same: SameStatement,
        define: bool,
    ) -> None:
        """Store a batch atomically.

        Ids already stored are compared with ``same``: equal ones are skipped, a different one
        raises ``ConflictError`` and nothing of the batch is kept. Voiding statements mark
        their targets voided. Statements with a StatementRef object inherit the target's
        lookup keys (also when the target arrives later). With ``define`` the batch's activity
        definitions and verb displays update the canonical ones.
        """

    async def get(self, statement_id: str) -> StoredStatement | None: ...

    async def existing(self, statement_ids: list[str]) -> set[str]:
        """Which of these (lower-case) ids are stored (``lrs import`` counts what is new)."""

    async def query(self, query: StatementQuery) -> StatementPage: ...

    async def attachments(self, sha2s: list[str]) -> list[AttachmentContent]: ...

    async def consistent_through(self) -> datetime:
        """Every statement stored at or before this instant is visible to queries."""

    async def activity_definition(self, activity_id: str) -> dict[str, Any] | None: ...

    async def canonical(self, activity_ids: list[str], verb_ids: list[str]) -> tuple[dict, dict]:
        """Canonical activity definitions and verb displays for the given ids."""

    async def agent_names(self, key: str) -> list[str]: ...

    async def erase(
        self, delete: list[str], rewrite: list[Rewrite], agent_keys: list[str]
    ) -> ErasedStatements:
        """Erase a learner (the deliberate exception to immutability, docs/data-rights.md):
        delete the statements ``delete`` (ids, lower case) and the attachments no remaining
        statement refers to, replace the documents and keys of ``rewrite``, and forget the names
        recorded for ``agent_keys`` (identity keys). Idempotent: ids already gone count nothing."""


# --- the outbox: what the stream pipeline reads -------------------------------------------------


OutboxPosition = tuple[datetime, int, str]
"""``(stored, seq, tenant)``: store order over every tenant. ``stored`` first, then ``seq``, then the
tenant's name, the default tenant before the others (``tenant_order``)."""


def tenant_order(tenant: str) -> str:
    """The tenant's place among statements of equal ``(stored, seq)``: the default tenant first."""
    return "" if tenant == DEFAULT_TENANT else tenant


@dataclass(slots=True, frozen=True)
class OutboxEntry:
    """A stored statement as the pipeline's relay publishes it."""

    stored: datetime
    seq: int
    """``(stored, seq, tenant)`` orders the store: each entry is after the previous one."""
    document: bytes
    """The statement as stored (JSON, UTF-8)."""
    voided: bool
    """Voided already when read (sinks must not count it)."""
    target: str | None
    """For a voiding statement: the id of the statement it voids."""
    actor: bytes
    """The actor (JSON) whose learner the statement belongs to: its own, or for a voiding
    statement the voided statement's (so a void follows what it voids)."""
    tenant: str = DEFAULT_TENANT
    """The tenant whose statement it is."""

    @property
    def position(self) -> OutboxPosition:
        return self.stored, self.seq, self.tenant


@dataclass(slots=True, frozen=True)
class OutboxRead:
    entries: list[OutboxEntry]
    consistent: datetime
    """Every statement stored before this instant is among the entries or before ``after``; no
    statement can appear later with an earlier ``stored``."""


def after_in_tenant(
    after: OutboxPosition | tuple[datetime, int] | None, tenant: str
) -> tuple[datetime, int] | None:
    """``after`` as one tenant's own ``(stored, seq)``: that tenant's statements after the position
    in store order are those with ``(stored, seq)`` greater than the answer."""
    if after is None:
        return None
    stored, seq = after[0], after[1]
    at = after[2] if len(after) > 2 else DEFAULT_TENANT
    if tenant_order(tenant) > tenant_order(at):
        return stored, seq - 1  # its statements at the very (stored, seq) come after
    return stored, seq


def merged_read(reads: list[OutboxRead], clock: datetime, limit: int) -> OutboxRead:
    """One read over every tenant from each tenant's read: the first ``limit`` entries of all in
    store order, bounded by the earliest consistent instant (and ``clock``, read before the list
    of tenants was: a tenant created later stores nothing before it). Each tenant's entries are
    a prefix of its statements after the position, so the first ``limit`` of the merge are too."""
    consistent = min([clock, *(r.consistent for r in reads)])
    entries = [e for r in reads for e in r.entries if e.stored < consistent]
    entries.sort(key=lambda e: (e.stored, e.seq, tenant_order(e.tenant)))
    return OutboxRead(entries[:limit], consistent)


class Election(Protocol):
    """Which one process relays a store's statements (the others wait to take over)."""

    async def acquire(self) -> None:
        """Wait until this process leads."""

    async def still_leading(self) -> bool:
        """Whether this process still leads (renewing a lease where there is one)."""

    async def release(self) -> None: ...


class Outbox(Protocol):
    """The statement store as the stream pipeline's outbox: statements in store order, up to
    the consistent-through bound, so that nothing can appear behind what was read. The
    pipeline's outbox reads every tenant's statements; a tenant's own (``Stores.outbox`` of a
    tenant) reads that tenant's only."""

    async def read(self, after: OutboxPosition | None, limit: int) -> OutboxRead:
        """Statements stored after ``after`` (``None``: from the first), in store order, at most
        ``limit``, all before the returned consistent instant."""

    async def now(self) -> datetime:
        """The store's clock."""

    async def newest(self) -> OutboxPosition | None:
        """The position of the newest statement, ``None`` for an empty store."""

    async def count(self, since: datetime | None, upto: OutboxPosition | None) -> int:
        """Statements stored from ``since`` (all without it) up to ``upto`` (inclusive; all without it)."""

    def election(self) -> Election:
        """A new election of the one relay of this store."""

    async def close(self) -> None: ...


# --- documents -----------------------------------------------------------------------------------


class DocumentKind(IntEnum):
    STATE = 1
    ACTIVITY_PROFILE = 2
    AGENT_PROFILE = 3


@dataclass(slots=True, frozen=True)
class DocumentScope:
    """Where documents live: state (activity + agent + registration), activity or agent profile."""

    kind: DocumentKind
    activity_id: str = ""
    agent_key: str = ""
    registration: str = ""


@dataclass(slots=True, frozen=True)
class Document:
    content: bytes
    content_type: str
    etag: str
    updated: datetime


@dataclass(slots=True, frozen=True)
class Write:
    content: bytes
    content_type: str
    etag: str


class Delete:
    """Remove the document."""


Change = Write | Delete | None
"""What a document update decides: write new content, delete, or change nothing."""


@dataclass(slots=True, frozen=True)
class StoredDocument:
    """A document with its whole identity as the store keys it, for ``lrs export`` and
    ``lrs import`` between stores of this LRS: ``activity_key`` and ``agent_key`` are the index
    keys of the scope's activity id and agent identity (``lrs.xapi.indexkeys``, ``""`` where the
    kind has none), ``doc_id`` the full id."""

    kind: DocumentKind
    activity_key: str
    agent_key: str
    registration: str
    doc_id: str
    content: bytes
    content_type: str
    etag: str
    updated: datetime


class DocumentStore(Protocol):
    async def get(self, scope: DocumentScope, doc_id: str) -> Document | None: ...

    async def ids(self, scope: DocumentScope, since: datetime | None) -> tuple[list[str], datetime | None]:
        """Ids in the scope (updated strictly after ``since``) and the latest update time."""

    async def update(
        self, scope: DocumentScope, doc_id: str, decide: Callable[[Document | None], Change]
    ) -> None:
        """Run ``decide`` on the current document with it locked, then apply its change.

        ``decide`` may raise to reject the request; the document is then left untouched.
        """

    async def delete_all(self, scope: DocumentScope) -> None: ...

    async def erase_agents(self, agent_keys: list[str]) -> int:
        """Delete every state and agent-profile document of these identity keys (an erasure);
        how many there were."""

    async def export(self, after: str | None, limit: int) -> tuple[list[StoredDocument], str | None]:
        """Every document in a stable order, at most ``limit`` after the position ``after``
        (``None``: from the first): the page and the position after it (``None`` at the end)."""

    async def restore(self, documents: list[StoredDocument]) -> list[StoredDocument]:
        """Create each document that does not exist (its identity, content, ETag and update time
        as given). One that exists with the same content and type is left alone; one that exists
        with other content is left alone too and returned (a conflict): nothing is overwritten."""


# --- credentials ---------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Credential:
    key: str
    secret_hash: str
    scopes: frozenset[str]
    name: str
    authority: dict[str, Any]
    created: datetime
    revoked: datetime | None = None
    tenant: str = "default"
    """The tenant whose statements, documents and attachments this credential reaches."""


class CredentialStore(Protocol):
    async def find(self, key: str) -> Credential | None: ...

    async def save(self, credential: Credential) -> None:
        """Create the credential, or replace the one with the same key (un-revoking it)."""

    async def all(self) -> list[Credential]: ...

    async def revoke(self, key: str) -> bool: ...


# --- tenants -------------------------------------------------------------------------------------

_TENANT_NAME = re.compile(r"[a-z][a-z0-9_]{0,29}")


def tenant_problem(name: str) -> str | None:
    """Why ``name`` cannot name a tenant, or ``None`` when it can (it becomes part of a schema or
    database name, so it is kept to lowercase letters, digits and '_')."""
    if not _TENANT_NAME.fullmatch(name):
        return "a tenant name is 1-30 characters: a lowercase letter, then lowercase letters, digits or '_'"
    return None


@dataclass(slots=True, frozen=True)
class Tenant:
    """An organisation on a shared deployment: its own statements, documents and attachments
    (a namespace of its own in the store), reached only with its credentials."""

    name: str
    created: datetime
    disabled: datetime | None = None
    statements_per_second: int | None = None
    """Most statements its credentials may store per second (``None``: the deployment's default)."""
    storage_bytes: int | None = None
    """Most bytes its namespace may take before writes are refused (``None``: the default)."""


class TenantStore(Protocol):
    """The registry of tenants, kept beside the credentials (in the default tenant's namespace)."""

    async def find(self, name: str) -> Tenant | None: ...

    async def all(self) -> list[Tenant]: ...

    async def save(self, tenant: Tenant) -> None:
        """Create the tenant, or update its state and limits."""

    async def usage(self, name: str) -> int:
        """Bytes the tenant's namespace takes (tables and indexes, or collections and indexes)."""

    async def namespace_exists(self, name: str) -> bool:
        """Whether the namespace a tenant of this name would have exists already."""
