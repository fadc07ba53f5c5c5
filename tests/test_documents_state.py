"""Document resources in common and the State resource (checklist sections 22 DOC-*, 23 CONC-* for
State, 24 STATE-*; V2-15, V2-17 documents part, V2-28).

DOC-* tests run against all three document resources (State, Activity Profile, Agent Profile);
the profile-specific rules are in test_documents_profiles.py.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from email.utils import parsedate_to_datetime

import pytest

from .conftest import unique_activity, unique_agent
from .helpers import CREATE, error_message, instant, server_now, sha1_etag

STATE = "/activities/state"
KINDS = ("state", "activity profile", "agent profile")
BINARY = bytes(range(256)) * 8 + b"\x00\xff\r\n\x1a"


def state_scope(registration: str | None = None) -> dict:
    scope = {"activityId": unique_activity()["id"], "agent": json.dumps(unique_agent())}
    if registration:
        scope["registration"] = registration
    return scope


def document(kind: str) -> tuple[str, dict, str]:
    """(path, scope parameters, name of the id parameter) for a fresh document of ``kind``."""
    if kind == "state":
        return STATE, state_scope(), "stateId"
    if kind == "activity profile":
        return "/activities/profile", {"activityId": unique_activity()["id"]}, "profileId"
    return "/agents/profile", {"agent": json.dumps(unique_agent())}, "profileId"


def doc_params(kind: str, doc_id: str = "doc") -> tuple[str, dict]:
    path, scope, id_name = document(kind)
    return path, {**scope, id_name: doc_id}


def http_time(response) -> datetime:
    return parsedate_to_datetime(response.headers["last-modified"])


def wait_for_server_second_after(xapi, moment: datetime) -> None:
    """Poll the LRS clock (Consistent-Through = database now) until a later whole second began:
    Last-Modified has one-second resolution, so only then can an update show a later value."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        header = xapi.get("/statements", params={"limit": 1}).headers["x-experience-api-consistent-through"]
        if instant(header).replace(microsecond=0) > moment:
            return
        time.sleep(0.02)  # throttles the polling; the condition above is what we wait for
    raise AssertionError("the LRS clock did not advance")


# --- DOC-1 .. DOC-9: all document resources ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (BINARY, "application/octet-stream"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(200)), "image/png"),
        ("plain text – ünïcode".encode(), "text/plain; charset=utf-8"),
        (b'{"json": true}', "application/json"),
    ],
)
def test_doc1_any_content_type_round_trips_byte_exact(any_xapi, kind, content, content_type):
    """DOC-1, CONC-1, CONC-2, V2-28: any content is stored for unknown activities/agents and read back
    byte for byte with its Content-Type; the ETag is the quoted SHA-1 hex of the content."""
    path, params = doc_params(kind)
    put = any_xapi.put(path, params=params, content=content, headers={"Content-Type": content_type, **CREATE})
    assert put.status_code == 204, put.text
    got = any_xapi.get(path, params=params)
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-type"].replace(" ", "") == content_type.replace(" ", "")
    assert got.headers["etag"] == sha1_etag(content)


@pytest.mark.parametrize("kind", KINDS)
def test_doc2_post_merges_json_objects_shallowly(any_xapi, kind):
    """DOC-2, APRF-6, GPRF-5: POST of a JSON object onto a JSON object document -> 204; top-level keys
    of the new object overwrite, nested objects are replaced wholesale, other keys stay."""
    path, params = doc_params(kind)
    first = {"a": 1, "keep": "me", "n": {"x": 1, "y": 1}}
    assert any_xapi.put(path, params=params, json=first, headers=CREATE).status_code == 204
    merged = any_xapi.post(path, params=params, json={"a": 2, "b": [1, 2], "n": {"z": 3}})
    assert merged.status_code == 204, merged.text
    got = any_xapi.get(path, params=params)
    assert got.json() == {"a": 2, "keep": "me", "b": [1, 2], "n": {"z": 3}}
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["etag"] == sha1_etag(got.content)


@pytest.mark.parametrize("kind", KINDS)
def test_doc3_post_onto_a_missing_document_creates_it(any_xapi, kind):
    """DOC-3: POST where no document exists stores it as new -> 204."""
    path, params = doc_params(kind)
    assert any_xapi.get(path, params=params).status_code == 404
    assert any_xapi.post(path, params=params, json={"fresh": True}).status_code == 204
    assert any_xapi.get(path, params=params).json() == {"fresh": True}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("stored", "stored_type", "posted", "posted_type"),
    [
        (b"plain", "text/plain", b'{"b": 2}', "application/json"),  # stored side not JSON
        (b'{"a": 1}', "application/json", b'{"b": 2}', "text/plain"),  # posted side not JSON
        (b'{"a": 1}', "application/json", b"[1, 2]", "application/json"),  # posted JSON not an object
        (b'{"a": 1}', "application/json", b"{not json", "application/json"),  # posted unparsable
        (b"[1, 2]", "application/json", b'{"b": 2}', "application/json"),  # stored JSON not an object
        (b"{broken", "application/json", b'{"b": 2}', "application/json"),  # stored unparsable
        (b'{"a": 1}', "application/json", b'{"b": 2}', None),  # posted without a Content-Type
    ],
)
def test_doc4_doc5_merge_needs_json_objects_on_both_sides(
    xapi, kind, stored, stored_type, posted, posted_type
):
    """DOC-4, DOC-5, ERR-5: POST merge when either side is not an application/json object -> 400 with
    a message, and the stored document (content, type, ETag) is untouched."""
    path, params = doc_params(kind)
    put = xapi.put(path, params=params, content=stored, headers={"Content-Type": stored_type, **CREATE})
    assert put.status_code == 204
    before = xapi.get(path, params=params)
    headers = {"Content-Type": posted_type} if posted_type else {}
    response = xapi.post(path, params=params, content=posted, headers=headers)
    assert response.status_code == 400
    assert "json" in error_message(response).lower()
    after = xapi.get(path, params=params)
    assert after.content == stored
    assert after.headers["etag"] == before.headers["etag"]
    assert after.headers["content-type"] == before.headers["content-type"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("body", [b'"just a string"', b"1", b"true"])
def test_doc3_post_of_a_non_object_onto_a_missing_document_creates_it(any_xapi, kind, body):
    """DOC-3, DOC-1: POST onto a missing document stores it like a PUT, whatever JSON it holds; the
    ADL suite posts ``1`` and ``true`` and expects 204 ("cannot reject a POST based on the contents
    of the document"). Merging (and its JSON-object rule, DOC-4) applies only to existing documents."""
    path, params = doc_params(kind)
    response = any_xapi.post(path, params=params, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 204
    stored = any_xapi.get(path, params=params)
    assert stored.status_code == 200
    assert stored.content == body


@pytest.mark.parametrize("kind", KINDS)
def test_doc6_since_lists_only_documents_updated_after_it(any_xapi, kind):
    """DOC-6, STATE-4, APRF-4, GPRF-4: the id list with ``since`` holds only ids updated strictly
    after it (an update moves an old id past it); without ``since`` every id is listed."""
    path, scope, id_name = document(kind)
    for doc_id in ("old", "touched"):
        assert (
            any_xapi.put(path, params={**scope, id_name: doc_id}, json={"v": 1}, headers=CREATE).status_code
            == 204
        )
    middle = server_now(any_xapi)
    for doc_id in ("new-1", "new-2"):
        assert (
            any_xapi.put(path, params={**scope, id_name: doc_id}, json={"v": 2}, headers=CREATE).status_code
            == 204
        )
    assert any_xapi.post(path, params={**scope, id_name: "touched"}, json={"w": 2}).status_code == 204
    after = any_xapi.get(path, params={**scope, "since": middle})
    assert after.status_code == 200
    assert sorted(after.json()) == ["new-1", "new-2", "touched"]
    assert sorted(any_xapi.get(path, params=scope).json()) == ["new-1", "new-2", "old", "touched"]
    assert any_xapi.get(path, params={**scope, "since": server_now(any_xapi)}).json() == []


@pytest.mark.parametrize("kind", KINDS)
def test_doc6_invalid_since_is_400(any_xapi, kind):
    """DOC-6: an invalid ``since`` timestamp -> 400 naming the parameter."""
    path, scope, _ = document(kind)
    for since in ("yesterday", "2024-13-01T00:00:00Z", "2024-01-01T00:00:00-00:00", "1700000000", ""):
        response = any_xapi.get(path, params={**scope, "since": since})
        assert response.status_code == 400, since
        assert "since" in error_message(response), since


@pytest.mark.parametrize("kind", KINDS)
def test_doc7_last_modified_on_single_and_id_list_gets(any_xapi, kind):
    """DOC-7: Last-Modified on a single GET (the update time: between the LRS clock read just before and
    just after the write, to the second) and on the id list (the latest of the set)."""
    path, scope, id_name = document(kind)
    modified = []
    for doc_id in ("one", "two"):
        before = instant(server_now(any_xapi)).replace(microsecond=0)
        assert (
            any_xapi.put(
                path, params={**scope, id_name: doc_id}, json={"id": doc_id}, headers=CREATE
            ).status_code
            == 204
        )
        after = instant(server_now(any_xapi))
        got = any_xapi.get(path, params={**scope, id_name: doc_id})
        modified.append(http_time(got))
        assert before <= modified[-1] <= after
    listing = any_xapi.get(path, params=scope)
    assert listing.json() == ["one", "two"]
    assert http_time(listing) == max(modified)


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_doc7_v2_17_last_modified_advances_after_an_update(client_for, version):
    """DOC-7, V2-17: after an update the Last-Modified of the document (and of its id list) is later
    than before. (Last-Modified has one-second resolution, so the update waits for the LRS clock to
    enter a later second first.)"""
    xapi = client_for(version=version)
    docs = [doc_params(kind) for kind in KINDS]
    first = {}
    for path, params in docs:
        assert xapi.put(path, params=params, json={"v": 1}, headers=CREATE).status_code == 204
        first[path] = http_time(xapi.get(path, params=params))
    wait_for_server_second_after(xapi, max(first.values()))
    for path, params in docs:
        etag = xapi.get(path, params=params).headers["etag"]
        assert xapi.put(path, params=params, json={"v": 2}, headers={"If-Match": etag}).status_code == 204
        updated = xapi.get(path, params=params)
        assert updated.json() == {"v": 2}
        assert http_time(updated) > first[path], path
        id_list = {k: v for k, v in params.items() if k not in ("stateId", "profileId")}
        assert http_time(xapi.get(path, params=id_list)) == http_time(updated)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("agent", "true"),
        ("agent", "{not json"),
        ("agent", '{"objectType": "Agent", "name": "no ifi"}'),
        ("agent", '{"mbox": "someone@example.com"}'),
        ("agent", '{"mbox": "mailto:a@example.com", "openid": "https://example.com/a"}'),
        ("agent", '["mailto:a@example.com"]'),
        ("activityId", "not an iri"),
        ("activityId", "true"),
        ("registration", "not-a-uuid"),
        ("registration", "12345678-1234-1234-1234-1234567890"),
    ],
)
def test_doc8_parameter_values_are_validated(xapi, kind, name, value):
    """DOC-8: agent must be a JSON Agent, activityId an IRI, registration a UUID -> else 400 naming the
    parameter on GET, PUT, POST and DELETE (on resources that do not take it, the parameter is unknown
    -> 400 as well), and a rejected write creates nothing."""
    path, params = doc_params(kind)
    for method in ("GET", "PUT", "POST", "DELETE"):
        body = {"a": 1} if method in ("PUT", "POST") else None
        response = xapi.request(method, path, params={**params, name: value}, json=body)
        assert response.status_code == 400, method
        assert name in error_message(response), method
    assert xapi.get(path, params=params).status_code == 404


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("doc_id", ["123", "true", '{"a": 1}', "null", "with space/and?query&chars=1"])
def test_doc9_document_ids_are_plain_strings(xapi, kind, doc_id):
    """DOC-9: ids are strings — values that look like numbers, booleans, JSON or carry URL syntax are
    just ids, stored and listed verbatim (query parameters cannot carry other JSON types)."""
    path, scope, id_name = document(kind)
    params = {**scope, id_name: doc_id}
    assert xapi.put(path, params=params, json={"id": doc_id}, headers=CREATE).status_code == 204
    assert xapi.get(path, params=params).json() == {"id": doc_id}
    assert xapi.get(path, params=scope).json() == [doc_id]


@pytest.mark.parametrize("kind", KINDS)
def test_doc9_empty_document_id_is_400(xapi, kind):
    """DOC-9: an empty id is not an id -> 400 naming it on every method; nothing created or deleted."""
    path, scope, id_name = document(kind)
    assert xapi.put(path, params={**scope, id_name: "keep"}, json={"k": 1}, headers=CREATE).status_code == 204
    for method in ("GET", "PUT", "POST", "DELETE"):
        body = {"a": 1} if method in ("PUT", "POST") else None
        response = xapi.request(method, path, params={**scope, id_name: ""}, json=body)
        assert response.status_code == 400, method
        assert id_name in error_message(response), method
    assert xapi.get(path, params=scope).json() == ["keep"]


# --- STATE-1 .. STATE-8 -------------------------------------------------------------------------------


def test_state1_state3_every_method_and_its_status(any_xapi):
    """STATE-1, STATE-3, V2-28: PUT 204, POST 204, GET with stateId 200 + document, DELETE 204."""
    params = {**state_scope(), "stateId": "bookmark"}
    put = any_xapi.put(STATE, params=params, json={"page": 1})
    assert put.status_code == 204
    assert put.content == b""
    assert any_xapi.post(STATE, params=params, json={"chapter": 2}).status_code == 204
    got = any_xapi.get(STATE, params=params)
    assert got.status_code == 200
    assert got.json() == {"page": 1, "chapter": 2}
    deleted = any_xapi.delete(STATE, params=params)
    assert deleted.status_code == 204
    assert any_xapi.get(STATE, params=params).status_code == 404


@pytest.mark.parametrize(
    ("method", "missing"),
    [
        ("GET", "activityId"), ("GET", "agent"),
        ("PUT", "activityId"), ("PUT", "agent"), ("PUT", "stateId"),
        ("POST", "activityId"), ("POST", "agent"), ("POST", "stateId"),
        ("DELETE", "activityId"), ("DELETE", "agent"),
    ],
)  # fmt: skip
def test_state2_required_parameters(any_xapi, method, missing):
    """STATE-2: activityId and agent are required on every method, stateId on PUT/POST -> 400 naming it."""
    params = {**state_scope(), "stateId": "s"}
    del params[missing]
    response = any_xapi.request(
        method, STATE, params=params, json={"a": 1} if method in ("PUT", "POST") else None
    )
    assert response.status_code == 400
    assert missing in error_message(response)


def test_state2_registration_is_optional_and_accepted_on_every_method(any_xapi):
    """STATE-2: registration (a UUID, any case) may be given on PUT, POST, GET and DELETE."""
    registration = str(uuid.uuid4())
    params = {**state_scope(registration), "stateId": "s"}
    assert any_xapi.put(STATE, params=params, json={"a": 1}).status_code == 204
    assert any_xapi.post(STATE, params=params, json={"b": 2}).status_code == 204
    upper = {**params, "registration": registration.upper()}
    assert any_xapi.get(STATE, params=upper).json() == {"a": 1, "b": 2}
    assert any_xapi.delete(STATE, params=params).status_code == 204
    assert any_xapi.get(STATE, params=params).status_code == 404


def test_state4_id_list_for_activity_agent_and_registration(any_xapi):
    """STATE-4: GET without stateId -> 200 + JSON array of the stateIds of that activity + agent
    (+ registration); other agents', activities' and registrations' ids are not listed."""
    registration = str(uuid.uuid4())
    scope = state_scope(registration)
    for state_id in ("b", "a", "c"):
        assert any_xapi.put(STATE, params={**scope, "stateId": state_id}, json={}).status_code == 204
    other_agent = {**scope, "agent": json.dumps(unique_agent()), "stateId": "other-agent"}
    other_activity = {**scope, "activityId": unique_activity()["id"], "stateId": "other-activity"}
    other_registration = {**scope, "registration": str(uuid.uuid4()), "stateId": "other-registration"}
    for params in (other_agent, other_activity, other_registration):
        assert any_xapi.put(STATE, params=params, json={}).status_code == 204
    listing = any_xapi.get(STATE, params=scope)
    assert listing.status_code == 200
    assert listing.headers["content-type"].startswith("application/json")
    assert sorted(listing.json()) == ["a", "b", "c"]
    assert any_xapi.get(STATE, params=state_scope()).json() == []


def test_state5_delete_without_state_id_clears_the_context(any_xapi):
    """STATE-5: DELETE without stateId removes every state of activity + agent + registration -> 204;
    another registration's states and another agent's states survive."""
    registration = str(uuid.uuid4())
    scope = state_scope(registration)
    for state_id in ("x", "y"):
        assert any_xapi.put(STATE, params={**scope, "stateId": state_id}, json={}).status_code == 204
    other_registration = {**scope, "registration": str(uuid.uuid4())}
    other_agent = {**scope, "agent": json.dumps(unique_agent())}
    for params in (other_registration, other_agent):
        assert (
            any_xapi.put(STATE, params={**params, "stateId": "x"}, json={"survives": True}).status_code == 204
        )
    response = any_xapi.delete(STATE, params=scope)
    assert response.status_code == 204
    assert any_xapi.get(STATE, params=scope).json() == []
    assert any_xapi.get(STATE, params={**scope, "stateId": "x"}).status_code == 404
    for params in (other_registration, other_agent):
        assert any_xapi.get(STATE, params={**params, "stateId": "x"}).json() == {"survives": True}


def test_state6_registration_scopes_documents(any_xapi):
    """STATE-6: the same stateId under two registrations (and under none) are three documents."""
    scope = state_scope()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    variants = {
        "none": scope,
        "first": {**scope, "registration": first},
        "second": {**scope, "registration": second},
    }
    for label, params in variants.items():
        assert (
            any_xapi.put(STATE, params={**params, "stateId": "same"}, json={"reg": label}).status_code == 204
        )
    for label, params in variants.items():
        assert any_xapi.get(STATE, params={**params, "stateId": "same"}).json() == {"reg": label}
    assert any_xapi.delete(STATE, params={**variants["first"], "stateId": "same"}).status_code == 204
    assert any_xapi.get(STATE, params={**variants["first"], "stateId": "same"}).status_code == 404
    assert any_xapi.get(STATE, params={**variants["second"], "stateId": "same"}).json() == {"reg": "second"}
    assert any_xapi.get(STATE, params={**variants["none"], "stateId": "same"}).json() == {"reg": "none"}


def test_state7_missing_single_document_is_404(any_xapi):
    """STATE-7: GET of a stateId that does not exist -> 404 with a message; HEAD too."""
    params = {**state_scope(), "stateId": "never-written"}
    response = any_xapi.get(STATE, params=params)
    assert response.status_code == 404
    assert "never-written" in error_message(response)
    assert any_xapi.head(STATE, params=params).status_code == 404


def test_state8_since_is_not_a_delete_parameter(any_xapi):
    """STATE-8 ({NT}): ``since`` belongs to the id-list GET only; on DELETE this LRS treats it as an
    unknown parameter (400) and deletes nothing."""
    scope = state_scope()
    assert any_xapi.put(STATE, params={**scope, "stateId": "kept"}, json={}).status_code == 204
    response = any_xapi.delete(STATE, params={**scope, "since": "2000-01-01T00:00:00Z"})
    assert response.status_code == 400
    assert "since" in error_message(response)
    assert any_xapi.get(STATE, params=scope).json() == ["kept"]


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_state_unknown_parameter_is_400(client_for, version):
    """STATE-2, ERR-2: an unknown or wrong-case parameter -> 400; nothing created."""
    xapi = client_for(version=version)
    params = {**state_scope(), "stateId": "s"}
    for extra in ({"profileId": "p"}, {"StateId": "s"}, {"activityid": "https://example.com/a"}):
        response = xapi.put(STATE, params={**params, **extra}, json={"a": 1})
        assert response.status_code == 400
        assert next(iter(extra)) in error_message(response)
    assert xapi.get(STATE, params=params).status_code == 404


# --- CONC for State ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_conc1_conc2_state_etag_is_quoted_sha1(client_for, version):
    """CONC-1, CONC-2, V2-15: GET of a state returns ETag = quoted lowercase hex SHA-1 of the content,
    changing with the content."""
    xapi = client_for(version=version)
    params = {**state_scope(), "stateId": "etag"}
    first = b'{"v": 1}'
    assert (
        xapi.put(
            STATE, params=params, content=first, headers={"Content-Type": "application/json"}
        ).status_code
        == 204
    )
    etag = xapi.get(STATE, params=params).headers["etag"]
    assert etag == sha1_etag(first)
    assert etag == etag.lower() and len(etag) == 42
    assert xapi.head(STATE, params=params).headers["etag"] == etag
    headers = {"Content-Type": "application/json", "If-Match": etag}
    assert xapi.put(STATE, params=params, content=b'{"v": 2}', headers=headers).status_code == 204
    assert xapi.get(STATE, params=params).headers["etag"] == sha1_etag(b'{"v": 2}')


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_conc3_state_put_if_match(client_for, version):
    """CONC-3, V2-15: PUT with the current ETag in If-Match -> 204; a stale one -> 412 and no change;
    If-Match on a missing document -> 412 and nothing is created."""
    xapi = client_for(version=version)
    params = {**state_scope(), "stateId": "im"}
    assert xapi.put(STATE, params=params, json={"v": 1}).status_code == 204
    old = xapi.get(STATE, params=params).headers["etag"]
    assert xapi.put(STATE, params=params, json={"v": 2}, headers={"If-Match": old}).status_code == 204
    stale = xapi.put(STATE, params=params, json={"v": 3}, headers={"If-Match": old})
    assert stale.status_code == 412
    assert error_message(stale)
    assert xapi.get(STATE, params=params).json() == {"v": 2}
    missing = {**params, "stateId": "not-there"}
    assert xapi.put(STATE, params=missing, json={"v": 1}, headers={"If-Match": "*"}).status_code == 412
    assert xapi.put(STATE, params=missing, json={"v": 1}, headers={"If-Match": old}).status_code == 412
    assert xapi.get(STATE, params=missing).status_code == 404


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_conc4_state_put_if_none_match_star(client_for, version):
    """CONC-4, V2-15: If-None-Match: * -> 204 when no document exists, 412 (unchanged) when one does."""
    xapi = client_for(version=version)
    params = {**state_scope(), "stateId": "inm"}
    assert xapi.put(STATE, params=params, json={"v": 1}, headers={"If-None-Match": "*"}).status_code == 204
    again = xapi.put(STATE, params=params, json={"v": 2}, headers={"If-None-Match": "*"})
    assert again.status_code == 412
    assert xapi.get(STATE, params=params).json() == {"v": 1}


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_conc7_v2_15_state_post_and_delete_honour_preconditions(client_for, version):
    """CONC-7, V2-15: POST and DELETE with a stale If-Match -> 412 and no change; POST with
    If-None-Match: * onto an existing document -> 412; with the right ETag both succeed (204)."""
    xapi = client_for(version=version)
    params = {**state_scope(), "stateId": "pd"}
    assert xapi.put(STATE, params=params, json={"v": 1}).status_code == 204
    current = xapi.get(STATE, params=params).headers["etag"]
    stale = sha1_etag(b"something else")
    assert xapi.post(STATE, params=params, json={"w": 1}, headers={"If-Match": stale}).status_code == 412
    assert xapi.post(STATE, params=params, json={"w": 1}, headers={"If-None-Match": "*"}).status_code == 412
    assert xapi.delete(STATE, params=params, headers={"If-Match": stale}).status_code == 412
    assert xapi.get(STATE, params=params).json() == {"v": 1}
    assert xapi.post(STATE, params=params, json={"w": 1}, headers={"If-Match": current}).status_code == 204
    merged = xapi.get(STATE, params=params)
    assert merged.json() == {"v": 1, "w": 1}
    assert xapi.delete(STATE, params=params, headers={"If-Match": merged.headers["etag"]}).status_code == 204
    assert xapi.get(STATE, params=params).status_code == 404


def test_conc8_xapi_1_state_writes_need_no_precondition(xapi):
    """CONC-8: in 1.0.3 State accepts PUT, POST and DELETE without If-Match/If-None-Match, also onto an
    existing document (only the profile resources answer 409)."""
    params = {**state_scope(), "stateId": "free"}
    assert xapi.put(STATE, params=params, json={"v": 1}).status_code == 204
    assert xapi.put(STATE, params=params, json={"v": 2}).status_code == 204
    assert xapi.get(STATE, params=params).json() == {"v": 2}
    assert xapi.post(STATE, params=params, json={"w": 3}).status_code == 204
    assert xapi.get(STATE, params=params).json() == {"v": 2, "w": 3}
    assert xapi.delete(STATE, params=params).status_code == 204
    assert xapi.get(STATE, params=params).status_code == 404


def test_v2_15_xapi_2_state_put_without_precondition_onto_existing_is_409(xapi2):
    """V2-15: in 2.0 a State PUT with neither If-Match nor If-None-Match onto an existing document ->
    409 with a message pointing to If-Match, and the document is unchanged; onto a new one -> 204."""
    params = {**state_scope(), "stateId": "conflict"}
    assert xapi2.put(STATE, params=params, json={"v": 1}).status_code == 204
    conflict = xapi2.put(STATE, params=params, json={"v": 2})
    assert conflict.status_code == 409
    assert "If-Match" in error_message(conflict)
    assert xapi2.get(STATE, params=params).json() == {"v": 1}
    # POST (merge) and DELETE keep working without headers
    assert xapi2.post(STATE, params=params, json={"w": 1}).status_code == 204
    assert xapi2.get(STATE, params=params).json() == {"v": 1, "w": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_doc4_post_declared_json_that_is_not_json_is_rejected(any_xapi, kind):
    """DOC-4, DOC-5: a POST declared application/json whose body does not parse is 400 (ADL suite
    XAPI-00314), even onto a missing document, and creates nothing."""
    path, params = doc_params(kind)
    response = any_xapi.post(
        path, params=params, content=b'{"a": 1}[', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "json" in error_message(response).lower()
    assert any_xapi.get(path, params=params).status_code == 404
