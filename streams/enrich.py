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
  / the course itself.
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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lrs.xapi.agents import ifi_key
from lrs.xapi.formats import duration_seconds, parse_timestamp
from lrs.xapi.profiles import (
    CMI5_SESSION,
    VIDEO,
    VIDEO_LENGTH,
    VIDEO_PLAYED_SEGMENTS,
    VIDEO_PROGRESS,
    VIDEO_SESSION,
    VIDEO_TIME,
    VIDEO_TIME_TO,
)

from .catalog import UNKNOWN, Catalog, Location


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
VIDEO_WATCHED = 0.9
"""Video ``progress`` from which a statement completes the video it is about."""

_SEGMENT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*\[\.\]\s*([0-9]+(?:\.[0-9]+)?)\s*")


@dataclass(slots=True)
class LearningEvent:
    statement_id: str
    position: str
    learner_key: str
    student_id: int | None
    timestamp: datetime
    stored: datetime
    verb_id: str
    verb_class: str
    activity_id: str
    activity_type: str
    location: Location
    duration_seconds: float | None = None
    score_scaled: float | None = None
    score_raw: float | None = None
    score_min: float | None = None
    score_max: float | None = None
    success: bool | None = None
    completion: bool | None = None
    response: str | None = None
    video_segments: list[tuple[float, float]] = field(default_factory=list)
    video_time: float | None = None
    video_length: float | None = None
    progress: float | None = None
    session_id: str | None = None
    """The cmi5 session id, else the video profile's session id (sessions of the raw sinks)."""
    platform: str | None = None
    registration: str | None = None
    object_kind: str = ""
    """What the object itself is in the catalog: course, module, lesson, quiz or ``""``."""
    cmi5_session: str | None = None
    video_session: str | None = None
    pass_percentage: float | None = None
    """The catalog's pass mark of the quiz the statement is located in (percent)."""
    statement: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The stored statement itself, kept only for sinks that store it whole (``flatten(…,
    keep_statement=True)``); every other field is read from it."""

    @property
    def score_percent(self) -> float | None:
        """The score as a percentage: scaled × 100, or raw within [min, max]."""
        if self.score_scaled is not None:
            return self.score_scaled * 100
        if self.score_raw is not None and self.score_max not in (None, self.score_min):
            low = self.score_min or 0.0
            return (self.score_raw - low) / (self.score_max - low) * 100
        return None

    @property
    def completes(self) -> bool:
        """A completing statement: verb completed, passed or satisfied, ``result.completion``
        true, or ≥ 90 % of a video watched (video profile ``progress``)."""
        return (
            self.verb_class in COMPLETING
            or self.completion is True
            or (self.progress is not None and self.progress >= VIDEO_WATCHED)
        )

    @property
    def completes_lesson(self) -> bool:
        """Completes the catalog lesson that is its object."""
        return self.object_kind == "lesson" and self.completes

    @property
    def completes_course(self) -> bool:
        """Completes the course activity itself (counts when the course has no required items)."""
        return self.object_kind == "course" and self.completes

    @property
    def quiz_attempt(self) -> bool:
        """An attempt of the quiz that is its object: it carries an outcome (verb passed or failed,
        ``result.success``, or a score). Answers to the quiz's questions are not attempts."""
        return self.object_kind == "quiz" and (
            self.verb_class in ("passed", "failed")
            or self.success is not None
            or self.score_percent is not None
        )

    @property
    def quiz_passed(self) -> bool | None:
        """The outcome of an attempt (``None`` for a statement that is not one, or an attempt whose
        outcome cannot be told): the verb passed/failed decides, else ``result.success``, else the
        score against the quiz's pass percentage."""
        if not self.quiz_attempt:
            return None
        if self.verb_class in ("passed", "failed"):
            return self.verb_class == "passed"
        if self.success is not None:
            return self.success
        if self.score_percent is not None and self.pass_percentage is not None:
            return self.score_percent >= self.pass_percentage
        return None

    @property
    def passes(self) -> bool | None:
        """Kept for the raw sinks: the outcome when this is a quiz attempt (see ``quiz_passed``)."""
        return self.quiz_passed

    @property
    def item_response(self) -> bool:
        """An answer to a question: verb answered, on something other than a catalog quiz, lesson,
        module or course (item analysis; the quiz it is in is ``location.quiz_id`` when known)."""
        return self.verb_class == "answered" and self.object_kind == ""

    @property
    def view_session(self) -> str:
        """The viewing session of a video statement: a 5-second segment counts once per session."""
        return self.video_session or self.cmi5_session or f"statement:{self.statement_id}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value) if isinstance(value, str) and value.strip() else None
        except ValueError:
            return None
    return float(value)


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


def flatten(
    statement: dict[str, Any], position: str, catalog: Catalog, keep_statement: bool = False
) -> LearningEvent:
    """Flatten a stored statement. Raises ``KeyError``/``TypeError``/``ValueError`` only for a
    statement no LRS would have stored (the worker dead-letters those). ``keep_statement``: the
    event also holds the statement (memory the worker spends only when a sink needs it)."""
    actor = statement["actor"]
    obj = statement["object"]
    result = statement.get("result") or {}
    score = result.get("score") or {}
    context = statement.get("context") or {}
    result_ext = result.get("extensions") or {}
    context_ext = context.get("extensions") or {}
    is_activity = obj.get("objectType", "Activity") == "Activity"
    definition = (obj.get("definition") or {}) if is_activity else {}
    own = catalog.locate(obj["id"]) if is_activity else UNKNOWN
    location = catalog.within_context(statement, own)
    timestamp = parse_timestamp(statement.get("timestamp") or statement["stored"])
    stored = parse_timestamp(statement["stored"])
    if timestamp is None or stored is None:
        raise ValueError("statement timestamp or stored is not a timestamp")
    return LearningEvent(
        statement_id=statement["id"],
        position=position,
        learner_key=learner_key(actor),
        student_id=catalog.student_of(actor),
        timestamp=timestamp,
        stored=stored,
        verb_id=statement["verb"]["id"],
        verb_class=verb_class(statement["verb"]["id"]),
        activity_id=obj["id"] if is_activity else "",
        activity_type=definition.get("type", ""),
        location=location,
        duration_seconds=duration_seconds(result["duration"]) if "duration" in result else None,
        score_scaled=_number(score.get("scaled")),
        score_raw=_number(score.get("raw")),
        score_min=_number(score.get("min")),
        score_max=_number(score.get("max")),
        success=result.get("success"),
        completion=result.get("completion"),
        response=result.get("response"),
        video_segments=played_segments(result_ext.get(VIDEO_PLAYED_SEGMENTS)),
        video_time=_number(result_ext.get(VIDEO_TIME, result_ext.get(VIDEO_TIME_TO))),
        video_length=_number(context_ext.get(VIDEO_LENGTH)),
        progress=_number(result_ext.get(VIDEO_PROGRESS)),
        session_id=_text(context_ext.get(CMI5_SESSION) or context_ext.get(VIDEO_SESSION)),
        platform=context.get("platform"),
        registration=context.get("registration"),
        object_kind=own.kind,
        cmi5_session=_text(context_ext.get(CMI5_SESSION)) or None,
        video_session=_text(context_ext.get(VIDEO_SESSION)) or None,
        pass_percentage=catalog.pass_percentage(location.quiz_id),
        statement=statement if keep_statement else None,
    )
