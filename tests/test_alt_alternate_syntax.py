"""Alternate request syntax (checklist section 2, ALT-*; removed in 2.0: V2-18).

``POST <resource>?method=<X>`` with an ``application/x-www-form-urlencoded`` body stands for the
request ``X``: form fields named like headers act as headers, ``content`` is the body, the rest
are query parameters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest

from .conftest import ADMIN, statement, unique_agent
from .helpers import error_message, state_params

AUTH = "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture()
def bare(client_for):
    """A client sending neither credentials nor a version header: the form has to carry them."""
    return client_for(auth=None, version=None)


def alt(client, method: str, path: str, form: dict, *, query: dict | None = None, http_method: str = "POST"):
    params = {"method": method, **(query or {})}
    return client.request(http_method, path, params=params, data=form, headers=FORM)


def with_headers(form: dict, version: str = "1.0.3") -> dict:
    return {"Authorization": AUTH, "X-Experience-API-Version": version, **form}


# --- ALT-1 / ALT-2 -------------------------------------------------------------------------------------


def test_alt1_put_statement_issued_as_post(bare, xapi):
    """ALT-1: POST ?method=PUT with statementId and content in the form stores the statement (204)."""
    st = statement()
    sid = str(uuid.uuid4())
    response = alt(bare, "PUT", "/statements", with_headers({"statementId": sid, "content": json.dumps(st)}))
    assert response.status_code == 204, response.text
    assert response.headers["X-Experience-API-Version"] == "1.0.3"
    got = xapi.get("/statements", params={"statementId": sid})
    assert got.status_code == 200
    assert got.json()["actor"] == st["actor"]


def test_alt1_post_statement_issued_as_post(bare, xapi):
    """ALT-1: POST ?method=POST with the statement in ``content`` stores it and returns its id."""
    st = statement(id=str(uuid.uuid4()))
    response = alt(bare, "POST", "/statements", with_headers({"content": json.dumps(st)}))
    assert response.status_code == 200, response.text
    assert response.json() == [st["id"]]
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 200


def test_alt1_every_method_on_a_document(bare, xapi):
    """ALT-1: PUT, GET, POST (merge) and DELETE of a state document, all issued as POST."""
    params = state_params()
    put = alt(bare, "PUT", "/activities/state", with_headers({**params, "content": '{"a": 1}'}))
    assert put.status_code == 204, put.text
    got = alt(bare, "GET", "/activities/state", with_headers(params))
    assert got.status_code == 200
    assert got.json() == {"a": 1}
    merged = alt(bare, "POST", "/activities/state", with_headers({**params, "content": '{"b": 2}'}))
    assert merged.status_code == 204, merged.text
    assert xapi.get("/activities/state", params=params).json() == {"a": 1, "b": 2}
    deleted = alt(bare, "DELETE", "/activities/state", with_headers(params))
    assert deleted.status_code == 204
    assert xapi.get("/activities/state", params=params).status_code == 404


def test_alt2_get_statements_issued_as_post_returns_a_statement_result(bare, xapi):
    """ALT-2: POST ?method=GET answers 200 and a StatementResult; form fields filter the query."""
    agent = unique_agent()
    ids = xapi.store(statement(agent), statement(agent), statement())
    response = alt(bare, "GET", "/statements", with_headers({"agent": json.dumps(agent), "limit": "1"}))
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {"statements", "more"}
    assert len(result["statements"]) == 1
    assert result["statements"][0]["id"] in ids[:2]
    assert result["more"]  # a second statement of this agent is waiting


def test_alt2_get_single_statement_issued_as_post(bare, xapi):
    """ALT-2: statementId as a form field of POST ?method=GET fetches that statement."""
    (sid,) = xapi.store(statement())
    response = alt(bare, "GET", "/statements", with_headers({"statementId": sid}))
    assert response.status_code == 200
    assert response.json()["id"] == sid


# --- ALT-3 / ALT-4 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [{"statementId": "SID"}, {"limit": "1"}, {"foo": "bar"}, {"content": "{}"}])
def test_alt3_only_method_may_be_in_the_query_string(bare, xapi, extra):
    """ALT-3: any query parameter besides ``method`` -> 400, and nothing is stored."""
    sid = str(uuid.uuid4())
    query = {k: (sid if v == "SID" else v) for k, v in extra.items()}
    form = with_headers({"statementId": sid, "content": json.dumps(statement())})
    response = alt(bare, "PUT", "/statements", form, query=query)
    assert response.status_code == 400
    assert "method" in error_message(response)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


@pytest.mark.parametrize("http_method", ["PUT", "GET", "DELETE"])
def test_alt4_the_syntax_is_only_valid_on_post(bare, xapi, http_method):
    """ALT-4: e.g. PUT ?method=POST -> 400; nothing is stored."""
    st = statement(id=str(uuid.uuid4()))
    response = alt(
        bare, "POST", "/statements", with_headers({"content": json.dumps(st)}), http_method=http_method
    )
    assert response.status_code == 400
    if http_method != "HEAD":
        assert "POST" in error_message(response)
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


# --- ALT-5: form fields acting as headers --------------------------------------------------------------


def test_alt5_version_from_the_form_is_checked(client_for, xapi):
    """ALT-5: X-Experience-API-Version 0.8 in the form -> 400 even though the real header says 1.0.3."""
    client = client_for(version="1.0.3")
    sid = str(uuid.uuid4())
    form = {"statementId": sid, "X-Experience-API-Version": "0.8", "content": json.dumps(statement())}
    response = alt(client, "PUT", "/statements", form)
    assert response.status_code == 400
    assert "0.8" in error_message(response)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


def test_alt5_missing_version_everywhere_is_400(bare):
    """ALT-5, HDR-1: with no version in either the headers or the form the request is 400."""
    response = alt(bare, "GET", "/statements", {"Authorization": AUTH})
    assert response.status_code == 400
    assert "X-Experience-API-Version" in error_message(response)


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic " + base64.b64encode(b"test-admin:wrong").decode(), "Basic !!!", "Bearer abc"],
)
def test_alt5_authorization_from_the_form_must_authenticate(bare, xapi, authorization):
    """ALT-5, AUTH-2: a missing or wrong Authorization form field -> 401; nothing stored."""
    sid = str(uuid.uuid4())
    form = {"X-Experience-API-Version": "1.0.3", "statementId": sid, "content": json.dumps(statement())}
    if authorization:
        form["Authorization"] = authorization
    response = alt(bare, "PUT", "/statements", form)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


def test_alt5_if_match_and_if_none_match_from_the_form(bare, xapi):
    """ALT-5, CONC-3, CONC-4: If-Match / If-None-Match form fields act as the headers: 412 on a
    stale tag or on If-None-Match: * over an existing document; the right tag succeeds."""
    params = state_params()
    assert xapi.put("/activities/state", params=params, json={"v": 1}).status_code == 204
    etag = xapi.get("/activities/state", params=params).headers["etag"]
    stale = alt(
        bare,
        "PUT",
        "/activities/state",
        with_headers({**params, "If-Match": '"' + "0" * 40 + '"', "content": '{"v": 2}'}),
    )
    assert stale.status_code == 412
    exists = alt(
        bare,
        "PUT",
        "/activities/state",
        with_headers({**params, "If-None-Match": "*", "content": '{"v": 3}'}),
    )
    assert exists.status_code == 412
    assert xapi.get("/activities/state", params=params).json() == {"v": 1}
    fresh = alt(
        bare, "PUT", "/activities/state", with_headers({**params, "If-Match": etag, "content": '{"v": 4}'})
    )
    assert fresh.status_code == 204
    assert xapi.get("/activities/state", params=params).json() == {"v": 4}


def test_alt5_content_type_from_the_form(bare, xapi):
    """ALT-5: a Content-Type form field is the Content-Type of the carried request."""
    params = state_params()
    form = with_headers({**params, "Content-Type": "text/plain", "content": "plain words"})
    assert alt(bare, "PUT", "/activities/state", form).status_code == 204
    got = xapi.get("/activities/state", params=params)
    assert got.headers["content-type"].startswith("text/plain")
    assert got.text == "plain words"


def test_alt5_content_type_from_the_form_is_checked_for_statements(bare, xapi):
    """ALT-5, HDR-8: Content-Type: text/plain in the form makes a statement PUT a 400."""
    sid = str(uuid.uuid4())
    form = with_headers(
        {"statementId": sid, "Content-Type": "text/plain", "content": json.dumps(statement())}
    )
    response = alt(bare, "PUT", "/statements", form)
    assert response.status_code == 400
    assert "Content-Type" in error_message(response)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


# --- ALT-6 / ALT-7 / ALT-8 ---------------------------------------------------------------------------------


def test_alt6_content_is_read_as_utf8_and_other_fields_are_parameters(bare, xapi):
    """ALT-6: ``content`` (URL-encoded UTF-8) is the body; stateId/activityId/agent are parameters."""
    params = state_params()
    params["stateId"] = "zustand-ü"
    document = {"name": "Zoë 学习者 🚀"}
    form = with_headers({**params, "content": json.dumps(document, ensure_ascii=False)})
    assert alt(bare, "PUT", "/activities/state", form).status_code == 204
    got = xapi.get("/activities/state", params=params)
    assert got.status_code == 200
    assert got.json() == document
    listed = xapi.get("/activities/state", params={k: v for k, v in params.items() if k != "stateId"})
    assert listed.json() == ["zustand-ü"]


def test_alt6_non_ascii_statement_via_form(bare, xapi):
    """ALT-6, HDR-5: a statement with non-ASCII text survives the form encoding unchanged."""
    st = statement(unique_agent("Ærøskøbing 東京"), id=str(uuid.uuid4()))
    response = alt(bare, "POST", "/statements", with_headers({"content": json.dumps(st, ensure_ascii=False)}))
    assert response.status_code == 200, response.text
    assert xapi.get("/statements", params={"statementId": st["id"]}).json()["actor"] == st["actor"]


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_alt7_put_or_post_without_content_is_400(bare, xapi, method):
    """ALT-7: a PUT/POST carried without a ``content`` field -> 400; nothing stored."""
    sid = str(uuid.uuid4())
    response = alt(bare, method, "/statements", with_headers({"statementId": sid} if method == "PUT" else {}))
    assert response.status_code == 400
    assert "content" in error_message(response)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


def test_alt7_body_that_is_not_urlencoded_is_400(bare, xapi):
    """ALT-7: a form Content-Type with a JSON (not urlencoded) body -> 400; nothing stored."""
    sid = str(uuid.uuid4())
    body = json.dumps(
        {"statementId": sid, "content": json.dumps(statement()), "X-Experience-API-Version": "1.0.3"}
    )
    response = bare.post(
        "/statements", params={"method": "PUT"}, content=body, headers={**FORM, "Authorization": AUTH}
    )
    assert response.status_code == 400
    assert "urlencoded" in error_message(response)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


def test_alt7_body_without_form_content_type_is_400(client_for, xapi):
    """ALT-7: POST ?method=PUT whose body is sent as application/json -> 400."""
    sid = str(uuid.uuid4())
    client = client_for(version="1.0.3")
    response = client.post("/statements", params={"method": "PUT", "statementId": sid}, json=statement())
    assert response.status_code == 400
    response = client.post(
        "/statements", params={"method": "PUT"}, json={"statementId": sid, "content": "{}"}
    )
    assert response.status_code == 400
    assert "x-www-form-urlencoded" in error_message(response)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


def notes_attachment(data: bytes, **extra: str) -> dict:
    """Attachment metadata for the text ``data`` (plus ``extra`` properties, e.g. fileUrl)."""
    return {
        "usageType": "https://example.com/usage/notes",
        "display": {"en-US": "notes"},
        "contentType": "text/plain",
        "length": len(data),
        "sha2": hashlib.sha256(data).hexdigest(),
        **extra,
    }


def test_alt8_attachment_data_cannot_travel_in_the_form(bare, xapi):
    """ALT-8: no multipart in this syntax, so an attachment without fileUrl is rejected (400)."""
    st = statement(id=str(uuid.uuid4()), attachments=[notes_attachment(b"attachment bytes")])
    response = alt(bare, "POST", "/statements", with_headers({"content": json.dumps(st)}))
    assert response.status_code == 400
    assert "multipart" in error_message(response)
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


def test_alt8_attachment_with_file_url_is_fine_in_the_form(bare, xapi):
    """ALT-8: attachments referenced by fileUrl need no multipart, so they pass."""
    st = statement(
        id=str(uuid.uuid4()),
        attachments=[notes_attachment(b"abc", fileUrl="https://files.example.com/abc.txt")],
    )
    response = alt(bare, "POST", "/statements", with_headers({"content": json.dumps(st)}))
    assert response.status_code == 200, response.text
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 200


# --- V2-18: removed in 2.0 --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["header", "form"])
@pytest.mark.parametrize("method", ["GET", "PUT", "POST"])
def test_v2_18_alternate_syntax_is_400_for_xapi_2(client_for, bare, xapi, where, method):
    """V2-18: with version 2.0.0 (as a header or a form field) ``?method=`` POSTs are 400 and change nothing."""
    sid = str(uuid.uuid4())
    st = statement(id=sid)
    form = {"statementId": sid, "content": json.dumps(st)} if method == "PUT" else {}
    if method == "POST":
        form = {"content": json.dumps(st)}
    if where == "header":
        client = client_for(version="2.0.0")
    else:
        client, form = bare, {**form, "Authorization": AUTH, "X-Experience-API-Version": "2.0.0"}
    response = alt(client, method, "/statements", form)
    assert response.status_code == 400
    assert "2.0" in error_message(response)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


def test_v2_18_method_parameter_on_a_put_is_400_for_xapi_2(client_for, xapi):
    """V2-18: PUT with ``?method=`` under 2.0 -> 400; nothing stored."""
    st = statement(id=str(uuid.uuid4()))
    response = alt(
        client_for(version="2.0.0"), "POST", "/statements", {"content": json.dumps(st)}, http_method="PUT"
    )
    assert response.status_code == 400
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


def test_v2_18_document_write_via_alternate_syntax_is_400_for_xapi_2(client_for, xapi):
    """V2-18: the form variant on a document resource under 2.0 -> 400; no document is created."""
    params = state_params()
    response = alt(client_for(version="2.0.0"), "PUT", "/activities/state", {**params, "content": '{"a": 1}'})
    assert response.status_code == 400
    assert xapi.get("/activities/state", params=params).status_code == 404
