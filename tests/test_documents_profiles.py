"""Activity Profile and Agent Profile resources, with their concurrency rules (checklist sections 25
APRF-*, 26 GPRF-*, 23 CONC-* for profiles; V2-16, V2-17 documents part, V2-28).

The merge / content-type / since rules shared with State (DOC-*) are exercised for all three
resources in test_documents_state.py.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import unique_activity, unique_agent
from .helpers import CREATE, error_message, server_now, sha1_etag

ACTIVITY_PROFILE = "/activities/profile"
AGENT_PROFILE = "/agents/profile"
PROFILES = ("activity", "agent")


def profile(which: str, profile_id: str | None = "profile") -> tuple[str, dict]:
    """(path, parameters) of a fresh activity or agent profile document."""
    if which == "activity":
        path, params = ACTIVITY_PROFILE, {"activityId": unique_activity()["id"]}
    else:
        path, params = AGENT_PROFILE, {"agent": json.dumps(unique_agent())}
    if profile_id is not None:
        params["profileId"] = profile_id
    return path, params


# --- APRF-1 / APRF-3 / GPRF-1 / GPRF-3: the methods --------------------------------------------------


@pytest.mark.parametrize("which", PROFILES)
def test_aprf1_aprf3_gprf1_gprf3_every_method_and_its_status(any_xapi, which):
    """APRF-1, APRF-3, GPRF-1, GPRF-3, V2-28: PUT 204, POST 204, GET with profileId 200 + document,
    DELETE 204 (then 404)."""
    path, params = profile(which)
    put = any_xapi.put(path, params=params, json={"a": 1}, headers=CREATE)
    assert put.status_code == 204
    assert put.content == b""
    assert any_xapi.post(path, params=params, json={"b": 2}).status_code == 204
    got = any_xapi.get(path, params=params)
    assert got.status_code == 200
    assert got.json() == {"a": 1, "b": 2}
    assert got.headers["content-type"].startswith("application/json")
    deleted = any_xapi.delete(path, params=params)
    assert deleted.status_code == 204
    missing = any_xapi.get(path, params=params)
    assert missing.status_code == 404
    assert "profile" in error_message(missing)


# --- APRF-2 / GPRF-2: required parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "method", "missing"),
    [
        ("activity", "GET", "activityId"), ("activity", "PUT", "activityId"),
        ("activity", "POST", "activityId"), ("activity", "DELETE", "activityId"),
        ("activity", "PUT", "profileId"), ("activity", "POST", "profileId"), ("activity", "DELETE", "profileId"),
        ("agent", "GET", "agent"), ("agent", "PUT", "agent"), ("agent", "POST", "agent"), ("agent", "DELETE", "agent"),
        ("agent", "PUT", "profileId"), ("agent", "POST", "profileId"), ("agent", "DELETE", "profileId"),
    ],
)  # fmt: skip
def test_aprf2_gprf2_required_parameters(any_xapi, which, method, missing):
    """APRF-2, GPRF-2: activityId (activity profile) / agent (agent profile) are required on every
    method and profileId on PUT, POST and DELETE -> 400 naming it. A DELETE without profileId must not
    delete anything (the multi-document DELETE exists for State only)."""
    path, params = profile(which, "keep")
    assert any_xapi.put(path, params=params, json={"keep": True}, headers=CREATE).status_code == 204
    request = {k: v for k, v in params.items() if k != missing}
    body = {"a": 1} if method in ("PUT", "POST") else None
    response = any_xapi.request(
        method, path, params=request, json=body, headers=CREATE if method == "PUT" else None
    )
    assert response.status_code == 400
    assert missing in error_message(response)
    assert any_xapi.get(path, params=params).json() == {"keep": True}


@pytest.mark.parametrize(
    "agent",
    [
        '{"objectType": "Group", "mbox": "mailto:team@example.com"}',
        '{"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]}',
        '{"objectType": "Group", "name": "team", "account": {"homePage": "https://example.com", "name": "t"}}',
    ],
)
def test_gprf2_agent_parameter_must_be_an_agent_not_a_group(any_xapi, agent):
    """GPRF-2: the agent parameter of the Agent Profile resource is an Agent; a Group (identified or
    anonymous) -> 400 naming the parameter, and nothing is stored."""
    params = {"agent": agent, "profileId": "p"}
    response = any_xapi.put(AGENT_PROFILE, params=params, json={"a": 1}, headers=CREATE)
    assert response.status_code == 400
    assert "agent" in error_message(response)
    assert any_xapi.get(AGENT_PROFILE, params=params).status_code == 400


def test_gprf2_an_identified_groups_ifi_wrapped_as_an_agent_works(any_xapi):
    """GPRF-2: a Group's identifier sent as an Agent ({"mbox": <the group's mbox>}) addresses its profile,
    whichever IFI spelling of the agent (objectType present or not) is used."""
    mbox = f"mailto:team-{uuid.uuid4().hex[:8]}@example.com"
    with_type = {"agent": json.dumps({"objectType": "Agent", "mbox": mbox}), "profileId": "team"}
    without_type = {"agent": json.dumps({"mbox": mbox, "name": "Team"}), "profileId": "team"}
    assert (
        any_xapi.put(AGENT_PROFILE, params=with_type, json={"team": True}, headers=CREATE).status_code == 204
    )
    assert any_xapi.get(AGENT_PROFILE, params=without_type).json() == {"team": True}


# --- APRF-4 / GPRF-4: id lists -----------------------------------------------------------------------


@pytest.mark.parametrize("which", PROFILES)
def test_aprf4_gprf4_id_list_and_since(any_xapi, which):
    """APRF-4, GPRF-4: GET without profileId -> 200 + JSON array of this activity's / agent's profile
    ids only; ``since`` keeps those updated after it; an invalid ``since`` -> 400."""
    path, scope = profile(which, None)
    for profile_id in ("beta", "alpha"):
        assert (
            any_xapi.put(path, params={**scope, "profileId": profile_id}, json={}, headers=CREATE).status_code
            == 204
        )
    other_path, other_scope = profile(which, "someone-else")
    assert any_xapi.put(other_path, params=other_scope, json={}, headers=CREATE).status_code == 204
    middle = server_now(any_xapi)
    assert (
        any_xapi.put(path, params={**scope, "profileId": "gamma"}, json={}, headers=CREATE).status_code == 204
    )
    listing = any_xapi.get(path, params=scope)
    assert listing.status_code == 200
    assert listing.headers["content-type"].startswith("application/json")
    assert sorted(listing.json()) == ["alpha", "beta", "gamma"]
    assert any_xapi.get(path, params={**scope, "since": middle}).json() == ["gamma"]
    bad = any_xapi.get(path, params={**scope, "since": "last tuesday"})
    assert bad.status_code == 400
    assert "since" in error_message(bad)


# --- APRF-5 and unknown parameters -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "DELETE"])
def test_aprf5_agent_is_not_an_activity_profile_parameter(any_xapi, method):
    """APRF-5, ERR-2: ``agent`` on the Activity Profile resource is an unknown parameter -> 400 naming it;
    a rejected write stores nothing."""
    path, params = profile("activity")
    request = {**params, "agent": json.dumps(unique_agent())}
    body = {"a": 1} if method in ("PUT", "POST") else None
    response = any_xapi.request(
        method, path, params=request, json=body, headers=CREATE if method == "PUT" else None
    )
    assert response.status_code == 400
    assert "agent" in error_message(response)
    assert any_xapi.get(path, params=params).status_code == 404


@pytest.mark.parametrize(
    ("which", "extra"),
    [
        ("activity", {"stateId": "s"}),
        ("activity", {"registration": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}),
        ("activity", {"ProfileId": "p"}),
        ("agent", {"activityId": "https://example.com/a"}),
        ("agent", {"registration": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}),
        ("agent", {"Agent": "{}"}),
    ],
)
def test_aprf2_gprf2_unknown_or_wrong_case_parameters_are_400(any_xapi, which, extra):
    """APRF-2, GPRF-2, ERR-2: parameters a profile resource does not define (or in the wrong case) ->
    400 naming them; nothing is stored."""
    path, params = profile(which)
    response = any_xapi.put(path, params={**params, **extra}, json={"a": 1}, headers=CREATE)
    assert response.status_code == 400
    assert next(iter(extra)) in error_message(response)
    assert any_xapi.get(path, params=params).status_code == 404


@pytest.mark.parametrize("which", PROFILES)
def test_aprf6_gprf5_profiles_are_scoped_by_activity_or_agent(any_xapi, which):
    """APRF-6, GPRF-5: the same profileId under two activities (agents) is two documents."""
    path, first = profile(which, "same")
    _, second = profile(which, "same")
    assert any_xapi.put(path, params=first, json={"owner": 1}, headers=CREATE).status_code == 204
    assert any_xapi.put(path, params=second, json={"owner": 2}, headers=CREATE).status_code == 204
    assert any_xapi.get(path, params=first).json() == {"owner": 1}
    assert any_xapi.get(path, params=second).json() == {"owner": 2}


@pytest.mark.parametrize("which", PROFILES)
def test_aprf6_gprf5_binary_profile_round_trips(any_xapi, which):
    """APRF-6, GPRF-5, DOC-1: a binary profile document comes back byte for byte with its type; a POST
    merge onto it is 400 and leaves it intact."""
    path, params = profile(which)
    content = bytes(range(255, -1, -1)) * 3
    headers = {"Content-Type": "application/octet-stream", **CREATE}
    assert any_xapi.put(path, params=params, content=content, headers=headers).status_code == 204
    got = any_xapi.get(path, params=params)
    assert got.content == content
    assert got.headers["content-type"] == "application/octet-stream"
    assert any_xapi.post(path, params=params, json={"x": 1}).status_code == 400
    assert any_xapi.get(path, params=params).content == content


# --- CONC-* for profiles -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", PROFILES)
def test_conc1_conc2_profile_etag_is_quoted_sha1(any_xapi, which):
    """CONC-1, CONC-2: GET (and HEAD) of a profile carries ETag = quoted lowercase hex SHA-1 of content."""
    path, params = profile(which)
    content = b'{"etag": "check"}'
    headers = {"Content-Type": "application/json", **CREATE}
    assert any_xapi.put(path, params=params, content=content, headers=headers).status_code == 204
    got = any_xapi.get(path, params=params)
    assert got.headers["etag"] == sha1_etag(content)
    assert any_xapi.head(path, params=params).headers["etag"] == sha1_etag(content)


@pytest.mark.parametrize("which", PROFILES)
def test_conc3_profile_put_if_match(any_xapi, which):
    """CONC-3: PUT with If-Match of the current ETag -> 204; a stale ETag -> 412, message, no change;
    W/-prefixed and ``*`` tags match an existing document."""
    path, params = profile(which)
    assert any_xapi.put(path, params=params, json={"v": 1}, headers=CREATE).status_code == 204
    first = any_xapi.get(path, params=params).headers["etag"]
    assert any_xapi.put(path, params=params, json={"v": 2}, headers={"If-Match": first}).status_code == 204
    stale = any_xapi.put(path, params=params, json={"v": 3}, headers={"If-Match": first})
    assert stale.status_code == 412
    assert "If-Match" in error_message(stale)
    assert any_xapi.get(path, params=params).json() == {"v": 2}
    current = any_xapi.get(path, params=params).headers["etag"]
    assert (
        any_xapi.put(path, params=params, json={"v": 4}, headers={"If-Match": "W/" + current}).status_code
        == 204
    )
    assert any_xapi.put(path, params=params, json={"v": 5}, headers={"If-Match": "*"}).status_code == 204
    assert any_xapi.get(path, params=params).json() == {"v": 5}


@pytest.mark.parametrize("which", PROFILES)
def test_conc3_profile_if_match_on_a_missing_document_is_412(any_xapi, which):
    """CONC-3: If-Match (a tag or ``*``) when no document exists -> 412; nothing is created."""
    path, params = profile(which)
    for tag in ("*", sha1_etag(b"{}")):
        response = any_xapi.put(path, params=params, json={"v": 1}, headers={"If-Match": tag})
        assert response.status_code == 412
    assert any_xapi.get(path, params=params).status_code == 404


@pytest.mark.parametrize("which", PROFILES)
def test_conc4_v2_16_profile_put_if_none_match_star(any_xapi, which):
    """CONC-4, V2-16: If-None-Match: * -> 204 creating a new document; 412 (unchanged) once it exists."""
    path, params = profile(which)
    assert any_xapi.put(path, params=params, json={"v": 1}, headers=CREATE).status_code == 204
    again = any_xapi.put(path, params=params, json={"v": 2}, headers=CREATE)
    assert again.status_code == 412
    assert error_message(again)
    assert any_xapi.get(path, params=params).json() == {"v": 1}


@pytest.mark.parametrize("which", PROFILES)
def test_conc5_profile_put_without_precondition_onto_existing_is_409(any_xapi, which):
    """CONC-5, V2-15: PUT with neither If-Match nor If-None-Match onto an existing profile -> 409 with a
    message telling to fetch the document and use If-Match; the document is unchanged."""
    path, params = profile(which)
    assert any_xapi.put(path, params=params, json={"v": 1}, headers=CREATE).status_code == 204
    etag = any_xapi.get(path, params=params).headers["etag"]
    conflict = any_xapi.put(path, params=params, json={"v": 2})
    assert conflict.status_code == 409
    assert "If-Match" in error_message(conflict)
    after = any_xapi.get(path, params=params)
    assert after.json() == {"v": 1}
    assert after.headers["etag"] == etag


@pytest.mark.parametrize("which", PROFILES)
def test_conc6_spec_new_profile_put_without_precondition_is_no_conflict(any_xapi, which):
    """CONC-6 (spec text): for a profile that does not exist, xAPI 1.0.3 §3.1 names no 409/412 — the
    LRS requirements only cover existing documents; the client requirement (3.1.s3.b1: a PUT MUST
    carry If-Match or If-None-Match) lets the LRS answer a missing header as a missing argument (400).
    So the answer is 204 (document created) or 400 (nothing created), never 409/412/5xx, and the
    outcome matches the status."""
    path, params = profile(which)
    response = any_xapi.put(path, params=params, json={"v": 1})
    assert response.status_code in (204, 400)
    stored = any_xapi.get(path, params=params)
    if response.status_code == 204:
        assert stored.json() == {"v": 1}
    else:
        assert "If-Match" in error_message(response) and "If-None-Match" in error_message(response)
        assert stored.status_code == 404


@pytest.mark.parametrize("which", PROFILES)
def test_conc6_xapi_1_new_profile_put_without_precondition_is_400(xapi, which):
    """CONC-6 (1.0.3 suite, XAPI-00273 / XAPI-00287): a 1.0.3 profile PUT with neither If-Match nor
    If-None-Match onto a NEW document -> 400 naming both headers; no document is created. (This LRS
    follows the suite; the spec text itself only requires 409 for existing documents, see above.)"""
    path, params = profile(which)
    response = xapi.put(path, params=params, json={"v": 1})
    assert response.status_code == 400
    assert "If-Match" in error_message(response) and "If-None-Match" in error_message(response)
    assert xapi.get(path, params=params).status_code == 404


@pytest.mark.parametrize("which", PROFILES)
def test_v2_16_xapi_2_new_profile_put_without_precondition_creates_it(xapi2, which):
    """V2-16: 2.0 dropped the 1.0.3 suite's 400 for a header-less PUT onto a new profile: it is created
    (204); If-None-Match: * onto a new one succeeds as well."""
    path, params = profile(which)
    assert xapi2.put(path, params=params, json={"v": 1}).status_code == 204
    assert xapi2.get(path, params=params).json() == {"v": 1}
    path, params = profile(which)
    assert xapi2.put(path, params=params, json={"v": 2}, headers=CREATE).status_code == 204
    assert xapi2.get(path, params=params).json() == {"v": 2}


@pytest.mark.parametrize("which", PROFILES)
def test_conc7_profile_post_and_delete_honour_preconditions(any_xapi, which):
    """CONC-7: POST and DELETE with a stale If-Match -> 412 and no change; POST If-None-Match: * onto an
    existing profile -> 412; POST If-None-Match: * onto a missing one creates it; the right ETag -> 204."""
    path, params = profile(which)
    assert any_xapi.post(path, params=params, json={"v": 1}, headers=CREATE).status_code == 204
    current = any_xapi.get(path, params=params).headers["etag"]
    stale = sha1_etag(b"not the document")
    assert any_xapi.post(path, params=params, json={"w": 1}, headers={"If-Match": stale}).status_code == 412
    assert any_xapi.post(path, params=params, json={"w": 1}, headers=CREATE).status_code == 412
    assert any_xapi.delete(path, params=params, headers={"If-Match": stale}).status_code == 412
    assert any_xapi.get(path, params=params).json() == {"v": 1}
    assert any_xapi.post(path, params=params, json={"w": 1}, headers={"If-Match": current}).status_code == 204
    merged = any_xapi.get(path, params=params)
    assert merged.json() == {"v": 1, "w": 1}
    assert (
        any_xapi.delete(path, params=params, headers={"If-Match": merged.headers["etag"]}).status_code == 204
    )
    assert any_xapi.get(path, params=params).status_code == 404
