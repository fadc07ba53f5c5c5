"""``StatementStore`` on MongoDB: statements as JSON bytes plus a multikey array of lookup keys.

Every filter of GET /statements is an ``$all`` on ``keys``, so one compound multikey index
``(keys, stored, seq)`` answers any combination of agent, verb, activity and registration in
stored order. Voided statements drop out of that index by losing the ``LIVE`` key that every
query also asks for.

``stored`` and ``seq`` come from one atomic update of a counter document (the database's clock
and a sequence, like a PostgreSQL sequence they are not rolled back). The same update records
the writer as in flight until its transaction has ended, which makes consistent-through exact:
nothing can still appear with a ``stored`` at or after the oldest writer in flight. ``stored``
never decreases along ``seq`` (``$max`` with the previous value), so ``(stored, seq)`` order is
``seq`` order, which keeps cursors simple.

A group of submissions is written in one multi-document transaction; a write conflict with a
concurrent writer (same id, shared canonical documents) aborts it and it runs again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from motor.motor_asyncio import (
    AsyncIOMotorClient,
    AsyncIOMotorClientSession,
    AsyncIOMotorCollection,
    AsyncIOMotorDatabase,
)
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError, PyMongoError

from lrs.xapi.formats import format_timestamp
from lrs.xapi.indexkeys import index_key
from lrs.xapi.statements import PreparedStatement

from ..batch import (
    CoalescedStatementWrites,
    Upserts,
    encode_cursor,
    inherit_keys,
    inheritable,
    merge_definition,
    parse_cursor,
    pending_upserts,
    settle,
    stamped,
    voided_in_batch,
)
from ..coalesce import Submission
from ..ports import (
    AttachmentContent,
    ErasedStatements,
    Rewrite,
    StatementPage,
    StatementQuery,
    StoreBusyError,
    StoredStatement,
    TooLargeError,
)
from .schema import (
    ACTIVITIES,
    AGENTS,
    ATTACHMENTS,
    COUNTERS,
    MONGODB_RECORD_LIMIT,
    STATEMENTS,
    VERBS,
    text,
    too_large,
)

log = logging.getLogger(__name__)

LIVE = "*"
"""The lookup key of every statement queries may return (not voided); no real key lacks a prefix."""

LEASE = timedelta(seconds=30)
"""Writers in flight for longer are ignored by consistent-through; a writer gives up (and runs
again) once half of it has passed, so it can never commit after being ignored."""

_LEASE_MS = int(LEASE.total_seconds() * 1000)
_MAX_ATTEMPTS = 20
_DUPLICATE_KEY = 11000
# Which lookup key bounds the index scan: the most selective kinds first (see lrs.xapi.statements).
_SELECTIVITY = {"r": 0, "a": 1, "o": 2, "A": 3, "O": 4, "u": 5, "v": 6}


def _encode_canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _merge_display(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """A canonical verb display updated by a newer one, language by language."""
    return {**old, **new}


class _StaleReservation(Exception):
    """The writer took so long that consistent-through may have stopped waiting for it."""

    def __str__(self) -> str:
        return f"a statement write took longer than {LEASE / 2}"


def _retryable(exc: Exception) -> bool:
    """A concurrent writer got in the way (or this one was too slow): the write may simply run
    again, and then sees what the other one stored."""
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors") or [{}]
        return all(error.get("code") == _DUPLICATE_KEY for error in errors)
    if isinstance(exc, PyMongoError):
        return isinstance(exc, DuplicateKeyError) or exc.has_error_label("TransientTransactionError")
    return isinstance(exc, _StaleReservation)


@dataclass(slots=True)
class _Reservation:
    token: str
    first_seq: int
    stored: datetime
    taken: float  # time.monotonic() when reserved

    def check_fresh(self) -> None:
        if time.monotonic() - self.taken > LEASE.total_seconds() / 2:
            raise _StaleReservation()


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


class Clock:
    """Sequence numbers and ``stored`` times from the counter document, and the writers in flight.

    Times are kept as epoch milliseconds (the precision of BSON dates): compared as numbers, they
    work on every server (the SecantusDB stand-in cannot compare ``$$NOW`` with a stored date).
    """

    def __init__(self, db: AsyncIOMotorDatabase) -> None:
        self._counters = db[COUNTERS]

    @asynccontextmanager
    async def reserve(self, count: int) -> AsyncIterator[_Reservation]:
        """``count`` sequence numbers and a ``stored`` time; in flight until the block ends."""
        token = uuid.uuid4().hex
        live = {"$gt": ["$$this.ms", {"$subtract": ["$ms", _LEASE_MS]}]}  # lapsed writers are dropped
        # fmt: off
        pipeline = [
            {"$set": {"seq": {"$add": ["$seq", count]}, "ms": {"$max": ["$ms", {"$toLong": "$$NOW"}]}}},
            {"$set": {"inflight": {"$concatArrays": [
                {"$filter": {"input": "$inflight", "cond": live}},
                [{"t": {"$literal": token}, "ms": "$ms"}],
            ]}}},
        ]
        # fmt: on
        after = await self._counters.find_one_and_update(
            {"_id": STATEMENTS}, pipeline, return_document=ReturnDocument.AFTER
        )
        try:
            yield _Reservation(token, after["seq"] - count + 1, _instant(after["ms"]), time.monotonic())
        finally:
            try:
                await self._counters.update_one({"_id": STATEMENTS}, {"$pull": {"inflight": {"t": token}}})
            except PyMongoError as exc:  # the write itself is settled; the entry lapses after LEASE
                log.warning("could not clear in-flight writer %s: %s", token, exc)

    async def now(self) -> datetime:
        """The database's time now (a read only: query snapshots, relay epochs)."""
        (found,) = await self._counters.aggregate(
            [{"$match": {"_id": STATEMENTS}}, {"$project": {"now": {"$toLong": "$$NOW"}}}]
        ).to_list(1)
        return _instant(found["now"])

    async def read(self) -> tuple[datetime, datetime]:
        """(the database's time now, consistent through).

        The read advances the counter's time as a reservation does, on the same document: every
        reservation after it gets a ``stored`` at or past the instant it returns, whatever the
        server's clock said when that reservation was evaluated (a ``$$NOW`` taken before a wait
        on the document could otherwise fall behind an instant already declared consistent, and
        its statement would never be relayed)."""
        found = await self._counters.find_one_and_update(
            {"_id": STATEMENTS},
            [{"$set": {"ms": {"$max": ["$ms", {"$toLong": "$$NOW"}]}}}],
            projection={"ms": 1, "inflight": 1},
            return_document=ReturnDocument.AFTER,
        )
        now: int = found["ms"]
        oldest = min((e["ms"] for e in found["inflight"] if e["ms"] > now - _LEASE_MS), default=now)
        return _instant(now), _instant(oldest - 1)


class MongoStatementStore(CoalescedStatementWrites):
    def __init__(self, client: AsyncIOMotorClient, db: AsyncIOMotorDatabase) -> None:
        self._client = client
        self._statements = db[STATEMENTS]
        self._attachments = db[ATTACHMENTS]
        self._activities = db[ACTIVITIES]
        self._verbs = db[VERBS]
        self._agents = db[AGENTS]
        self._clock = Clock(db)
        super().__init__()

    # --- writing ---------------------------------------------------------------------------------

    async def _write_group(self, group: list[Submission]) -> None:
        """Write a group of submissions (see ``WriteCoalescer``) in one transaction that settles
        each submission; run it again when a concurrent writer conflicts with it."""
        count = sum(sub.size() for sub in group)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                async with self._clock.reserve(count) as reservation:
                    async with await self._client.start_session() as session:
                        async with session.start_transaction():
                            upserts = await self._store_group(session, group, reservation)
                            reservation.check_fresh()  # commits when the block ends
                for item in upserts.applied():  # only once committed: an abort must not be cached
                    self._seen.add(item)
                return
            except (_StaleReservation, PyMongoError, DocumentTooLarge) as exc:
                if too_large(exc):  # the transaction was aborted: nothing of it was kept
                    raise TooLargeError(MONGODB_RECORD_LIMIT.format("a statement or attachment")) from None
                if not _retryable(exc):
                    raise
                if attempt == _MAX_ATTEMPTS:
                    raise StoreBusyError(f"statement write conflicted {attempt} times: {exc}") from exc
                log.debug("statement write conflicted or was slow (%r); attempt %d", exc, attempt)

    async def _store_group(
        self, session: AsyncIOMotorClientSession, group: list[Submission], reservation: _Reservation
    ) -> Upserts:
        ids = [text(s.id) for sub in group for s in sub.statements]
        stored_docs = {
            d["_id"]: orjson.loads(d["doc"])
            async for d in self._statements.find({"_id": {"$in": ids}}, {"doc": 1}, session=session)
        }
        referrers = [
            d
            async for d in self._statements.find(
                {"ref": {"$in": ids}}, {"voiding": 1, "ref": 1}, session=session
            )
        ]
        statements, attachments, defining = settle(group, stored_docs)
        if not statements:
            return Upserts([], [], [])
        await self._inherit_ref_keys(session, statements)
        voided, outside_targets = voided_in_batch(statements)
        voided |= {d["ref"] for d in referrers if d["voiding"]}
        stored = format_timestamp(reservation.stored)
        rows = []
        for seq, s in enumerate(statements, reservation.first_seq):
            row = {
                "_id": s.id,
                "seq": seq,
                "stored": reservation.stored,
                "doc": orjson.dumps(stamped(s.document, stored)),
                "keys": sorted(s.keys) + ([] if s.id in voided and not s.is_voiding else [LIVE]),
                "voiding": s.is_voiding,
            }
            if s.ref_target:
                row["ref"] = s.ref_target
            rows.append(row)
        await self._statements.insert_many(rows, session=session)
        if outside_targets:
            await self._statements.update_many(
                {"_id": {"$in": outside_targets}, "voiding": False},
                {"$pull": {"keys": LIVE}},
                session=session,
            )
        if referrers:
            await self._propagate_to_referrers(session, statements)
        if attachments:
            unique = sorted({(a.sha2, a.content_type, a.content) for a in attachments})
            await self._attachments.bulk_write(
                [
                    UpdateOne(
                        {"_id": text(sha2)},
                        {"$setOnInsert": {"content_type": content_type, "content": content}},
                        upsert=True,
                    )
                    for sha2, content_type, content in unique
                ],
                session=session,
            )
        upserts = pending_upserts(self._seen, statements, defining, _encode_canonical)
        await self._apply(session, upserts)
        return upserts

    async def _inherit_ref_keys(
        self, session: AsyncIOMotorClientSession, statements: list[PreparedStatement]
    ) -> None:
        in_batch = {s.id for s in statements}
        outside = [s.ref_target for s in statements if s.ref_target and s.ref_target not in in_batch]
        target_keys: dict[str, set[str]] = {}
        if outside:
            async for d in self._statements.find({"_id": {"$in": outside}}, {"keys": 1}, session=session):
                target_keys[d["_id"]] = set(d["keys"])
        inherit_keys(statements, target_keys)

    async def _propagate_to_referrers(
        self, session: AsyncIOMotorClientSession, statements: list[PreparedStatement]
    ) -> None:
        """A target arrived after statements referring to it: they inherit its keys now."""
        frontier = {s.id: inheritable(s.keys) for s in statements}
        while frontier:
            updates, next_frontier = [], {}
            async for d in self._statements.find(
                {"ref": {"$in": list(frontier)}}, {"ref": 1, "keys": 1}, session=session
            ):
                keys = set(d["keys"])
                added = frontier[d["ref"]] - keys
                if added:
                    updates.append(
                        UpdateOne({"_id": d["_id"]}, {"$addToSet": {"keys": {"$each": sorted(added)}}})
                    )
                    next_frontier[d["_id"]] = inheritable(keys | added)
            if updates:
                await self._statements.bulk_write(updates, session=session)
            frontier = next_frontier

    async def _apply(self, session: AsyncIOMotorClientSession, upserts: Upserts) -> None:
        """Agent names, then canonical definitions (merged) and verb displays (per language)."""
        if upserts.names:
            await self._agents.bulk_write(
                [
                    UpdateOne(
                        {"_id": index_key(text(key))}, {"$addToSet": {"names": text(name)}}, upsert=True
                    )
                    for key, name in upserts.names
                ],
                session=session,
            )
        for collection, field, items, merge in (
            (self._activities, "definition", upserts.activities, merge_definition),
            (self._verbs, "display", upserts.verbs, _merge_display),
        ):
            if not items:
                continue
            ids = list(dict.fromkeys(index_key(text(i)) for i, _ in items))
            merged = {
                d["_id"]: orjson.loads(d[field])
                async for d in collection.find({"_id": {"$in": ids}}, {field: 1}, session=session)
            }
            for item_id, payload in items:  # in batch order: later definitions win
                new, key = orjson.loads(payload), index_key(item_id)
                merged[key] = merge(merged[key], new) if key in merged else new
            await collection.bulk_write(
                [
                    UpdateOne({"_id": i}, {"$set": {field: _encode_canonical(merged[i])}}, upsert=True)
                    for i in ids
                ],
                session=session,
            )

    # --- reading ---------------------------------------------------------------------------------

    async def get(self, statement_id: str) -> StoredStatement | None:
        d = await self._statements.find_one({"_id": text(statement_id)}, {"doc": 1, "stored": 1, "keys": 1})
        if d is None:
            return None
        return StoredStatement(d["_id"], d["doc"], d["stored"], LIVE not in d["keys"])

    async def existing(self, statement_ids: list[str]) -> set[str]:
        found = self._statements.find({"_id": {"$in": [text(i) for i in statement_ids]}}, {"_id": 1})
        return {d["_id"] async for d in found}

    async def query(self, query: StatementQuery) -> StatementPage:
        snapshot = query.snapshot or await self._clock.now()
        keys = sorted({text(k) for k in query.keys}, key=lambda k: (_SELECTIVITY.get(k[:1], 9), k))
        if not query.voided:
            keys.append(LIVE)
        stored: dict[str, datetime] = {"$lte": snapshot}
        seq: dict[str, int] = {}
        if query.until is not None:
            stored["$lte"] = min(stored["$lte"], query.until)
        if query.since is not None:
            stored["$gt"] = query.since
        if query.cursor:
            # (stored, seq) order is seq order, so "after the cursor" is a seq bound, and the
            # cursor's stored time bounds the index range.
            at, last = parse_cursor(query.cursor)
            if query.ascending:
                stored["$gte"], seq["$gt"] = at, last
            else:
                stored["$lte"], seq["$lt"] = min(stored["$lte"], at), last
        rest: dict[str, Any] = {"stored": stored}
        if len(keys) > 1:
            rest["keys"] = {"$all": keys[1:]}
        if seq:
            rest["seq"] = seq
        direction = 1 if query.ascending else -1
        project = {"doc": 1, "stored": 1, "seq": 1, **({"keys": 1} if query.voided else {})}
        if keys:
            # Two $match stages: MongoDB merges them into one query; servers with a simpler planner
            # (the SecantusDB stand-in) still look up the first, single-key stage in the index.
            stages = [{"$match": {"keys": keys[0]}}, {"$match": rest},
                      {"$sort": {"stored": direction, "seq": direction}}]  # fmt: skip
        else:  # every statement, voided ones too (an export): store order is seq order
            stages = [{"$match": rest}, {"$sort": {"seq": direction}}]
        rows = await self._statements.aggregate(
            [*stages, {"$limit": query.limit + 1}, {"$project": project}]
        ).to_list(None)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = encode_cursor(rows[-1]["stored"], rows[-1]["seq"]) if more else None
        return StatementPage(
            [StoredStatement(r["_id"], r["doc"], r["stored"], query.voided and LIVE not in r["keys"])
             for r in rows],
            cursor,
            snapshot,
        )  # fmt: skip

    async def attachments(self, sha2s: list[str]) -> list[AttachmentContent]:
        found = self._attachments.find({"_id": {"$in": [text(s) for s in sha2s]}})
        return [AttachmentContent(d["_id"], d["content_type"], d["content"]) async for d in found]

    async def consistent_through(self) -> datetime:
        return (await self._clock.read())[1]

    async def activity_definition(self, activity_id: str) -> dict[str, Any] | None:
        d = await self._activities.find_one({"_id": index_key(text(activity_id))})
        return None if d is None else orjson.loads(d["definition"])

    async def canonical(self, activity_ids: list[str], verb_ids: list[str]) -> tuple[dict, dict]:
        return (
            await _by_id(self._activities, "definition", activity_ids),
            await _by_id(self._verbs, "display", verb_ids),
        )

    async def agent_names(self, key: str) -> list[str]:
        d = await self._agents.find_one({"_id": index_key(text(key))})
        return [] if d is None else list(d["names"])

    # --- erasure (docs/data-rights.md) -----------------------------------------------------------

    async def erase(
        self, delete: list[str], rewrite: list[Rewrite], agent_keys: list[str]
    ) -> ErasedStatements:
        """Redactions first, then deletions, attachments and names: each step idempotent, so an
        interrupted erasure is completed by running it again. Attachments are kept as long as any
        statement's document names their hash (a scan of the documents: erasures are rare)."""
        erased = ErasedStatements()
        for r in rewrite:
            current = await self._statements.find_one({"_id": text(r.id)}, {"keys": 1})
            if current is None:
                continue
            keys = sorted(r.keys) + ([LIVE] if LIVE in current["keys"] else [])
            await self._statements.update_one(
                {"_id": text(r.id)}, {"$set": {"doc": r.document, "keys": keys}}
            )
            erased.redacted += 1
        ids = [text(i) for i in delete]
        sha2s: set[str] = set()
        async for d in self._statements.find({"_id": {"$in": ids}}, {"doc": 1}):
            attachments = orjson.loads(d["doc"]).get("attachments")
            if isinstance(attachments, list):
                sha2s |= {
                    a["sha2"] for a in attachments if isinstance(a, dict) and isinstance(a.get("sha2"), str)
                }
        erased.statements = (await self._statements.delete_many({"_id": {"$in": ids}})).deleted_count
        if sha2s:
            still = set()
            async for d in self._statements.find({}, {"doc": 1}):
                if any(s.encode() in d["doc"] for s in sha2s):
                    still |= {s for s in sha2s if s.encode() in d["doc"]}
            gone = sorted(sha2s - still)
            if gone:
                erased.attachments = (
                    await self._attachments.delete_many({"_id": {"$in": gone}})
                ).deleted_count
        if agent_keys:
            erased.agent_names = (
                await self._agents.delete_many({"_id": {"$in": [index_key(text(k)) for k in agent_keys]}})
            ).deleted_count
        self._seen = type(self._seen)()  # names cached as recorded are recorded again if they come back
        return erased


async def _by_id(collection: AsyncIOMotorCollection, field: str, ids: list[str]) -> dict[str, Any]:
    """``field`` (JSON bytes) of the documents with these ids, keyed by the ids as given."""
    keys = {index_key(text(i)): i for i in ids}
    found = collection.find({"_id": {"$in": list(keys)}}, {field: 1})
    return {keys[d["_id"]]: orjson.loads(d[field]) async for d in found}
