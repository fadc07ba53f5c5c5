"""What the LMS writes into the LRS for cmi5: the launch URL (§8.1), the ``LMS.LaunchData`` state
document (§10), the learner preferences profile document (§11), and its own statements —
launched (§9.3.1), satisfied (§9.3.9), abandoned (§9.3.6), waived (§9.3.7).

Pure: builds JSON-ready dicts and strings; storing them is the use case's job.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from lrs.xapi.formats import format_timestamp

from . import vocabulary as v

IRI_NAMESPACE = uuid.UUID("9b8f3c52-3a4e-4c41-8d7a-2f0f6c1e5a77")


def lms_iri(course_id: int, kind: str, publisher_id: str) -> str:
    """The activity id the LMS generates for a course, block or AU of LMS course ``course_id``:
    stable across launches, registrations and re-imports, never the publisher's id (§8.1
    activityId, §9.3.9)."""
    return f"urn:uuid:{uuid.uuid5(IRI_NAMESPACE, f'{course_id}|{kind}|{publisher_id}')}"


@dataclass(frozen=True, slots=True)
class Launch:
    """One launch of an AU: everything the launch URL, LaunchData and the launched statement say."""

    actor: dict[str, Any]
    registration: str
    session_id: str
    au_iri: str
    publisher_id: str
    url: str
    """The AU's URL as the LMS launches it, before the cmi5 parameters (absolute)."""
    launch_mode: str
    move_on: str
    launch_method: str = "AnyWindow"
    mastery_score: float | None = None
    launch_parameters: str | None = None
    entitlement_key: str | None = None
    return_url: str | None = None
    activity_type: str | None = None
    title: str = ""

    def url_with(self, endpoint: str, fetch: str) -> str:
        """The launch URL: the AU's URL with its own query kept and the cmi5 parameters added."""
        parts = urlsplit(self.url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query += [
            ("endpoint", endpoint),
            ("fetch", fetch),
            ("actor", orjson.dumps(self.actor).decode()),
            ("registration", self.registration),
            ("activityId", self.au_iri),
        ]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def context_template(self) -> dict[str, Any]:
        return {
            "contextActivities": {"grouping": [{"objectType": "Activity", "id": self.publisher_id}]},
            "extensions": {v.SESSION_ID: self.session_id},
        }

    def launch_data(self) -> dict[str, Any]:
        """The ``LMS.LaunchData`` state document (§10)."""
        data: dict[str, Any] = {
            "contextTemplate": self.context_template(),
            "launchMode": self.launch_mode,
            "launchMethod": self.launch_method,
            "launchParameters": self.launch_parameters or "",
            "moveOn": self.move_on,
        }
        if self.mastery_score is not None:
            data["masteryScore"] = self.mastery_score
        if self.return_url:
            data["returnURL"] = self.return_url
        if self.entitlement_key is not None:
            data["entitlementKey"] = {"courseStructure": self.entitlement_key}
        return data

    def launched(self, at: datetime) -> dict[str, Any]:
        """The launched statement (§9.3.1) with the extensions §9.6.3 requires of it."""
        extensions: dict[str, Any] = {
            v.LAUNCH_MODE: self.launch_mode,
            v.LAUNCH_URL: self.url,
            v.MOVE_ON: self.move_on,
            v.LAUNCH_PARAMETERS: self.launch_parameters or "",
        }
        if self.mastery_score is not None:
            extensions[v.MASTERY_SCORE] = self.mastery_score
        obj = au_object(self.au_iri, self.title, self.activity_type)
        return statement(self.actor, v.LAUNCHED, obj, self.context(extensions=extensions), at)

    def context(self, *, moveon: bool = False, extensions: dict[str, Any] | None = None) -> dict[str, Any]:
        """The context of the LMS's statements in this session: the template, the registration,
        the cmi5 category (and moveon when the result has success or completion)."""
        return lms_context(self.registration, self.session_id, [self.publisher_id], moveon=moveon,
                           extensions=extensions)  # fmt: skip


def lms_context(
    registration: str,
    session_id: str,
    grouping: list[str],
    *,
    moveon: bool = False,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    categories = [{"objectType": "Activity", "id": v.CATEGORY_CMI5}]
    if moveon:
        categories.append({"objectType": "Activity", "id": v.CATEGORY_MOVEON})
    return {
        "registration": registration,
        "contextActivities": {
            "category": categories,
            "grouping": [{"objectType": "Activity", "id": g} for g in grouping],
        },
        "extensions": {v.SESSION_ID: session_id, **(extensions or {})},
    }


def au_object(au_iri: str, title: str = "", activity_type: str | None = None) -> dict[str, Any]:
    definition: dict[str, Any] = {}
    if title:
        definition["name"] = {"und": title}
    if activity_type:
        definition["type"] = activity_type
    return {"objectType": "Activity", "id": au_iri, **({"definition": definition} if definition else {})}


def statement(
    actor: dict[str, Any], verb: str, obj: dict[str, Any], context: dict[str, Any], at: datetime,
    result: dict[str, Any] | None = None, statement_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    out = {
        "id": statement_id or str(uuid.uuid4()),
        "actor": actor,
        "verb": {"id": verb, "display": {"en-US": v.VERB_NAMES[verb]}},
        "object": obj,
        "context": context,
        "timestamp": format_timestamp(at),
    }
    if result is not None:
        out["result"] = result
    return out


def duration(seconds: float) -> str:
    """An ISO 8601 duration in seconds, to the hundredth (cmi5 §9.5.4 durations)."""
    return f"PT{max(seconds, 0.0):.2f}S"


def satisfied(
    actor: dict[str, Any], *, target_iri: str, target_type: str, publisher_id: str, registration: str,
    session_id: str, course_iri: str, at: datetime,
) -> dict[str, Any]:  # fmt: skip
    """The LMS's satisfied statement about a block or the course (§9.3.9): the object is the
    LMS's id for it, the publisher's id is a grouping activity (and the course's LMS id, so that
    analytics place a nested block's statement in its course)."""
    grouping = [publisher_id] + ([course_iri] if course_iri != target_iri else [])
    obj = {"objectType": "Activity", "id": target_iri, "definition": {"type": target_type}}
    return statement(actor, v.SATISFIED, obj, lms_context(registration, session_id, grouping), at)


def abandoned(launch: Launch, *, seconds: float, at: datetime) -> dict[str, Any]:
    """The LMS's abandoned statement for a session that ended without terminated (§9.3.6), with
    the session's length as its duration (§9.5.4.2)."""
    obj = au_object(launch.au_iri, launch.title, launch.activity_type)
    return statement(launch.actor, v.ABANDONED, obj, launch.context(), at, {"duration": duration(seconds)})


def waived(
    actor: dict[str, Any], *, au_iri: str, publisher_id: str, registration: str, session_id: str,
    reason: str, at: datetime,
) -> dict[str, Any]:  # fmt: skip
    """The LMS's waived statement (§9.3.7): success and completion true, the reason extension."""
    result = {"success": True, "completion": True, "extensions": {v.REASON: reason}}
    context = lms_context(registration, session_id, [publisher_id], moveon=True)
    return statement(actor, v.WAIVED, au_object(au_iri), context, at, result)


def learner_preferences(language: str = "", audio: str = "") -> dict[str, str]:
    """The ``cmi5LearnerPreferences`` agent profile document (§11), with the values known."""
    preferences = {}
    if language:
        preferences["languagePreference"] = language
    if audio:
        preferences["audioPreference"] = audio
    return preferences
