"""Authentication, scopes and authority (checklist section 4, AUTH-*; V2-27, V2-28)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from .conftest import ADMIN, statement, unique_activity, unique_agent
from .helpers import CREATE, error_message

AUTHORITY_HOME = "urn:lrs:credentials"  # AuthSettings().authority_homepage, the test server's default


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def doc_params(kind: str) -> tuple[str, dict]:
    agent, activity = json.dumps(unique_agent()), unique_activity()["id"]
    if kind == "state":
        return "/activities/state", {"activityId": activity, "agent": agent, "stateId": "s"}
    if kind == "activity profile":
        return "/activities/profile", {"activityId": activity, "profileId": "p"}
    return "/agents/profile", {"agent": agent, "profileId": "p"}


# --- AUTH-1 / AUTH-2 / V2-27: Basic authentication and 401s -------------------------------------------


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_auth1_basic_credentials_are_accepted(client_for, version):
    """AUTH-1, V2-27: HTTP Basic authentication works in both versions."""
    client = client_for(auth=ADMIN, version=version)
    assert client.get("/statements", params={"limit": 1}).status_code == 200


BAD_AUTHORIZATION = {
    "missing": None,
    "unknown key": basic("no-such-key-" + uuid.uuid4().hex, "whatever"),
    "wrong secret": basic(ADMIN[0], ADMIN[1] + "x"),
    "empty secret": basic(ADMIN[0], ""),
    "scheme only": "Basic",
    "not base64": "Basic !!!not-base64!!!",
    "no colon": "Basic " + base64.b64encode(ADMIN[0].encode()).decode(),
    "bearer": "Bearer " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode(),
    "explicitly unauthenticated": "Basic Og==",  # 1.0.3 §4.1.s7: no-auth access is a MAY; not offered here
    "not utf-8": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
}


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
@pytest.mark.parametrize("case", list(BAD_AUTHORIZATION))
def test_auth2_missing_bad_or_malformed_credentials_are_401(client_for, version, case):
    """AUTH-2, HDR-3, V2-27: 401 with WWW-Authenticate (Basic), a message and the version header."""
    client = client_for(auth=None, version=version)
    header = BAD_AUTHORIZATION[case]
    response = client.get("/statements", headers={"Authorization": header} if header else None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("basic")
    assert response.headers["x-experience-api-version"] == version
    assert error_message(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/activities"), ("GET", "/agents"), ("GET", "/activities/state"), ("PUT", "/activities/profile"),
     ("DELETE", "/agents/profile"), ("HEAD", "/statements")],
)  # fmt: skip
def test_auth2_every_resource_but_about_needs_credentials(client_for, method, path):
    """AUTH-2: each resource (About excepted) refuses anonymous requests with 401."""
    response = client_for(auth=None).request(method, path)
    assert response.status_code == 401
    assert "www-authenticate" in response.headers


def test_auth2_unauthenticated_write_stores_nothing(client_for, xapi):
    """AUTH-2, ERR-5: a statement sent with a wrong secret is not stored."""
    st = statement(id=str(uuid.uuid4()))
    response = client_for(auth=(ADMIN[0], "nope")).post("/statements", json=st)
    assert response.status_code == 401
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


def test_auth2_revoked_credential_is_refused_promptly(client_for, make_credential, on_store):
    """AUTH-2, AUTH-4: revoking a credential in the store makes the running server refuse it at once,
    even though it had just verified (and cached) that credential: the store tells the server
    (PostgreSQL NOTIFY, MongoDB change stream), which clears the cache. The server's cache lifetime
    is 60 s, so the bounded retry below proves promptness."""
    key, secret = make_credential(["all"], "soon revoked")
    client = client_for(auth=(key, secret))
    assert client.get("/statements", params={"limit": 1}).status_code == 200  # verified and cached
    assert on_store(lambda stores: stores.credentials.revoke(key)) is True
    deadline = time.monotonic() + 5.0
    statuses = []
    while time.monotonic() < deadline:
        response = client.get("/statements", params={"limit": 1})
        statuses.append(response.status_code)
        if response.status_code == 401:
            break
    assert statuses[-1] == 401, f"revoked credential still accepted after {len(statuses)} requests"
    assert set(statuses) <= {200, 401}
    # and it stays refused, also for writes
    st = statement(id=str(uuid.uuid4()))
    assert client.post("/statements", json=st).status_code == 401
    assert client_for().get("/statements", params={"statementId": st["id"]}).status_code == 404


# --- AUTH-3 / AUTH-4: scopes ------------------------------------------------------------------------


def test_auth3_statements_write_cannot_read(client_for, make_credential):
    """AUTH-3, AUTH-4: scope statements/write may store statements but reading them is 403."""
    writer = client_for(auth=make_credential(["statements/write"]))
    response = writer.post("/statements", json=statement())
    assert response.status_code == 200
    (sid,) = response.json()
    for params in ({"statementId": sid}, {"limit": 1}):
        denied = writer.get("/statements", params=params)
        assert denied.status_code == 403
        assert "scope" in error_message(denied)
    path, params = doc_params("state")
    assert writer.put(path, params=params, json={"a": 1}).status_code == 403


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_auth3_statements_read_cannot_write(client_for, make_credential, xapi, method):
    """AUTH-3: scope statements/read may query but a POST/PUT of statements is 403; nothing stored."""
    reader = client_for(auth=make_credential(["statements/read"]))
    assert reader.get("/statements", params={"limit": 1}).status_code == 200
    st = statement(id=str(uuid.uuid4()))
    params = {"statementId": st["id"]} if method == "PUT" else None
    response = reader.request(method, "/statements", params=params, json=st)
    assert response.status_code == 403
    assert "scope" in error_message(response)
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


def test_auth3_statements_read_mine_sees_only_own_statements(client_for, make_credential, xapi):
    """AUTH-3, AUTH-4: statements/read/mine only returns statements this credential stored (its
    authority), in queries and by statementId; another credential's statement is answered 404 as
    if it did not exist (this LRS does not reveal its existence)."""
    mine = client_for(auth=make_credential(["statements/write", "statements/read/mine"]))
    activity = unique_activity()
    own = mine.post("/statements", json=statement(obj=activity))
    assert own.status_code == 200
    (own_id,) = own.json()
    other = statement(obj=activity)
    (other_id,) = xapi.store(other)
    seen = [s["id"] for s in mine.find(activity=activity["id"])]
    assert seen == [own_id]
    assert {s["id"] for s in xapi.find(activity=activity["id"])} == {own_id, other_id}
    assert mine.get("/statements", params={"statementId": own_id}).status_code == 200
    hidden = mine.get("/statements", params={"statementId": other_id})
    assert hidden.status_code == 404
    error_message(hidden)
    assert other["actor"]["mbox"] not in hidden.text  # nothing of the statement leaks


@pytest.mark.parametrize(
    ("scopes", "allowed", "denied"),
    [
        (["state"], {"state"}, {"activity profile", "agent profile"}),
        (["profile"], {"activity profile", "agent profile"}, {"state"}),
    ],
)
def test_auth3_state_and_profile_scopes(client_for, make_credential, xapi, scopes, allowed, denied):
    """AUTH-3, AUTH-4: scope ``state`` grants the State resource only, ``profile`` the two profile
    resources only; both are 403 on statements. Denied writes change nothing."""
    client = client_for(auth=make_credential(scopes))
    for kind in allowed:
        path, params = doc_params(kind)
        assert client.put(path, params=params, json={"k": kind}, headers=CREATE).status_code == 204
        assert client.get(path, params=params).json() == {"k": kind}
        assert client.delete(path, params=params).status_code == 204
    for kind in denied:
        path, params = doc_params(kind)
        assert xapi.put(path, params=params, json={"owner": "admin"}, headers=CREATE).status_code == 204
        for method in ("GET", "PUT", "POST", "DELETE"):
            body = {"k": "intruder"} if method in ("PUT", "POST") else None
            headers = {"If-Match": "*"} if method == "PUT" else None  # otherwise a valid overwrite
            response = client.request(method, path, params=params, json=body, headers=headers)
            assert response.status_code == 403, (kind, method)
        assert xapi.get(path, params=params).json() == {"owner": "admin"}
    assert client.get("/statements", params={"limit": 1}).status_code == 403
    assert client.post("/statements", json=statement()).status_code == 403


def test_auth3_all_read_reads_everything_but_writes_nothing(client_for, make_credential, xapi):
    """AUTH-3: scope all/read may GET every resource; every write is 403 and changes nothing."""
    reader = client_for(auth=make_credential(["all/read"]))
    agent, activity = unique_agent(), unique_activity(name={"en-US": "x"})
    (sid,) = xapi.store(statement(agent, obj=activity))
    docs = [doc_params(kind) for kind in ("state", "activity profile", "agent profile")]
    for path, params in docs:
        assert xapi.put(path, params=params, json={"v": 1}, headers=CREATE).status_code == 204
    assert reader.get("/statements", params={"statementId": sid}).status_code == 200
    assert reader.get("/activities", params={"activityId": activity["id"]}).status_code == 200
    assert reader.get("/agents", params={"agent": json.dumps(agent)}).status_code == 200
    for path, params in docs:
        assert reader.get(path, params=params).json() == {"v": 1}
        assert reader.put(path, params=params, json={"v": 2}, headers={"If-Match": "*"}).status_code == 403
        assert reader.post(path, params=params, json={"w": 2}).status_code == 403
        assert reader.delete(path, params=params).status_code == 403
        assert xapi.get(path, params=params).json() == {"v": 1}
    st = statement(id=str(uuid.uuid4()))
    assert reader.post("/statements", json=st).status_code == 403
    assert reader.put("/statements", params={"statementId": st["id"]}, json=st).status_code == 403
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404


def test_auth5_the_test_credential_is_not_limited(xapi):
    """AUTH-5: the admin (scope ``all``) credential the tests use is never blocked: a batch of 50
    statements and a burst of reads all succeed, with no 403/413/429."""
    activity = unique_activity()
    ids = xapi.store(*[statement(obj=activity) for _ in range(50)])
    assert len(set(ids)) == 50
    for _ in range(20):
        assert xapi.get("/statements", params={"activity": activity["id"], "limit": 5}).status_code == 200
    assert len(xapi.find(activity=activity["id"])) == 50


def test_auth6_no_oauth_resources_are_offered(xapi, client_for):
    """AUTH-6 ({NT}): OAuth 1.0 is optional and this LRS offers only Basic, so the OAuth resources do
    not exist (404), and an OAuth Authorization header is refused (401)."""
    for path in ("/OAuth/initiate", "/OAuth/authorize", "/OAuth/token"):
        response = xapi.get(path)
        assert response.status_code == 404
        assert "OAuth" in error_message(response)
    oauth = client_for(auth=None).get(
        "/statements", headers={"Authorization": 'OAuth oauth_consumer_key="k", oauth_token="t"'}
    )
    assert oauth.status_code == 401


# --- AUTH-7 / AUTH-8 / AUTH-9: authority ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_auth7_auth8_authority_comes_from_the_credential(client_for, make_credential, version):
    """AUTH-7, AUTH-8, V2-28: a statement without authority gets the credential's Agent (Basic auth:
    an Agent identified by an account naming the key)."""
    key, secret = make_credential(["statements/write", "statements/read"], name="authority test")
    client = client_for(auth=(key, secret), version=version)
    response = client.post("/statements", json=statement())
    assert response.status_code == 200
    (sid,) = response.json()
    authority = client.get("/statements", params={"statementId": sid}).json()["authority"]
    assert authority.get("objectType", "Agent") == "Agent"
    assert authority["account"] == {"homePage": AUTHORITY_HOME, "name": key}
    assert "member" not in authority


def test_auth9_client_sent_authority_is_overwritten(client_for, make_credential):
    """AUTH-9: a (valid) authority sent by an ordinary client is replaced by the credential's own."""
    key, secret = make_credential(["statements/write", "statements/read"])
    client = client_for(auth=(key, secret))
    forged = {"objectType": "Agent", "name": "Root", "mbox": "mailto:root@example.com"}
    st = statement(authority=forged, id=str(uuid.uuid4()))
    assert client.post("/statements", json=st).status_code == 200
    stored = client.get("/statements", params={"statementId": st["id"]}).json()
    assert stored["authority"]["account"] == {"homePage": AUTHORITY_HOME, "name": key}
    assert "mbox" not in stored["authority"]
    # and the forged identity does not make it findable as related agent
    found = client.get(
        "/statements", params={"agent": json.dumps(forged), "related_agents": "true", "limit": 50}
    ).json()["statements"]
    assert st["id"] not in [s["id"] for s in found]


@pytest.mark.parametrize(
    "authority",
    [
        {"objectType": "Agent", "name": "no identifier"},
        {"objectType": "Agent", "mbox": "root@example.com"},
        {"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]},
        "not an object",
    ],
)
def test_auth9_invalid_authority_is_still_rejected(xapi, authority):
    """AUTH-9: even though it would be overwritten, an invalid authority makes the statement 400."""
    st = statement(authority=authority, id=str(uuid.uuid4()))
    response = xapi.post("/statements", json=st)
    assert response.status_code == 400
    assert "authority" in error_message(response)
    assert xapi.get("/statements", params={"statementId": st["id"]}).status_code == 404
