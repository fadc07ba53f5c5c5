"""Small xAPI statements and the learning events the worker makes of them, for sink tests.

Statements are flattened by the worker's own ``streams.enrich.flatten`` (statement kept, as for
the MongoDB sink), with the default IRI templates: ``https://lms.example/courses/C/lessons/L``
and ``…/courses/C/quizzes/Q`` resolve to course, lesson and quiz ids, and an account on
``https://lms.example`` named by a number is that student.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Any

from sinks.ports import Batch
from sinks.catalog import Catalog
from lrs.xapi.profiles import CMI5_CATEGORY, CMI5_SESSION, VIDEO
from sinks.events import LearningEvent
from streams.enrich import VERB_CLASSES, flatten, learner_key
from streams.locate import Locator
from sinks.positions import encode
from streams.settings import CatalogSettings

VERBS = {name: iri for iri, name in VERB_CLASSES.items()}
_SEQ = itertools.count(1)


def lesson(course: int, number: int) -> str:
    return f"https://lms.example/courses/{course}/lessons/{number}"


def quiz(course: int, number: int) -> str:
    return f"https://lms.example/courses/{course}/quizzes/{number}"


def student(number: int) -> dict[str, Any]:
    return {"account": {"homePage": "https://lms.example", "name": str(number)}}


def key_of(actor: dict[str, Any]) -> str:
    return learner_key(actor)


def statement(
    actor: dict[str, Any], at: datetime, verb: str, activity: str, *, seconds: float | None = None,
    scaled: float | None = None, success: bool | None = None, completion: bool | None = None,
    session: str | None = None, platform: str | None = None, video: dict[str, Any] | None = None,
    stored: datetime | None = None, cmi5: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """A stored statement. ``video``: ``time``, ``progress``, ``length``, ``segments``
    (``"0[.]12.5"``), as the xAPI video profile puts them; ``cmi5``: a cmi5 defined statement."""
    result: dict[str, Any] = {}
    context: dict[str, Any] = {}
    if seconds is not None:
        result["duration"] = f"PT{seconds:g}S"
    if scaled is not None:
        result["score"] = {"scaled": scaled}
    if success is not None:
        result["success"] = success
    if completion is not None:
        result["completion"] = completion
    extensions: dict[str, Any] = {}
    if session is not None:
        extensions[CMI5_SESSION] = session
    if video:
        result["extensions"] = {
            f"{VIDEO}/extensions/{name}": value
            for name, value in (("time", video.get("time")), ("progress", video.get("progress")),
                                ("played-segments", video.get("segments")))
            if value is not None
        }  # fmt: skip
        if "length" in video:
            extensions[f"{VIDEO}/extensions/length"] = video["length"]
    if extensions:
        context["extensions"] = extensions
    if platform is not None:
        context["platform"] = platform
    if cmi5:
        context["contextActivities"] = {"category": [{"id": CMI5_CATEGORY}]}
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", **actor},
        "verb": {"id": VERBS[verb], "display": {"en-US": verb}},
        "object": {"objectType": "Activity", "id": activity},
        "timestamp": at.isoformat(),
        "stored": (stored or at).isoformat(),
        "version": "1.0.3",
    }
    if result:
        body["result"] = result
    if context:
        body["context"] = context
    return body


def events(statements: list[dict[str, Any]], known: Catalog | None = None) -> list[LearningEvent]:
    """The worker's events of these statements, at increasing positions (``known``: the catalog,
    empty by default)."""
    settings = CatalogSettings()
    catalog = Locator(known or Catalog(), settings.iri_templates, settings.student_homepage)
    return [
        flatten(s, encode(datetime.fromisoformat(s["stored"]), next(_SEQ)), catalog, keep_statement=True)
        for s in statements
    ]


def batch(partition: int, operations: list, epoch: str = "e1") -> Batch:
    return Batch(partition, list(operations), max((op.position for op in operations), default=""), epoch)
