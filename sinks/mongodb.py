"""MongoDB sink (motor): the raw collections of seed 000 §4.

Per-statement documents have the statement id as ``_id``:

* ``xapi_statements``: the statement whole (``statement``) with ``student_id``, ``course_id``,
  ``verb_id``, ``object_id``, ``timestamp`` (and ``lesson_id``, ``learner_key``, ``session_id``,
  ``stored``, ``position``). A voided statement stays, marked ``voided`` (an LRS keeps voided
  statements); its fact and its share of the rollups go, its event stays in the event log
  next to the voiding's.
* ``learning_progress``: what the learner did: ``activity_type`` (``video_paused``,
  ``quiz_passed``, ``lesson_completed``…), ``details`` (``time_spent_seconds``, ``completed``,
  ``video_progress``, ``quiz_result``), ``session_id``, ``device_info``. These are the facts the
  two rollups below are computed from.
* ``event_log``: an ``xapi.statement.<verb class>`` event per statement and an
  ``xapi.statement.voided`` per voiding; ``created_at`` is when the statement was stored, and
  a TTL index drops events 30 days after it.

Rollups, each document recomputed whole from the facts:

* ``course_engagement``: one heatmap document per course × lesson × UTC day (``_id``
  ``"course:lesson:YYYY-MM-DD"``, lesson ``-`` for course-level statements): events, distinct
  learners, time spent, completions, events per hour of the day (``hourly``) and views per
  5-second video segment (``video_heatmap``).
* ``user_sessions``: one document per learner × session (cmi5 or video session id): first and
  last activity, events, time spent, courses. A TTL index drops it 90 days after its last activity.

Tenants (docs/tenants.md): every document has ``tenant``. The default tenant's keep the keys
above (documents from before tenants have no ``tenant`` field and are the default tenant's);
another tenant's keys start with ``<tenant>/`` (``doc_id``, ``engagement_id``, ``session_key``), so
the same statement id, course, day, learner or session of two tenants are two documents and no
rollup mixes them.

Why applying twice never counts twice: per-statement documents are inserted under their
statement id (one already there is left as it is), and nothing is ever incremented. After each
batch, every engagement and session document the batch touches (those of statements already
there too) is recomputed from ``learning_progress`` by one aggregation and replaced, so a replay
rewrites the same numbers and a crash between two writes leaves facts the replay's
recomputation picks up. A statement's fact is written after its statement document and event:
a fact present means the rest is too, so a replayed statement with a fact writes nothing but
the recomputation.

Voiding marks the statement voided, logs the voiding, deletes its fact and recomputes the
rollups it was in, found from the kept statement document: a re-sent retraction repairs a crash
midway. A voided statement sent again (a replay of older messages) is known by its mark.
Reset forgets statements, facts and events stored from ``since`` (by position, exact to the
microsecond; BSON dates keep milliseconds) and recomputes what they were in.

``$in`` lists go in chunks of ``ID_CHUNK``: SecantusDB, the tests' stand-in server, evaluates
them in quadratic time; MongoDB does not mind either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo import ASCENDING, DESCENDING, IndexModel, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError

from lrs.store.ports import DEFAULT_TENANT
from lrs.xapi.profiles import VIDEO
from .events import LearningEvent
from sinks.positions import since_position, stored_of

from .buckets import SEGMENT_SECONDS, day_of, day_start, watched_segments
from .settings import RetentionSettings
from .ports import Batch, ErasureTask, IgnoresCatalog, RebuildsInPlace, Retraction, advanced, net_all

ID_CHUNK = 100
DUPLICATE_KEY = 11000
EVENT_LOG_TTL = timedelta(days=30)
SESSION_TTL = timedelta(days=90)
SOURCE = "lrs-pipeline"
RETENTION_INDEX = "retention"
"""The TTL index of ``LRS_RETENTION_DAYS`` (raw collections) and ``LRS_RETENTION_AGGREGATE_DAYS``."""

INDEXES: dict[str, list[IndexModel]] = {
    "xapi_statements": [
        IndexModel([("student_id", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("course_id", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("learner_key", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("verb_id", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("object_id", ASCENDING)]),
        IndexModel([("position", ASCENDING)]),
    ],
    "learning_progress": [
        IndexModel([("student_id", ASCENDING), ("course_id", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("course_id", ASCENDING), ("lesson_id", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("activity_type", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("engagement_id", ASCENDING)]),
        IndexModel([("session_key", ASCENDING)]),
        IndexModel([("position", ASCENDING)]),
    ],
    "course_engagement": [
        IndexModel([("course_id", ASCENDING), ("date", DESCENDING)]),
        IndexModel([("course_id", ASCENDING), ("lesson_id", ASCENDING), ("date", DESCENDING)]),
    ],
    "user_sessions": [
        IndexModel([("last_activity_at", ASCENDING)], expireAfterSeconds=int(SESSION_TTL.total_seconds())),
        IndexModel([("student_id", ASCENDING), ("started_at", DESCENDING)]),
        IndexModel([("learner_key", ASCENDING), ("started_at", DESCENDING)]),
    ],
    "event_log": [
        IndexModel([("created_at", ASCENDING)], expireAfterSeconds=int(EVENT_LOG_TTL.total_seconds())),
        IndexModel([("event_type", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("correlation_id", ASCENDING)]),
        IndexModel([("position", ASCENDING)]),
    ],
}
COLLECTIONS = (*INDEXES, "sink_watermarks")


def chunks(items: Sequence[Any], size: int = ID_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# --- documents -----------------------------------------------------------------------------------


def _prefix(tenant: str) -> str:
    return "" if tenant == DEFAULT_TENANT else f"{tenant}/"


def doc_id(tenant: str, statement_id: str) -> str:
    """The ``_id`` of a statement's documents: its id, after ``<tenant>/`` for a tenant other than
    the default."""
    return _prefix(tenant) + statement_id


def engagement_id(
    course_id: int | None, lesson_id: int | None, moment: datetime, tenant: str = DEFAULT_TENANT
) -> str | None:
    """The ``course_engagement`` document a statement counts in (none outside a known course)."""
    if course_id is None:
        return None
    return (
        f"{_prefix(tenant)}{course_id}:{'-' if lesson_id is None else lesson_id}:{day_of(moment).isoformat()}"
    )


def session_key(learner_key: str, session_id: str | None, tenant: str = DEFAULT_TENANT) -> str | None:
    """The ``user_sessions`` document a statement counts in (none without a session id)."""
    return None if session_id is None else _prefix(tenant) + orjson.dumps([learner_key, session_id]).decode()


def _tenant_of(key: str) -> tuple[str, str]:
    """(tenant, the rest) of a key made by ``engagement_id`` or ``session_key``."""
    tenant, slash, rest = key.partition("/")
    return (tenant, rest) if slash and not key.startswith("[") else (DEFAULT_TENANT, key)


def _of_tenant(tenant: str) -> dict[str, Any]:
    """A query on the ``tenant`` field (documents from before tenants have none: the default's)."""
    return {"tenant": {"$in": [tenant, None]}} if tenant == DEFAULT_TENANT else {"tenant": tenant}


def activity_type(e: LearningEvent) -> str:
    """``<what>_<verb class>``: what is a video (video profile data or verb), quiz, lesson, module,
    course or activity (nothing the catalog knows)."""
    where = e.location
    if e.video_segments or e.progress is not None or e.verb_id.startswith(VIDEO):
        kind = "video"
    elif where.quiz_id is not None:
        kind = "quiz"
    elif where.lesson_id is not None:
        kind = "lesson"
    elif where.module_id is not None:
        kind = "module"
    elif where.course_id is not None:
        kind = "course"
    else:
        kind = "activity"
    return f"{kind}_{e.verb_class}"


def _object_id(e: LearningEvent) -> str | None:
    if e.statement is not None:
        return (e.statement.get("object") or {}).get("id") or None
    return e.activity_id or None


def statement_document(e: LearningEvent) -> dict[str, Any]:
    where = e.location
    return {
        "_id": doc_id(e.tenant, e.statement_id), "tenant": e.tenant,
        "student_id": e.student_id, "learner_key": e.learner_key, "course_id": where.course_id,
        "lesson_id": where.lesson_id, "verb_id": e.verb_id, "object_id": _object_id(e),
        "timestamp": e.timestamp, "stored": e.stored, "position": e.position, "session_id": e.session_id,
        "statement": e.statement,
    }  # fmt: skip


def progress_document(e: LearningEvent) -> dict[str, Any]:
    """The ``learning_progress`` fact of a statement."""
    where = e.location
    details: dict[str, Any] = {
        "verb": e.verb_class,
        "activity_id": e.activity_id or None,
        "time_spent_seconds": e.duration_seconds,
        "completed": e.completes_lesson or e.completes_course,
    }
    if e.video_segments or e.video_time is not None or e.video_length is not None or e.progress is not None:
        details["video_progress"] = {
            "current_time_seconds": e.video_time,
            "total_duration_seconds": e.video_length,
            "percentage_watched": None if e.progress is None else round(e.progress * 100, 2),
            "played_segments": [list(s) for s in e.video_segments],
            "segments": watched_segments(e),
            "session": e.view_session,
        }
    if e.cmi5_outcome is not None:
        details["cmi5_outcome"] = e.cmi5_outcome  # docs/analytics.md "cmi5 courses"
    if e.quiz_attempt or e.item_response:
        details["quiz_result"] = {
            "score_percent": e.score_percent, "score_raw": e.score_raw, "passed": e.quiz_passed,
            "response": e.response, "attempt": e.quiz_attempt,
        }  # fmt: skip
    return {
        "_id": doc_id(e.tenant, e.statement_id), "tenant": e.tenant,
        "student_id": e.student_id, "learner_key": e.learner_key, "course_id": where.course_id,
        "module_id": where.module_id, "lesson_id": where.lesson_id, "quiz_id": where.quiz_id,
        "activity_type": activity_type(e), "timestamp": e.timestamp, "stored": e.stored,
        "position": e.position, "session_id": e.session_id, "registration": e.registration,
        "details": details, "device_info": {"platform": e.platform} if e.platform else None,
        "engagement_id": engagement_id(where.course_id, where.lesson_id, e.timestamp, e.tenant),
        "session_key": session_key(e.learner_key, e.session_id, e.tenant),
    }  # fmt: skip


def event_document(e: LearningEvent) -> dict[str, Any]:
    where = e.location
    return {
        "_id": doc_id(e.tenant, e.statement_id), "tenant": e.tenant,
        "event_type": f"xapi.statement.{e.verb_class}",
        "payload": {
            "statement_id": e.statement_id, "student_id": e.student_id, "course_id": where.course_id,
            "lesson_id": where.lesson_id, "quiz_id": where.quiz_id, "verb_id": e.verb_id,
            "object_id": _object_id(e), "timestamp": e.timestamp.isoformat(),
        },
        "status": "completed", "source_service": SOURCE, "correlation_id": e.statement_id,
        "created_at": e.stored, "position": e.position,
    }  # fmt: skip


def voiding_document(r: Retraction) -> dict[str, Any]:
    return {
        "tenant": r.tenant,
        "event_type": "xapi.statement.voided", "payload": {"statement_id": r.statement_id},
        "status": "completed", "source_service": SOURCE, "correlation_id": r.statement_id,
        "created_at": stored_of(r.position), "position": r.position,
    }  # fmt: skip


_PLACE = {"tenant": 1, "course_id": 1, "lesson_id": 1, "timestamp": 1, "learner_key": 1, "session_id": 1}
"""What a statement document says about the rollups it counts in."""


def _engagement_of(d: dict[str, Any]) -> str | None:
    tenant = d.get("tenant") or DEFAULT_TENANT
    return engagement_id(d.get("course_id"), d.get("lesson_id"), d["timestamp"], tenant)


def _session_of(d: dict[str, Any]) -> str | None:
    return session_key(d["learner_key"], d.get("session_id"), d.get("tenant") or DEFAULT_TENANT)


def _parse_engagement(key: str) -> tuple[str, int, int | None, date]:
    tenant, rest = _tenant_of(key)
    course, lesson, day = rest.split(":")
    return tenant, int(course), None if lesson == "-" else int(lesson), date.fromisoformat(day)


# --- the sink ------------------------------------------------------------------------------------


class MongoSink(IgnoresCatalog, RebuildsInPlace):
    name = "mongodb"
    serves_tenants = True

    def __init__(
        self,
        url: str,
        database: str | None = None,
        partitions: int = 1,
        retention: RetentionSettings | None = None,
    ) -> None:
        self._url, self._database, self._partitions = url, database, partitions
        self._retention = retention or RetentionSettings()
        self._client: AsyncIOMotorClient | None = None
        self.db: AsyncIOMotorDatabase | None = None

    async def start(self) -> None:
        self._client = AsyncIOMotorClient(self._url, tz_aware=True, tzinfo=timezone.utc, appname="lrs-sink")
        self.db = (
            self._client[self._database]
            if self._database
            else self._client.get_default_database("lrs_analytics")
        )
        for collection, indexes in INDEXES.items():
            await self.db[collection].create_indexes(indexes)
        await self._apply_retention()

    async def _apply_retention(self) -> None:
        """``LRS_RETENTION_DAYS`` / ``LRS_RETENTION_AGGREGATE_DAYS`` as TTL indexes named
        ``retention`` (replaced when the setting changed, dropped when it is unset)."""
        raw, aggregate = self._retention.retention_days, self._retention.retention_aggregate_days
        for collection, field, days in (("xapi_statements", "timestamp", raw), ("learning_progress", "timestamp", raw),
                                        ("course_engagement", "date", aggregate)):  # fmt: skip
            current = (await self.db[collection].index_information()).get(RETENTION_INDEX)
            seconds = None if days is None else days * 86400
            if current is not None and current.get("expireAfterSeconds") == seconds:
                continue
            if current is not None:
                await self.db[collection].drop_index(RETENTION_INDEX)
            if seconds is not None:
                await self.db[collection].create_index([(field, ASCENDING)], name=RETENTION_INDEX,
                                                       expireAfterSeconds=seconds)  # fmt: skip

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # --- applying --------------------------------------------------------------------------------

    async def _ids_where(self, collection: str, ids: Sequence[str], query: dict | None = None) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(ids):
            cursor = self.db[collection].find({"_id": {"$in": chunk}, **(query or {})}, {"_id": 1})
            found |= {d["_id"] async for d in cursor}
        return found

    async def apply(self, batches: Sequence[Batch]) -> None:
        events, retractions = net_all(batches)
        engagements: set[str | None] = set()
        sessions: set[str | None] = set()
        if events:
            ids = [doc_id(e.tenant, e.statement_id) for e in events]
            voided = await self._ids_where("xapi_statements", ids, {"voided": True})
            fresh = [e for e, i in zip(events, ids, strict=True) if i not in voided]
            done = await self._ids_where(
                "learning_progress", [doc_id(e.tenant, e.statement_id) for e in fresh]
            )
            new = [e for e in fresh if doc_id(e.tenant, e.statement_id) not in done]
            if new:
                await self._insert("xapi_statements", [statement_document(e) for e in new])
                await self._insert("event_log", [event_document(e) for e in new])
                await self._insert("learning_progress", [progress_document(e) for e in new])
            for e in fresh:
                engagements.add(
                    engagement_id(e.location.course_id, e.location.lesson_id, e.timestamp, e.tenant)
                )
                sessions.add(session_key(e.learner_key, e.session_id, e.tenant))
        if retractions:
            touched = await self._retract(retractions)
            engagements |= touched[0]
            sessions |= touched[1]
        await self._recompute(engagements, sessions)
        await self._record([b for b in batches if b.through])

    async def _insert(self, collection: str, documents: list[dict[str, Any]]) -> None:
        """Insert documents keyed by statement id; one already there (a crash midway, then a
        replay) is the same document and stays."""
        try:
            await self.db[collection].insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors") or any(
                error["code"] != DUPLICATE_KEY for error in exc.details["writeErrors"]
            ):
                raise

    async def _retract(self, retractions: list[Retraction]) -> tuple[set[str | None], set[str | None]]:
        """Mark the statements voided, log the voidings, delete their facts; returns the rollups
        they were in (read from the statement documents, which stay)."""
        engagements: set[str | None] = set()
        sessions: set[str | None] = set()
        ids = [doc_id(r.tenant, r.statement_id) for r in retractions]
        for chunk in chunks(ids):
            async for d in self.db.xapi_statements.find({"_id": {"$in": chunk}}, _PLACE):
                engagements.add(_engagement_of(d))
                sessions.add(_session_of(d))
        await self.db.xapi_statements.bulk_write(
            [UpdateOne({"_id": i, "voided": {"$ne": True}},
                       {"$set": {"voided": True, "voided_by": r.position}}) for r, i in zip(retractions, ids)],
            ordered=False,
        )  # fmt: skip
        await self.db.event_log.bulk_write(
            [UpdateOne({"_id": doc_id(r.tenant, f"voided:{r.statement_id}")}, {"$setOnInsert": voiding_document(r)},
                       upsert=True) for r in retractions], ordered=False,
        )  # fmt: skip
        for chunk in chunks(ids):
            await self.db.learning_progress.delete_many({"_id": {"$in": chunk}})
        return engagements, sessions

    async def _recompute(self, engagements: Iterable[str | None], sessions: Iterable[str | None]) -> None:
        """Recompute these ``course_engagement`` and ``user_sessions`` documents (``None``: none)."""
        for chunk in chunks(sorted(k for k in engagements if k)):
            await self._recompute_engagement(chunk)
        for chunk in chunks(sorted(k for k in sessions if k)):
            await self._recompute_sessions(chunk)

    async def _recompute_engagement(self, keys: list[str]) -> None:
        hours = await self.db.learning_progress.aggregate([
            {"$match": {"engagement_id": {"$in": keys}}},
            {"$group": {
                "_id": {"e": "$engagement_id", "h": {"$hour": "$timestamp"}},
                "events": {"$sum": 1},
                "seconds": {"$sum": "$details.time_spent_seconds"},
                "completions": {"$sum": {"$cond": ["$details.completed", 1, 0]}},
                "learners": {"$addToSet": "$learner_key"},
            }},
        ]).to_list(None)  # fmt: skip
        segments = await self.db.learning_progress.aggregate([
            {"$match": {"engagement_id": {"$in": keys},
                        "details.video_progress.segments.0": {"$exists": True}}},
            {"$unwind": "$details.video_progress.segments"},
            {"$group": {  # a segment counts once per viewing session (docs/analytics.md)
                "_id": {"e": "$engagement_id", "s": "$details.video_progress.segments"},
                "sessions": {"$addToSet": {"l": "$learner_key", "v": "$details.video_progress.session"}},
                "learners": {"$addToSet": "$learner_key"},
            }},
        ]).to_list(None)  # fmt: skip
        now = datetime.now(timezone.utc)
        days: dict[str, dict[str, Any]] = {}
        learners: dict[str, set[str]] = {}
        for row in hours:
            key = row["_id"]["e"]
            if key not in days:
                tenant, course, lesson, day = _parse_engagement(key)
                days[key] = {
                    "tenant": tenant, "course_id": course, "lesson_id": lesson, "date": day_start(day), "events": 0,
                    "learners": 0, "time_spent_seconds": 0.0, "completions": 0, "hourly": [0] * 24,
                    "video_heatmap": [], "updated_at": now,
                }  # fmt: skip
            doc = days[key]
            doc["events"] += row["events"]
            doc["time_spent_seconds"] += float(row["seconds"] or 0)
            doc["completions"] += row["completions"]
            doc["hourly"][row["_id"]["h"]] += row["events"]
            learners.setdefault(key, set()).update(row["learners"])
        for key, seen in learners.items():
            days[key]["learners"] = len(seen)
        for row in sorted(segments, key=lambda r: (r["_id"]["e"], r["_id"]["s"])):
            if (doc := days.get(row["_id"]["e"])) is not None:
                s = row["_id"]["s"]
                doc["video_heatmap"].append({
                    "segment": s, "start_seconds": s * SEGMENT_SECONDS, "views": len(row["sessions"]),
                    "learners": len(row["learners"]),
                })  # fmt: skip
        await self._replace("course_engagement", keys, days)

    async def _recompute_sessions(self, keys: list[str]) -> None:
        rows = await self.db.learning_progress.aggregate([
            {"$match": {"session_key": {"$in": keys}}},
            {"$group": {
                "_id": "$session_key",
                "session_id": {"$first": "$session_id"},
                "learner_key": {"$first": "$learner_key"},
                "student_id": {"$max": "$student_id"},
                "started_at": {"$min": "$timestamp"},
                "last_activity_at": {"$max": "$timestamp"},
                "events": {"$sum": 1},
                "seconds": {"$sum": "$details.time_spent_seconds"},
                "courses": {"$addToSet": "$course_id"},
                "platform": {"$max": "$device_info.platform"},
                "registration": {"$max": "$registration"},
            }},
        ]).to_list(None)  # fmt: skip
        now = datetime.now(timezone.utc)
        docs = {}
        for row in rows:
            started, last = row["started_at"], row["last_activity_at"]
            docs[row["_id"]] = {
                "tenant": _tenant_of(row["_id"])[0],
                "session_id": row["session_id"], "learner_key": row["learner_key"],
                "student_id": row["student_id"],
                "started_at": started, "last_activity_at": last,
                "duration_seconds": (last - started).total_seconds(), "events": row["events"],
                "time_spent_seconds": float(row["seconds"] or 0),
                "course_ids": sorted(c for c in row["courses"] if c is not None),
                "device_info": {"platform": row["platform"]} if row["platform"] else None,
                "registration": row["registration"], "updated_at": now,
            }  # fmt: skip
        await self._replace("user_sessions", keys, docs)

    async def _replace(self, collection: str, keys: list[str], docs: dict[str, dict[str, Any]]) -> None:
        """Make ``collection``'s documents ``keys`` be ``docs`` (a key without one: deleted)."""
        if docs:
            await self.db[collection].bulk_write(
                [ReplaceOne({"_id": key}, doc, upsert=True) for key, doc in docs.items()], ordered=False
            )
        gone = [key for key in keys if key not in docs]
        if gone:
            await self.db[collection].delete_many({"_id": {"$in": gone}})

    async def erase(self, task: ErasureTask) -> dict[str, int]:
        """Delete the learner's documents (by identity key, student id, and the statements the
        erasure deleted), replace the statements it redacted, and rebuild the heatmap and session
        documents they were in without them."""
        ids = [doc_id(task.tenant, i) for i in task.statement_ids]
        mine = _of_tenant(task.tenant)
        who: dict[str, Any] = {**mine, "$or": [
            {"learner_key": {"$in": task.identity_keys}}, {"student_id": {"$in": task.student_ids}},
            {"_id": {"$in": ids}},
        ]}  # fmt: skip
        engagements: set[str | None] = set()
        sessions: set[str | None] = set()
        async for d in self.db.learning_progress.find(who, {"engagement_id": 1, "session_key": 1}):
            engagements.add(d.get("engagement_id"))
            sessions.add(d.get("session_key"))
        async for d in self.db.xapi_statements.find(who, _PLACE):
            engagements.add(_engagement_of(d))
            sessions.add(_session_of(d))
        counts: dict[str, int] = {}
        for collection in ("xapi_statements", "learning_progress"):
            counts[collection] = (await self.db[collection].delete_many(who)).deleted_count
        voidings = [doc_id(task.tenant, f"voided:{i}") for i in task.statement_ids]
        logged = {**mine, "$or": [{"_id": {"$in": ids + voidings}},
                                  {"payload.student_id": {"$in": task.student_ids}}]}  # fmt: skip
        counts["event_log"] = (await self.db.event_log.delete_many(logged)).deleted_count
        counts["user_sessions"] = (
            await self.db.user_sessions.delete_many(
                {
                    **mine,
                    "$or": [
                        {"learner_key": {"$in": task.identity_keys}},
                        {"student_id": {"$in": task.student_ids}},
                    ],
                }
            )
        ).deleted_count
        counts["redacted"] = 0
        for statement_id, statement in task.redacted.items():
            done = await self.db.xapi_statements.update_one(
                {"_id": doc_id(task.tenant, statement_id)}, {"$set": {"statement": statement}}
            )
            counts["redacted"] += done.modified_count
        await self._recompute(engagements, sessions)
        return counts

    async def _record(self, batches: list[Batch]) -> None:
        if not batches:
            return
        cursor = self.db.sink_watermarks.find({"_id": {"$in": [b.partition for b in batches]}})
        current = {d["_id"]: (d["position"], d["epoch"]) async for d in cursor}
        now, writes = datetime.now(timezone.utc), []
        for batch in batches:
            if (mark := advanced(current.get(batch.partition), batch)) is not None:
                doc = {"position": mark[0], "epoch": mark[1], "updated": now}
                writes.append(ReplaceOne({"_id": batch.partition}, doc, upsert=True))
        if writes:
            await self.db.sink_watermarks.bulk_write(writes, ordered=False)

    # --- positions and replays -------------------------------------------------------------------

    async def watermarks(self, partitions: int) -> list[str]:
        found = {d["_id"]: d["position"] async for d in self.db.sink_watermarks.find()}
        return [found.get(p, "") for p in range(partitions)]

    async def reset(self, since: datetime | None, epoch: str) -> None:
        """Forget statements, facts and events stored from ``since`` on (all without it) and
        recompute the rollups they were in."""
        if since is None:
            for collection in COLLECTIONS:
                await self.db[collection].delete_many({})
            start = ""
        else:
            start = since_position(since)
            recent = {"position": {"$gte": start}}
            engagements = await self.db.learning_progress.distinct("engagement_id", recent)
            sessions = await self.db.learning_progress.distinct("session_key", recent)
            for collection in ("xapi_statements", "learning_progress", "event_log"):
                await self.db[collection].delete_many(recent)
            await self._recompute(engagements, sessions)
            await self.db.sink_watermarks.delete_many({})
        now = datetime.now(timezone.utc)
        await self.db.sink_watermarks.insert_many(
            [{"_id": p, "position": start, "epoch": epoch, "updated": now} for p in range(self._partitions)]
        )
