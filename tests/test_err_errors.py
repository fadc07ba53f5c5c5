"""Error codes and error bodies (checklist section 30, ERR-*; V2-28)."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import statement, unique_activity
from .helpers import error_message, state_params

LIMIT = 2 * 1024 * 1024  # the test server's max_body_bytes
DEFINED = {400, 401, 403, 404, 409, 412, 413, 429, 500}


# --- ERR-1 / ERR-2: 400s and only the codes xAPI names ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "named"),
    [
        ("GET", "/statements", {"limit": "abc"}, None, "limit"),
        ("GET", "/statements", {"limit": "-1"}, None, "limit"),
        ("GET", "/statements", {"since": "not a time"}, None, "since"),
        ("GET", "/statements", {"verb": "not an iri"}, None, "verb"),
        ("GET", "/statements", {"format": "full"}, None, "format"),
        ("GET", "/statements", {"ascending": "yes"}, None, "ascending"),
        ("GET", "/statements", {"Limit": "1"}, None, "Limit"),
        ("GET", "/statements", {"unknown": "1"}, None, "unknown"),
        ("GET", "/statements", {"more": "garbage!"}, None, "more"),
        ("PUT", "/statements", {}, {"verb": "x"}, "statementId"),
        ("PUT", "/statements", {"statementId": "nope"}, {}, "statementId"),
        ("POST", "/statements", {}, {"actor": 1}, "actor"),
        ("POST", "/statements", {"statementId": str(uuid.uuid4())}, {}, "query"),
        ("GET", "/activities/state", {"activityId": "https://example.com/a"}, None, "agent"),
        ("GET", "/agents", {"agent": "{}"}, None, "agent"),
    ],
)
def test_err1_err2_invalid_arguments_are_400_with_a_message(any_xapi, method, path, params, body, named):
    """ERR-1, ERR-2, ERR-4, V2-28: malformed or invalid arguments, unknown or wrong-case parameters are
    400 (never a framework 422 or a 500) with a message naming the problem."""
    response = any_xapi.request(method, path, params=params, json=body)
    assert response.status_code == 400
    assert named in error_message(response, strict=True)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"<statement/>", "application/json"),
        (b'{"actor": ', "application/json"),
        (b"", "application/json"),
        (b'{"a": NaN}', "application/json"),
    ],
)
def test_err2_body_not_matching_its_content_type_is_400(any_xapi, content, content_type):
    """ERR-2: a body that is not what its Content-Type says (here: not JSON) -> 400 with a message."""
    response = any_xapi.post("/statements", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert "JSON" in error_message(response, strict=True)


@pytest.mark.parametrize("method", ["PATCH", "TRACE"])
def test_err1_unsupported_methods_get_an_error_not_a_success(any_xapi, method):
    """ERR-1: methods xAPI does not define on /statements are refused with a client error and nothing
    happens (the status is the HTTP method error; xAPI's list has no better fit)."""
    response = any_xapi.request(method, "/statements", json=statement())
    assert 400 <= response.status_code < 500
    assert response.headers["x-experience-api-version"] == any_xapi.version


# --- ERR-3: the other codes -------------------------------------------------------------------------------


def test_err3_401_403_404_409_412_each_with_a_message(client_for, make_credential, xapi):
    """ERR-3, ERR-4: 401 refused credentials, 403 insufficient rights, 404 unknown statement/document,
    409 statement id conflict and profile PUT without precondition, 412 failed precondition."""
    assert "credentials" in error_message(client_for(auth=None).get("/statements"), strict=True).lower()
    forbidden = client_for(auth=make_credential(["state"])).get("/statements")
    assert forbidden.status_code == 403
    error_message(forbidden, strict=True)
    missing = xapi.get("/statements", params={"statementId": str(uuid.uuid4())})
    assert missing.status_code == 404
    error_message(missing, strict=True)
    no_doc = xapi.get("/activities/state", params=state_params("s"))
    assert no_doc.status_code == 404
    error_message(no_doc, strict=True)
    st = statement(id=str(uuid.uuid4()))
    xapi.store(st)
    conflict = xapi.post("/statements", json={**st, "verb": {"id": "https://example.com/verbs/other"}})
    assert conflict.status_code == 409
    assert st["id"] in error_message(conflict, strict=True)
    profile = {"activityId": unique_activity()["id"], "profileId": "p"}
    assert (
        xapi.put("/activities/profile", params=profile, json={}, headers={"If-None-Match": "*"}).status_code
        == 204
    )
    doc_conflict = xapi.put("/activities/profile", params=profile, json={"x": 1})
    assert doc_conflict.status_code == 409
    assert "If-Match" in error_message(doc_conflict, strict=True)
    failed = xapi.put("/activities/profile", params=profile, json={"x": 1}, headers={"If-Match": '"abc"'})
    assert failed.status_code == 412
    error_message(failed, strict=True)


def test_err3_404_for_unknown_xapi_paths(any_xapi):
    """ERR-3: paths that are no xAPI resource -> 404 with a message naming the path."""
    for path in (
        "/nonexistent",
        "/statement",
        "/activities/states",
        "/agents/profiles",
        "/about/more",
        "/Statements",
    ):
        response = any_xapi.get(path)
        assert response.status_code == 404, path
        assert path in error_message(response, strict=True)
    st = statement(id=str(uuid.uuid4()))
    assert any_xapi.post("/statement", json=st).status_code == 404
    assert any_xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


# --- 413 ------------------------------------------------------------------------------------------------------


def oversized_statement(statement_id: str) -> bytes:
    st = statement(id=statement_id, result={"response": "x" * (LIMIT + 10)})
    return json.dumps(st).encode()


def test_err3_413_for_an_oversized_statement(xapi):
    """ERR-3 (413): a statement body over the LRS's 2 MiB limit -> 413 with a message; not stored."""
    sid = str(uuid.uuid4())
    body = oversized_statement(sid)
    assert len(body) > LIMIT
    response = xapi.post("/statements", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert str(LIMIT) in error_message(response, strict=True)
    assert response.headers["x-experience-api-version"] == "1.0.3"
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


def test_err3_413_for_an_oversized_chunked_body(xapi):
    """ERR-3 (413): the limit also holds when the body arrives chunked, without a Content-Length."""
    sid = str(uuid.uuid4())
    body = oversized_statement(sid)

    def chunks():
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    response = xapi.put(
        "/statements",
        params={"statementId": sid},
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413
    error_message(response, strict=True)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


@pytest.mark.parametrize("chunked", [False, True])
def test_err3_413_for_an_oversized_document_leaves_the_old_one(xapi, chunked):
    """ERR-3 (413), ERR-5: an oversized document PUT -> 413 and the stored document is unchanged."""
    params = state_params("s")
    assert xapi.put("/activities/state", params=params, json={"small": True}).status_code == 204
    big = b"\0" * (LIMIT + 1)
    content = iter([big[: LIMIT // 2], big[LIMIT // 2 :]]) if chunked else big
    response = xapi.put(
        "/activities/state",
        params=params,
        content=content,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 413
    error_message(response, strict=True)
    assert xapi.get("/activities/state", params=params).json() == {"small": True}


def test_err3_a_body_just_under_the_limit_is_accepted(xapi):
    """ERR-3 (413 boundary): a document just under 2 MiB is stored and returned intact."""
    params = state_params("s")
    content = bytes(range(256)) * ((LIMIT - 1024) // 256)
    headers = {"Content-Type": "application/octet-stream"}
    assert xapi.put("/activities/state", params=params, content=content, headers=headers).status_code == 204
    assert xapi.get("/activities/state", params=params).content == content


# --- ERR-4 / ERR-5 -------------------------------------------------------------------------------------------


def test_err4_error_bodies_are_json_with_status_and_message(client_for):
    """ERR-4: every error carries an explanatory message (JSON {"error": {"status", "message"}})."""
    responses = [
        client_for(version=None).get("/statements"),
        client_for(auth=None).get("/statements"),
        client_for().get("/statements", params={"statementId": "x"}),
        client_for().get("/activities"),
    ]
    for response in responses:
        assert response.status_code in DEFINED
        error_message(response, strict=True)


@pytest.mark.parametrize("bad_position", [0, 1, 2])
def test_err5_a_batch_with_one_invalid_statement_stores_nothing(any_xapi, bad_position):
    """ERR-5: if any statement of a batch is rejected the whole batch is (400, message names its index),
    and none of the valid ones is stored."""
    batch = [statement(id=str(uuid.uuid4())) for _ in range(3)]
    batch[bad_position]["verb"] = {"id": "not an iri"}
    response = any_xapi.post("/statements", json=batch)
    assert response.status_code == 400
    assert f"[{bad_position}]" in error_message(response, strict=True)
    for st in batch:
        assert any_xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


def test_err5_a_batch_with_a_conflicting_id_stores_nothing(xapi):
    """ERR-5: a batch holding a statement whose id exists with other content -> 409; the new ones in it
    are not stored either."""
    existing = statement(id=str(uuid.uuid4()))
    xapi.store(existing)
    fresh = statement(id=str(uuid.uuid4()))
    clash = {**existing, "verb": {"id": "https://example.com/verbs/changed"}}
    response = xapi.post("/statements", json=[fresh, clash])
    assert response.status_code == 409
    error_message(response, strict=True)
    assert xapi.get("/statements", params={"statementId": fresh["id"]}).status_code == 404
    assert xapi.get("/statements", params={"statementId": existing["id"]}).json()["verb"] == existing["verb"]


def test_err5_rejected_document_writes_leave_no_trace(xapi):
    """ERR-5, DOC-5: a 412, a 400 merge and a 400 parameter error change neither content nor ETag."""
    params = state_params("s")
    assert xapi.put("/activities/state", params=params, json={"v": 1}).status_code == 204
    before = xapi.get("/activities/state", params=params)
    attempts = [
        xapi.put("/activities/state", params=params, json={"v": 2}, headers={"If-Match": '"stale"'}),
        xapi.post(
            "/activities/state", params=params, content=b"[1]", headers={"Content-Type": "application/json"}
        ),
        xapi.put("/activities/state", params={**params, "registration": "bad"}, json={"v": 3}),
    ]
    assert [r.status_code for r in attempts] == [412, 400, 400]
    after = xapi.get("/activities/state", params=params)
    assert after.content == before.content
    assert after.headers["etag"] == before.headers["etag"]
    assert after.headers["last-modified"] == before.headers["last-modified"]
