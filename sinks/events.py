"""What a sink receives: one enriched statement (``LearningEvent``) and where it sits (``Location``).

The pipeline's enrichment (``streams.enrich``) makes these and decides every per-statement rule of
``docs/analytics.md`` (what completes a lesson, what is a quiz attempt and whether it passes, the
sessions), recording the outcome in the fields below; sinks only read them and never look into
statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lrs.store.ports import DEFAULT_TENANT


@dataclass(slots=True, frozen=True)
class Location:
    """Course, module, lesson and quiz ids of a statement (``None``: unknown)."""

    course_id: int | None = None
    module_id: int | None = None
    lesson_id: int | None = None
    quiz_id: int | None = None

    @property
    def kind(self) -> str:
        """What an activity placed here is: ``quiz``, ``lesson``, ``module``, ``course``, or ``""``
        (unknown). The finest id decides: a lesson's location also names its module and course."""
        for kind, item in (("quiz", self.quiz_id), ("lesson", self.lesson_id), ("module", self.module_id),
                           ("course", self.course_id)):  # fmt: skip
            if item is not None:
                return kind
        return ""

    def merged(self, other: Location) -> Location:
        """This location, completed by what ``other`` knows and this one does not."""
        return Location(
            self.course_id if self.course_id is not None else other.course_id,
            self.module_id if self.module_id is not None else other.module_id,
            self.lesson_id if self.lesson_id is not None else other.lesson_id,
            self.quiz_id if self.quiz_id is not None else other.quiz_id,
        )


UNKNOWN = Location()


@dataclass(slots=True)
class LearningEvent:
    """One stored statement, flattened. Unknown activities and learners have empty ids
    (``None``); durations are seconds, scores as sent plus a percentage."""

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
    score_percent: float | None = None
    """scaled × 100, or raw within [min, max]."""
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
    # the rules of docs/analytics.md §2, as the enrichment decided them
    completes: bool = False
    """A completing statement (verb completed/passed/satisfied, completion, ≥ 90 % of a video)."""
    completes_lesson: bool = False
    """Completes the catalog lesson that is its object."""
    completes_course: bool = False
    """Completes the course activity itself."""
    cmi5_outcome: str | None = None
    """What a cmi5 defined statement about a lesson (a cmi5 AU) records: ``completed``, ``passed`` or
    ``waived`` (``None``: nothing). Sinks satisfy AUs from these by the catalog's moveOn."""
    quiz_attempt: bool = False
    """An attempt of the quiz that is its object (answers to its questions are not)."""
    quiz_passed: bool | None = None
    """The attempt's outcome (``None``: not an attempt, or not told)."""
    item_response: bool = False
    """An answer to a question (item analysis)."""
    view_session: str = ""
    """The viewing session its video segments count in (once per session)."""
    tenant: str = DEFAULT_TENANT
    """The tenant whose statement it is: sinks key and filter every row by it (docs/tenants.md)."""
    statement: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The stored statement itself, kept only for sinks that store it whole."""
    source: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The statement as stored when ``statement`` holds pseudonyms (``LRS_ANALYTICS_PSEUDONYMS``):
    forwarding delivers what was stored, the analytics sinks see only pseudonyms."""
