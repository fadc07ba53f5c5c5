"""Query-parameter parsing: unknown or repeated parameters and malformed values are 400s."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from lrs.usecases.errors import BadRequest
from lrs.xapi import formats
from lrs.xapi.models import Agent, Group
from lrs.xapi.statements import describe_validation_error


class Params:
    """The query parameters of one request, checked against what the resource accepts."""

    def __init__(self, pairs: Iterable[tuple[str, str]], allowed: Iterable[str]) -> None:
        allowed = set(allowed)
        self._values: dict[str, str] = {}
        for name, value in pairs:
            if name not in allowed:
                close = next((a for a in allowed if a.lower() == name.lower()), None)
                hint = f" (did you mean {close!r}? names are case-sensitive)" if close else ""
                raise BadRequest(
                    f"unknown parameter {name!r}{hint}; allowed here: {', '.join(sorted(allowed))}"
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
            raise BadRequest(f"parameter {name!r} must be an IRI with a scheme, not {value!r}")
        return value

    def uuid(self, name: str) -> str | None:
        value = self.get(name)
        if value is not None and not formats.is_uuid(value):
            raise BadRequest(f"parameter {name!r} must be a UUID, not {value!r}")
        return value

    def timestamp(self, name: str) -> datetime | None:
        value = self.get(name)
        if value is None:
            return None
        parsed = formats.parse_timestamp(value)
        if parsed is None:
            raise BadRequest(f"parameter {name!r} must be an ISO 8601 timestamp, not {value!r}")
        return parsed

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if value is None:
            return False
        if value not in ("true", "false"):
            raise BadRequest(f"parameter {name!r} must be true or false, not {value!r}")
        return value == "true"

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name)
        if value is None:
            return default
        if value not in choices:
            raise BadRequest(f"parameter {name!r} must be one of {', '.join(choices)}, not {value!r}")
        return value

    def count(self, name: str) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if not value.isdigit() or not value.isascii():
            raise BadRequest(f"parameter {name!r} must be a non-negative integer, not {value!r}")
        return int(value)

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
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadRequest(f"parameter {name!r} must be an Agent as JSON, not {raw[:80]!r}") from None
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
