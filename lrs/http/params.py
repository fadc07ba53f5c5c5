"""Query-parameter parsing: unknown or repeated parameters and malformed values are 400s."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from lrs.usecases.errors import BadRequest
from lrs.xapi import formats
from lrs.xapi.jsontext import JsonTextError, parse_bounded
from lrs.xapi.models import Agent, Group
from lrs.xapi.statements import describe_validation_error


def _shown(value: str) -> str:
    """A parameter value as an error message quotes it: at most 80 characters."""
    return repr(value[:80]) + ("…" if len(value) > 80 else "")


def query_params(request: Request, allowed: Iterable[str]) -> Params:
    """The request's query parameters, checked against ``allowed``; JSON ones (agents) are
    parsed under the server's nesting limit (LRS_MAX_JSON_DEPTH)."""
    return Params(
        request.query_params.multi_items(), allowed, max_json_depth=request.app.state.settings.max_json_depth
    )


class Params:
    """The query parameters of one request, checked against what the resource accepts."""

    def __init__(
        self, pairs: Iterable[tuple[str, str]], allowed: Iterable[str], *, max_json_depth: int
    ) -> None:
        allowed = set(allowed)
        self._max_json_depth = max_json_depth
        self._values: dict[str, str] = {}
        for name, value in pairs:
            if name not in allowed:
                close = next((a for a in allowed if a.lower() == name.lower()), None)
                hint = f" (did you mean {close!r}? names are case-sensitive)" if close else ""
                raise BadRequest(
                    f"unknown parameter {_shown(name)}{hint}; allowed here: {', '.join(sorted(allowed))}"
                )
            if name in self._values:
                raise BadRequest(f"parameter {name!r} is given more than once")
            self._values[name] = value

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def names(self) -> set[str]:
        return set(self._values)

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def required(self, name: str) -> str:
        if name not in self._values:
            raise BadRequest(f"parameter {name!r} is required")
        return self._values[name]

    def iri(self, name: str, *, required: bool = False) -> str | None:
        value = self.required(name) if required else self.get(name)
        if value is not None and not formats.is_iri(value):
            raise BadRequest(f"parameter {name!r} must be an IRI with a scheme, not {_shown(value)}")
        return value

    def uuid(self, name: str) -> str | None:
        value = self.get(name)
        if value is not None and not formats.is_uuid(value):
            raise BadRequest(f"parameter {name!r} must be a UUID, not {_shown(value)}")
        return value

    def timestamp(self, name: str) -> datetime | None:
        value = self.get(name)
        if value is None:
            return None
        parsed = formats.parse_timestamp(value)
        if parsed is None:
            raise BadRequest(f"parameter {name!r} must be an ISO 8601 timestamp, not {_shown(value)}")
        return parsed

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if value is None:
            return False
        if value not in ("true", "false"):
            raise BadRequest(f"parameter {name!r} must be true or false, not {_shown(value)}")
        return value == "true"

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name)
        if value is None:
            return default
        if value not in choices:
            raise BadRequest(f"parameter {name!r} must be one of {', '.join(choices)}, not {_shown(value)}")
        return value

    def count(self, name: str, ceiling: int) -> int | None:
        """A non-negative integer; any larger than ``ceiling`` (however many digits) is ``ceiling``."""
        value = self.get(name)
        if value is None:
            return None
        if not value.isdigit() or not value.isascii():
            raise BadRequest(f"parameter {name!r} must be a non-negative integer, not {_shown(value)}")
        significant = value.lstrip("0") or "0"
        if len(significant) > len(str(ceiling)):  # never int() a number of unbounded length
            return ceiling
        return min(int(significant), ceiling)

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.required(name) if required else self.get(name)
        if value is not None and value == "":
            raise BadRequest(f"parameter {name!r} must not be empty")
        if value is not None and "\x00" in value:
            raise BadRequest(f"parameter {name!r} must not contain the character U+0000")
        return value

    def agent(self, name: str, *, required: bool = False, groups: bool = True) -> dict[str, Any] | None:
        """A JSON Agent (or, if allowed, an Identified Group) given as a parameter."""
        raw = self.required(name) if required else self.get(name)
        if raw is None:
            return None
        try:
            value = parse_bounded(raw, self._max_json_depth, f"parameter {name!r}")
        except JsonTextError as exc:
            raise BadRequest(f"{exc}; it must be an Agent as JSON, not {_shown(raw)}") from None
        if not isinstance(value, dict):
            raise BadRequest(f"parameter {name!r} must be an Agent as a JSON object")
        is_group = value.get("objectType") == "Group"
        if is_group and not groups:
            raise BadRequest(f"parameter {name!r} must be an Agent, not a Group")
        try:
            (Group if is_group else Agent).model_validate(value)
        except ValidationError as exc:
            raise BadRequest(describe_validation_error(exc, name)) from None
        if is_group and not any(k in value for k in ("mbox", "mbox_sha1sum", "openid", "account")):
            raise BadRequest(f"parameter {name!r}: an anonymous Group cannot be looked up; use an identifier")
        return value
