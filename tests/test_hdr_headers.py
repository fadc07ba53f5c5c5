"""Headers, versioning, encoding and HEAD (checklist section 1, HDR-*; V2-1, V2-2, V2-25, V2-28)."""

from __future__ import annotations

import json
import uuid
from email.utils import parsedate_to_datetime

import pytest

from .conftest import statement, unique_activity, unique_agent
from .helpers import error_message

VERSION = "X-Experience-API-Version"
SUPPORTED = {"1.0.3", "2.0.0"}

# Every xAPI resource with the method that needs no body; About is the exception of HDR-1.
NEEDS_VERSION = [
    ("GET", "/statements"),
    ("GET", "/activities"),
    ("GET", "/activities/state"),
    ("GET", "/activities/profile"),
    ("GET", "/agents"),
    ("GET", "/agents/profile"),
    ("HEAD", "/statements"),
    ("POST", "/statements"),
    ("PUT", "/statements"),
    ("PUT", "/activities/state"),
    ("POST", "/activities/profile"),
    ("DELETE", "/agents/profile"),
]


def seeded_resources(xapi) -> dict[str, tuple[str, dict]]:
    """One of each GET resource with data behind it: name -> (path, params)."""
    agent, activity = unique_agent("Héad"), unique_activity(name={"en-US": "head"})
    (sid,) = xapi.store(statement(agent, obj=activity))
    agent_json = json.dumps(agent)
    state = {"activityId": activity["id"], "agent": agent_json, "stateId": "s1"}
    aprof = {"activityId": activity["id"], "profileId": "p1"}
    gprof = {"agent": agent_json, "profileId": "p1"}
    for path, params in (
        ("/activities/state", state),
        ("/activities/profile", aprof),
        ("/agents/profile", gprof),
    ):
        assert xapi.put(path, params=params, json={"x": 1}, headers={"If-None-Match": "*"}).status_code == 204
    return {
        "statement": ("/statements", {"statementId": sid}),
        "statements": ("/statements", {"activity": activity["id"]}),
        "activity": ("/activities", {"activityId": activity["id"]}),
        "state": ("/activities/state", state),
        "state ids": ("/activities/state", {"activityId": activity["id"], "agent": agent_json}),
        "activity profile": ("/activities/profile", aprof),
        "activity profile ids": ("/activities/profile", {"activityId": activity["id"]}),
        "agent": ("/agents", {"agent": agent_json}),
        "agent profile": ("/agents/profile", gprof),
        "agent profile ids": ("/agents/profile", {"agent": agent_json}),
        "about": ("/about", {}),
    }


# --- HDR-1 / HDR-2 / HDR-4 / V2-1: the version header ---------------------------------------------


@pytest.mark.parametrize(("method", "path"), NEEDS_VERSION)
def test_hdr1_missing_version_header_is_400_on_every_resource(client_for, method, path):
    """HDR-1: no X-Experience-API-Version -> 400 with a reason, on every resource but About."""
    client = client_for(version=None)
    response = client.request(method, path, json={} if method in ("PUT", "POST") else None)
    assert response.status_code == 400
    if method != "HEAD":
        assert VERSION in error_message(response)


def test_hdr1_missing_version_rejected_before_anything_is_stored(client_for, xapi):
    """HDR-1, ERR-5: a statement POSTed without the version header is not stored."""
    st = statement(id=str(uuid.uuid4()))
    response = client_for(version=None).post("/statements", json=st)
    assert response.status_code == 400
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


@pytest.mark.parametrize(
    ("sent", "answered"),
    [
        ("1.0", "1.0.3"),
        ("1.0.0", "1.0.3"),
        ("1.0.1", "1.0.3"),
        ("1.0.2", "1.0.3"),
        ("1.0.3", "1.0.3"),
        ("1.0.9", "1.0.3"),
        ("2.0", "2.0.0"),
        ("2.0.0", "2.0.0"),
        ("2.0.1", "2.0.0"),
    ],
)
def test_hdr2_v2_1_accepted_versions_answer_latest_patch(client_for, sent, answered):
    """HDR-2, HDR-3, V2-1, V2-2: 1.0 / 1.0.x / 2.0 / 2.0.x are accepted; the response names the
    latest patch of the requested major version (the LRS branches on the request's version)."""
    agent, activity = unique_agent(), unique_activity()
    client = client_for(version=sent)
    response = client.post("/statements", json=statement(agent, obj=activity))
    assert response.status_code == 200, response.text
    assert response.headers[VERSION] == answered
    found = client.get("/statements", params={"agent": json.dumps(agent)})
    assert found.status_code == 200
    assert found.headers[VERSION] == answered
    assert len(found.json()["statements"]) == 1


@pytest.mark.parametrize("sent", ["0.9", "0.95", "1.1.0", "1.1", "2.1.0", "3.0.0", "1", "garbage", ""])
def test_hdr2_v2_1_unsupported_versions_are_400(client_for, xapi, sent):
    """HDR-2, V2-1: versions before 1.0.0, 1.1.0 and later, and garbage are 400; nothing is stored."""
    st = statement(id=str(uuid.uuid4()))
    client = client_for(version=None)
    response = client.post("/statements", json=st, headers={VERSION: sent})
    assert response.status_code == 400
    assert "X-Experience-API-Version" in error_message(response)
    assert response.headers[VERSION] in SUPPORTED
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


@pytest.mark.parametrize("sent", [None, "0.9", "garbage"])
def test_hdr4_about_ignores_the_version_header(client_for, sent):
    """HDR-4, ABT-4: About answers 200 without a version header, or with an unsupported one."""
    client = client_for(auth=None, version=None)
    response = client.get("/about", headers={VERSION: sent} if sent is not None else None)
    assert response.status_code == 200
    assert "1.0.3" in response.json()["version"]
    assert response.headers[VERSION] in SUPPORTED


# --- HDR-3: the version header on every response -----------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_hdr3_version_header_on_success_and_error_responses(client_for, version):
    """HDR-3, V2-1, V2-28: 200, 204, 400, 401, 404 and 409 responses all carry the request's version."""
    admin = client_for(version=version)
    anonymous = client_for(auth=None, version=version)
    st = statement(id=str(uuid.uuid4()))
    other = statement(id=st["id"], verb="attempted", actor=st["actor"], obj=st["object"])
    agent = json.dumps(unique_agent())
    activity = unique_activity()["id"]
    state = {"activityId": activity, "agent": agent, "stateId": "x"}
    responses = {
        200: admin.post("/statements", json=st),
        204: admin.put("/activities/state", params=state, json={"a": 1}),
        400: admin.get("/statements", params={"bogus": "1"}),
        401: anonymous.get("/statements"),
        404: admin.get("/statements", params={"statementId": str(uuid.uuid4())}),
        409: admin.post("/statements", json=other),
    }
    for status, response in responses.items():
        assert response.status_code == status, response.text
        assert response.headers.get(VERSION) == version, status


def test_hdr3_version_header_on_a_400_for_a_missing_version(client_for):
    """HDR-3: even the 400 for a missing version header says which version the LRS speaks."""
    response = client_for(version=None).get("/statements")
    assert response.status_code == 400
    assert response.headers[VERSION] in SUPPORTED


def test_hdr3_version_header_on_about_and_unknown_paths(client_for):
    """HDR-3: About and a 404 for an unknown xAPI path carry the version header too."""
    assert client_for(auth=None, version=None).get("/about").headers[VERSION] in SUPPORTED
    response = client_for(version="1.0.3").get("/nonexistent")
    assert response.status_code == 404
    assert response.headers[VERSION] == "1.0.3"


# --- HDR-5: UTF-8 ------------------------------------------------------------------------------------------


def test_hdr5_non_ascii_statement_round_trips_unchanged(any_xapi):
    """HDR-5: UTF-8 in and out; names, language maps and results keep every character."""
    agent = unique_agent("Zoë Ñúñez 学习者 🚀")
    activity = unique_activity(
        name={"ja-JP": "日本語のテスト", "el-GR": "Ελληνικά", "en-US": "naïve café"},
        description={"ar": "اختبار"},
    )
    st = statement(agent, obj=activity, result={"response": "réponse – ünïcödé ✓"}, id=str(uuid.uuid4()))
    body = json.dumps(st, ensure_ascii=False).encode("utf-8")
    assert "学".encode() in body  # really sent as UTF-8, not as \\u escapes
    response = any_xapi.post("/statements", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    got = any_xapi.get("/statements", params={"statementId": st["id"]})
    assert got.status_code == 200
    decoded = got.content.decode("utf-8")
    assert "学习者" in decoded or "\\u5b66" in decoded
    found = got.json()
    assert found["actor"] == agent
    assert found["object"]["definition"] == activity["definition"]
    assert found["result"] == st["result"]


def test_hdr5_body_that_is_not_utf8_is_400(xapi):
    """HDR-5: a body in another encoding (Latin-1 bytes) is rejected, not guessed; nothing stored."""
    st = statement(unique_agent("Zoë"), id=str(uuid.uuid4()))
    body = json.dumps(st, ensure_ascii=False).encode("latin-1")
    response = xapi.post("/statements", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "UTF-8" in error_message(response)
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


def test_hdr5_utf8_document_and_query_parameters(xapi):
    """HDR-5: non-ASCII document ids, agent names in parameters, and document content round-trip."""
    agent = json.dumps(unique_agent("Jürgen 山田"))
    params = {"activityId": unique_activity()["id"], "agent": agent, "stateId": "état-状態"}
    content = "Grüße, 世界 🌍".encode()
    put = xapi.put(
        "/activities/state", params=params, content=content, headers={"Content-Type": "text/plain"}
    )
    assert put.status_code == 204
    got = xapi.get("/activities/state", params=params)
    assert got.status_code == 200
    assert got.content == content
    ids = xapi.get("/activities/state", params={k: v for k, v in params.items() if k != "stateId"})
    assert ids.json() == ["état-状態"]


# --- HDR-6 / HDR-7: HEAD -----------------------------------------------------------------------------------

COMPARED = ("content-type", "etag", "last-modified", "x-experience-api-version")


@pytest.mark.parametrize(
    "name",
    [
        "statement", "statements", "activity", "state", "state ids", "activity profile",
        "activity profile ids", "agent", "agent profile", "agent profile ids", "about",
    ],
)  # fmt: skip
def test_hdr6_head_answers_like_get_without_a_body(xapi, name):
    """HDR-6: HEAD exists wherever GET does, with GET's status and headers and an empty body."""
    path, params = seeded_resources(xapi)[name]
    got = xapi.get(path, params=params)
    head = xapi.head(path, params=params)
    assert got.status_code == 200, got.text
    assert head.status_code == 200
    assert got.content  # GET has a body ...
    assert head.content == b""  # ... HEAD has none
    names = lambda r: {k.lower() for k in r.headers} - {"date", "content-length"}  # noqa: E731
    assert names(head) == names(got)
    for header in COMPARED:
        assert head.headers.get(header) == got.headers.get(header), header
    if "content-length" in head.headers:
        assert head.headers["content-length"] == got.headers["content-length"]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/statements", {"statementId": "not-a-uuid"}, 400),
        ("/statements", {"statementId": "d1b0f3f2-33a8-4d0c-8d8b-6c2b1e3f9a10"}, 404),
        ("/activities/state", {"activityId": "https://example.com/a", "agent": "{}", "stateId": "x"}, 400),
        ("/activities", {}, 400),
    ],
)
def test_hdr6_head_errors_match_get_errors(xapi, path, params, status):
    """HDR-6: HEAD gives the same error status as GET would, still without a body."""
    assert xapi.get(path, params=params).status_code == status
    head = xapi.head(path, params=params)
    assert head.status_code == status
    assert head.content == b""
    assert head.headers[VERSION] == "1.0.3"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_hdr7_get_and_head_without_content_length(xapi, method):
    """HDR-7: GET and HEAD requests carrying no Content-Length are accepted."""
    response = xapi.request(method, "/statements", params={"limit": 1})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert "transfer-encoding" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 200


# --- HDR-8 / HDR-9: Content-Type ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=xyz",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        None,
    ],
)
def test_hdr8_statement_writes_need_json_or_multipart_mixed(xapi, method, content_type):
    """HDR-8: PUT/POST /statements with any Content-Type but application/json or multipart/mixed -> 400."""
    sid = str(uuid.uuid4())
    body = json.dumps(statement(id=sid)).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    params = {"statementId": sid} if method == "PUT" else None
    response = xapi.request(method, "/statements", params=params, content=body, headers=headers)
    assert response.status_code == 400
    assert "Content-Type" in error_message(response)
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 404


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_hdr8_json_content_type_variants_accepted(xapi, content_type):
    """HDR-8: application/json, with parameters or in another case, is accepted."""
    sid = str(uuid.uuid4())
    body = json.dumps(statement(id=sid)).encode()
    response = xapi.put(
        "/statements", params={"statementId": sid}, content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 204, response.text
    assert xapi.get("/statements", params={"statementId": sid}).status_code == 200


def test_hdr9_statement_get_responses_have_a_content_type(xapi):
    """HDR-9: GET /statements answers application/json, or multipart/mixed when attachments=true."""
    activity = unique_activity()
    (sid,) = xapi.store(statement(obj=activity))
    for params in ({"statementId": sid}, {"activity": activity["id"]}):
        response = xapi.get("/statements", params=params)
        assert response.headers["content-type"].split(";")[0] == "application/json"
        with_attachments = xapi.get("/statements", params={**params, "attachments": "true"})
        assert with_attachments.status_code == 200
        assert with_attachments.headers["content-type"].startswith("multipart/mixed")
        assert "boundary=" in with_attachments.headers["content-type"]


# --- HDR-10: Accept-Language ------------------------------------------------------------------------------


def test_hdr10_accept_language_applies_only_to_canonical_format(xapi):
    """HDR-10: Accept-Language picks one language per map with format=canonical only; exact and
    ids formats ignore it."""
    names = {"en-US": "Hello", "fr-FR": "Bonjour", "de-DE": "Hallo"}
    activity = unique_activity(name=names)
    (sid,) = xapi.store(statement(obj=activity))
    headers = {"Accept-Language": "fr-FR"}
    exact = xapi.get("/statements", params={"statementId": sid}, headers=headers).json()
    assert exact["object"]["definition"]["name"] == names
    default = xapi.get("/statements", params={"statementId": sid, "format": "exact"}, headers=headers).json()
    assert default["object"]["definition"]["name"] == names
    canonical = xapi.get(
        "/statements", params={"statementId": sid, "format": "canonical"}, headers=headers
    ).json()
    assert canonical["object"]["definition"]["name"] == {"fr-FR": "Bonjour"}
    german = xapi.get(
        "/statements", params={"statementId": sid, "format": "canonical"}, headers={"Accept-Language": "de"}
    ).json()
    assert german["object"]["definition"]["name"] == {"de-DE": "Hallo"}
    ids = xapi.get("/statements", params={"statementId": sid, "format": "ids"}, headers=headers).json()
    assert "definition" not in ids["object"]


# --- HDR-11: the expected response headers -----------------------------------------------------------


def test_hdr11_expected_headers_on_statement_and_document_responses(xapi):
    """HDR-11: Content-Type, Content-Length, Last-Modified, ETag (documents), X-Experience-API-Version
    and X-Experience-API-Consistent-Through (statements) are sent."""
    resources = seeded_resources(xapi)
    path, params = resources["statements"]
    statements = xapi.get(path, params=params)
    for header in (
        "content-type",
        "content-length",
        "last-modified",
        VERSION,
        "X-Experience-API-Consistent-Through",
    ):
        assert header in statements.headers, header
    assert int(statements.headers["content-length"]) == len(statements.content)
    parsedate_to_datetime(statements.headers["last-modified"])  # a valid HTTP date
    single = xapi.get(resources["statement"][0], params=resources["statement"][1])
    assert "last-modified" in single.headers and "X-Experience-API-Consistent-Through" in single.headers
    for name in ("state", "activity profile", "agent profile"):
        document = xapi.get(resources[name][0], params=resources[name][1])
        for header in ("content-type", "content-length", "last-modified", "etag", VERSION):
            assert header in document.headers, (name, header)
        assert int(document.headers["content-length"]) == len(document.content)


# --- HDR-12 / HDR-13 / V2-25: what the LRS does not change or judge -------------------------------


def test_hdr12_statements_are_not_converted_between_versions(xapi, xapi2):
    """HDR-12: a 2.0.0 statement read by a 1.0.3 client is not down-converted, and a 1.0.0 statement
    read by a 2.0 client keeps its version and actor/verb/object."""
    newer = statement(version="2.0.0", id=str(uuid.uuid4()))
    older = statement(version="1.0.0", id=str(uuid.uuid4()))
    assert xapi2.post("/statements", json=newer).status_code == 200
    assert xapi.post("/statements", json=older).status_code == 200
    read_newer = xapi.get("/statements", params={"statementId": newer["id"]}).json()
    read_older = xapi2.get("/statements", params={"statementId": older["id"]}).json()
    assert read_newer["version"] == "2.0.0"
    assert read_older["version"] == "1.0.0"
    for original, read in ((newer, read_newer), (older, read_older)):
        for key in ("actor", "verb", "object"):
            assert read[key] == original[key]


def test_hdr13_validation_is_structural_not_semantic(any_xapi):
    """HDR-13, V2-28: a made-up verb, an odd activity type and an implausible result are accepted."""
    st = statement(
        verb="https://example.com/verbs/levitated-over",
        obj=unique_activity(type="https://example.com/types/never-heard-of-it", name={"en-US": "?"}),
        result={"success": False, "completion": True, "score": {"raw": -999}},
        id=str(uuid.uuid4()),
    )
    response = any_xapi.post("/statements", json=st)
    assert response.status_code == 200, response.text
    assert any_xapi.get("/statements", params={"statementId": st["id"]}).json()["verb"] == st["verb"]


def test_v2_25_long_response_patterns_are_not_limited(any_xapi):
    """V2-25: no character limit on result.response nor on correctResponsesPattern entries/length."""
    long_pattern = "[,]".join(f"choice-{i}" for i in range(400))
    activity = unique_activity(
        type="http://adlnet.gov/expapi/activities/cmi.interaction",
        interactionType="choice",
        correctResponsesPattern=[long_pattern] + [f"alt-{i}" for i in range(300)],
        choices=[{"id": f"choice-{i}", "description": {"en-US": str(i)}} for i in range(400)],
    )
    st = statement(obj=activity, result={"response": "x" * 20000}, id=str(uuid.uuid4()))
    response = any_xapi.post("/statements", json=st)
    assert response.status_code == 200, response.text
    got = any_xapi.get("/statements", params={"statementId": st["id"]}).json()
    assert got["result"]["response"] == "x" * 20000
    assert got["object"]["definition"]["correctResponsesPattern"][0] == long_pattern
