"""State, activity profile and agent profile documents, with ETag concurrency control.

Rules (xAPI 1.0.3 §6.3 and the 2.0 changes):

* GET returns the ETag: the quoted lowercase hex SHA-1 of the content.
* ``If-Match`` (PUT, POST, DELETE): the current ETag must be listed (``*`` = any), else 412.
* ``If-None-Match`` (PUT, POST): ``*`` or a listed tag matching an existing document is 412.
* PUT without either header onto an existing document is 409 for profiles (1.0.3) and for
  every document kind (2.0); 1.0.3 State documents may be overwritten freely. A 1.0.3 profile
  PUT without either header onto a new document is 400, as the ADL conformance suite
  (XAPI-00273) requires; 2.0 dropped that rule and creates the document.
* POST onto a missing document creates it, like PUT, whatever it holds (the ADL suite posts
  ``1`` and ``true``), except that a body declared ``application/json`` must be JSON. POST onto an existing document merges a JSON object into it (top-level
  keys of the new one win); if either side is not a JSON object, 400 and nothing changes.

Each rule is evaluated by ``decide`` inside the store's transaction, with the document
locked, so concurrent writers cannot slip between the check and the write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson

from lrs.auth.credentials import Principal, SessionGrant
from lrs.auth.scopes import Need, allows
from lrs.store.ports import Change, Delete, Document, DocumentKind, DocumentScope, TooLargeError, Write
from lrs.xapi.jsontext import JsonTextError, parse_bounded
from lrs.xapi.models import XapiVersion
from lrs.cmi5.vocabulary import LAUNCH_DATA

from .errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed
from .stores import Stores

JSON = "application/json"
Method = Literal["PUT", "POST", "DELETE"]


@dataclass(slots=True, frozen=True)
class Preconditions:
    if_match: str | None = None
    if_none_match: str | None = None


def etag_of(content: bytes) -> str:
    return f'"{hashlib.sha1(content).hexdigest()}"'


def _tags(header: str) -> set[str] | None:
    """Entity tags of an If-Match / If-None-Match header, unquoted; ``None`` means ``*``."""
    if header.strip() == "*":
        return None
    tags = set()
    for item in header.split(","):
        item = item.strip()
        if item.startswith("W/"):
            item = item[2:]
        tags.add(item.strip('"').lower())
    return tags


def _matches(header: str, document: Document | None) -> bool:
    if document is None:
        return False
    tags = _tags(header)
    return tags is None or document.etag.strip('"').lower() in tags


def _check(
    method: Method, kind: DocumentKind, version: XapiVersion, pre: Preconditions, current: Document | None
):
    if pre.if_match is not None and not _matches(pre.if_match, current):
        raise PreconditionFailed("If-Match does not match the document's current ETag")
    if pre.if_none_match is not None and method != "DELETE" and current is not None:
        if _matches(pre.if_none_match, current):
            raise PreconditionFailed("If-None-Match: the document already exists")
    if method == "PUT" and pre.if_match is None and pre.if_none_match is None:
        profile = kind is not DocumentKind.STATE
        if current is not None and (profile or version is XapiVersion.V2):
            raise Conflict(
                "the document exists: GET it and send its ETag in If-Match (or If-None-Match: * to create only)"
            )
        if current is None and profile and version is XapiVersion.V1:
            raise BadRequest("a profile PUT needs If-Match (to update) or If-None-Match: * (to create)")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _json_object(content: bytes, what: str, max_depth: int) -> dict:
    try:
        value = parse_bounded(content, max_depth, what)
    except JsonTextError as exc:
        raise BadRequest(f"{exc}, so the documents cannot be merged") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} is not a JSON object, so the documents cannot be merged")
    return value


def _need(kind: DocumentKind, write: bool) -> Need:
    if kind is DocumentKind.STATE:
        return Need.STATE_WRITE if write else Need.STATE_READ
    return Need.PROFILE_WRITE if write else Need.PROFILE_READ


def _require(principal: Principal, scope: DocumentScope, doc_id: str | None, write: bool) -> None:
    if not allows(principal.scopes, _need(scope.kind, write)):
        raise Forbidden(f"this credential's scopes ({', '.join(sorted(principal.scopes))}) do not allow this")
    if principal.grant is not None:
        _check_grant(principal.grant, scope, doc_id, write)


def _check_grant(grant: SessionGrant, scope: DocumentScope, doc_id: str | None, write: bool) -> None:
    """A cmi5 session token reaches its learner's state in its registration for its AU (never
    changing ``LMS.LaunchData``, never deleting all), the AU's activity profiles and its
    learner's profiles (both read only)."""
    if scope.kind is DocumentKind.STATE:
        if scope.activity_id != grant.activity_id or scope.agent_key != grant.actor_key:
            raise Forbidden("a cmi5 session token reaches only its AU's state for its learner")
        if (scope.registration or "").lower() != grant.registration:
            raise Forbidden("a cmi5 session token reaches only the state of its registration")
        if write and (doc_id is None or doc_id == LAUNCH_DATA):
            raise Forbidden("LMS.LaunchData is the LMS's: a cmi5 session token may read it, not change it")
    elif scope.kind is DocumentKind.ACTIVITY_PROFILE:
        if scope.activity_id != grant.activity_id or write:
            raise Forbidden("a cmi5 session token may read its AU's activity profiles only")
    elif scope.agent_key != grant.actor_key or write:
        raise Forbidden("a cmi5 session token may read its learner's agent profiles only")


async def _update(
    stores: Stores, scope: DocumentScope, doc_id: str, decide: Callable[[Document | None], Change]
) -> None:
    """The store's update, with a document too large for the store answered 413."""
    try:
        await stores.documents.update(scope, doc_id, decide)
    except TooLargeError as exc:
        raise PayloadTooLarge(f"{exc}; it was not stored") from None


async def get_document(stores: Stores, principal: Principal, scope: DocumentScope, doc_id: str) -> Document:
    _require(principal, scope, doc_id, write=False)
    document = await stores.documents.get(scope, doc_id)
    if document is None:
        raise NotFound(f"no document with id {doc_id!r} here")
    return document


async def document_ids(
    stores: Stores, principal: Principal, scope: DocumentScope, since: datetime | None
) -> tuple[list[str], datetime | None]:
    _require(principal, scope, None, write=False)
    return await stores.documents.ids(scope, since)


async def put_document(
    stores: Stores, principal: Principal, version: XapiVersion, scope: DocumentScope, doc_id: str,
    content: bytes, content_type: str | None, pre: Preconditions,
) -> None:  # fmt: skip
    _require(principal, scope, doc_id, write=True)
    write = Write(content, content_type or "application/octet-stream", etag_of(content))

    def decide(current: Document | None) -> Change:
        _check("PUT", scope.kind, version, pre, current)
        return write

    await _update(stores, scope, doc_id, decide)


async def post_document(
    stores: Stores, principal: Principal, version: XapiVersion, scope: DocumentScope, doc_id: str,
    content: bytes, content_type: str | None, pre: Preconditions, *, max_depth: int,
) -> None:  # fmt: skip
    """Create the document (any content, as PUT would), or merge a JSON object into the existing one.

    JSON is read under the nesting limit ``max_depth`` (LRS_MAX_JSON_DEPTH), the stored side
    of a merge too (a PUT stores any bytes unread)."""
    _require(principal, scope, doc_id, write=True)
    if media_type(content_type) == JSON:
        try:
            parse_bounded(content, max_depth, "the posted document")
        except JsonTextError as exc:
            raise BadRequest(f"{exc} (it is declared application/json)") from None

    def decide(current: Document | None) -> Change:
        _check("POST", scope.kind, version, pre, current)
        if current is None:
            return Write(content, content_type or "application/octet-stream", etag_of(content))
        if media_type(content_type) != JSON or media_type(current.content_type) != JSON:
            raise BadRequest(
                "POST onto an existing document merges JSON objects: both must be application/json"
            )
        merged = {
            **_json_object(current.content, "the stored document", max_depth),
            **_json_object(content, "the posted document", max_depth),
        }
        payload = orjson.dumps(merged)
        return Write(payload, JSON, etag_of(payload))

    await _update(stores, scope, doc_id, decide)


async def delete_document(
    stores: Stores, principal: Principal, version: XapiVersion, scope: DocumentScope, doc_id: str,
    pre: Preconditions,
) -> None:  # fmt: skip
    _require(principal, scope, doc_id, write=True)

    def decide(current: Document | None) -> Change:
        _check("DELETE", scope.kind, version, pre, current)
        return Delete()

    await stores.documents.update(scope, doc_id, decide)


async def delete_documents(stores: Stores, principal: Principal, scope: DocumentScope) -> None:
    _require(principal, scope, None, write=True)
    await stores.documents.delete_all(scope)
