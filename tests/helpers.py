"""Helpers shared by several test modules: error bodies, posting statements and reading them back,
small statement builders and hand-built multipart/mixed bodies.

Fixtures and the basic data builders (``statement``, ``unique_agent``, ``unique_activity``,
``voiding``, ``VERBS``, the ``Xapi`` client) live in conftest.py; this module builds on them.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime
from typing import Any

from .conftest import VERBS, statement, unique_activity, unique_agent

CREATE = {"If-None-Match": "*"}  # profiles in 1.0.3 need a precondition header even to create
WHERE = ["statement", "substatement"]  # the two places a statement part (context, result …) can be

# --- error bodies and rejected / accepted statements ---------------------------------------------


def error_message(response, status: int | None = None, *, strict: bool = False) -> str:
    """The message of an xAPI error response; its body's status must be the response's status.

    ``status``: the response must also have this status code. ``strict``: also check the whole
    error body (JSON, nothing but ``error``, a real message), as the ERR-* tests require.
    """
    if status is not None:
        assert response.status_code == status, response.text
    if strict:
        assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if strict:
        assert set(body) == {"error"}
    assert body["error"]["status"] == response.status_code
    message = body["error"]["message"]
    if strict:
        assert isinstance(message, str) and len(message) > 5
    return message


def assert_rejected(response, *fragments: str, status: int = 400) -> str:
    """``response`` is an error with ``status`` (400) whose message names every fragment."""
    message = error_message(response, status)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not named in {message!r}"
    return message


def get_by_id(client, statement_id: str):
    return client.get("/statements", params={"statementId": statement_id})


def assert_not_stored(client, *statement_ids: str) -> None:
    for sid in statement_ids:
        response = get_by_id(client, sid)
        assert response.status_code == 404, f"{sid} was stored: {response.text}"


def post_rejected(client, st: dict[str, Any], *fragments: str) -> str:
    """POST ``st`` under a fresh id: 400 naming every fragment, and nothing stored."""
    sid = str(uuid.uuid4())
    message = assert_rejected(client.post_statements({**st, "id": sid}), *fragments)
    assert_not_stored(client, sid)
    return message


def post_accepted(client, st: dict[str, Any], *, check_ids: bool = False) -> dict[str, Any]:
    """POST ``st`` (a fresh id is added when absent), expect 200, return the statement read back.

    ``check_ids``: the POST must also answer exactly ``[id]``.
    """
    st = {"id": str(uuid.uuid4()), **st}
    response = client.post_statements(st)
    assert response.status_code == 200, response.text
    if check_ids:
        assert response.json() == [st["id"]]
    got = get_by_id(client, st["id"])
    assert got.status_code == 200, got.text
    return got.json()


def store_one_by_one(client, *statements) -> list[str]:
    """Each statement in its own request, so each gets its own (increasing) stored time."""
    return [client.store(s)[0] for s in statements]


def server_now(xapi) -> str:
    """The LRS's own clock (a statement's ``stored``), to place ``since`` between two writes."""
    (sid,) = xapi.store(statement())
    return get_by_id(xapi, sid).json()["stored"]


# --- values ----------------------------------------------------------------------------------------


def instant(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (any offset, any fraction length) to an aware datetime."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)", value)
    assert m, f"not an RFC 3339 timestamp: {value!r}"
    frac = (m.group(3) or "").ljust(6, "0")[:6]
    zone = "+00:00" if m.group(4) in "Zz" else m.group(4)
    return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{zone}")


def mbox() -> str:
    return f"mailto:{uuid.uuid4().hex[:12]}@example.com"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha1_etag(content: bytes) -> str:
    return '"' + hashlib.sha1(content).hexdigest() + '"'


# --- statement builders ------------------------------------------------------------------------------


def sub_statement(*, verb_display: bool = False, **extra: Any) -> dict[str, Any]:
    """A valid SubStatement updated by ``extra`` (verb "experienced", with a display if ``verb_display``)."""
    verb: dict[str, Any] = {"id": VERBS["experienced"]}
    if verb_display:
        verb["display"] = {"en-US": "experienced"}
    sub: dict[str, Any] = {
        "objectType": "SubStatement",
        "actor": unique_agent("Sub actor"),
        "verb": verb,
        "object": unique_activity(),
    }
    sub.update(extra)
    return sub


def with_context(context: Any, where: str = "statement", obj: dict | None = None) -> dict[str, Any]:
    """A statement with ``context`` on itself or (``where="substatement"``) on its SubStatement."""
    if where == "substatement":
        extra = {"context": context}
        if obj is not None:
            extra["object"] = obj
        return statement(obj=sub_statement(**extra))
    return statement(obj=obj, context=context)


def read_context(got: dict[str, Any], where: str) -> dict[str, Any]:
    return got["object"]["context"] if where == "substatement" else got["context"]


def state_params(state_id: str | None = None) -> dict:
    """Parameters of a fresh State document (its stateId unique unless ``state_id`` is given)."""
    return {
        "activityId": unique_activity()["id"],
        "agent": json.dumps(unique_agent()),
        "stateId": state_id if state_id is not None else f"state-{uuid.uuid4().hex[:8]}",
    }


# --- multipart/mixed bodies, built byte by byte ------------------------------------------------------

CRLF = b"\r\n"
BOUNDARY = "xapi-test-boundary-7d1c"


def part(
    content: bytes,
    *,
    sha2: str | None = None,
    content_type: str | None = "application/octet-stream",
    cte: str | None = "binary",
    extra: dict[str, str] | None = None,
) -> tuple[dict[str, str], bytes]:
    """An attachment part: (headers, content); ``sha2=False`` leaves out X-Experience-API-Hash."""
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if cte is not None:
        headers["Content-Transfer-Encoding"] = cte
    if sha2 is not False:
        headers["X-Experience-API-Hash"] = sha2 or sha256(content)
    headers.update(extra or {})
    return headers, content


def json_part(statements: Any, content_type: str = "application/json") -> tuple[dict[str, str], bytes]:
    return {"Content-Type": content_type}, json.dumps(statements).encode()


def multipart(*parts: tuple[dict[str, str], bytes], boundary: str = BOUNDARY) -> bytes:
    delimiter = b"--" + boundary.encode()
    chunks = []
    for headers, body in parts:
        chunks += [delimiter, CRLF]
        for name, value in headers.items():
            chunks += [f"{name}: {value}".encode(), CRLF]
        chunks += [CRLF, body, CRLF]
    chunks += [delimiter, b"--", CRLF]
    return b"".join(chunks)
