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
``counters``      ``_id`` "statements": the statement sequence and the writers in flight.

Statements and canonical definitions are kept as the JSON bytes the LRS serves, not as BSON
documents: extension keys are IRIs (dots) and may start with ``$``, JSON numbers can exceed
BSON's 64-bit integers, and queries never look inside a statement (they use ``keys``).
"""

from __future__ import annotations

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

STATEMENTS = "statements"
ATTACHMENTS = "attachments"
ACTIVITIES = "activities"
VERBS = "verbs"
AGENTS = "agents"
DOCUMENTS = "documents"
CREDENTIALS = "credentials"
COUNTERS = "counters"

DOCUMENT_KEY = ("kind", "activity", "agent", "registration", "doc_id")
"""Identity of a document: its scope, then its id."""

INDEXES: dict[str, list[IndexModel]] = {
    STATEMENTS: [
        # Every GET /statements: equality on one lookup key (multikey), then the stored range,
        # in stored order; the other keys of the query are checked on the fetched entries.
        IndexModel(
            [("keys", ASCENDING), ("stored", DESCENDING), ("seq", DESCENDING)], name="keys_stored_seq"
        ),
        # Statements referring to others (voiding, key inheritance when the target arrives late).
        IndexModel([("ref", ASCENDING)], name="ref", sparse=True),
    ],
    DOCUMENTS: [
        # Unique identity; its prefix (the scope) serves ids(), delete_all() and get().
        IndexModel([(field, ASCENDING) for field in DOCUMENT_KEY], name="identity", unique=True),
    ],
    CREDENTIALS: [IndexModel([("created", ASCENDING)], name="created")],
}
# Collections not listed are only read by ``_id`` (unique and indexed by MongoDB itself).


def text(value: object) -> str:
    """``value``, which must be a string: filters are built only from typed values, so a value
    can never be read as a query operator (``{"$gt": ""}`` stays data)."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


async def ensure_schema(db: AsyncIOMotorDatabase) -> None:
    """Create the indexes (no-op when they exist) and the statement counter."""
    for collection, indexes in INDEXES.items():
        await db[collection].create_indexes(indexes)
    try:
        await db[COUNTERS].update_one(
            {"_id": STATEMENTS}, {"$setOnInsert": {"seq": 0, "inflight": []}}, upsert=True
        )
    except DuplicateKeyError:  # another server created it at the same moment
        pass
