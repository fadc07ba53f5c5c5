"""Storing and retrieving statements."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

import orjson

from lrs.auth.credentials import Principal
from lrs.auth.scopes import Need, allows, keeps_authority, may_define, reads_only_own
from lrs.store.ports import (
    AttachmentContent,
    ConflictError,
    InvalidCursor,
    StatementPage,
    StatementQuery,
    StoreBusyError,
    StoredStatement,
    TooLargeError,
)
from lrs.xapi.agents import ifi_key
from lrs.xapi.compare import same_statement
from lrs.xapi.formatting import canonical_format, ids_format, verbs_of
from lrs.xapi.indexkeys import lookup_key
from lrs.xapi.models import XapiVersion
from lrs.xapi.signature import signature_attachment, verify_signature
from lrs.xapi.statements import StatementError, activities_of, prepare

from .errors import BadRequest, Busy, Conflict, Forbidden, NotFound, PayloadTooLarge
from .stores import Stores

Format = Literal["exact", "ids", "canonical"]


@dataclass(slots=True)
class AttachmentPart:
    """Raw attachment data from a multipart request, keyed by its X-Experience-API-Hash.

    ``content_type`` and ``content_length`` are the part's own headers (``None`` when absent);
    where given they must agree with the attachment's metadata.
    """

    content: bytes
    content_type: str | None = None
    content_length: str | None = None


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


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _check_part_headers(sha2: str, part: AttachmentPart, metadata: list[dict[str, Any]]) -> None:
    """Part headers that repeat attachment metadata must agree with it (ATTM-2)."""
    if part.content_type is not None and _media(part.content_type) not in {
        _media(a["contentType"]) for a in metadata
    }:
        raise BadRequest(
            f"part {sha2}: Content-Type {part.content_type!r} differs from the attachment's contentType"
            f" {metadata[0]['contentType']!r}"
        )
    if part.content_length is not None and part.content_length.strip() not in {
        str(a["length"]) for a in metadata
    }:
        raise BadRequest(
            f"part {sha2}: Content-Length {part.content_length} differs from the attachment's length"
            f" {metadata[0]['length']}"
        )


def _match_attachments(
    statements: list[dict[str, Any]], parts: dict[str, AttachmentPart] | None, version: XapiVersion,
    max_depth: int,
) -> list[AttachmentContent]:  # fmt: skip
    """Pair raw parts with attachment metadata by SHA-2 and check signed statements (whose JWS
    JSON is read under the nesting limit ``max_depth``)."""
    declared = _declared_attachments(statements)
    if parts is None:
        missing = next((a for a in declared if "fileUrl" not in a), None)
        if missing is not None:
            raise BadRequest(
                f"attachment {missing['sha2']} has no fileUrl, so its data must be sent as multipart/mixed"
            )
        return []
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for attachment in declared:
        by_hash.setdefault(attachment["sha2"], []).append(attachment)
    for sha2, part in parts.items():
        if sha2 not in by_hash:
            raise BadRequest(f"multipart part {sha2} matches no attachment's sha2 in the statements")
        _check_part_headers(sha2, part, by_hash[sha2])
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
            verify_signature(
                statement,
                parts[signature["sha2"]].content,
                max_depth=max_depth,
                truncate_durations=version is XapiVersion.V2,
            )
        except StatementError as exc:
            raise BadRequest(str(exc)) from None
    return [
        AttachmentContent(sha2, by_hash[sha2][0]["contentType"], part.content) for sha2, part in parts.items()
    ]


_SHA2_BY_HEX_LENGTH = {56: hashlib.sha224, 64: hashlib.sha256, 96: hashlib.sha384, 128: hashlib.sha512}


def verified_part(sha2: str, content: bytes) -> bytes:
    """The part's content, proven by its X-Experience-API-Hash (a SHA-2 digest of 224, 256, 384 or
    512 bits).

    Some JavaScript clients read binary files as "binary" (Latin-1) strings and send them UTF-8
    encoded, so every byte above 0x7F arrives as two. When the content fails its hash but its
    Latin-1 reading of the UTF-8 text passes, that repaired content is the attachment: the hash
    proves it byte for byte, so nothing unverified is ever stored.
    """
    algorithm = _SHA2_BY_HEX_LENGTH.get(len(sha2))
    if algorithm is None:
        raise BadRequest(f"X-Experience-API-Hash {sha2!r} is not a hex SHA-2 digest")
    actual = algorithm(content).hexdigest()
    if actual == sha2.lower():
        return content
    try:
        repaired = content.decode("utf-8").encode("latin-1")
    except (UnicodeDecodeError, UnicodeEncodeError):
        repaired = None
    if repaired is not None and algorithm(repaired).hexdigest() == sha2.lower():
        return repaired
    raise BadRequest(
        f"part X-Experience-API-Hash {sha2} does not match its content ({algorithm().name} {actual})"
    )


async def store_statements(
    stores: Stores,
    principal: Principal,
    version: XapiVersion,
    statements: list[dict[str, Any]],
    parts: dict[str, AttachmentPart] | None = None,
    *,
    max_depth: int,
) -> list[str]:
    """Store validated statements atomically; returns their ids in request order.

    ``max_depth``: the nesting limit for JSON read from attachments (signatures)."""
    try:
        return await write_statements(stores, principal, version, statements, parts, max_depth=max_depth)
    except ConflictError as exc:
        raise Conflict(f"{exc}; statements are immutable (void it and send a new one)") from None
    except StoreBusyError as exc:
        raise Busy(f"{exc}; nothing was stored, send it again") from None


async def write_statements(
    stores: Stores,
    principal: Principal,
    version: XapiVersion,
    statements: list[dict[str, Any]],
    parts: dict[str, AttachmentPart] | None = None,
    *,
    max_depth: int,
) -> list[str]:
    """``store_statements``, but a statement id stored with other content raises the store's
    ``ConflictError`` (which names it: ``lrs import`` reports it and stores the rest).

    The LRS assigns ``authority`` (the credential's) unless the credential may keep the one a
    statement carries (``keeps_authority``: scope ``import``)."""
    _require(principal, Need.STATEMENTS_WRITE)
    if principal.grant is not None:  # a cmi5 session token: the LMS judges them first
        if stores.cmi5 is None:
            raise Forbidden("cmi5 session tokens need the LMS database")
        write = partial(_write, stores, principal, version, parts=parts, max_depth=max_depth)
        return await stores.cmi5.write(principal.grant, statements, write)
    return await _write(stores, principal, version, statements, parts=parts, max_depth=max_depth)


async def _write(
    stores: Stores,
    principal: Principal,
    version: XapiVersion,
    statements: list[dict[str, Any]],
    *,
    parts: dict[str, AttachmentPart] | None,
    max_depth: int,
) -> list[str]:
    attachments = _match_attachments(statements, parts, version, max_depth)
    keep = keeps_authority(principal.scopes)
    prepared = [
        prepare(s, s["authority"] if keep and "authority" in s else principal.authority, version)
        for s in statements
    ]
    same = partial(same_statement, truncate_durations=version is XapiVersion.V2)
    try:
        await stores.statements.store(prepared, attachments, same, may_define(principal.scopes))
    except TooLargeError as exc:
        raise PayloadTooLarge(f"{exc}; nothing was stored") from None
    return [p.id for p in prepared]


def _own_key(principal: Principal) -> str:
    return lookup_key("u:" + (ifi_key(principal.authority) or ""))


async def get_statement(
    stores: Stores, principal: Principal, statement_id: str, *, voided: bool
) -> StoredStatement:
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
    if principal.grant is not None:  # a cmi5 session token reads its registration only
        context = orjson.loads(found.document).get("context") or {}
        if str(context.get("registration", "")).lower() != principal.grant.registration:
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
        return [lookup_key(k) for k in keys]


async def query_statements(stores: Stores, principal: Principal, query: StatementQuery) -> StatementPage:
    _require(principal, Need.STATEMENTS_READ)
    if reads_only_own(principal.scopes):
        query.keys = [*query.keys, _own_key(principal)]
    if principal.grant is not None:  # a cmi5 session token reads its registration only
        query.keys = [*query.keys, lookup_key("r:" + principal.grant.registration)]
    try:
        return await stores.statements.query(query)
    except InvalidCursor:
        raise BadRequest("the more parameter is not a continuation this LRS issued") from None


async def render(stores: Stores, documents: list[bytes], fmt: Format, languages: list[str]) -> list[bytes]:
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
