"""Agent identity: inverse functional identifiers (IFIs) as comparable keys, and Person objects.

Two Agents (or Identified Groups) are the same when they carry the same IFI with equal values.
``ifi_key`` turns an agent into one string so stores can index and compare identities without
knowing the IFI rules. The domain of a ``mailto:`` address is case-insensitive and is lowered;
the local part is kept as given (RFC 5321).
"""

from __future__ import annotations

from typing import Any

import orjson


def _mbox(value: str) -> str:
    local, at, domain = value.partition("@")
    return f"{local}{at}{domain.lower()}"


def ifi_key(agent: dict[str, Any]) -> str | None:
    """The identity key of an Agent or Identified Group, or ``None`` for an anonymous Group."""
    if (mbox := agent.get("mbox")) is not None:
        return "mbox:" + _mbox(mbox)
    if (sha1 := agent.get("mbox_sha1sum")) is not None:
        return "sha1:" + sha1.lower()
    if (openid := agent.get("openid")) is not None:
        return "openid:" + openid
    if (account := agent.get("account")) is not None:
        # U+0000 cannot be stored in database text; as a key it stands in as U+FFFD
        name = account["name"].replace("\x00", "\ufffd")
        return "account:" + orjson.dumps([account["homePage"], name]).decode()
    return None


def identity_keys(actor: dict[str, Any]) -> list[str]:
    """Keys under which an actor is found: its own IFI and, for a Group, each member's IFI."""
    keys = []
    if (key := ifi_key(actor)) is not None:
        keys.append(key)
    for member in actor.get("member") or ():
        if (key := ifi_key(member)) is not None:
            keys.append(key)
    return keys


def ifi_only(agent: dict[str, Any]) -> dict[str, Any]:
    """An agent reduced to its identifier (the ``ids`` statement format)."""
    out: dict[str, Any] = {}
    if "objectType" in agent:
        out["objectType"] = agent["objectType"]
    for key in ("mbox", "mbox_sha1sum", "openid", "account"):
        if key in agent:
            out[key] = agent[key]
            break
    if "member" in agent and ifi_key(agent) is None:
        out["member"] = [ifi_only(m) for m in agent["member"]]
    return out


def person(agent: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The Person object of the Agents resource: every known name and IFI as arrays."""
    out: dict[str, Any] = {"objectType": "Person"}
    all_names = ([agent["name"]] if "name" in agent else []) + [n for n in names if n != agent.get("name")]
    if all_names:
        out["name"] = all_names
    for key in ("mbox", "mbox_sha1sum", "openid", "account"):
        if key in agent:
            out[key] = [agent[key]]
    return out
