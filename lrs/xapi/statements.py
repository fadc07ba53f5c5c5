"""Statement intake: parse, validate, normalise, and precompute the keys every query needs.

``read_statements`` turns a request body into validated statement dicts (or raises
``StatementError`` with a message that names the offending property). ``prepare`` fills what
the LRS assigns (id, authority, version) and computes a ``StatementIndex``: the identity,
verb, activity and registration keys that the ``agent``, ``verb``, ``activity``,
``registration``, ``related_agents`` and ``related_activities`` filters look up. Store
adapters only translate a query into lookups of these keys; the xAPI matching rules live here.

Key prefixes (one flat namespace, so one inverted index serves every filter):

====== ===========================================================================
``a:``  agent filter: actor or object Agent/Group, and members of those Groups
``A:``  related_agents: the above plus authority, instructor, team, context agents
        and groups, and the same inside a SubStatement
``v:``  verb id
``o:``  activity filter: the object Activity id
``O:``  related_activities: the above plus every context activity, also in a SubStatement
``r:``  context registration
``u:``  the authority's identity (the ``statements/read/mine`` restriction)
====== ===========================================================================

A value longer than ``INDEX_KEY_MAX_BYTES`` is keyed by its digest (``lrs.xapi.indexkeys``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from .agents import identity_keys, ifi_key
from .formats import format_timestamp, parse_timestamp
from .indexkeys import lookup_key
from .jsontext import JsonTextError, parse_bounded
from .models import VOIDED_VERB, Statement, XapiVersion

INHERITED_PREFIXES = ("a:", "A:", "v:", "o:", "O:", "r:")
"""Keys a statement referring to another (StatementRef object) inherits from its target."""


class StatementError(ValueError):
    """A statement (or the body carrying it) is not valid xAPI; the message says where."""


# --- parsing -------------------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise StatementError(f"property {dup!r} appears more than once in one JSON object")
    return obj


def parse_json(body: bytes, max_depth: int, what: str = "body") -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no lone surrogates, no duplicate keys in an object,
    nested at most ``max_depth`` levels (see ``jsontext``).

    orjson parses; when the body is not exactly orjson's own compact serialisation of the
    result (which cannot hold a duplicate key), the standard library re-reads it to look for
    duplicate keys, which orjson would silently collapse.
    """
    try:
        value = parse_bounded(body, max_depth, what)
    except JsonTextError as exc:
        raise StatementError(str(exc)) from None
    if orjson.dumps(value) != body:
        json.loads(body, object_pairs_hook=_reject_duplicate_keys)
    return value


# --- validation ----------------------------------------------------------------------------------

_UNION_TAGS = frozenset({"Agent", "Group", "Activity", "SubStatement", "StatementRef", "one", "many"})


def describe_validation_error(exc: ValidationError, where: str) -> str:
    """One line per problem (at most three): the property path, then what is wrong."""
    lines = []
    for err in exc.errors()[:3]:
        loc = list(err["loc"])
        parts = [p for i, p in enumerate(loc) if not (p in _UNION_TAGS and i < len(loc) - 1)]
        path = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
        kind = err["type"]
        if kind == "extra_forbidden":
            lines.append(f"{path}: not a property xAPI defines here (names are case-sensitive)")
        elif kind == "missing":
            lines.append(f"{path}: is required")
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            lines.append(f"{path}: must be a JSON object")
        elif kind == "list_type":
            lines.append(f"{path}: must be a JSON array")
        else:
            lines.append(f"{path}: {err['msg']}")
    return "; ".join(lines)


def validate_statement(data: Any, version: XapiVersion, where: str = "statement") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise StatementError(f"{where}: must be a JSON object")
    try:
        Statement.model_validate(data, context={"version": version})
    except ValidationError as exc:
        raise StatementError(describe_validation_error(exc, where)) from None
    return data


def read_statements(data: Any, version: XapiVersion) -> list[dict[str, Any]]:
    """Validate a parsed body holding one statement or an array of statements."""
    if isinstance(data, dict):
        return [validate_statement(data, version)]
    if not isinstance(data, list):
        raise StatementError("body must be a statement object or an array of statements")
    statements = [validate_statement(item, version, f"statements[{i}]") for i, item in enumerate(data)]
    ids = [s["id"].lower() for s in statements if "id" in s]
    if len(ids) != len(set(ids)):
        raise StatementError("the same statement id appears twice in one batch")
    return statements


# --- normalisation and index keys ----------------------------------------------------------------


def _normalise_context(statement: dict[str, Any]) -> None:
    context = statement.get("context")
    if context and "contextActivities" in context:
        activities = context["contextActivities"]
        if any(not isinstance(v, list) for v in activities.values()):
            context = statement["context"] = dict(context)
            context["contextActivities"] = {
                k: v if isinstance(v, list) else [v] for k, v in activities.items()
            }


def _context_keys(context: dict[str, Any] | None, keys: set[str]) -> None:
    if not context:
        return
    for role in ("instructor", "team"):
        if role in context:
            keys.update("A:" + k for k in identity_keys(context[role]))
    for entry in context.get("contextAgents", ()):
        keys.update("A:" + k for k in identity_keys(entry["agent"]))
    for entry in context.get("contextGroups", ()):
        keys.update("A:" + k for k in identity_keys(entry["group"]))
    for activities in context.get("contextActivities", {}).values():
        keys.update("O:" + a["id"] for a in activities)
    if "registration" in context:
        keys.add("r:" + context["registration"].lower())


def _substatement_keys(sub: dict[str, Any], keys: set[str]) -> None:
    keys.update("A:" + k for k in identity_keys(sub["actor"]))
    obj = sub["object"]
    kind = obj.get("objectType", "Activity")
    if kind in ("Agent", "Group"):
        keys.update("A:" + k for k in identity_keys(obj))
    elif kind == "Activity":
        keys.add("O:" + obj["id"])
    _context_keys(sub.get("context"), keys)


def index_keys(statement: dict[str, Any]) -> set[str]:
    """Every lookup key of a (normalised) statement, before StatementRef inheritance, each of
    bounded width (``lookup_key``: a long IRI or identity is looked up by its digest)."""
    keys: set[str] = set()
    for k in identity_keys(statement["actor"]):
        keys.update(("a:" + k, "A:" + k))
    keys.add("v:" + statement["verb"]["id"])
    obj = statement["object"]
    kind = obj.get("objectType", "Activity")
    if kind in ("Agent", "Group"):
        for k in identity_keys(obj):
            keys.update(("a:" + k, "A:" + k))
    elif kind == "Activity":
        keys.update(("o:" + obj["id"], "O:" + obj["id"]))
    elif kind == "SubStatement":
        _substatement_keys(obj, keys)
    _context_keys(statement.get("context"), keys)
    authority = statement.get("authority")
    if authority:
        keys.update("A:" + k for k in identity_keys(authority))
        if (key := ifi_key(authority)) is not None:
            keys.add("u:" + key)
        else:
            keys.update("u:" + k for k in identity_keys(authority))
    return {lookup_key(k) for k in keys}


@dataclass(slots=True)
class PreparedStatement:
    """A statement ready for a store: its document plus everything queries look up."""

    id: str
    document: dict[str, Any]
    keys: set[str]
    ref_target: str | None = None
    is_voiding: bool = False
    attachment_sha2s: list[str] = field(default_factory=list)
    definitions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(activity id, definition) for every activity carrying a definition."""
    names: list[tuple[str, str]] = field(default_factory=list)
    """(identity key, name) of the actor and its members, for the Person object."""


def activities_of(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every activity a statement mentions: object, context activities, and inside a SubStatement."""
    parts = [statement]
    if statement["object"].get("objectType") == "SubStatement":
        parts.append(statement["object"])
    for part in parts:
        obj = part["object"]
        if obj.get("objectType", "Activity") == "Activity":
            yield obj
        for activities in (part.get("context") or {}).get("contextActivities", {}).values():
            yield from activities


def _names(actor: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for agent in (actor, *actor.get("member", ())):
        if "name" in agent and (key := ifi_key(agent)) is not None:
            found.append((key, agent["name"]))
    return found


def prepare(statement: dict[str, Any], authority: dict[str, Any], version: XapiVersion) -> PreparedStatement:
    """Fill the LRS-assigned properties and compute the statement's index.

    ``stored`` (and ``timestamp`` when absent) are set by the store at commit time from the
    database clock, so ``X-Experience-API-Consistent-Through`` can be derived from it.
    """
    doc = dict(statement)
    doc.pop("stored", None)
    doc["id"] = doc["id"].lower() if "id" in doc else str(uuid.uuid4())
    doc["authority"] = authority
    doc.setdefault("version", "2.0.0" if version is XapiVersion.V2 else "1.0.0")
    _normalise_context(doc)
    if doc["object"].get("objectType") == "SubStatement":
        doc["object"] = dict(doc["object"])
        _normalise_context(doc["object"])
    if version is XapiVersion.V2:  # 2.0 converts timestamps to UTC (the instant is unchanged)
        for part in (doc, doc["object"]):
            if "timestamp" in part and not part["timestamp"].endswith("Z"):
                part["timestamp"] = format_timestamp(parse_timestamp(part["timestamp"]))
    obj = doc["object"]
    ref_target = obj["id"].lower() if obj.get("objectType") == "StatementRef" else None
    return PreparedStatement(
        id=doc["id"],
        document=doc,
        keys=index_keys(doc),
        ref_target=ref_target,
        is_voiding=doc["verb"]["id"] == VOIDED_VERB,
        attachment_sha2s=[a["sha2"] for a in doc.get("attachments", ())],
        definitions=[(a["id"], a["definition"]) for a in activities_of(doc) if "definition" in a],
        names=_names(doc["actor"]),
    )
