"""JSON read from requests, under one nesting limit (``LRS_MAX_JSON_DEPTH``).

Every JSON text the LRS parses from a request goes through ``parse_bounded``: statement bodies
(also the first part of a multipart one), posted documents that are merged, JSON query
parameters (agents), ``more`` continuations, JWS headers and payloads, catalog documents.

orjson parses up to 1,024 levels but serialises at most 254, and the standard library's
duplicate-key check and the statement comparison recurse once per level; so a limit far below
those (and below ``MAX_DEPTH_CEILING``) keeps every later step of a request within bounds,
whatever the body nests.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH_CEILING = 200
"""The highest limit a deployment may set: orjson cannot serialise more than 254 levels, and a
stored statement is serialised again inside arrays and envelopes."""


class JsonTextError(ValueError):
    """Not JSON, or JSON nested deeper than allowed; the message names what and why."""


def nesting_depth(value: Any, stop_above: int) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0, ``[]`` is 1); counting
    stops once it passes ``stop_above``. Iterative, so no depth can exhaust the stack."""
    deepest = 0
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        container, depth = pending.pop()
        deepest = max(deepest, depth)
        if deepest > stop_above:
            break
        children = container.values() if isinstance(container, dict) else container
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def check_depth(value: Any, max_depth: int, what: str) -> None:
    """``JsonTextError`` when ``value`` nests deeper than ``max_depth``."""
    if nesting_depth(value, max_depth) > max_depth:
        raise _too_deep(what, max_depth)


def _bracket_count(text: bytes | str) -> int:
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    return text.count(b"[") + text.count(b"{")


def _too_deep(what: str, max_depth: int) -> JsonTextError:
    return JsonTextError(
        f"{what} is JSON nested deeper than {max_depth} levels, the limit of this LRS (LRS_MAX_JSON_DEPTH)"
    )


def parse_bounded(text: bytes | str, max_depth: int, what: str) -> Any:
    """Parse ``text`` (strict JSON: UTF-8, no NaN or Infinity, no lone surrogates) and check its
    nesting; ``JsonTextError`` names ``what`` and the problem."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own limit (1,024 levels) is above any allowed one
            raise _too_deep(what, max_depth) from None
        raise JsonTextError(f"{what} is not valid JSON: {exc}") from None
    if _bracket_count(text) > max_depth:  # fewer brackets cannot nest that deep: no walk needed
        check_depth(value, max_depth, what)
    return value
