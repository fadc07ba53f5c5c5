"""Storing and retrieving statements."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from lrs.auth.credentials import Principal
from lrs.auth.scopes import Need, allows, may_define, reads_only_own
from lrs.store.ports import AttachmentContent, ConflictError, StatementPage, StatementQuery, StoredStatement
from lrs.xapi.agents import ifi_key
from lrs.xapi.compare import same_statement
from lrs.xapi.formatting import canonical_format, ids_format, verbs_of
from lrs.xapi.models import XapiVersion
from lrs.xapi.signature import signature_attachment, verify_signature
from lrs.xapi.statements import StatementError, activities_of, prepare

from .errors import BadRequest, Conflict, Forbidden, NotFound
from .stores import Stores

Format = Literal["exact", "ids", "canonical"]


@dataclass(slots=True)
class AttachmentPart:
    """Raw attachment data from a multipart request, keyed by its X-Experience-API-Hash."""

    content_type: str
    content: bytes


def _require(principal: Principal, need: Need) -> None:
    if not allows(principal.scopes, need):
        raise Forbidden(f"this credential's scopes ({', '.join(sorted(principal.scopes))}) do not allow this")


def _declared_attachments(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for statement in statements:
        found.extend(statement.get("attachments", ()))
        if statement["object"].get("objectType") == "SubStatement":
            found.extend(statement["object"].get("attachments", ()))
    return found


def _match_attachments(
    statements: list[dict[str, Any]], parts: dict[str, AttachmentPart] | None
) -> list[AttachmentContent]:
    """Pair raw parts with attachment metadata by SHA-2 and check signed statements."""
    declared = _declared_attachments(statements)
    if parts is None:
        missing = next((a for a in declared if "fileUrl" not in a), None)
        if missing is not None:
            raise BadRequest(
                f"attachment {missing['sha2']} has no fileUrl, so its data must be sent as multipart/mixed"
            )
        return []
    hashes = {a["sha2"] for a in declared}
    for sha2 in parts:
        if sha2 not in hashes:
            raise BadRequest(f"multipart part {sha2} matches no attachment's sha2 in the statements")
    for attachment in declared:
        if "fileUrl" not in attachment and attachment["sha2"] not in parts:
            raise BadRequest(f"attachment {attachment['sha2']} has no fileUrl and no part carrying its data")
    for statement in statements:
        signature = signature_attachment(statement)
        if signature is None:
            continue
        if signature["contentType"] != "application/octet-stream":
            raise BadRequest("a signature attachment must have contentType application/octet-stream")
        if signature["sha2"] not in parts:
            raise BadRequest("a signature attachment must be sent as a multipart part")
        try:
            verify_signature(statement, parts[signature["sha2"]].content)
        except StatementError as exc:
            raise BadRequest(str(exc)) from None
    return [AttachmentContent(sha2, p.content_type, p.content) for sha2, p in parts.items()]


def check_part_hash(sha2: str, content: bytes) -> None:
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha2.lower():
        raise BadRequest(f"part X-Experience-API-Hash {sha2} does not match its content (SHA-256 {actual})")


async def store_statements(
    stores: Stores,
    principal: Principal,
    version: XapiVersion,
    statements: list[dict[str, Any]],
    parts: dict[str, AttachmentPart] | None = None,
) -> list[str]:
    """Store validated statements atomically; returns their ids in request order."""
    _require(principal, Need.STATEMENTS_WRITE)
    attachments = _match_attachments(statements, parts)
    prepared = [prepare(s, principal.authority, version) for s in statements]
    try:
        await stores.statements.store(prepared, attachments, same_statement, may_define(principal.scopes))
    except ConflictError as exc:
        raise Conflict(f"{exc}; statements are immutable (void it and send a new one)") from None
    return [p.id for p in prepared]


def _own_key(principal: Principal) -> str:
    return "u:" + (ifi_key(principal.authority) or "")


async def get_statement(stores: Stores, principal: Principal, statement_id: str, *, voided: bool) -> StoredStatement:
    """One statement by id; ``voided`` selects voidedStatementId semantics."""
    _require(principal, Need.STATEMENTS_READ)
    found = await stores.statements.get(statement_id.lower())
    if found is None or found.voided != voided:
        kind = "voided statement" if voided else "statement"
        hint = " (it is voided: use voidedStatementId)" if found is not None and found.voided else ""
        raise NotFound(f"no {kind} with id {statement_id}{hint}")
    if reads_only_own(principal.scopes):
        authority = orjson.loads(found.document).get("authority", {})
        if ifi_key(authority) != ifi_key(principal.authority):
            raise NotFound(f"no statement with id {statement_id}")
    return found


@dataclass(slots=True)
class StatementFilter:
    """The filters of GET /statements, validated."""

    agent: dict[str, Any] | None = None
    verb: str | None = None
    activity: str | None = None
    registration: str | None = None
    related_agents: bool = False
    related_activities: bool = False
    since: datetime | None = None
    until: datetime | None = None
    ascending: bool = False
    limit: int = 0

    def lookup_keys(self) -> list[str]:
        keys = []
        if self.agent is not None:
            keys.append(("A:" if self.related_agents else "a:") + (ifi_key(self.agent) or ""))
        if self.verb is not None:
            keys.append("v:" + self.verb)
        if self.activity is not None:
            keys.append(("O:" if self.related_activities else "o:") + self.activity)
        if self.registration is not None:
            keys.append("r:" + self.registration.lower())
        return keys


async def query_statements(stores: Stores, principal: Principal, query: StatementQuery) -> StatementPage:
    _require(principal, Need.STATEMENTS_READ)
    if reads_only_own(principal.scopes):
        query.keys = [*query.keys, _own_key(principal)]
    return await stores.statements.query(query)


async def render(
    stores: Stores, documents: list[bytes], fmt: Format, languages: list[str]
) -> list[bytes]:
    """Statements (stored JSON) in the requested format, still as JSON bytes."""
    if fmt == "exact":
        return documents
    statements = [orjson.loads(d) for d in documents]
    if fmt == "ids":
        return [orjson.dumps(ids_format(s)) for s in statements]
    activity_ids = list({a["id"] for s in statements for a in activities_of(s)})
    verb_ids = list({v for s in statements for v in verbs_of(s)})
    activities, verbs = await stores.statements.canonical(activity_ids, verb_ids)
    return [orjson.dumps(canonical_format(s, activities, verbs, languages)) for s in statements]


def attachment_hashes(documents: list[bytes]) -> list[str]:
    """SHA-2s of attachments (also inside SubStatements) of stored statements, first seen first."""
    seen: dict[str, None] = {}
    for document in documents:
        if b'"attachments"' in document:
            for attachment in _declared_attachments([orjson.loads(document)]):
                seen.setdefault(attachment["sha2"], None)
    return list(seen)
