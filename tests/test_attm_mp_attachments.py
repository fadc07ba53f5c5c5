"""Attachments: metadata (ATTM-*), multipart/mixed transport (MP-*, V2-19) and attachments=true (SQ-13).

Multipart bodies are built by hand, byte by byte, with CRLF line ends, so every rule can be broken
on purpose. Attachment contents deliberately contain CR LF, NUL bytes and text that looks like a
boundary, to prove the LRS stores and returns raw octets.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest

from .conftest import statement, unique_agent
from .helpers import BOUNDARY, CRLF, assert_not_stored, error_message, json_part, multipart, part, sha256

USAGE = "http://example.com/attachment-usage/test"
# looks like a delimiter but is not one (the last boundary character differs), then NULs and bare CRs
BINARY = b"\x00\x01\x02\r\n--" + BOUNDARY[:-1].encode() + b"X\r\n\x00\xff\xfe binary \r\n\r\n\x00 tail \r"


def unique_content(label: str = "data") -> bytes:
    """Binary content no other test uses (attachments are stored by hash)."""
    return f"{label}:{uuid.uuid4()}".encode() + BINARY


def attachment(content: bytes | None = None, *, sha2: str | None = None, **extra: Any) -> dict[str, Any]:
    content = content if content is not None else unique_content()
    att: dict[str, Any] = {
        "usageType": USAGE,
        "display": {"en-US": "A test attachment"},
        "contentType": "application/octet-stream",
        "length": len(content),
        "sha2": sha2 or sha256(content),
    }
    att.update(extra)
    return att


def file_url_attachment(**extra: Any) -> dict[str, Any]:
    return attachment(unique_content("remote"), fileUrl=f"https://files.example/{uuid.uuid4()}.bin", **extra)


def mp_headers(boundary: str = BOUNDARY) -> dict[str, str]:
    return {"Content-Type": f"multipart/mixed; boundary={boundary}"}


def post_multipart(client, body: bytes, headers: dict[str, str] | None = None):
    return client.post("/statements", content=body, headers=headers or mp_headers())


def put_multipart(client, statement_id: str, body: bytes, headers: dict[str, str] | None = None):
    return client.put(
        "/statements", params={"statementId": statement_id}, content=body, headers=headers or mp_headers()
    )


def parse_multipart_response(response) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/mixed response strictly by RFC 2046 (CRLF delimiters, closing delimiter)."""
    media_type, _, params = response.headers["content-type"].partition(";")
    assert media_type.strip().lower() == "multipart/mixed"
    boundary = None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    assert boundary, response.headers["content-type"]
    body = response.content
    opening = b"--" + boundary.encode() + CRLF
    assert body.startswith(opening), body[:100]
    closing = CRLF + b"--" + boundary.encode() + b"--"
    end = body.rindex(closing)
    assert body[end + len(closing) :] in (b"", CRLF)
    sections = body[len(opening) : end].split(CRLF + b"--" + boundary.encode() + CRLF)
    parts = []
    for section in sections:
        head, _, content = section.partition(CRLF + CRLF)
        headers = {}
        for line in head.split(CRLF):
            if line:
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def raw_parts(response) -> dict[str, bytes]:
    """The attachment parts of a multipart response, by hash; checks their mandatory headers."""
    found: dict[str, bytes] = {}
    for headers, content in parse_multipart_response(response)[1:]:
        assert headers["content-transfer-encoding"].lower() == "binary"
        sha2 = headers["x-experience-api-hash"]
        assert sha2 not in found, f"part {sha2} sent twice"
        found[sha2] = content
    return found


def get_with_attachments(client, statement_id: str):
    response = client.get("/statements", params={"statementId": statement_id, "attachments": "true"})
    assert response.status_code == 200, response.text
    return response


# --- ATTM-1: attachment metadata ------------------------------------------------------------


@pytest.mark.parametrize(
    "change, named",
    [
        ({"usageType": None}, "usageType"),
        ({"display": None}, "display"),
        ({"contentType": None}, "contentType"),
        ({"length": None}, "length"),
        ({"sha2": None}, "sha2"),
        ({"usageType": "not an iri"}, "usageType"),
        ({"usageType": 12}, "usageType"),
        ({"display": "A test attachment"}, "display"),
        ({"display": {"not a language tag!": "x"}}, "display"),
        ({"description": {"en-US": 5}}, "description"),
        ({"description": "text"}, "description"),
        ({"contentType": "not a media type"}, "contentType"),
        ({"contentType": 7}, "contentType"),
        ({"length": "27"}, "length"),
        ({"length": -1}, "length"),
        ({"length": 2.5}, "length"),
        ({"length": True}, "length"),
        ({"sha2": ""}, "sha2"),
        ({"sha2": 1234}, "sha2"),
        ({"fileUrl": "not a url at all"}, "fileUrl"),
        ({"fileUrl": None, "FileUrl": "https://files.example/x"}, "FileUrl"),
        ({"dummy": "x"}, "dummy"),
    ],
)
def test_attm1_invalid_attachment_metadata_is_rejected(any_xapi, change, named):
    """ATTM-1: every required property present and well-formed, no unknown ones → otherwise 400 naming it."""
    att = file_url_attachment()
    for key, value in change.items():
        if value is None:
            att.pop(key, None)
        else:
            att[key] = value
    sid = str(uuid.uuid4())
    response = any_xapi.post_statements(statement(id=sid, attachments=[att]))
    assert response.status_code == 400, response.text
    assert named in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_attm1_sha2_is_required_even_with_file_url(any_xapi):
    """ATTM-1: sha2 is required even when fileUrl is given."""
    att = file_url_attachment()
    del att["sha2"]
    response = any_xapi.post_statements(statement(attachments=[att]))
    assert response.status_code == 400
    assert "sha2" in error_message(response)


def test_attm1_attachments_must_be_an_array(any_xapi):
    """ATTM-1 / PROP-10: attachments is an array of Attachment objects."""
    response = any_xapi.post_statements(statement(attachments=file_url_attachment()))
    assert response.status_code == 400
    assert "attachments" in error_message(response)


def test_attm1_complete_metadata_is_stored_as_sent(any_xapi):
    """ATTM-1: a complete attachment object (description and fileUrl included) round-trips exactly."""
    att = file_url_attachment(description={"en-US": "Longer text", "fr-FR": "Texte plus long"})
    (sid,) = any_xapi.store(statement(attachments=[att]))
    got = any_xapi.get("/statements", params={"statementId": sid}).json()
    assert got["attachments"] == [att]


# --- ATTM-2: part headers agree with metadata -----------------------------------------------


def test_attm2_part_hash_header_must_match_its_content(any_xapi):
    """ATTM-2 / MP-5: X-Experience-API-Hash is the SHA-2 of the part; a part whose data does not hash to
    the declared value → 400, nothing stored."""
    content = unique_content()
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(content)])
    body = multipart(json_part(st), part(content + b"tampered", sha2=sha256(content)))
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert "X-Experience-API-Hash" in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_attm2_binary_sent_as_utf8_encoded_latin1_text_is_repaired_and_proven(any_xapi):
    """ATTM-2 / MP-5: JavaScript clients (the ADL suite among them) read binary files as Latin-1
    "binary" strings and send them UTF-8 encoded, doubling every byte above 0x7F. The LRS accepts
    such a part only because its Latin-1 reading hashes to the declared SHA-2, and it stores and
    returns the original bytes, not the mangled ones."""
    original = unique_content("jpeg") + bytes(range(128, 256))
    mangled = original.decode("latin-1").encode("utf-8")
    assert sha256(mangled) != sha256(original)
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(original)])
    response = post_multipart(any_xapi, multipart(json_part(st), part(mangled, sha2=sha256(original))))
    assert response.status_code == 200, response.text
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(original): original}


def test_attm2_mangled_part_that_does_not_prove_its_hash_is_still_rejected(any_xapi):
    """ATTM-2: the Latin-1 repair never admits data its hash does not prove."""
    original = unique_content("jpeg") + bytes(range(128, 256))
    mangled = original.decode("latin-1").encode("utf-8") + b"!"
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(original)])
    response = post_multipart(any_xapi, multipart(json_part(st), part(mangled, sha2=sha256(original))))
    assert response.status_code == 400
    assert "X-Experience-API-Hash" in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_attm2_part_content_type_must_agree_with_attachment_content_type(xapi):
    """ATTM-2: a part's Content-Type duplicates the attachment's contentType and must agree with it;
    text/plain metadata with an image/png part → 400."""
    content = unique_content()
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(content, contentType="text/plain")])
    response = post_multipart(xapi, multipart(json_part(st), part(content, content_type="image/png")))
    assert response.status_code == 400, response.text
    assert "type" in error_message(response).lower()
    assert_not_stored(xapi, sid)


def test_attm2_part_content_length_must_agree_with_attachment_length(xapi):
    """ATTM-2: a part's Content-Length duplicates the attachment's length and must agree with it."""
    content = unique_content()
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(content, length=len(content) + 5)])
    body = multipart(json_part(st), part(content, extra={"Content-Length": str(len(content))}))
    response = post_multipart(xapi, body)
    assert response.status_code == 400, response.text
    assert "length" in error_message(response).lower()
    assert_not_stored(xapi, sid)


def test_attm2_agreeing_part_headers_are_accepted(any_xapi):
    """ATTM-2: Content-Type, Content-Length and hash headers that agree with the metadata are fine."""
    content = unique_content()
    st = statement(attachments=[attachment(content, contentType="image/png")])
    body = multipart(
        json_part(st), part(content, content_type="image/png", extra={"Content-Length": str(len(content))})
    )
    response = post_multipart(any_xapi, body)
    assert response.status_code == 200, response.text


# --- ATTM-3: SubStatement attachments -------------------------------------------------------


def _substatement() -> dict:
    return {
        "objectType": "SubStatement",
        "actor": unique_agent(),
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
        "object": {"objectType": "Activity", "id": f"https://lms.example/activities/{uuid.uuid4()}"},
    }


def test_attm3_substatement_attachment_data_travels_with_the_parent(any_xapi):
    """ATTM-3: the recommended form — the SubStatement's attachment declared in the parent statement's
    attachments, its data sent as a part — is stored and returned."""
    content = unique_content("sub")
    st = statement(obj=_substatement(), attachments=[attachment(content)])
    response = post_multipart(any_xapi, multipart(json_part(st), part(content)))
    assert response.status_code == 200, response.text
    (sid,) = response.json()
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(content): content}


def test_attm3_attachment_inside_substatement_needs_its_data_too(any_xapi):
    """ATTM-3: an attachment declared inside the SubStatement (allowed) without fileUrl still needs its raw
    part: present → 200 and returned; absent → 400."""
    content = unique_content("inner")
    sub = dict(_substatement(), attachments=[attachment(content)])
    missing = post_multipart(any_xapi, multipart(json_part(statement(obj=sub))))
    assert missing.status_code == 400
    assert sha256(content) in error_message(missing)

    response = post_multipart(any_xapi, multipart(json_part(statement(obj=sub)), part(content)))
    assert response.status_code == 200, response.text
    (sid,) = response.json()
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(content): content}


# --- MP-1 / MP-2: application/json requests ---------------------------------------------------


def test_mp1_json_without_attachments_is_accepted(any_xapi):
    """MP-1: application/json with no attachments → 200 (POST) / 204 (PUT)."""
    assert any_xapi.post_statements([statement(), statement()]).status_code == 200
    sid = str(uuid.uuid4())
    assert any_xapi.put("/statements", params={"statementId": sid}, json=statement()).status_code == 204


def test_mp1_json_with_only_file_url_attachments_is_accepted(any_xapi):
    """MP-1: application/json whose attachments all have fileUrl → accepted and stored as sent."""
    atts = [file_url_attachment(), file_url_attachment()]
    ids = any_xapi.store(statement(attachments=atts), statement(attachments=atts[:1]))
    assert any_xapi.get("/statements", params={"statementId": ids[0]}).json()["attachments"] == atts
    sid = str(uuid.uuid4())
    put = any_xapi.put("/statements", params={"statementId": sid}, json=statement(attachments=atts))
    assert put.status_code == 204


def test_mp2_json_with_attachment_lacking_file_url_is_rejected(any_xapi):
    """MP-2: application/json where an attachment has no fileUrl (data expected, none possible) → 400;
    the whole batch is refused."""
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    att = attachment()
    response = any_xapi.post_statements(
        [statement(id=good, attachments=[file_url_attachment()]), statement(id=bad, attachments=[att])]
    )
    assert response.status_code == 400
    message = error_message(response)
    assert "fileUrl" in message and att["sha2"] in message
    assert_not_stored(any_xapi, good, bad)
    put = any_xapi.put("/statements", params={"statementId": bad}, json=statement(attachments=[att]))
    assert put.status_code == 400
    assert_not_stored(any_xapi, bad)


# --- MP-3: RFC 2046 framing ------------------------------------------------------------------


def _valid_single() -> tuple[str, bytes, bytes]:
    content = unique_content()
    sid = str(uuid.uuid4())
    return (
        sid,
        multipart(json_part(statement(id=sid, attachments=[attachment(content)])), part(content)),
        content,
    )


def test_mp3_well_formed_multipart_post_and_put_are_accepted(any_xapi):
    """MP-3 / MP-4 / MP-5 / MP-6: a correct body (JSON first, hashed binary parts) → 200 / 204 and the data
    is stored byte for byte."""
    sid, body, content = _valid_single()
    response = post_multipart(any_xapi, body)
    assert response.status_code == 200, response.text
    assert response.json() == [sid]
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(content): content}

    content2 = unique_content()
    sid2 = str(uuid.uuid4())
    body2 = multipart(json_part(statement(id=sid2, attachments=[attachment(content2)])), part(content2))
    put = put_multipart(any_xapi, sid2, body2)
    assert put.status_code == 204, put.text
    assert raw_parts(get_with_attachments(any_xapi, sid2)) == {sha256(content2): content2}


def test_mp3_boundary_with_special_characters_quoted(any_xapi):
    """MP-3: the specification's own example boundary (quoted, with ' ( ) + _ , - . / : = ?) works."""
    boundary = "abcABC0123'()+_,-./:=?"
    content = b"here is a simple attachment"
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(content, contentType="text/plain; charset=ascii")])
    body = multipart(json_part(st), part(content, content_type="text/plain"), boundary=boundary)
    response = post_multipart(any_xapi, body, {"Content-Type": f'multipart/mixed; boundary="{boundary}"'})
    assert response.status_code == 200, response.text
    assert raw_parts(get_with_attachments(any_xapi, sid))[sha256(content)] == content


@pytest.mark.parametrize(
    "content_type",
    ["multipart/mixed", "multipart/mixed; charset=utf-8", "multipart/mixed; boundary="],
    ids=["no-params", "other-param", "empty-boundary"],
)
def test_mp3_missing_boundary_parameter_is_rejected(any_xapi, content_type):
    """MP-3: multipart/mixed needs a boundary parameter in Content-Type → 400 naming it."""
    sid, body, _ = _valid_single()
    response = post_multipart(any_xapi, body, {"Content-Type": content_type})
    assert response.status_code == 400
    assert "boundary" in error_message(response)
    assert_not_stored(any_xapi, sid)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: b.rindex(b"--" + BOUNDARY.encode() + b"--")], id="no-closing-delimiter"),
        pytest.param(
            lambda b: b.replace(b"--" + BOUNDARY.encode() + b"--", b"--" + BOUNDARY.encode()),
            id="close-without-dashes",
        ),
        pytest.param(
            lambda b: b.replace(BOUNDARY.encode(), b"another-boundary"), id="boundary-differs-from-header"
        ),
        pytest.param(lambda b: b"", id="empty-body"),
        pytest.param(lambda b: b'{"actor": 1}', id="json-body-declared-multipart"),
    ],
)
def test_mp3_malformed_framing_is_rejected(any_xapi, damage):
    """MP-3: boundary lines and the closing delimiter are required → 400, nothing stored."""
    sid, body, _ = _valid_single()
    response = post_multipart(any_xapi, damage(body))
    assert response.status_code == 400, response.text
    assert "multipart" in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_mp3_rfc2046_preamble_and_epilogue_are_ignored(any_xapi):
    """MP-3: RFC 2046 lets a body carry a preamble before the first boundary and an epilogue after the
    closing delimiter; both are to be ignored (the specification's example starts with an empty line)."""
    for preamble in (CRLF, b"This is a multi-part message in MIME format." + CRLF):
        sid, body, content = _valid_single()
        response = post_multipart(any_xapi, preamble + body + b"epilogue text" + CRLF)
        assert response.status_code == 200, (preamble, response.text)
        assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(content): content}


# --- MP-4: the first part --------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", None])
def test_mp4_first_part_must_be_application_json(any_xapi, content_type):
    """MP-4: the first part holds the statements as application/json; another or no type → 400."""
    content = unique_content()
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(content)])
    first = ({"Content-Type": content_type} if content_type else {}, json.dumps(st).encode())
    response = post_multipart(any_xapi, multipart(first, part(content)))
    assert response.status_code == 400
    assert "application/json" in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_mp4_first_part_with_charset_parameter_is_json(any_xapi):
    """MP-4: application/json with parameters (charset) is still application/json."""
    content = unique_content()
    st = statement(attachments=[attachment(content)])
    body = multipart(json_part(st, "application/json; charset=UTF-8"), part(content))
    assert post_multipart(any_xapi, body).status_code == 200


def test_mp4_statements_split_across_parts_are_rejected(any_xapi):
    """MP-4: all statements belong in the first part; a second statement in its own JSON part → 400."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    body = multipart(json_part(statement(id=first)), json_part(statement(id=second)))
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert "X-Experience-API-Hash" in error_message(response)
    assert_not_stored(any_xapi, first, second)


def test_mp4_batch_of_statements_with_attachments_in_one_first_part(any_xapi):
    """MP-4: an array in the first part, each statement with its own attachment, parts after it."""
    a, b = unique_content("a"), unique_content("b")
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    statements = [
        statement(id=ids[0], attachments=[attachment(a)]),
        statement(id=ids[1], attachments=[attachment(b)]),
    ]
    response = post_multipart(any_xapi, multipart(json_part(statements), part(b), part(a)))
    assert response.status_code == 200, response.text
    assert response.json() == ids
    assert raw_parts(get_with_attachments(any_xapi, ids[0])) == {sha256(a): a}
    assert raw_parts(get_with_attachments(any_xapi, ids[1])) == {sha256(b): b}


def test_mp4_invalid_json_in_first_part_is_rejected(any_xapi):
    """MP-4: the first part must be JSON."""
    body = multipart(({"Content-Type": "application/json"}, b'{"actor": '))
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert "JSON" in error_message(response)


# --- MP-5 / MP-6: per-part headers -------------------------------------------------------------


def test_mp5_part_without_hash_header_is_rejected(any_xapi):
    """MP-5: every part after the first needs X-Experience-API-Hash → 400, nothing stored."""
    content = unique_content()
    sid = str(uuid.uuid4())
    body = multipart(
        json_part(statement(id=sid, attachments=[attachment(content)])), part(content, sha2=False)
    )
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert "X-Experience-API-Hash" in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_mp5_hash_header_matching_no_attachment_is_rejected(any_xapi):
    """MP-5 / MP-7: a part whose (correct) hash equals no attachment's sha2 → 400."""
    content, other = unique_content(), unique_content("other")
    sid = str(uuid.uuid4())
    body = multipart(json_part(statement(id=sid, attachments=[attachment(content)])), part(other))
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert sha256(other) in error_message(response)
    assert_not_stored(any_xapi, sid)


@pytest.mark.parametrize("cte", [None, "base64", "7bit", "quoted-printable", "8bit"])
def test_mp6_part_without_binary_transfer_encoding_is_rejected(any_xapi, cte):
    """MP-6: every part after the first needs Content-Transfer-Encoding: binary; missing or other → 400."""
    content = unique_content()
    sid = str(uuid.uuid4())
    body = multipart(json_part(statement(id=sid, attachments=[attachment(content)])), part(content, cte=cte))
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert "Content-Transfer-Encoding" in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_mp6_transfer_encoding_value_is_case_insensitive(any_xapi):
    """MP-6: MIME header values such as the transfer encoding are case-insensitive (RFC 2045)."""
    content = unique_content()
    body = multipart(json_part(statement(attachments=[attachment(content)])), part(content, cte="BINARY"))
    assert post_multipart(any_xapi, body).status_code == 200


# --- MP-7: surplus and missing parts ------------------------------------------------------------


def test_mp7_surplus_part_is_rejected(any_xapi):
    """MP-7: a part that matches no attachment (beside the ones that do) → 400, nothing stored."""
    content, extra = unique_content(), unique_content("extra")
    sid = str(uuid.uuid4())
    body = multipart(
        json_part(statement(id=sid, attachments=[attachment(content)])), part(content), part(extra)
    )
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert sha256(extra) in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_mp7_surplus_part_for_file_url_only_statement_is_rejected(any_xapi):
    """MP-7: raw data for an attachment that is not declared at all → 400."""
    extra = unique_content("extra")
    sid = str(uuid.uuid4())
    body = multipart(json_part(statement(id=sid)), part(extra))
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert_not_stored(any_xapi, sid)


def test_mp7_missing_part_is_rejected(any_xapi):
    """MP-7: an attachment without fileUrl and without a part carrying its data → 400 naming its hash."""
    a, b = unique_content("a"), unique_content("b")
    sid = str(uuid.uuid4())
    body = multipart(json_part(statement(id=sid, attachments=[attachment(a), attachment(b)])), part(a))
    response = post_multipart(any_xapi, body)
    assert response.status_code == 400
    assert sha256(b) in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_mp7_file_url_attachment_may_also_have_its_data_sent(any_xapi):
    """MP-7: an attachment with fileUrl may still carry raw data; then the part matches it (no surplus)."""
    content = unique_content()
    att = attachment(content, fileUrl="https://files.example/copy.bin")
    response = post_multipart(any_xapi, multipart(json_part(statement(attachments=[att])), part(content)))
    assert response.status_code == 200, response.text
    (sid,) = response.json()
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(content): content}


# --- MP-8: matching by hash only ------------------------------------------------------------------


def test_mp8_one_part_serves_several_attachments_with_the_same_hash(any_xapi):
    """MP-8: two attachments (in two statements of one batch, and twice in one statement) sharing one sha2
    are served by one part; GET attachments=true sends that data once."""
    content = unique_content("shared")
    actor = unique_agent()
    first = statement(
        actor=actor, attachments=[attachment(content), attachment(content, display={"en-US": "again"})]
    )
    second = statement(
        actor=actor, attachments=[attachment(content, usageType="http://example.com/other-usage")]
    )
    response = post_multipart(any_xapi, multipart(json_part([first, second]), part(content)))
    assert response.status_code == 200, response.text
    ids = response.json()
    for sid in ids:
        assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(content): content}
    query = any_xapi.get("/statements", params={"agent": json.dumps(actor), "attachments": "true"})
    assert query.status_code == 200
    assert raw_parts(query) == {sha256(content): content}
    assert {s["id"] for s in json.loads(parse_multipart_response(query)[0][1])["statements"]} == set(ids)


def test_mp8_data_is_matched_by_hash_not_by_part_order(any_xapi):
    """MP-8: parts in a different order than the attachments are matched by their hash."""
    a, b, c = unique_content("a"), unique_content("b"), unique_content("c")
    st = statement(attachments=[attachment(a), attachment(b), attachment(c)])
    response = post_multipart(any_xapi, multipart(json_part(st), part(c), part(a), part(b)))
    assert response.status_code == 200, response.text
    (sid,) = response.json()
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {sha256(a): a, sha256(b): b, sha256(c): c}


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_mp8_other_sha2_algorithms_are_accepted(any_xapi, algorithm):
    """MP-8 / ATTM-1: sha2 is "the SHA-2 hash" and providers may use SHA-256, SHA-384 or SHA-512; a part
    hashed with SHA-384/512 matches its attachment and is stored."""
    content = unique_content(algorithm)
    digest = hashlib.new(algorithm, content).hexdigest()
    st = statement(attachments=[attachment(content, sha2=digest)])
    response = post_multipart(any_xapi, multipart(json_part(st), part(content, sha2=digest)))
    assert response.status_code == 200, response.text
    (sid,) = response.json()
    assert raw_parts(get_with_attachments(any_xapi, sid)) == {digest: content}


# --- MP-9 / V2-19: multipart without raw data ----------------------------------------------------


def test_mp9_v2_19_multipart_without_attachments_is_accepted(any_xapi):
    """MP-9 / V2-19: multipart/mixed with zero attachments → 200 (POST) and 204 (PUT)."""
    sid = str(uuid.uuid4())
    response = post_multipart(any_xapi, multipart(json_part([statement(id=sid), statement()])))
    assert response.status_code == 200, response.text
    assert response.json()[0] == sid
    sid2 = str(uuid.uuid4())
    assert put_multipart(any_xapi, sid2, multipart(json_part(statement()))).status_code == 204
    assert any_xapi.get("/statements", params={"statementId": sid2}).status_code == 200


def test_mp9_v2_19_multipart_with_only_file_url_attachments_is_accepted(any_xapi):
    """MP-9 / V2-19: multipart/mixed whose attachments all have fileUrl, no parts → 200."""
    att = file_url_attachment()
    response = post_multipart(any_xapi, multipart(json_part(statement(attachments=[att]))))
    assert response.status_code == 200, response.text
    (sid,) = response.json()
    got = get_with_attachments(any_xapi, sid)
    parts = parse_multipart_response(got)
    assert len(parts) == 1
    assert json.loads(parts[0][1])["attachments"] == [att]


# --- MP-10: size limit --------------------------------------------------------------------------


def test_mp10_body_over_the_configured_limit_is_413(any_xapi):
    """MP-10: the test server is configured with a 2 MiB body limit; a larger attachment → 413, nothing
    stored (and a body under the limit is accepted)."""
    big = unique_content("big") + b"\x00" * (2 * 1024 * 1024)
    sid = str(uuid.uuid4())
    response = post_multipart(
        any_xapi, multipart(json_part(statement(id=sid, attachments=[attachment(big)])), part(big))
    )
    assert response.status_code == 413
    assert "bytes" in error_message(response)
    assert_not_stored(any_xapi, sid)

    fits = unique_content("fits") + b"\x00" * (1024 * 1024)
    ok = post_multipart(any_xapi, multipart(json_part(statement(attachments=[attachment(fits)])), part(fits)))
    assert ok.status_code == 200, ok.text


# --- SQ-13 / MP-11: attachments=true on GET ----------------------------------------------------


def test_sq13_single_statement_with_attachments_true_is_multipart(any_xapi):
    """SQ-13: statementId + attachments=true → multipart/mixed: the statement JSON first, then each raw part
    (hash + binary transfer encoding) byte-exact."""
    a, b = unique_content("a"), unique_content("b")
    sid = str(uuid.uuid4())
    st = statement(id=sid, attachments=[attachment(a, contentType="image/png"), attachment(b)])
    assert (
        post_multipart(
            any_xapi, multipart(json_part(st), part(a, content_type="image/png"), part(b))
        ).status_code
        == 200
    )
    response = get_with_attachments(any_xapi, sid)
    parts = parse_multipart_response(response)
    headers, first = parts[0]
    assert headers["content-type"].split(";")[0] == "application/json"
    got = json.loads(first)
    assert got["id"] == sid and got["attachments"] == st["attachments"]
    assert raw_parts(response) == {sha256(a): a, sha256(b): b}
    png = next(h for h, c in parts[1:] if c == a)
    assert png["content-type"] == "image/png"


def test_sq13_query_with_attachments_true_is_multipart(any_xapi):
    """SQ-13 / MP-11: a query with attachments=true → multipart/mixed with the StatementResult first and the
    data of every attachment of every returned statement (so nothing is lost when pulling statements)."""
    actor = unique_agent()
    a, b = unique_content("a"), unique_content("b")
    s1 = statement(actor=actor, attachments=[attachment(a)])
    s2 = statement(actor=actor, attachments=[attachment(b), file_url_attachment()])
    s3 = statement(actor=actor)
    assert post_multipart(any_xapi, multipart(json_part([s1, s2, s3]), part(a), part(b))).status_code == 200
    response = any_xapi.get("/statements", params={"agent": json.dumps(actor), "attachments": "true"})
    assert response.status_code == 200
    headers, first = parse_multipart_response(response)[0]
    assert headers["content-type"].split(";")[0] == "application/json"
    result = json.loads(first)
    assert len(result["statements"]) == 3 and result.get("more", "") == ""
    assert raw_parts(response) == {sha256(a): a, sha256(b): b}


def test_sq13_attachments_true_without_any_attachment_is_still_multipart(any_xapi):
    """SQ-13: attachments=true uses the multipart format even when there is no raw data."""
    (sid,) = any_xapi.store(statement())
    parts = parse_multipart_response(get_with_attachments(any_xapi, sid))
    assert len(parts) == 1
    assert json.loads(parts[0][1])["id"] == sid


@pytest.mark.parametrize("value", [None, "false"])
def test_sq13_attachments_false_is_plain_json_without_data(any_xapi, value):
    """SQ-13: attachments=false or absent → application/json, attachment metadata only, no raw data."""
    content = unique_content()
    actor = unique_agent()
    st = statement(actor=actor, attachments=[attachment(content)])
    response = post_multipart(any_xapi, multipart(json_part(st), part(content)))
    (sid,) = response.json()
    extra = {} if value is None else {"attachments": value}
    single = any_xapi.get("/statements", params={"statementId": sid, **extra})
    query = any_xapi.get("/statements", params={"agent": json.dumps(actor), **extra})
    for got in (single, query):
        assert got.status_code == 200
        assert got.headers["content-type"].split(";")[0] == "application/json"
        assert content not in got.content
    assert single.json()["attachments"] == st["attachments"]
    assert query.json()["statements"][0]["attachments"] == st["attachments"]


def test_sq13_attachments_on_voided_statement(any_xapi):
    """SQ-13 with voidedStatementId: the voided statement's data is still returned."""
    content = unique_content()
    st = statement(attachments=[attachment(content)])
    (sid,) = post_multipart(any_xapi, multipart(json_part(st), part(content))).json()
    any_xapi.store(statement(verb="voided", obj={"objectType": "StatementRef", "id": sid}))
    response = any_xapi.get("/statements", params={"voidedStatementId": sid, "attachments": "true"})
    assert response.status_code == 200
    assert raw_parts(response) == {sha256(content): content}
