"""Response helpers shared by the xAPI endpoints."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

import orjson
from starlette.responses import Response

JSON_TYPE = "application/json"


def json_response(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=JSON_TYPE, headers=headers)


def raw_json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers)


def no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": {"status": status, "message": message}}, status, headers)


def http_date(value: datetime) -> str:
    """RFC 9110 IMF-fixdate, as Last-Modified wants it."""
    return format_datetime(value.astimezone(timezone.utc), usegmt=True)
