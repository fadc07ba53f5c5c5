"""The Activities, Agents and About resources (checklist sections 27 ACTR-*, 28 AGTR-*, 29 ABT-*;
V2-3, V2-22, V2-28)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest

from .conftest import statement, unique_activity, unique_agent
from .helpers import error_message

PERSON_KEYS = {"objectType", "name", "mbox", "mbox_sha1sum", "openid", "account"}


# --- Activities resource -----------------------------------------------------------------------------


def test_actr1_full_activity_object(any_xapi):
    """ACTR-1, V2-28: GET /activities?activityId -> 200 + the Activity with objectType, id and the
    complete definition (type, moreInfo, interaction properties, extensions)."""
    definition = {
        "name": {"en-US": "Question 1"},
        "description": {"en-US": "Pick one"},
        "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
        "moreInfo": "https://lms.example/q1",
        "interactionType": "choice",
        "correctResponsesPattern": ["golf"],
        "choices": [
            {"id": "golf", "description": {"en-US": "Golf"}},
            {"id": "tetris", "description": {"en-US": "Tetris"}},
        ],
        "extensions": {"https://example.com/ext/difficulty": 3},
    }
    activity = unique_activity(**definition)
    any_xapi.store(statement(obj=activity))
    response = any_xapi.get("/activities", params={"activityId": activity["id"]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"objectType": "Activity", "id": activity["id"], "definition": definition}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, "activityId"),
        ({"activityId": "true"}, "activityId"),
        ({"activityId": "not an iri"}, "activityId"),
        ({"activityId": ""}, "activityId"),
        ({"activityid": "https://example.com/a"}, "activityid"),
        ({"activityId": "https://example.com/a", "agent": '{"mbox": "mailto:a@example.com"}'}, "agent"),
    ],
)
def test_actr2_activity_id_required_and_an_iri(any_xapi, params, named):
    """ACTR-2, ERR-2: missing activityId, a non-IRI value, a wrong-case or unknown parameter -> 400
    naming the parameter."""
    response = any_xapi.get("/activities", params=params)
    assert response.status_code == 400
    assert named in error_message(response)


def test_actr3_definitions_merge_across_statements(any_xapi):
    """ACTR-3: the returned definition merges what statements said about the activity: the en-US name
    from one statement, the fr-FR name (and a description) from another."""
    activity_id = unique_activity()["id"]
    first = {"id": activity_id, "objectType": "Activity", "definition": {"name": {"en-US": "Algebra"}}}
    second = {
        "id": activity_id,
        "definition": {"name": {"fr-FR": "Algèbre"}, "description": {"fr-FR": "Les bases"}},
    }
    any_xapi.store(statement(obj=first))
    any_xapi.store(statement(obj=second))
    got = any_xapi.get("/activities", params={"activityId": activity_id}).json()
    assert got["id"] == activity_id
    assert got["definition"]["name"] == {"en-US": "Algebra", "fr-FR": "Algèbre"}
    assert got["definition"]["description"] == {"fr-FR": "Les bases"}


def test_actr3_definitions_from_context_activities_count(any_xapi):
    """ACTR-3: a definition given for a context activity is known to the Activities resource too."""
    parent = unique_activity(name={"en-US": "Course"}, type="http://adlnet.gov/expapi/activities/course")
    any_xapi.store(statement(context={"contextActivities": {"parent": [parent]}}))
    got = any_xapi.get("/activities", params={"activityId": parent["id"]}).json()
    assert got["definition"] == parent["definition"]


def test_actr4_only_trusted_credentials_update_canonical_definitions(client_for, make_credential, xapi):
    """ACTR-4: updating the canonical definition is the LRS's decision; this LRS takes definitions only
    from credentials with scope ``define`` or ``all``. A plain statements/write credential's statement
    is stored as sent but does not change what GET /activities returns."""
    activity_id = unique_activity()["id"]
    writer = client_for(auth=make_credential(["statements/write", "statements/read"]))
    untrusted = {"id": activity_id, "definition": {"name": {"en-US": "Spam"}}}
    response = writer.post("/statements", json=statement(obj=untrusted))
    assert response.status_code == 200
    assert xapi.get("/activities", params={"activityId": activity_id}).json() == {
        "objectType": "Activity", "id": activity_id,
    }  # fmt: skip
    stored = xapi.get("/statements", params={"statementId": response.json()[0]}).json()
    assert stored["object"]["definition"] == untrusted["definition"]
    definer = client_for(auth=make_credential(["statements/write", "define"]))
    trusted = {"id": activity_id, "definition": {"name": {"en-US": "Real name"}}}
    assert definer.post("/statements", json=statement(obj=trusted)).status_code == 200
    got = xapi.get("/activities", params={"activityId": activity_id}).json()
    assert got["definition"]["name"] == {"en-US": "Real name"}


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_actr5_v2_22_unknown_activity_returns_an_activity_object(client_for, version):
    """ACTR-5, V2-22: an activityId the LRS never saw -> 200 with {objectType: "Activity", id}."""
    activity_id = unique_activity()["id"]
    response = client_for(version=version).get("/activities", params={"activityId": activity_id})
    assert response.status_code == 200
    assert response.json() == {"objectType": "Activity", "id": activity_id}


def test_actr_head_and_scope(client_for, make_credential, xapi):
    """ACTR-1, HDR-6, AUTH-3: HEAD answers like GET; a credential that may only write statements may not
    read activities (403)."""
    activity = unique_activity(name={"en-US": "x"})
    xapi.store(statement(obj=activity))
    head = xapi.head("/activities", params={"activityId": activity["id"]})
    assert head.status_code == 200 and head.content == b""
    writer = client_for(auth=make_credential(["statements/write"]))
    assert writer.get("/activities", params={"activityId": activity["id"]}).status_code == 403


# --- Agents resource -------------------------------------------------------------------------------------


def test_agtr1_agtr3_person_object_for_a_known_agent(any_xapi):
    """AGTR-1, AGTR-3: GET /agents?agent -> 200 + Person: objectType "Person" and every property an
    array; names the agent used in statements are collected."""
    agent = unique_agent("Alice")
    any_xapi.store(statement(agent))
    any_xapi.store(statement({**agent, "name": "Alice Smith"}))
    response = any_xapi.get("/agents", params={"agent": json.dumps({"mbox": agent["mbox"]})})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    person = response.json()
    assert person["objectType"] == "Person"
    assert set(person) <= PERSON_KEYS
    assert person["mbox"] == [agent["mbox"]]
    assert sorted(person["name"]) == ["Alice", "Alice Smith"]
    for key in set(person) - {"objectType"}:
        assert isinstance(person[key], list) and person[key], key


@pytest.mark.parametrize(
    ("ifi", "value"),
    [
        ("mbox_sha1sum", hashlib.sha1(f"mailto:{uuid.uuid4().hex}@example.com".encode()).hexdigest()),
        ("openid", f"https://openid.example.com/{uuid.uuid4().hex}"),
        ("account", {"homePage": "https://accounts.example.com", "name": uuid.uuid4().hex}),
    ],
)
def test_agtr3_person_carries_each_kind_of_identifier(any_xapi, ifi, value):
    """AGTR-3: mbox_sha1sum, openid and account (as full account objects) appear as arrays."""
    agent = {"objectType": "Agent", "name": "Someone", ifi: value}
    any_xapi.store(statement(agent))
    person = any_xapi.get("/agents", params={"agent": json.dumps(agent)}).json()
    assert person["objectType"] == "Person"
    assert person[ifi] == [value]
    assert person["name"] == ["Someone"]
    assert set(person) <= PERSON_KEYS


@pytest.mark.parametrize(
    "agent",
    [
        None,
        "true",
        "{not json",
        '{"objectType": "Agent", "name": "no identifier"}',
        '{"mbox": "mailto:a@example.com", "openid": "https://example.com/a"}',
        '{"mbox": "a@example.com"}',
        '{"account": {"homePage": "https://example.com"}}',
        '"mailto:a@example.com"',
    ],
)
def test_agtr2_agent_required_and_valid(any_xapi, agent):
    """AGTR-2: missing agent, invalid JSON, an agent without exactly one valid IFI -> 400 naming it."""
    response = any_xapi.get("/agents", params={"agent": agent} if agent is not None else {})
    assert response.status_code == 400
    assert "agent" in error_message(response)


def test_agtr2_unknown_parameter_is_400(any_xapi):
    """AGTR-2, ERR-2: parameters other than agent -> 400."""
    agent = json.dumps(unique_agent())
    response = any_xapi.get("/agents", params={"agent": agent, "activityId": "https://example.com/a"})
    assert response.status_code == 400
    assert "activityId" in error_message(response)


def test_agtr4_unknown_agent_still_gets_a_person(any_xapi):
    """AGTR-4: an agent never seen in a statement -> 200 + Person built from the request's agent."""
    agent = unique_agent("Nobody Yet")
    person = any_xapi.get("/agents", params={"agent": json.dumps(agent)}).json()
    assert person == {"objectType": "Person", "name": ["Nobody Yet"], "mbox": [agent["mbox"]]}
    anonymous = {"mbox": unique_agent()["mbox"]}
    assert any_xapi.get("/agents", params={"agent": json.dumps(anonymous)}).json() == {
        "objectType": "Person", "mbox": [anonymous["mbox"]],
    }  # fmt: skip


def test_agtr5_person_reveals_only_the_requested_identity(client_for, make_credential, xapi):
    """AGTR-5 ({NT}): this LRS never merges identities, so a Person holds only the requested IFI — other
    agents who share a name are not revealed — and a credential without read scopes gets 403."""
    first, second = unique_agent("Same Name"), unique_agent("Same Name")
    xapi.store(statement(first), statement(second))
    person = xapi.get("/agents", params={"agent": json.dumps(first)}).json()
    assert person["mbox"] == [first["mbox"]]
    assert all(key in ("objectType", "name", "mbox") for key in person)
    writer = client_for(auth=make_credential(["statements/write"]))
    denied = writer.get("/agents", params={"agent": json.dumps(first)})
    assert denied.status_code == 403
    assert error_message(denied)


# --- About resource ---------------------------------------------------------------------------------------


def test_abt1_abt2_v2_3_about_lists_versions(client_for):
    """ABT-1, ABT-2, V2-3: GET /about -> 200 JSON {version: [...], extensions?: {...}}; version is an
    array of X.Y.Z strings including 1.0.3 and 2.0.0."""
    response = client_for(auth=None, version=None).get("/about")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    about = response.json()
    assert isinstance(about["version"], list)
    assert all(isinstance(v, str) and re.fullmatch(r"\d+\.\d+\.\d+", v) for v in about["version"])
    assert "1.0.3" in about["version"]
    assert "2.0.0" in about["version"]
    assert len(about["version"]) == len(set(about["version"]))
    if "extensions" in about:
        assert isinstance(about["extensions"], dict)
        assert all(re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", key) for key in about["extensions"])  # IRI keys


def test_abt3_about_has_no_other_properties(client_for):
    """ABT-3: only ``version`` and ``extensions`` at the top level, each once."""
    response = client_for(auth=None, version=None).get("/about")
    pairs = json.loads(response.content, object_pairs_hook=lambda items: items)
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys))
    assert set(keys) <= {"version", "extensions"}


@pytest.mark.parametrize("version", [None, "1.0.3", "2.0.0"])
@pytest.mark.parametrize("auth", [None, ("no-such-key", "nope")])
def test_abt4_about_needs_no_credentials_and_no_version(client_for, version, auth):
    """ABT-4, HDR-4: About answers without credentials (even with unusable ones) and without a version."""
    response = client_for(auth=auth, version=version).get("/about")
    assert response.status_code == 200
    assert "1.0.3" in response.json()["version"]
    head = client_for(auth=auth, version=version).head("/about")
    assert head.status_code == 200 and head.content == b""


def test_abt_unknown_parameter_is_400(client_for):
    """ABT-1, ERR-2: About takes no parameters; an unknown one -> 400 naming it."""
    response = client_for(auth=None, version=None).get("/about", params={"verbose": "true"})
    assert response.status_code == 400
    assert "verbose" in error_message(response)
