"""Collections and indexes of the MongoDB adapters, created at start-up (idempotently).

``statements``    ``_id`` statement id; ``seq``, ``stored``; ``doc`` (the statement as JSON bytes);
                  ``keys`` (lookup keys plus ``LIVE`` while the statement is not voided);
                  ``ref`` (StatementRef target) and ``voiding``.
``attachments``   ``_id`` SHA-2; ``content_type``, ``content``.
``activities``    ``_id`` activity id; ``definition`` (canonical, JSON bytes).
``verbs``         ``_id`` verb id; ``display`` (canonical, JSON bytes).
``agents``        ``_id`` identity key; ``names``.
``documents``     state / activity profile / agent profile documents (see ``documents``).
``credentials``   ``_id`` key.
``counters``      ``_id`` "statements": the statement sequence and the writers in flight;
                  ``_id`` "schema": the version of this layout the data was migrated to.

Identifiers are indexed by their index keys (``lrs.xapi.indexkeys``): statement lookup keys,
the ``_id`` of activities, verbs and agents, and a document's ``activity``, ``agent`` and
``doc_key`` (its ``doc_id`` holds the full id). MongoDB 4.2 and later take index keys of any
size, older servers (and other stores) do not; bounded keys fit everywhere.

Statements and canonical definitions are kept as the JSON bytes the LRS serves, not as BSON
documents: extension keys are IRIs (dots) and may start with ``$``, JSON numbers can exceed
BSON's 64-bit integers, and queries never look inside a statement (they use ``keys``).
"""

from __future__ import annotations

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError, OperationFailure

from lrs.xapi.indexkeys import INDEX_KEY_MAX_BYTES, index_key, lookup_key

STATEMENTS = "statements"
ATTACHMENTS = "attachments"
ACTIVITIES = "activities"
VERBS = "verbs"
AGENTS = "agents"
DOCUMENTS = "documents"
CREDENTIALS = "credentials"
COUNTERS = "counters"

DOCUMENT_KEY = ("kind", "activity", "agent", "registration", "doc_key")
"""Identity of a document: its scope, then its id's index key."""
SCHEMA = "schema"
SCHEMA_VERSION = 2
"""1: the first layout; 2: index keys of bounded width (documents gained ``doc_key``)."""

INDEXES: dict[str, list[IndexModel]] = {
    STATEMENTS: [
        # Every GET /statements: equality on one lookup key (multikey), then the stored range,
        # in stored order; the other keys of the query are checked on the fetched entries.
        IndexModel(
            [("keys", ASCENDING), ("stored", DESCENDING), ("seq", DESCENDING)], name="keys_stored_seq"
        ),
        # Statements referring to others (voiding, key inheritance when the target arrives late).
        IndexModel([("ref", ASCENDING)], name="ref", sparse=True),
        # Store order, for the stream pipeline's outbox (``outbox.MongoOutbox``).
        IndexModel([("seq", ASCENDING)], name="seq"),
        # Store order from an instant, for the outbox of every tenant (another tenant's position).
        IndexModel([("stored", ASCENDING), ("seq", ASCENDING)], name="stored_seq"),
    ],
    DOCUMENTS: [
        # Unique identity; its prefix (the scope) serves ids(), delete_all() and get().
        IndexModel([(field, ASCENDING) for field in DOCUMENT_KEY], name="identity_keys", unique=True),
    ],
    CREDENTIALS: [IndexModel([("created", ASCENDING)], name="created")],
}
# Collections not listed are only read by ``_id`` (unique and indexed by MongoDB itself).


MONGODB_RECORD_LIMIT = "{} is larger than the 16 MB a MongoDB document holds (the LRS store is MongoDB)"
"""The message of ``TooLargeError`` here: BSON documents hold 16 MB; statements, documents and
attachments are each one."""


_BSON_OBJECT_TOO_LARGE = 10334


def too_large(exc: BaseException) -> bool:
    """Whether a write failed for a record over the 16 MB (refused by the driver, or by the
    server: its error code 10334, also inside a bulk write's errors)."""
    if isinstance(exc, DocumentTooLarge):
        return True
    if isinstance(exc, BulkWriteError):
        return any(e.get("code") == _BSON_OBJECT_TOO_LARGE for e in exc.details.get("writeErrors", ()))
    return isinstance(exc, OperationFailure) and exc.code == _BSON_OBJECT_TOO_LARGE


def text(value: object) -> str:
    """``value``, which must be a string: filters are built only from typed values, so a value
    can never be read as a query operator (``{"$gt": ""}`` stays data)."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


async def ensure_schema(db: AsyncIOMotorDatabase) -> None:
    """Migrate data of an earlier layout, create the indexes (no-op when they exist) and the
    statement counter."""
    await _migrate(db)
    for collection, indexes in INDEXES.items():
        await db[collection].create_indexes(indexes)
    try:
        await db[COUNTERS].update_one(
            {"_id": STATEMENTS}, {"$setOnInsert": {"seq": 0, "inflight": []}}, upsert=True
        )
    except DuplicateKeyError:  # another server created it at the same moment
        pass


# --- migrations ----------------------------------------------------------------------------------
# Each step is idempotent, so servers starting at the same moment may both run it.

_LONGER_THAN_MAX = r"^[\s\S]{%d}" % (INDEX_KEY_MAX_BYTES // 4 + 1)
"""Matches every string that may exceed INDEX_KEY_MAX_BYTES of UTF-8 (at most 4 bytes a character)."""


async def _migrate(db: AsyncIOMotorDatabase) -> None:
    found = await db[COUNTERS].find_one({"_id": SCHEMA})
    if found is not None and found["version"] >= SCHEMA_VERSION:
        return
    await _bound_statement_keys(db)
    for collection in (ACTIVITIES, VERBS, AGENTS):
        await _bound_ids(db, collection)
    await _key_documents(db)
    await db[COUNTERS].update_one({"_id": SCHEMA}, {"$max": {"version": SCHEMA_VERSION}}, upsert=True)


def _long(value: str) -> bool:
    return len(value.encode("utf-8", "surrogatepass")) > INDEX_KEY_MAX_BYTES


async def _bound_statement_keys(db: AsyncIOMotorDatabase) -> None:
    """Lookup keys stored in full become ``lookup_key``s (only long ones change: no stored
    lookup value can start with the digest mark, IRIs and identities begin otherwise)."""
    candidates = db[STATEMENTS].find({"keys": {"$regex": _LONGER_THAN_MAX}}, {"keys": 1})
    async for row in candidates:
        keys = [lookup_key(k) if _long(k[2:]) else k for k in row["keys"]]
        if keys != row["keys"]:
            await db[STATEMENTS].update_one({"_id": row["_id"]}, {"$set": {"keys": keys}})


async def _bound_ids(db: AsyncIOMotorDatabase, collection: str) -> None:
    """Canonical definitions and agent names stored under a long ``_id`` move to its index key."""
    async for row in db[collection].find({"_id": {"$regex": _LONGER_THAN_MAX}}):
        if _long(row["_id"]):
            key = index_key(row["_id"])
            await db[collection].replace_one({"_id": key}, {**row, "_id": key}, upsert=True)
            await db[collection].delete_one({"_id": row["_id"]})


async def _key_documents(db: AsyncIOMotorDatabase) -> None:
    """Documents gain ``doc_key``; their scope's activity and agent become index keys. The
    unique index on the old identity (with ``doc_id``) is dropped once they have."""
    unkeyed = db[DOCUMENTS].find({"doc_key": {"$exists": False}}, {"activity": 1, "agent": 1, "doc_id": 1})
    async for row in unkeyed:
        keyed = {
            "activity": index_key(row["activity"]),
            "agent": index_key(row["agent"]),
            "doc_key": index_key(row["doc_id"]),
        }
        await db[DOCUMENTS].update_one({"_id": row["_id"]}, {"$set": keyed})
    if "identity" in await db[DOCUMENTS].index_information():
        await db[DOCUMENTS].drop_index("identity")
