"""``DocumentStore`` on MongoDB: one collection for state, activity profile and agent profile.

Updates use optimistic concurrency instead of a lock: ``decide`` runs on the document as read,
and its change is written only if the document's revision (``rev``, raised by every write) is
still the one read; otherwise the document changed meanwhile, and ``decide`` runs again on the
new one. A document is created by an upsert that can only insert (it asks for revision 0, which
no stored document has), so of two concurrent creators the unique index lets one win.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo.errors import DocumentTooLarge, DuplicateKeyError, OperationFailure

from lrs.xapi.indexkeys import index_key

from ..ports import (
    Change,
    Delete,
    Document,
    DocumentKind,
    DocumentScope,
    InvalidCursor,
    StoredDocument,
    TooLargeError,
)
from .schema import DOCUMENTS, MONGODB_RECORD_LIMIT, text, too_large


def _scope_filter(scope: DocumentScope) -> dict[str, Any]:
    """The scope's fields; activity and agent as their index keys (``lrs.xapi.indexkeys``)."""
    return {
        "kind": int(scope.kind),
        "activity": index_key(text(scope.activity_id)),
        "agent": index_key(text(scope.agent_key)),
        "registration": text(scope.registration),
    }


def _identity(scope: DocumentScope, doc_id: str) -> dict[str, Any]:
    """One document: its scope, and its id's index key (``doc_id`` holds the full id)."""
    return {**_scope_filter(scope), "doc_key": index_key(text(doc_id))}


def _document(row: dict[str, Any]) -> Document:
    return Document(row["content"], row["content_type"], row["etag"], row["updated"])


class MongoDocumentStore:
    def __init__(self, db: AsyncIOMotorDatabase) -> None:
        self._documents = db[DOCUMENTS]

    async def get(self, scope: DocumentScope, doc_id: str) -> Document | None:
        row = await self._documents.find_one(_identity(scope, doc_id))
        return None if row is None else _document(row)

    async def ids(self, scope: DocumentScope, since: datetime | None) -> tuple[list[str], datetime | None]:
        where = _scope_filter(scope)
        if since is not None:
            where["updated"] = {"$gt": since}
        rows = await self._documents.find(where, {"doc_id": 1, "updated": 1}).sort("doc_id", 1).to_list(None)
        return [r["doc_id"] for r in rows], max((r["updated"] for r in rows), default=None)

    async def update(
        self, scope: DocumentScope, doc_id: str, decide: Callable[[Document | None], Change]
    ) -> None:
        identity = _identity(scope, doc_id)
        while True:  # until the change lands on the revision it was decided on
            row = await self._documents.find_one(identity)
            change = decide(None if row is None else _document(row))
            if await self._apply(identity, doc_id, row, change):
                return

    async def _apply(
        self, identity: dict[str, Any], doc_id: str, row: dict[str, Any] | None, change: Change
    ) -> bool:
        """Apply ``change`` if the document is still as ``row`` read it; returns whether it was."""
        if change is None or (isinstance(change, Delete) and row is None):
            return True
        revision = 0 if row is None else row["rev"]
        if isinstance(change, Delete):
            return (await self._documents.delete_one({**identity, "rev": revision})).deleted_count == 1
        fields = {
            "doc_id": text(doc_id),
            "content": change.content,
            "content_type": text(change.content_type),
            "etag": text(change.etag),
            "rev": revision + 1,
        }
        try:
            result = await self._documents.update_one(
                {**identity, "rev": revision},
                {"$set": fields, "$currentDate": {"updated": True}},
                upsert=row is None,
            )
        except DuplicateKeyError:  # created concurrently since it was read
            return False
        except (DocumentTooLarge, OperationFailure) as exc:
            if too_large(exc):
                raise TooLargeError(MONGODB_RECORD_LIMIT.format("the document")) from None
            raise
        return row is None or result.matched_count == 1

    async def delete_all(self, scope: DocumentScope) -> None:
        await self._documents.delete_many(_scope_filter(scope))

    async def erase_agents(self, agent_keys: list[str]) -> int:
        found = await self._documents.delete_many({
            "agent": {"$in": [index_key(text(k)) for k in agent_keys]},
            "kind": {"$in": [int(DocumentKind.STATE), int(DocumentKind.AGENT_PROFILE)]},
        })  # fmt: skip
        return found.deleted_count

    # --- export and restore (``lrs export`` / ``lrs import``) --------------------------------------

    async def export(self, after: str | None, limit: int) -> tuple[list[StoredDocument], str | None]:
        where: dict[str, Any] = {}
        if after is not None:
            try:
                where = {"_id": {"$gt": ObjectId(after)}}
            except (InvalidId, TypeError):
                raise InvalidCursor(after) from None
        rows = await self._documents.find(where).sort("_id", 1).limit(limit + 1).to_list(None)
        more = len(rows) > limit
        rows = rows[:limit]
        documents = [
            StoredDocument(DocumentKind(r["kind"]), r["activity"], r["agent"], r["registration"], r["doc_id"],
                           r["content"], r["content_type"], r["etag"], r["updated"])
            for r in rows
        ]  # fmt: skip
        return documents, (str(rows[-1]["_id"]) if more and rows else None)

    async def restore(self, documents: list[StoredDocument]) -> list[StoredDocument]:
        conflicts = []
        for d in documents:
            identity = {"kind": int(d.kind), "activity": text(d.activity_key), "agent": text(d.agent_key),
                        "registration": text(d.registration), "doc_key": index_key(text(d.doc_id))}  # fmt: skip
            fields = {"doc_id": text(d.doc_id), "content": d.content, "content_type": text(d.content_type),
                      "etag": text(d.etag), "updated": d.updated, "rev": 1}  # fmt: skip
            try:
                await self._documents.insert_one({**identity, **fields})
            except DuplicateKeyError:
                row = await self._documents.find_one(identity)
                if row is not None and (row["content"], row["content_type"]) != (d.content, d.content_type):
                    conflicts.append(d)
            except (DocumentTooLarge, OperationFailure) as exc:
                if too_large(exc):
                    raise TooLargeError(MONGODB_RECORD_LIMIT.format("the document")) from None
                raise
        return conflicts
