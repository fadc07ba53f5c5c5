"""Statement equality under xAPI's immutability rules.

Two statements are "the same" when they differ only in what the specification exempts:
properties the LRS assigns (``authority``, ``stored``, ``version``, and ``timestamp`` when one
side lacks it), activity definitions and verb displays (the LRS may serve canonical ones), the
serialisation of timestamps (compared as instants), the order of Group members, a single
context activity versus a one-element array, the case of UUIDs and of e-mail domains, and in
xAPI 2.0 duration digits beyond hundredths of a second (1.0.3 compares durations as strings).
Used to answer a re-sent statement id with 204 (same) or 409 (different), and to check a
signed statement against its JWS payload.
"""

from __future__ import annotations

from typing import Any

import orjson

from .formats import parse_timestamp, truncate_duration


def _agent(agent: dict[str, Any]) -> dict[str, Any]:
    out = dict(agent)
    if "mbox" in out:
        local, at, domain = out["mbox"].partition("@")
        out["mbox"] = f"{local}{at}{domain.lower()}"
    if "mbox_sha1sum" in out:
        out["mbox_sha1sum"] = out["mbox_sha1sum"].lower()
    if "member" in out:
        members = [_agent(m) for m in out["member"]]
        out["member"] = sorted(members, key=lambda m: orjson.dumps(m, option=orjson.OPT_SORT_KEYS))
    return out


def _activity(activity: dict[str, Any]) -> dict[str, Any]:
    return {"id": activity["id"]}


def _object(obj: dict[str, Any], durations: bool) -> dict[str, Any]:
    kind = obj.get("objectType", "Activity")
    if kind in ("Agent", "Group"):
        return _agent(obj)
    if kind == "StatementRef":
        return {**obj, "id": obj["id"].lower()}
    if kind == "SubStatement":
        return _statement(obj, keep_timestamp=True, durations=durations)
    return _activity(obj)


def _context(context: dict[str, Any]) -> dict[str, Any]:
    out = dict(context)
    if "registration" in out:
        out["registration"] = out["registration"].lower()
    for role in ("instructor", "team"):
        if role in out:
            out[role] = _agent(out[role])
    if "contextActivities" in out:
        out["contextActivities"] = {
            k: [_activity(a) for a in (v if isinstance(v, list) else [v])]
            for k, v in out["contextActivities"].items()
        }
    if "statement" in out:
        out["statement"] = {**out["statement"], "id": out["statement"]["id"].lower()}
    return out


def _statement(statement: dict[str, Any], *, keep_timestamp: bool, durations: bool) -> dict[str, Any]:
    out = {k: v for k, v in statement.items() if k not in ("authority", "stored", "version", "attachments")}
    if "id" in out:
        out["id"] = out["id"].lower()
    out["actor"] = _agent(out["actor"])
    out["verb"] = {"id": out["verb"]["id"]}
    out["object"] = _object(out["object"], durations)
    if "context" in out:
        out["context"] = _context(out["context"])
    if durations and "result" in out and "duration" in out["result"]:
        out["result"] = {**out["result"], "duration": truncate_duration(out["result"]["duration"])}
    if "timestamp" in out:
        if keep_timestamp:
            out["timestamp"] = parse_timestamp(out["timestamp"])
        else:
            del out["timestamp"]
    return out


def same_statement(a: dict[str, Any], b: dict[str, Any], *, truncate_durations: bool = False) -> bool:
    """True when ``a`` and ``b`` are equal statements under the immutability rules (attachments aside).

    ``truncate_durations`` compares result durations at hundredths of a second (xAPI 2.0).
    """
    both_timestamped = "timestamp" in a and "timestamp" in b
    if "id" in a and "id" in b and a["id"].lower() != b["id"].lower():
        return False
    left = _statement(a, keep_timestamp=both_timestamped, durations=truncate_durations)
    right = _statement(b, keep_timestamp=both_timestamped, durations=truncate_durations)
    left.pop("id", None)
    right.pop("id", None)
    return left == right
