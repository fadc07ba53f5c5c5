"""Moving statements and documents between LRSs: what ``lrs export`` and ``lrs import`` do.

Both work on records, one JSON object per line of an NDJSON file (``lrs.transfer.files`` writes
and reads the files; ``lrs.transfer.remote`` reads another LRS's statement resource):

* a header, first: ``{"lrs-export": 1, "exported": "…", "filters": {…}, "documents": true}``;
* a statement: ``{"statement": {…as stored…}, "voided": true, "attachments": [{"sha2": "…",
  "contentType": "…", "content": "<base64>"}]}`` (``voided`` only when it is, ``attachments``
  only when the statement has attachment data here: a ``fileUrl`` attachment has none);
* a document: ``{"document": {"kind": "state" | "activity-profile" | "agent-profile",
  "activityKey": "…", "agentKey": "…", "registration": "…", "id": "…", "contentType": "…",
  "etag": "…", "updated": "…", "content": "<base64>"}}`` (the scope as this LRS keys it:
  portable between instances of this LRS, not an xAPI format).

Export reads the store in store order (``(stored, seq)``, oldest first) through the store ports,
a page at a time, so its memory does not grow with the store; each statement's attachments are
read with it. Import writes through the same use case as ``POST /statements`` (validation,
voiding, StatementRef keys, canonical definitions, immutability), a batch at a time in file order
(so the target's store order is the source's), as the credential it is given: an id already
stored with the same content is skipped, one stored with other content is reported and never
overwritten, an invalid statement is reported and the rest stored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from lrs.auth.credentials import Principal
from lrs.auth.scopes import Need, allows
from lrs.store.ports import ConflictError, DocumentKind, StatementQuery, StoreBusyError, StoredDocument
from lrs.xapi.formats import format_timestamp, parse_timestamp
from lrs.xapi.models import XapiVersion
from lrs.xapi.statements import StatementError, validate_statement

from .errors import Forbidden, LRSError, NotFound
from .statements import AttachmentPart, StatementFilter, attachment_hashes, verified_part, write_statements
from .stores import Stores

log = logging.getLogger(__name__)
FORMAT = 1
"""The version of the record format (the header's ``lrs-export``)."""
DOCUMENT_KINDS = {
    DocumentKind.STATE: "state",
    DocumentKind.ACTIVITY_PROFILE: "activity-profile",
    DocumentKind.AGENT_PROFILE: "agent-profile",
}
_KIND_NAMED = {name: kind for kind, name in DOCUMENT_KINDS.items()}


# --- export ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class ExportFilter:
    """Which statements an export holds (the GET /statements filters, and voided ones or not)."""

    agent: dict[str, Any] | None = None
    verb: str | None = None
    activity: str | None = None
    registration: str | None = None
    since: datetime | None = None
    """Stored after this instant (exclusive, as GET's ``since``)."""
    until: datetime | None = None
    """Stored at or before this instant."""
    voided: bool = True
    """Voided statements too (their voiding statements are exported either way)."""

    def describe(self) -> dict[str, Any]:
        """The filter as JSON (the export's header, and what a resumed export must match)."""
        return {
            "agent": self.agent,
            "verb": self.verb,
            "activity": self.activity,
            "registration": self.registration,
            "since": format_timestamp(self.since) if self.since else None,
            "until": format_timestamp(self.until) if self.until else None,
            "voided": self.voided,
        }

    def keys(self) -> list[str]:
        found = StatementFilter(self.agent, self.verb, self.activity, self.registration)
        return found.lookup_keys()


@dataclass(slots=True)
class ExportPosition:
    """How far an export got: its phase (``statements``, ``documents``, ``done``), the store's
    cursor within it, and the snapshot that bounds the statements (the export holds what was
    stored when it began, also when resumed later)."""

    phase: str = "statements"
    cursor: str | None = None
    snapshot: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "cursor": self.cursor, "snapshot": self.snapshot}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportPosition:
        return cls(str(data["phase"]), data.get("cursor"), data.get("snapshot"))


def header(filters: ExportFilter, documents: bool, exported: datetime) -> bytes:
    return orjson.dumps(
        {
            "lrs-export": FORMAT,
            "exported": format_timestamp(exported),
            "filters": filters.describe(),
            "documents": documents,
        }  # fmt: skip
    )


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


async def _statement_line(stores: Stores, document: bytes, voided: bool) -> bytes:
    line = b'{"statement":' + document
    if voided:
        line += b',"voided":true'
    hashes = attachment_hashes([document])
    if hashes:
        found = {a.sha2: a for a in await stores.statements.attachments(hashes)}
        parts = [
            {"sha2": h, "contentType": found[h].content_type, "content": _b64(found[h].content)}
            for h in hashes
            if h in found
        ]
        if parts:
            line += b',"attachments":' + orjson.dumps(parts)
    return line + b"}"


def _document_line(d: StoredDocument) -> bytes:
    return orjson.dumps(
        {
            "document": {
                "kind": DOCUMENT_KINDS[d.kind], "activityKey": d.activity_key, "agentKey": d.agent_key,
                "registration": d.registration, "id": d.doc_id, "contentType": d.content_type,
                "etag": d.etag, "updated": format_timestamp(d.updated), "content": _b64(d.content),
            }
        }
    )  # fmt: skip


async def export_records(
    stores: Stores,
    filters: ExportFilter,
    position: ExportPosition,
    *,
    documents: bool,
    page_size: int = 1000,
) -> AsyncIterator[tuple[list[bytes], int, ExportPosition]]:
    """The export from ``position`` on, a page at a time: (record lines, statements among them,
    the position after them). Statements come in store order, then (with ``documents``) every
    state, activity profile and agent profile document."""
    if position.phase == "statements":
        # Bound by consistent-through, not the clock: a statement stored earlier by a transaction
        # still open would otherwise commit behind the cursor and never be exported.
        snapshot = (
            parse_timestamp(position.snapshot) if position.snapshot else await stores.consistent_through()
        )
        query = StatementQuery(
            keys=filters.keys(), since=filters.since, until=filters.until, ascending=True, limit=page_size,
            cursor=position.cursor, snapshot=snapshot, voided=filters.voided,
        )  # fmt: skip
        while True:
            page = await stores.statements.query(query)
            lines = [await _statement_line(stores, s.document, s.voided) for s in page.statements]
            snapshot = format_timestamp(page.snapshot)
            if page.cursor is None:
                position = ExportPosition("documents" if documents else "done", None, snapshot)
                yield lines, len(lines), position
                break
            query.cursor, query.snapshot = page.cursor, page.snapshot
            yield lines, len(lines), ExportPosition("statements", page.cursor, snapshot)
    if position.phase == "documents":
        after = position.cursor
        while True:
            found, after = await stores.documents.export(after, page_size)
            position = ExportPosition("documents" if after else "done", after, position.snapshot)
            yield [_document_line(d) for d in found], 0, position
            if after is None:
                break


# --- import ---------------------------------------------------------------------------------------


class RecordSource(Protocol):
    """Where imported records come from (an export file, another LRS), resumable."""

    def records(self) -> AsyncIterator[tuple[dict[str, Any], Any]]:
        """Each record with the source's position after it (from where a resumed import goes on)."""

    async def commit(self, position: Any) -> None:
        """Everything up to ``position`` is stored: a resumed import starts after it."""


@dataclass(slots=True)
class ImportReport:
    statements: int = 0
    """Statement records read."""
    new: int = 0
    """Statements this LRS did not hold before."""
    present: int = 0
    """Statements it held already, with the same content (nothing changed)."""
    conflicts: int = 0
    """Ids it holds with other content: reported, not overwritten."""
    refused: int = 0
    """Invalid statements (or attachments that fail their hash): reported, not stored."""
    documents: int = 0
    """Document records read (created, or there already with the same content)."""
    document_conflicts: int = 0
    problems: list[str] = field(default_factory=list)
    """The first ``MAX_PROBLEMS`` conflicts and refusals, one line each."""
    more_problems: int = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.more_problems += 1


MAX_PROBLEMS = 100


async def import_principal(stores: Stores, key: str, *, keep_authority: bool) -> Principal:
    """The principal an import writes as: the credential ``key`` (its authority goes on the
    statements), or with ``keep_authority`` the source's authority stays, which needs a credential
    with scope ``import`` (see ``lrs.auth.scopes.keeps_authority``). ``stores`` must be the
    credential's tenant's (``lrs.transfer.commands`` opens them)."""
    credential = await stores.credentials.find(key)
    if credential is None or credential.revoked is not None:
        raise NotFound(f"no active credential with key {key!r}")
    scopes = credential.scopes
    if keep_authority and "import" not in scopes:
        raise Forbidden(
            f"keeping the source's authority needs a credential with scope import; {key!r} has not"
        )
    if not keep_authority and "import" in scopes:  # write as the credential: its authority
        scopes = (scopes - {"import"}) | {"statements/write"}
    if not allows(scopes, Need.STATEMENTS_WRITE):
        raise Forbidden(f"credential {key!r} may not write statements (scopes: {', '.join(sorted(scopes))})")
    return Principal(credential.key, frozenset(scopes), credential.authority, tenant=credential.tenant)


@dataclass(slots=True)
class _Item:
    id: str | None
    statement: dict[str, Any]
    version: XapiVersion
    parts: dict[str, AttachmentPart]


class _Batch:
    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.ids: set[str] = set()
        self.bytes = 0

    def takes(self, item: _Item, limit: int, byte_limit: int) -> bool:
        if not self.items:
            return True
        return (
            len(self.items) < limit
            and self.bytes < byte_limit
            and item.version is self.items[0].version
            and (item.id is None or item.id not in self.ids)
        )

    def add(self, item: _Item, size: int) -> None:
        self.items.append(item)
        if item.id:
            self.ids.add(item.id)
        self.bytes += size


class Importer:
    """Stores records a batch at a time (``batch`` statements or about ``batch_bytes`` of
    records), committing the source's position after each, so memory stays bounded and an
    interrupted import goes on from the last stored batch."""

    def __init__(
        self, stores: Stores, principal: Principal, *, max_depth: int, batch: int = 1000,
        batch_bytes: int = 32 * 1024 * 1024, progress: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        self.stores, self.principal, self.max_depth = stores, principal, max_depth
        self.batch, self.batch_bytes = batch, batch_bytes
        self.progress = progress or (lambda n: None)
        self.report = ImportReport()
        self._writing: asyncio.Future | None = None
        self.busy_seconds = 300.0
        """How long a batch the store keeps refusing as busy is retried (MongoDB ends a
        transaction a killed process left open after 60 s) before the import stops."""

    async def run(self, source: RecordSource) -> ImportReport:
        """Store every record of ``source``. One batch is written while the next is read and
        validated (at most two in memory): the database works while this process parses."""
        batch, documents, position, read = _Batch(), [], None, 0
        try:
            async for record, after in source.records():
                if "document" in record:
                    if batch.items:
                        await self._store_soon(batch, source, position)
                        batch = _Batch()
                    document = self._document(record["document"])
                    if document is not None:
                        documents.append(document)
                    if len(documents) >= 100:
                        await self._drain()
                        await self._restore(documents)
                        await source.commit(after)
                        documents = []
                elif "statement" in record:
                    if documents:
                        await self._drain()
                        await self._restore(documents)
                        await source.commit(position)
                        documents = []
                    item = self._item(record)
                    if item is not None:
                        if not batch.takes(item, self.batch, self.batch_bytes):
                            await self._store_soon(batch, source, position)
                            batch = _Batch()
                        batch.add(item, sum(len(p.content) for p in item.parts.values()) + 1024)
                position = after
                read += 1
                if read % 64 == 0:  # let the batch being written go on (reading a file never waits)
                    await asyncio.sleep(0)
            if batch.items:
                await self._store_soon(batch, source, position)
            await self._drain()
            if documents:
                await self._restore(documents)
            if position is not None:
                await source.commit(position)
        finally:
            if self._writing is not None and not self._writing.done():
                self._writing.cancel()
                await asyncio.gather(self._writing, return_exceptions=True)
        return self.report

    async def _store_soon(self, batch: _Batch, source: RecordSource, position: Any) -> None:
        """Start writing ``batch`` (then committing ``position``) once the batch before is stored:
        batches are stored, and positions committed, in order."""
        await self._drain()

        async def write() -> None:
            await self._store(batch)
            await source.commit(position)

        self._writing = asyncio.ensure_future(write())
        await asyncio.sleep(0)  # send its first query now

    async def _drain(self) -> None:
        """Wait for the batch being written (its errors are this import's)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    # --- statements --------------------------------------------------------------------------------

    def _item(self, record: dict[str, Any]) -> _Item | None:
        """A statement record, validated under its own version; ``None`` (reported) if invalid."""
        self.report.statements += 1
        statement = record["statement"]
        sid = statement.get("id") if isinstance(statement, dict) else None
        try:
            if not isinstance(statement, dict):
                raise StatementError("the statement is not a JSON object")
            version = XapiVersion.V2 if str(statement.get("version", "")).startswith("2.") else XapiVersion.V1
            validate_statement(statement, version)
            parts = {}
            for attachment in record.get("attachments") or ():
                sha2 = str(attachment["sha2"])
                content = verified_part(sha2, base64.b64decode(attachment["content"], validate=True))
                parts[sha2] = AttachmentPart(content)
        except (StatementError, LRSError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            self._refused(sid, exc)
            return None
        return _Item(sid.lower() if isinstance(sid, str) else None, statement, version, parts)

    def _refused(self, sid: Any, exc: BaseException) -> None:
        self.report.refused += 1
        self.report.problem(f"refused {sid or '(no id)'}: {exc}")
        self.progress(1)

    async def _store(self, batch: _Batch) -> None:
        items = batch.items
        present = await self.stores.statements.existing([i.id for i in items if i.id])
        await self._write(items, present)

    async def _write(self, items: list[_Item], present: set[str]) -> None:
        remaining = list(items)
        waited, delay = 0.0, 0.5
        while remaining:
            parts = {sha2: part for item in remaining for sha2, part in item.parts.items()}
            try:
                await write_statements(
                    self.stores, self.principal, remaining[0].version, [i.statement for i in remaining], parts,
                    max_depth=self.max_depth,
                )  # fmt: skip
            except ConflictError as exc:  # that id holds other content here: report it, store the rest
                self.report.conflicts += 1
                self.report.problem(f"conflict {exc.statement_id}: stored here with other content (kept)")
                self.progress(1)
                remaining = [i for i in remaining if i.id != exc.statement_id]
                continue
            except StoreBusyError as exc:  # such as a transaction a killed import left open: wait it out
                if waited >= self.busy_seconds:
                    raise
                log.warning("the store is busy (%s); storing the batch again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                waited, delay = waited + delay, min(delay * 2, 10.0)
                continue
            except (LRSError, StatementError) as exc:
                if len(remaining) == 1:
                    self._refused(remaining[0].id, exc)
                    return
                for item in remaining:  # find which: each on its own
                    await self._write([item], present)
                return
            for item in remaining:
                if item.id in present:
                    self.report.present += 1
                else:
                    self.report.new += 1
            self.progress(len(remaining))
            return

    # --- documents ---------------------------------------------------------------------------------

    def _document(self, data: Any) -> StoredDocument | None:
        """A document record; ``None`` (reported) if malformed."""
        try:
            updated = parse_timestamp(data["updated"])
            if updated is None:
                raise ValueError(f"updated is not a timestamp: {data['updated']!r}")
            return StoredDocument(
                _KIND_NAMED[data["kind"]], str(data["activityKey"]), str(data["agentKey"]),
                str(data["registration"]), str(data["id"]), base64.b64decode(data["content"], validate=True),
                str(data["contentType"]), str(data["etag"]), updated,
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            self.report.refused += 1
            self.report.problem(f"refused a document record: {exc!r}")
            return None

    async def _restore(self, documents: list[StoredDocument]) -> None:
        conflicts = await self.stores.documents.restore(documents)
        self.report.documents += len(documents)
        self.report.document_conflicts += len(conflicts)
        for d in conflicts:
            self.report.problem(
                f"document conflict {DOCUMENT_KINDS[d.kind]} {d.activity_key or d.agent_key} {d.doc_id!r}:"
                " stored here with other content (kept)"
            )
