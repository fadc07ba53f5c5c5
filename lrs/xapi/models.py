"""Typed xAPI statement models (xAPI 1.0.3 and 2.0), used to validate what clients send.

The models are strict: unknown keys, wrong case, ``null`` outside extensions, numbers given as
strings and booleans given as strings are all errors. Optional properties default to ``None``
without being ``Optional`` in their type, so an explicit ``null`` still fails validation.

Validation differs by xAPI version (``contextAgents`` exists only in 2.0, statement ``version``
may be 2.0.x only in 2.0); the version travels in the pydantic validation context::

    Statement.model_validate(data, context={"version": XapiVersion.V2})

The LRS stores what the client sent (normalised, see ``lrs.xapi.statements``), not a re-dump of
these models, so validation never changes a statement's serialisation.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from . import formats

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
SIGNATURE_USAGE_TYPE = "http://adlnet.gov/expapi/attachments/signature"


class XapiVersion(str, Enum):
    """The two xAPI versions this LRS speaks, as answered in ``X-Experience-API-Version``."""

    V1 = "1.0.3"
    V2 = "2.0.0"


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("xapi", message)


def _format(check, message: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not check(value):
            raise _fail(message)
        return value

    return AfterValidator(validate)


IRI = Annotated[
    StrictStr, _format(formats.is_iri, "must be an IRI with a scheme (e.g. https://example.com/x)")
]
Mbox = Annotated[StrictStr, _format(formats.is_mailto, "must be a mailto IRI (mailto:name@example.com)")]
Sha1Hex = Annotated[StrictStr, _format(formats.is_sha1_hex, "must be the 40-hex-digit SHA-1 of a mailto IRI")]
UUIDStr = Annotated[
    StrictStr, _format(formats.is_uuid, "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
]
LanguageTag = Annotated[StrictStr, _format(formats.is_language_tag, "must be an RFC 5646 language tag")]
Timestamp = Annotated[
    StrictStr,
    _format(lambda v: formats.parse_timestamp(v) is not None, "must be an ISO 8601 / RFC 3339 timestamp"),
]
Duration = Annotated[
    StrictStr, _format(formats.is_duration, "must be an ISO 8601 duration such as PT1H30M or P2W")
]
MediaType = Annotated[StrictStr, _format(formats.is_media_type, "must be a media type such as text/plain")]
LanguageMap = dict[LanguageTag, StrictStr]
Extensions = dict[IRI, Any]
Number = StrictFloat  # strict floats accept JSON integers, reject booleans and strings


_REMEMBERED_UP_TO = 4096
"""Bytes of JSON a remembered part may have at most (a validator holds at most size × this)."""


def _remembered(size: int = 4096) -> WrapValidator:
    """Validate a part once per distinct JSON: learning content repeats its actors, verbs and
    activities across thousands of statements, and a repeat costs one serialisation and a lookup.

    The key holds the exact JSON and the xAPI version, so a remembered part is one that would
    validate the same way again. Invalid parts are never remembered (validation raised).
    """
    remembered: dict[tuple, Any] = {}

    def validate(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        if type(value) is not dict:
            return handler(value)
        try:
            key = (_version(info), orjson.dumps(value))
        except TypeError:  # not plain JSON data (only possible for in-process callers)
            return handler(value)
        if len(key[1]) > _REMEMBERED_UP_TO:  # memory stays bounded whatever clients send
            return handler(value)
        found = remembered.get(key)
        if found is None:
            found = handler(value)
            if len(remembered) >= size:
                remembered.clear()
            remembered[key] = found
        return found

    return WrapValidator(validate)


class XapiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)


# --- agents and groups ---------------------------------------------------------------------------

_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")


class Account(XapiModel):
    homePage: IRI
    name: StrictStr


class _Identified(XapiModel):
    name: StrictStr = None
    mbox: Mbox = None
    mbox_sha1sum: Sha1Hex = None
    openid: IRI = None
    account: Account = None

    def _ifi_count(self) -> int:
        return sum(1 for key in _IFIS if key in self.model_fields_set)


class Agent(_Identified):
    objectType: Literal["Agent"] = None

    @model_validator(mode="after")
    def _exactly_one_ifi(self) -> Agent:
        if self._ifi_count() != 1:
            raise _fail("an Agent needs exactly one of mbox, mbox_sha1sum, openid, account")
        return self


class Group(_Identified):
    objectType: Literal["Group"]
    member: list[Agent] = None

    @model_validator(mode="after")
    def _identified_or_members(self) -> Group:
        count = self._ifi_count()
        if count > 1:
            raise _fail("a Group has at most one of mbox, mbox_sha1sum, openid, account")
        if count == 0 and "member" not in self.model_fields_set:
            raise _fail("an anonymous Group (no identifier) must list its member Agents")
        return self


class Authority(_Identified):
    """An Agent, or an anonymous Group of exactly two Agents (OAuth application + user)."""

    objectType: Literal["Agent", "Group"] = None
    member: list[Agent] = None

    @model_validator(mode="after")
    def _agent_or_oauth_pair(self) -> Authority:
        count = self._ifi_count()
        if self.objectType == "Group":
            if count != 0 or self.member is None or len(self.member) != 2:
                raise _fail("an authority Group must be anonymous with exactly two member Agents")
        elif "member" in self.model_fields_set:
            raise _fail("member is only allowed on a Group")
        elif count != 1:
            raise _fail("an Agent needs exactly one of mbox, mbox_sha1sum, openid, account")
        return self


def _actor_kind(value: Any) -> str:
    return "Group" if isinstance(value, dict) and value.get("objectType") == "Group" else "Agent"


Actor = Annotated[
    Union[Annotated[Agent, Tag("Agent")], Annotated[Group, Tag("Group")]], Discriminator(_actor_kind)
]


# --- verb ----------------------------------------------------------------------------------------


class Verb(XapiModel):
    id: IRI
    display: LanguageMap = None


# --- activities ----------------------------------------------------------------------------------

InteractionType = Literal[
    "true-false", "choice", "fill-in", "long-fill-in", "matching",
    "performance", "sequencing", "likert", "numeric", "other",
]  # fmt: skip

_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")


class InteractionComponent(XapiModel):
    id: StrictStr
    description: LanguageMap = None


class ActivityDefinition(XapiModel):
    name: LanguageMap = None
    description: LanguageMap = None
    type: IRI = None
    moreInfo: IRI = None
    interactionType: InteractionType = None
    correctResponsesPattern: list[StrictStr] = None
    choices: list[InteractionComponent] = None
    scale: list[InteractionComponent] = None
    source: list[InteractionComponent] = None
    target: list[InteractionComponent] = None
    steps: list[InteractionComponent] = None
    extensions: Extensions = None

    @model_validator(mode="after")
    def _interaction_rules(self) -> ActivityDefinition:
        fields = self.model_fields_set
        if "interactionType" not in fields:
            present = [k for k in ("correctResponsesPattern", *_COMPONENT_LISTS) if k in fields]
            if present:
                raise _fail(f"{present[0]} requires interactionType")
        for key in _COMPONENT_LISTS:
            components = getattr(self, key)
            if components is not None:
                ids = [c.id for c in components]
                if len(ids) != len(set(ids)):
                    raise _fail(f"interaction component ids in {key} must be unique")
        return self


class Activity(XapiModel):
    objectType: Literal["Activity"] = None
    id: IRI
    definition: ActivityDefinition = None


class StatementRef(XapiModel):
    objectType: Literal["StatementRef"]
    id: UUIDStr


# --- result --------------------------------------------------------------------------------------


class Score(XapiModel):
    scaled: Number = None
    raw: Number = None
    min: Number = None
    max: Number = None

    @model_validator(mode="after")
    def _ranges(self) -> Score:
        if self.scaled is not None and not -1 <= self.scaled <= 1:
            raise _fail("score.scaled must be between -1 and 1")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise _fail("score.min must be less than score.max")
        if self.raw is not None:
            if self.min is not None and self.raw < self.min:
                raise _fail("score.raw must not be below score.min")
            if self.max is not None and self.raw > self.max:
                raise _fail("score.raw must not be above score.max")
        return self


class Result(XapiModel):
    score: Score = None
    success: StrictBool = None
    completion: StrictBool = None
    response: StrictStr = None
    duration: Duration = None
    extensions: Extensions = None


# --- context -------------------------------------------------------------------------------------


def _one_or_many(value: Any) -> str:
    return "many" if isinstance(value, list) else "one"


ActivityOrList = Annotated[
    Union[Annotated[Activity, Tag("one")], Annotated[list[Activity], Tag("many")]],
    Discriminator(_one_or_many),
]


class ContextActivities(XapiModel):
    parent: ActivityOrList = None
    grouping: ActivityOrList = None
    category: ActivityOrList = None
    other: ActivityOrList = None


RelevantTypes = Annotated[list[IRI], Field(min_length=1)]


class ContextAgent(XapiModel):
    objectType: Literal["contextAgent"]
    agent: Agent
    relevantTypes: RelevantTypes = None


class ContextGroup(XapiModel):
    objectType: Literal["contextGroup"]
    group: Group
    relevantTypes: RelevantTypes = None


class Context(XapiModel):
    registration: UUIDStr = None
    instructor: Actor = None
    team: Group = None
    contextActivities: Annotated[ContextActivities, _remembered()] = None
    contextAgents: list[ContextAgent] = None
    contextGroups: list[ContextGroup] = None
    revision: StrictStr = None
    platform: StrictStr = None
    language: LanguageTag = None
    statement: StatementRef = None
    extensions: Extensions = None

    @model_validator(mode="after")
    def _version_rules(self, info: ValidationInfo) -> Context:
        if _version(info) is XapiVersion.V1:
            for key in ("contextAgents", "contextGroups"):
                if key in self.model_fields_set:
                    raise _fail(
                        f"context.{key} exists only in xAPI 2.0 (send X-Experience-API-Version: 2.0.0)"
                    )
            # 1.0.3 asks for "one or more" entries (the ADL 1.0.3 suite checks it, XAPI-00095);
            # 2.0 dropped the rule, so an empty object passes there
            if self.contextActivities is not None and not self.contextActivities.model_fields_set:
                raise _fail(
                    "context.contextActivities must hold at least one of parent, grouping, category, other"
                )
        return self


# --- attachments ---------------------------------------------------------------------------------


class Attachment(XapiModel):
    usageType: IRI
    display: LanguageMap
    description: LanguageMap = None
    contentType: MediaType
    length: Annotated[StrictInt, Field(ge=0)]
    sha2: Annotated[StrictStr, Field(min_length=1)]
    fileUrl: IRI = None


# --- statements ----------------------------------------------------------------------------------


def _object_kind(value: Any) -> str:
    kind = value.get("objectType", "Activity") if isinstance(value, dict) else "Activity"
    return kind if kind in ("Activity", "Agent", "Group", "SubStatement", "StatementRef") else "Activity"


def _version(info: ValidationInfo) -> XapiVersion:
    return (info.context or {}).get("version", XapiVersion.V1)


def _check_statement_rules(statement: SubStatement | Statement) -> None:
    obj = statement.object
    if statement.context is not None and not isinstance(obj, Activity):
        for key in ("revision", "platform"):
            if key in statement.context.model_fields_set:
                raise _fail(f"context.{key} is only allowed when the object is an Activity")
    if statement.verb.id == VOIDED_VERB and not isinstance(obj, StatementRef):
        raise _fail("a voiding statement (verb voided) must have a StatementRef object")


class SubStatement(XapiModel):
    objectType: Literal["SubStatement"]
    actor: Actor
    verb: Verb
    object: Annotated[
        Union[
            Annotated[Activity, Tag("Activity")],
            Annotated[Agent, Tag("Agent")],
            Annotated[Group, Tag("Group")],
            Annotated[StatementRef, Tag("StatementRef")],
        ],
        Discriminator(lambda v: "Activity" if _object_kind(v) == "SubStatement" else _object_kind(v)),
    ]
    result: Result = None
    context: Context = None
    timestamp: Timestamp = None
    attachments: list[Attachment] = None

    @model_validator(mode="before")
    @classmethod
    def _no_nesting(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("id", "stored", "version", "authority"):
                if key in data:
                    raise _fail(f"a SubStatement must not have {key}")
            obj = data.get("object")
            if isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
                raise _fail("a SubStatement must not contain another SubStatement")
        return data

    @model_validator(mode="after")
    def _rules(self) -> SubStatement:
        _check_statement_rules(self)
        return self


StatementObject = Annotated[
    Union[
        Annotated[Activity, Tag("Activity")],
        Annotated[Agent, Tag("Agent")],
        Annotated[Group, Tag("Group")],
        Annotated[SubStatement, Tag("SubStatement")],
        Annotated[StatementRef, Tag("StatementRef")],
    ],
    Discriminator(_object_kind),
]


class Statement(XapiModel):
    id: UUIDStr = None
    actor: Annotated[Actor, _remembered()]
    verb: Annotated[Verb, _remembered()]
    object: Annotated[StatementObject, _remembered()]
    result: Result = None
    context: Context = None
    timestamp: Timestamp = None
    stored: Timestamp = None
    authority: Authority = None
    version: StrictStr = None
    attachments: list[Attachment] = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Statement:
        _check_statement_rules(self)
        if self.version is not None and not is_statement_version(self.version, _version(info)):
            raise _fail(
                "version must be 1.0 or 1.0.x"
                + (" or 2.0.x" if _version(info) is XapiVersion.V2 else "")
                + f", not {self.version!r}"
            )
        return self


_V1_STATEMENT_VERSION = re.compile(r"1\.0(\.\d+)?")
_V2_STATEMENT_VERSION = re.compile(r"2\.0(\.\d+)?")


def is_statement_version(value: str, request_version: XapiVersion) -> bool:
    """Statement ``version``: 1.0 / 1.0.x always, 2.0 / 2.0.x when the request speaks 2.0."""
    if _V1_STATEMENT_VERSION.fullmatch(value):
        return True
    return request_version is XapiVersion.V2 and bool(_V2_STATEMENT_VERSION.fullmatch(value))
