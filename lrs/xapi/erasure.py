"""Erasing a learner (issue 16): which statements go, which are redacted, and the keyed hashes the
erasure records keep instead of identifiers. The one place these rules live (docs/data-rights.md);
no I/O.

A learner is a set of identity keys (``lrs.xapi.agents.ifi_key``). For a statement:

* **erased** (deleted whole) when the learner *is* its actor or its object: the actor or object
  Agent has one of the keys, or is a Group whose only identified members are the learner (an
  Identified Group's own IFI erased counts too); the same inside a SubStatement (its actor or
  object);
* **redacted** (kept, the learner taken out) when the learner appears anywhere else: a member of a
  Group actor or object with other identified members, ``context.instructor``, ``context.team``
  (or one of its members), ``contextAgents``, ``contextGroups``, and the same inside a
  SubStatement's context. An instructor or team that is the learner is removed; a member is
  removed from its group; an empty ``contextAgents`` / ``contextGroups`` is removed;
* a statement that **voids** an erased statement is erased too (it only retracts what is gone);
  one that merely **refers** to an erased statement (a StatementRef) stays, with its own lookup
  keys only (it inherited the erased target's).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Iterable
from typing import Any, Literal

import orjson

from .agents import ifi_key
from .models import VOIDED_VERB

Verdict = Literal["erase", "redact"] | None


def learner_keys(agent: dict[str, Any]) -> set[str]:
    """Every identity key of the agent a client named: its IFI, and for an ``mbox`` also the
    ``mbox_sha1sum`` of that mailbox (the same person, hashed as xAPI does)."""
    key = ifi_key(agent)
    if key is None:
        raise ValueError("the agent needs an identifier: mbox, mbox_sha1sum, openid or account")
    keys = {key}
    if (mbox := agent.get("mbox")) is not None:
        keys.add("sha1:" + hashlib.sha1(mbox.encode()).hexdigest())
    return keys


def student_key(student_id: int) -> str:
    """The key an erasure hashes a catalog student id under."""
    return f"student:{student_id}"


def keyed_hash(secret: bytes, key: str) -> str:
    """HMAC-SHA256 of an identity key: what erasure records keep, and what sinks compare."""
    return hmac.new(secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _is_learner(who: dict[str, Any] | None, keys: set[str]) -> bool:
    """``who`` is the learner: its IFI, or a Group whose identified members are all the learner."""
    if not isinstance(who, dict) or who.get("objectType") in ("Activity", "StatementRef", "SubStatement"):
        return False
    key = ifi_key(who)
    if key is not None:
        return key in keys
    members = [k for m in who.get("member") or () if (k := ifi_key(m)) is not None]
    return bool(members) and all(k in keys for k in members)


def _mentions(who: dict[str, Any] | None, keys: set[str]) -> bool:
    if not isinstance(who, dict):
        return False
    if (key := ifi_key(who)) is not None and key in keys:
        return True
    return any(ifi_key(m) in keys for m in who.get("member") or ())


def _context_mentions(context: dict[str, Any] | None, keys: set[str]) -> bool:
    if not context:
        return False
    return (
        _mentions(context.get("instructor"), keys)
        or _mentions(context.get("team"), keys)
        or any(_mentions(e.get("agent"), keys) for e in context.get("contextAgents", ()))
        or any(_mentions(e.get("group"), keys) for e in context.get("contextGroups", ()))
    )


def verdict(statement: dict[str, Any], keys: set[str]) -> Verdict:
    """What erasing the learner ``keys`` does to ``statement`` (see the module)."""
    if not keys:
        return None
    obj = statement.get("object") or {}
    if _is_learner(statement.get("actor"), keys) or _is_learner(obj, keys):
        return "erase"
    if obj.get("objectType") == "SubStatement" and (
        _is_learner(obj.get("actor"), keys) or _is_learner(obj.get("object"), keys)
    ):
        return "erase"
    if (
        _mentions(statement.get("actor"), keys)
        or _mentions(obj, keys)
        or _context_mentions(statement.get("context"), keys)
    ):
        return "redact"
    if obj.get("objectType") == "SubStatement" and (
        _mentions(obj.get("actor"), keys)
        or _mentions(obj.get("object"), keys)
        or _context_mentions(obj.get("context"), keys)
    ):
        return "redact"
    return None


def _without_members(who: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    if "member" in who:
        who["member"] = [m for m in who["member"] if ifi_key(m) not in keys]
    return who


def _redact_context(context: dict[str, Any] | None, keys: set[str]) -> None:
    if not context:
        return
    for role in ("instructor", "team"):
        if role in context:
            if _is_learner(context[role], keys) or ifi_key(context[role]) in keys:
                del context[role]
            else:
                _without_members(context[role], keys)
                if ifi_key(context[role]) is None and not context[role].get("member"):
                    del context[role]  # an anonymous group left without members
    for field, inner in (("contextAgents", "agent"), ("contextGroups", "group")):
        if field in context:
            kept = []
            for entry in context[field]:
                who = entry.get(inner)
                if _is_learner(who, keys) or ifi_key(who or {}) in keys:
                    continue
                _without_members(who, keys)
                if ifi_key(who) is None and not who.get("member"):
                    continue
                kept.append(entry)
            if kept:
                context[field] = kept
            else:
                del context[field]


def redact(statement: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """A copy of a statement with the learner taken out of every place that does not make it
    theirs (see the module); the statement is valid xAPI still."""
    out = copy.deepcopy(statement)
    for place in (out.get("actor"), out.get("object")):
        if isinstance(place, dict) and place.get("objectType") == "Group":
            _without_members(place, keys)
    _redact_context(out.get("context"), keys)
    obj = out.get("object") or {}
    if obj.get("objectType") == "SubStatement":
        for place in (obj.get("actor"), obj.get("object")):
            if isinstance(place, dict) and place.get("objectType") == "Group":
                _without_members(place, keys)
        _redact_context(obj.get("context"), keys)
    return out


def voided_target(statement: dict[str, Any]) -> str | None:
    """The statement id a voiding statement voids (``None`` for any other statement)."""
    obj = statement.get("object") or {}
    if statement.get("verb", {}).get("id") == VOIDED_VERB and obj.get("objectType") == "StatementRef":
        return str(obj.get("id", "")).lower()
    return None


def referred(statement: dict[str, Any]) -> str | None:
    """The statement id a StatementRef object refers to (``None`` otherwise)."""
    obj = statement.get("object") or {}
    return str(obj.get("id", "")).lower() if obj.get("objectType") == "StatementRef" else None


def identities_in(statement: dict[str, Any]) -> Iterable[str]:
    """Every identity key a statement names a person by (actor, object, context, SubStatement;
    group members too): what the pipeline checks against the erased hashes."""

    def of(who: Any) -> Iterable[str]:
        if isinstance(who, dict):
            if (key := ifi_key(who)) is not None:
                yield key
            for member in who.get("member") or ():
                if isinstance(member, dict) and (key := ifi_key(member)) is not None:
                    yield key

    def context_of(context: dict[str, Any] | None) -> Iterable[str]:
        if context:
            yield from of(context.get("instructor"))
            yield from of(context.get("team"))
            for e in context.get("contextAgents", ()):
                yield from of(e.get("agent"))
            for e in context.get("contextGroups", ()):
                yield from of(e.get("group"))

    yield from of(statement.get("actor"))
    obj = statement.get("object") or {}
    if obj.get("objectType") in ("Agent", "Group"):
        yield from of(obj)
    elif obj.get("objectType") == "SubStatement":
        yield from of(obj.get("actor"))
        if (obj.get("object") or {}).get("objectType") in ("Agent", "Group"):
            yield from of(obj.get("object"))
        yield from context_of(obj.get("context"))
    yield from context_of(statement.get("context"))


# --- pseudonyms (LRS_ANALYTICS_PSEUDONYMS) -------------------------------------------------------

PSEUDONYM_HOMEPAGE = "urn:lrs:pseudonym"
"""``account.homePage`` of the pseudonymous agents the analytics sinks receive."""


def pseudonym(secret: bytes, key: str) -> str:
    """The pseudonym of an identity key (or a learner key, ``group:…``): its keyed hash."""
    return keyed_hash(secret, "pseudonym|" + key)


def pseudonymous_key(secret: bytes, key: str) -> str:
    """The identity key of the pseudonymous agent standing for ``key`` (what sinks count by)."""
    return "account:" + orjson.dumps([PSEUDONYM_HOMEPAGE, pseudonym(secret, key)]).decode()


def pseudonymise(statement: dict[str, Any], secret: bytes) -> dict[str, Any]:
    """A copy of a statement in which every Agent and Group (actor, object, authority, context,
    SubStatement, group members) is a pseudonymous account with no name: the same person always
    gets the same pseudonym, and only the secret's holder can tell who it is."""

    def agent(who: Any) -> Any:
        if not isinstance(who, dict) or who.get("objectType") not in (None, "Agent", "Group"):
            return who
        out: dict[str, Any] = {}
        if "objectType" in who:
            out["objectType"] = who["objectType"]
        if (key := ifi_key(who)) is not None:
            out["account"] = {"homePage": PSEUDONYM_HOMEPAGE, "name": pseudonym(secret, key)}
        if "member" in who:
            out["member"] = [agent(m) for m in who["member"]]
        return out

    def context(ctx: Any) -> Any:
        if not isinstance(ctx, dict):
            return ctx
        out = dict(ctx)
        for role in ("instructor", "team"):
            if role in out:
                out[role] = agent(out[role])
        if "contextAgents" in out:
            out["contextAgents"] = [{**e, "agent": agent(e.get("agent"))} for e in out["contextAgents"]]
        if "contextGroups" in out:
            out["contextGroups"] = [{**e, "group": agent(e.get("group"))} for e in out["contextGroups"]]
        return out

    def part(s: dict[str, Any]) -> dict[str, Any]:
        out = dict(s)
        out["actor"] = agent(s.get("actor"))
        obj = s.get("object")
        if isinstance(obj, dict) and obj.get("objectType") in ("Agent", "Group"):
            out["object"] = agent(obj)
        elif isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
            out["object"] = part(obj)
        if "context" in s:
            out["context"] = context(s["context"])
        if "authority" in s:
            out["authority"] = agent(s["authority"])
        return out

    return part(statement)
