"""Statement → LearningEvent: the one flattening of a statement that every sink reads, and the
one place where the per-statement rules of ``docs/analytics.md`` are decided.

Sinks never look into statements; they read these fields. Unknown activities and learners
flow with empty ids (``None``). Durations become seconds, scores are kept as sent plus a
percentage, and the xAPI video profile's played segments become (start, end) pairs.

The rules (see ``docs/analytics.md`` for the definitions in xAPI terms):

* ``object_kind``: what the catalog says the statement's *object* itself is (course, module,
  lesson, quiz, or nothing known). A statement about an activity below a known one (a question
  whose ``context.contextActivities.parent`` is a quiz) is *located* in that quiz
  (``location.quiz_id``) but its object kind is ``""``.
* ``completes_lesson`` / ``completes_course``: a completing statement (verb completed, passed or
  satisfied, ``result.completion: true``, or video ``progress`` ≥ 0.9) whose object is the lesson
  / the course itself; a cmi5 AU (a lesson with a moveOn) is completed by no single statement, and
  a cmi5 defined ``satisfied`` (the LMS's) completes nothing.
* ``cmi5_outcome``: a cmi5 defined statement (category cmi5) whose object is a lesson records
  ``completed``, ``passed`` or ``waived`` by its verb; the sinks satisfy AUs from these outcomes
  by the catalog's moveOn.
* ``quiz_attempt``: a statement whose object is the quiz itself and that carries an outcome (verb
  passed or failed, ``result.success``, or a score); ``quiz_passed`` its outcome. Answers to a
  quiz's questions are item responses: never attempts, never passes.
* ``cmi5_session``: the cmi5 session id; within a session only the largest duration counts as
  time spent (aggregated by the sinks, see ``docs/analytics.md``).
* ``view_session``: the video session a played segment belongs to (video profile session id,
  else the cmi5 session id, else the statement alone): a segment is viewed once per session.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import msgspec
import orjson

from lrs.store.ports import DEFAULT_TENANT
from lrs.xapi.agents import ifi_key
from lrs.xapi.formats import duration_seconds, parse_timestamp
from lrs.xapi.profiles import (
    CMI5_CATEGORY,
    CMI5_SESSION,
    VIDEO,
    VIDEO_LENGTH,
    VIDEO_PLAYED_SEGMENTS,
    VIDEO_PROGRESS,
    VIDEO_SESSION,
    VIDEO_TIME,
    VIDEO_TIME_TO,
)

from sinks.events import UNKNOWN, LearningEvent

from .locate import Locator


VERB_CLASSES = {
    "http://adlnet.gov/expapi/verbs/launched": "launched",
    "http://adlnet.gov/expapi/verbs/initialized": "initialized",
    "http://adlnet.gov/expapi/verbs/experienced": "experienced",
    "http://id.tincanapi.com/verb/viewed": "viewed",
    "http://adlnet.gov/expapi/verbs/progressed": "progressed",
    "http://adlnet.gov/expapi/verbs/completed": "completed",
    "http://adlnet.gov/expapi/verbs/passed": "passed",
    "http://adlnet.gov/expapi/verbs/failed": "failed",
    "http://adlnet.gov/expapi/verbs/answered": "answered",
    "http://adlnet.gov/expapi/verbs/attempted": "attempted",
    "http://adlnet.gov/expapi/verbs/scored": "scored",
    "http://adlnet.gov/expapi/verbs/terminated": "terminated",
    "http://adlnet.gov/expapi/verbs/suspended": "suspended",
    "http://adlnet.gov/expapi/verbs/resumed": "resumed",
    "http://adlnet.gov/expapi/verbs/exited": "exited",
    "http://adlnet.gov/expapi/verbs/voided": "voided",
    "https://w3id.org/xapi/adl/verbs/satisfied": "satisfied",
    "https://w3id.org/xapi/adl/verbs/waived": "waived",
    "https://w3id.org/xapi/adl/verbs/abandoned": "abandoned",
    f"{VIDEO}/verbs/played": "played",
    f"{VIDEO}/verbs/paused": "paused",
    f"{VIDEO}/verbs/seeked": "seeked",
    f"{VIDEO}/verbs/interacted": "interacted",
}
COMPLETING = frozenset({"completed", "passed", "satisfied"})
"""Verb classes that complete what they act on (lessons and courses; quizzes need a pass)."""
CMI5_OUTCOMES = frozenset({"completed", "passed", "waived"})
"""Verb classes of the cmi5 defined statements that record an AU's outcome (``failed`` satisfies
nothing)."""
VIDEO_WATCHED = 0.9
"""Video ``progress`` from which a statement completes the video it is about."""


class _Verb(msgspec.Struct):
    id: str


class _Definition(msgspec.Struct):
    type: str = ""


class _Object(msgspec.Struct):
    id: str | None = None
    objectType: str = "Activity"  # noqa: N815 - the xAPI property
    definition: _Definition | None = None


class _Score(msgspec.Struct):
    scaled: Any = None
    raw: Any = None
    min: Any = None
    max: Any = None


class _Result(msgspec.Struct):
    success: bool | None = None
    completion: bool | None = None
    response: str | None = None
    duration: str | None = None
    score: _Score | None = None
    extensions: dict[str, Any] | None = None


class _Context(msgspec.Struct):
    registration: str | None = None
    platform: str | None = None
    contextActivities: dict[str, Any] | None = None  # noqa: N815 - the xAPI property
    extensions: dict[str, Any] | None = None


class StatementView(msgspec.Struct):
    """The parts of a stored statement the enrichment reads, decoded straight from its JSON
    (everything else is skipped, not built: several times cheaper than decoding the whole
    statement into dicts). Agents and context activities stay mappings, read by the identity
    and location rules as everywhere else."""

    id: str
    actor: dict[str, Any]
    verb: _Verb
    object: _Object
    stored: str
    timestamp: str | None = None
    result: _Result | None = None
    context: _Context | None = None


_VIEW = msgspec.json.Decoder(StatementView)
_NO_RESULT, _NO_SCORE, _NO_CONTEXT = _Result(), _Score(), _Context()


def statement_view(statement: bytes | dict[str, Any]) -> StatementView:
    """A stored statement (its JSON, or decoded) as the enrichment reads it; ``ValueError`` for
    one no LRS would have stored."""
    try:
        if isinstance(statement, dict):
            return msgspec.convert(statement, StatementView)
        return _VIEW.decode(statement)
    except msgspec.MsgspecError as exc:
        raise ValueError(f"not a stored statement: {exc}") from None
    except RecursionError:
        raise ValueError("not a stored statement: nested too deep") from None


_SEGMENT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*\[\.\]\s*([0-9]+(?:\.[0-9]+)?)\s*")


def instant(value: str) -> datetime | None:
    """A stored statement's ``timestamp`` or ``stored`` (the LRS validated and stamped them): the
    standard library's ISO parser, which takes every form the LRS stores; xAPI's own parser for
    anything else."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return parse_timestamp(value)
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value) if isinstance(value, str) and value.strip() else None
        except ValueError:
            return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float: no LRS stores one
        raise ValueError(f"number out of range: {str(value)[:40]}…") from None


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def played_segments(value: Any) -> list[tuple[float, float]]:
    """``"0[.]5[,]10[.]12.5"`` → ``[(0, 5), (10, 12.5)]`` (xAPI video profile); junk is skipped."""
    if not isinstance(value, str):
        return []
    segments = []
    for part in value.split("[,]"):
        m = _SEGMENT.fullmatch(part)
        if m:
            start, end = float(m.group(1)), float(m.group(2))
            if end >= start:
                segments.append((start, end))
    return segments


def verb_class(verb_id: str) -> str:
    return VERB_CLASSES.get(verb_id, "other")


def learner_key(actor: dict[str, Any]) -> str:
    """The identity key a learner is partitioned and counted by (a Group: its IFI or members)."""
    key = ifi_key(actor)
    if key is not None:
        return key
    members = sorted(k for m in actor.get("member", ()) if (k := ifi_key(m)) is not None)
    return "group:" + ",".join(members)


def score_percent(
    scaled: float | None, raw: float | None, low: float | None, high: float | None
) -> float | None:
    """A score as a percentage: scaled × 100, or raw within [min (default 0), max]."""
    if scaled is not None:
        return scaled * 100
    if raw is not None and high is not None and high != (low or 0.0):
        return (raw - (low or 0.0)) / (high - (low or 0.0)) * 100
    return None


def completing(verb: str, completion: bool | None, progress: float | None) -> bool:
    """A completing statement: verb completed, passed or satisfied, ``result.completion`` true,
    or ≥ 90 % of a video watched (video profile ``progress``)."""
    return verb in COMPLETING or completion is True or (progress is not None and progress >= VIDEO_WATCHED)


def cmi5_defined(activities: dict[str, Any]) -> bool:
    """A cmi5 defined statement: its ``context.contextActivities.category`` holds the cmi5 category."""
    categories = activities.get("category") or []
    if isinstance(categories, dict):  # a single activity (xAPI 1.0.3 allows it; the LRS may keep it)
        categories = [categories]
    return any(isinstance(c, dict) and c.get("id") == CMI5_CATEGORY for c in categories)


def is_attempt(object_kind: str, verb: str, success: bool | None, percent: float | None) -> bool:
    """An attempt of the quiz that is the object: it carries an outcome (verb passed or failed,
    ``result.success``, or a score). Answers to the quiz's questions are not attempts."""
    return object_kind == "quiz" and (
        verb in ("passed", "failed") or success is not None or percent is not None
    )


def outcome(verb: str, success: bool | None, percent: float | None, pass_mark: float | None) -> bool | None:
    """An attempt's outcome: the verb passed/failed decides, else ``result.success``, else the
    score against the quiz's pass percentage; ``None`` when it cannot be told."""
    if verb in ("passed", "failed"):
        return verb == "passed"
    if success is not None:
        return success
    if percent is not None and pass_mark is not None:
        return percent >= pass_mark
    return None


def flatten(
    statement: bytes | dict[str, Any], position: str, locator: Locator, keep_statement: bool = False,
    tenant: str = DEFAULT_TENANT,
) -> LearningEvent:  # fmt: skip
    """Flatten a stored statement (its JSON, or decoded) and decide its rules. Raises
    ``KeyError``/``TypeError``/``ValueError`` only for a statement no LRS would have stored (the
    worker dead-letters those). ``keep_statement``: the event also holds the statement (memory
    the worker spends only when a sink needs it)."""
    view = statement_view(statement)
    actor, obj = view.actor, view.object
    result = view.result or _NO_RESULT
    score = result.score or _NO_SCORE
    context = view.context or _NO_CONTEXT
    activities = context.contextActivities or {}
    result_ext = result.extensions or {}
    context_ext = context.extensions or {}
    is_activity = obj.objectType == "Activity"
    if is_activity and obj.id is None:
        raise ValueError("an activity without an id")
    own = locator.locate(obj.id) if is_activity else UNKNOWN
    location = locator.within_context(activities, own)
    timestamp = instant(view.timestamp or view.stored)
    stored = instant(view.stored)
    if timestamp is None or stored is None:
        raise ValueError("statement timestamp or stored is not a timestamp")
    verb = verb_class(view.verb.id)
    success, completion = result.success, result.completion
    scaled, raw = _number(score.scaled), _number(score.raw)
    low, high = _number(score.min), _number(score.max)
    percent = score_percent(scaled, raw, low, high)
    progress = _number(result_ext.get(VIDEO_PROGRESS))
    cmi5 = cmi5_defined(activities)
    completes = completing(verb, completion, progress) and not (cmi5 and verb == "satisfied")
    kind = own.kind
    au = kind == "lesson" and locator.catalog.move_on(own.lesson_id) is not None
    attempt = is_attempt(kind, verb, success, percent)
    cmi5_session = _text(context_ext.get(CMI5_SESSION)) or None
    video_session = _text(context_ext.get(VIDEO_SESSION)) or None
    kept = None
    if keep_statement:
        kept = statement if isinstance(statement, dict) else orjson.loads(statement)
    return LearningEvent(
        statement_id=view.id,
        position=position,
        learner_key=learner_key(actor),
        student_id=locator.student_of(actor),
        timestamp=timestamp,
        stored=stored,
        verb_id=view.verb.id,
        verb_class=verb,
        activity_id=obj.id if is_activity else "",
        activity_type=obj.definition.type if is_activity and obj.definition is not None else "",
        location=location,
        duration_seconds=duration_seconds(result.duration) if result.duration is not None else None,
        score_scaled=scaled,
        score_raw=raw,
        score_min=low,
        score_max=high,
        score_percent=percent,
        success=success,
        completion=completion,
        response=result.response,
        video_segments=played_segments(result_ext.get(VIDEO_PLAYED_SEGMENTS)),
        video_time=_number(result_ext.get(VIDEO_TIME, result_ext.get(VIDEO_TIME_TO))),
        video_length=_number(context_ext.get(VIDEO_LENGTH)),
        progress=progress,
        session_id=cmi5_session or video_session,
        platform=context.platform,
        registration=context.registration,
        object_kind=kind,
        cmi5_session=cmi5_session,
        video_session=video_session,
        completes=completes,
        completes_lesson=kind == "lesson" and completes and not au,
        completes_course=kind == "course" and completes,
        cmi5_outcome=verb if cmi5 and kind == "lesson" and verb in CMI5_OUTCOMES else None,
        quiz_attempt=attempt,
        quiz_passed=outcome(verb, success, percent, locator.catalog.pass_percentage(location.quiz_id))
        if attempt
        else None,
        item_response=verb == "answered" and kind == "",
        view_session=video_session or cmi5_session or f"statement:{view.id}",
        statement=kept,
        tenant=tenant,
    )
