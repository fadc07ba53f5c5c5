"""The ``ids`` and ``canonical`` statement formats of GET /statements, and language selection.

``exact`` (the default) returns statements as stored and needs nothing from here.
"""

from __future__ import annotations

from typing import Any

from .agents import ifi_only

_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")


# --- ids -----------------------------------------------------------------------------------------


def _ids_object(obj: dict[str, Any]) -> dict[str, Any]:
    kind = obj.get("objectType", "Activity")
    if kind in ("Agent", "Group"):
        return ifi_only(obj)
    if kind == "SubStatement":
        return _ids_statement(obj)
    if kind == "StatementRef":
        return obj
    return {"id": obj["id"]}


def _ids_context(context: dict[str, Any]) -> dict[str, Any]:
    out = dict(context)
    for role in ("instructor", "team"):
        if role in out:
            out[role] = ifi_only(out[role])
    if "contextActivities" in out:
        out["contextActivities"] = {
            k: [_ids_object(a) for a in v] for k, v in out["contextActivities"].items()
        }
    if "contextAgents" in out:
        out["contextAgents"] = [{**e, "agent": ifi_only(e["agent"])} for e in out["contextAgents"]]
    if "contextGroups" in out:
        out["contextGroups"] = [{**e, "group": ifi_only(e["group"])} for e in out["contextGroups"]]
    return out


def _ids_statement(statement: dict[str, Any]) -> dict[str, Any]:
    out = dict(statement)
    out["actor"] = ifi_only(out["actor"])
    out["verb"] = {"id": out["verb"]["id"]}
    out["object"] = _ids_object(out["object"])
    if "context" in out:
        out["context"] = _ids_context(out["context"])
    if "authority" in out:
        out["authority"] = ifi_only(out["authority"])
    return out


def ids_format(statement: dict[str, Any]) -> dict[str, Any]:
    """Identifiers only: agents reduced to their IFI, verbs and activities to their id."""
    return _ids_statement(statement)


# --- canonical -----------------------------------------------------------------------------------


def parse_accept_language(header: str | None) -> list[str]:
    """Language ranges of an Accept-Language header, most preferred first (RFC 9110 §12.5.4)."""
    if not header:
        return []
    ranked = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        if not tag:
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag.lower()))
    return [tag for _, _, tag in sorted(ranked)]


def pick_language(language_map: dict[str, str], preferred: list[str]) -> dict[str, str]:
    """Keep exactly one entry of a language map: the best match for the preferred ranges.

    Exact tags win, then a range matching a tag's prefix (``en`` → ``en-US``), then ``*``;
    without a match the first entry is kept, so a canonical map is never empty unless it was.
    """
    if len(language_map) <= 1:
        return dict(language_map)
    lowered = {k.lower(): k for k in language_map}
    for wanted in preferred:
        if wanted == "*":
            break
        if wanted in lowered:
            key = lowered[wanted]
            return {key: language_map[key]}
        for low, key in lowered.items():
            if low.startswith(wanted + "-") or wanted.startswith(low + "-"):
                return {key: language_map[key]}
    key = next(iter(language_map))
    return {key: language_map[key]}


def _pick_definition(definition: dict[str, Any], preferred: list[str]) -> dict[str, Any]:
    out = dict(definition)
    for key in ("name", "description"):
        if key in out:
            out[key] = pick_language(out[key], preferred)
    for key in _COMPONENT_LISTS:
        if key in out:
            out[key] = [
                {**c, "description": pick_language(c["description"], preferred)} if "description" in c else c
                for c in out[key]
            ]
    return out


def _canonical_activity(activity: dict[str, Any], activities: dict[str, dict], preferred: list[str]) -> dict:
    definition = activities.get(activity["id"], activity.get("definition"))
    if definition is None:
        return activity
    return {**activity, "definition": _pick_definition(definition, preferred)}


def _canonical_statement(
    statement: dict[str, Any], activities: dict, verbs: dict, preferred: list[str]
) -> dict:
    out = dict(statement)
    verb = out["verb"]
    display = verbs.get(verb["id"], verb.get("display"))
    if display is not None:
        out["verb"] = {**verb, "display": pick_language(display, preferred)}
    obj = out["object"]
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        out["object"] = _canonical_activity(obj, activities, preferred)
    elif kind == "SubStatement":
        out["object"] = _canonical_statement(obj, activities, verbs, preferred)
    context = out.get("context")
    if context and "contextActivities" in context:
        out["context"] = {
            **context,
            "contextActivities": {
                k: [_canonical_activity(a, activities, preferred) for a in v]
                for k, v in context["contextActivities"].items()
            },
        }
    return out


def canonical_format(
    statement: dict[str, Any], activities: dict[str, dict], verbs: dict[str, dict], preferred: list[str]
) -> dict[str, Any]:
    """Activities and verbs as the LRS knows them canonically, one language per language map."""
    return _canonical_statement(statement, activities, verbs, preferred)


def verbs_of(statement: dict[str, Any]) -> list[str]:
    ids = [statement["verb"]["id"]]
    if statement["object"].get("objectType") == "SubStatement":
        ids.append(statement["object"]["verb"]["id"])
    return ids
