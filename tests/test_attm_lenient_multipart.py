"""The one Content-Type leniency (README, "Leniencies"): a body that is unmistakably
multipart/mixed is taken as multipart/mixed whatever its declared Content-Type.

``@xapi/xapi`` 3.x under Node.js sends statements with attachments as a correct multipart/mixed
body declared ``application/octet-stream`` (its boundary only in the body's first line). Anything
that is not unmistakably such a body keeps the strict answer (HDR-8: 400 naming Content-Type).
"""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import statement
from .helpers import BOUNDARY, CRLF, assert_not_stored, error_message, json_part, multipart, part, sha256
from .test_attm_mp_attachments import attachment, get_with_attachments, raw_parts, unique_content

DECLARED = ["application/octet-stream", "text/plain", "application/x-www-form-urlencoded", None]


def headers_of(content_type: str | None) -> dict[str, str]:
    return {"Content-Type": content_type} if content_type else {}


@pytest.mark.parametrize("declared", DECLARED)
def test_a_multipart_body_declared_otherwise_is_stored_with_its_attachments(any_xapi, declared):
    content = unique_content("octet")
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(content)])
    body = multipart(json_part([st]), part(content))
    response = any_xapi.post("/statements", content=body, headers=headers_of(declared))
    assert response.status_code == 200, response.text
    assert response.json() == [sid]
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(content): content}


def test_a_put_with_an_octet_stream_multipart_body_is_stored(any_xapi):
    content = unique_content("octet-put")
    sid = str(uuid.uuid4())
    body = multipart(json_part(statement(attachments=[attachment(content)])), part(content))
    response = any_xapi.put(
        "/statements", params={"statementId": sid}, content=body,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code == 204, response.text
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(content): content}


def test_the_xapi_js_client_body_with_latin1_mangled_parts_is_stored(xapi):
    """Both leniencies together, as that client sends an image under Node.js: declared
    octet-stream, the binary part UTF-8 encoded from a "binary" string."""
    content = bytes(range(256)) + uuid.uuid4().bytes
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(content, contentType="image/png")])
    mangled = content.decode("latin-1").encode("utf-8")
    boundary = "axios-" + uuid.uuid4().hex
    body = multipart(json_part([st]), part(mangled, sha2=sha256(content), content_type="image/png"),
                     boundary=boundary)  # fmt: skip
    response = xapi.post("/statements", content=body, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert raw_parts(get_with_attachments(xapi, sid)) == {sha256(content): content}


def _body_starting_with(first_part_type: str, sid: str, content: bytes) -> bytes:
    st = statement(id=sid, attachments=[attachment(content)])
    return multipart(json_part([st], content_type=first_part_type), part(content))


@pytest.mark.parametrize(
    "make",
    [
        # a JSON body: stays refused (HDR-8), the leniency is for multipart bodies only
        lambda sid, content: json.dumps(statement(id=sid)).encode(),
        # the first part is not the statements as application/json
        lambda sid, content: _body_starting_with("text/plain", sid, content),
        # a preamble before the first delimiter: not unmistakable
        lambda sid, content: b"preamble" + CRLF + _body_starting_with("application/json", sid, content),
        # no closing delimiter
        lambda sid, content: _body_starting_with("application/json", sid, content).rsplit(b"--", 1)[0],
        # a first line that is no RFC 2046 delimiter (boundary with a forbidden character)
        lambda sid, content: _body_starting_with("application/json", sid, content).replace(
            BOUNDARY.encode(), b"bad<boundary>"
        ),
    ],
    ids=["json", "first-part-not-json", "preamble", "unclosed", "bad-boundary"],
)
def test_anything_not_unmistakably_multipart_stays_refused(xapi, make):
    sid = str(uuid.uuid4())
    body = make(sid, unique_content("strict"))
    response = xapi.post("/statements", content=body, headers={"Content-Type": "application/octet-stream"})
    assert "Content-Type" in error_message(response, 400)
    assert_not_stored(xapi, sid)


def test_a_declared_multipart_content_type_is_still_read_strictly(xapi):
    """The declared multipart/mixed header is what counts when given: its boundary must match."""
    sid = str(uuid.uuid4())
    content = unique_content("declared")
    body = _body_starting_with("application/json", sid, content)
    response = xapi.post(
        "/statements", content=body, headers={"Content-Type": "multipart/mixed; boundary=other-boundary"}
    )
    assert response.status_code == 400
    assert_not_stored(xapi, sid)
