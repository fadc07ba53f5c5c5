"""cmi5 launch on a running LRS (both statement stores; the LMS database is PostgreSQL): course
import, launch, the fetch URL's one-time token, what a session token may reach, the rules the
LMS enforces on an AU's statements, and the statements the LMS records (launched, satisfied,
waived, abandoned).

The AU here is this test speaking HTTP as cmi5 content does; ``test_cmi5_client_library``
drives a session with a cmi5 client library from npm. Expected values are written from the
course in ``tests/data/cmi5/two_blocks.xml`` and cmi5 (quartz) by hand.
"""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
import zipfile
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lrs.http.app import create_app
from lrs.settings import AuthSettings, Cmi5Settings, ServerSettings, StoreSettings

from .conftest import ADMIN, CMI5_DATA, V1, RunningServer, cmi5_course_xml, free_port

DATA = CMI5_DATA
COURSE = "https://example.com/courses/demo"
A1, A2, A3 = (f"{COURSE}/aus/a{i}" for i in (1, 2, 3))
B1, B2 = f"{COURSE}/blocks/b1", f"{COURSE}/blocks/b2"
CMI5 = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
MOVEON = "https://w3id.org/xapi/cmi5/context/categories/moveon"
SESSION = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"
MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
ADL = "http://adlnet.gov/expapi/verbs/"
SATISFIED = "https://w3id.org/xapi/adl/verbs/satisfied"


def au_id(course: dict, name: str) -> str:
    return f"{course['id']}/aus/{name}"


class Au:
    """cmi5 content in one launch session: reads the launch URL, fetches its token, reads
    LMS.LaunchData and sends statements from its context template."""

    def __init__(self, base_url: str, launch: dict[str, Any]) -> None:
        query = parse_qs(urlsplit(launch["url"]).query)
        self.endpoint = query["endpoint"][0]
        self.fetch_url = query["fetch"][0]
        self.actor = json.loads(query["actor"][0])
        self.registration = query["registration"][0]
        self.activity_id = query["activityId"][0]
        self.launch = launch
        self.client = httpx.Client(timeout=30, headers={"X-Experience-API-Version": V1})
        self.launch_data: dict[str, Any] = {}

    def fetch(self) -> dict[str, Any]:
        return self.client.post(self.fetch_url).json()

    def start(self) -> None:
        token = self.fetch()["auth-token"]
        self.client.headers["Authorization"] = f"Basic {token}"
        response = self.state("LMS.LaunchData")
        assert response.status_code == 200, response.text
        self.launch_data = response.json()

    def state(self, state_id: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        params = {"activityId": self.activity_id, "agent": json.dumps(self.actor),
                  "registration": self.registration, "stateId": state_id}  # fmt: skip
        return self.client.request(method, self.endpoint + "activities/state", params=params, **kwargs)

    def statement(
        self, verb: str, result: dict | None = None, *, moveon: bool = False, **context_ext: Any
    ) -> dict:
        context = json.loads(json.dumps(self.launch_data["contextTemplate"]))
        context["registration"] = self.registration
        categories = [{"id": CMI5}] + ([{"id": MOVEON}] if moveon else [])
        context["contextActivities"]["category"] = categories
        context["extensions"].update(context_ext)
        out = {"id": str(uuid.uuid4()), "actor": self.actor, "verb": {"id": ADL + verb},
               "object": {"id": self.activity_id, "objectType": "Activity"}, "context": context,
               "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}  # fmt: skip
        if result is not None:
            out["result"] = result
        return out

    def send(self, *statements: dict) -> httpx.Response:
        return self.client.post(self.endpoint + "statements", json=list(statements))


def launch(lms: httpx.Client, course: dict, au: str, student: int, **extra: Any) -> dict[str, Any]:
    response = lms.post("/cmi5/launch", json={"student_id": student, "course_id": course["course_id"],
                                              "au": au, **extra})  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def lms_statements(xapi, registration: str, verb: str) -> list[dict]:
    return [s for s in xapi.find(registration=registration, verb=verb)]


def test_the_launch_url_carries_every_parameter_and_the_launch_data_the_au_needs(base_url, lms, course, xapi):
    student = 7001
    out = launch(lms, course, au_id(course, "a1"), student, return_url="https://lms.example/done")
    url = urlsplit(out["url"])
    assert (url.scheme, url.netloc, url.path) == ("https", "content.example.com", "/a1/index.html")
    query = parse_qs(url.query)
    assert query["lang"] == ["en"]  # the AU's own query is kept
    assert query["endpoint"] == [base_url + "/xapi/"]
    assert json.loads(query["actor"][0]) == {
        "objectType": "Agent",
        "account": {"homePage": "https://lms.example", "name": "7001"},
    }
    assert query["registration"] == [out["registration"]] and query["activityId"] == [out["activityId"]]
    assert out["activityId"] == course["aus"][au_id(course, "a1")]["activityId"] != au_id(course, "a1")
    au = Au(base_url, out)
    au.start()
    assert au.launch_data == {
        "contextTemplate": {"contextActivities": {"grouping": [{"objectType": "Activity", "id": au_id(course, "a1")}]},
                            "extensions": {SESSION: out["sessionId"]}},
        "launchMode": "Normal", "launchMethod": "AnyWindow", "launchParameters": "", "moveOn": "CompletedAndPassed",
        "masteryScore": 0.8, "returnURL": "https://lms.example/done",
    }  # fmt: skip
    preferences = au.client.get(au.endpoint + "agents/profile",
                                params={"agent": json.dumps(au.actor), "profileId": "cmi5LearnerPreferences"})  # fmt: skip
    assert preferences.status_code == 200 and preferences.json() == {}
    (launched,) = lms_statements(xapi, out["registration"], ADL + "launched")
    assert launched["object"]["id"] == out["activityId"] and launched["actor"] == au.actor
    ext = launched["context"]["extensions"]
    assert (
        ext[SESSION] == out["sessionId"]
        and ext["https://w3id.org/xapi/cmi5/context/extensions/moveon"] == "CompletedAndPassed"
    )
    # the registration's NotApplicable AU a3 satisfies nothing alone: b1 and the course wait for a1, a2
    assert lms_statements(xapi, out["registration"], SATISFIED) == []


def test_the_fetch_url_hands_out_its_token_once(base_url, lms, course):
    out = launch(lms, course, au_id(course, "a2"), 7002)
    au = Au(base_url, out)
    first = au.fetch()
    key, _, secret = base64.b64decode(first["auth-token"]).decode().partition(":")
    assert key and secret
    assert au.fetch() == {"error-code": "1", "error-text": au.fetch()["error-text"]}
    unknown = au.client.post(au.fetch_url.rsplit("/", 1)[0] + "/nonsense").json()
    assert unknown["error-code"] == "3"


def test_a_session_runs_to_satisfied_blocks_and_course_and_its_token_ends_with_it(
    base_url, lms, course, xapi
):
    student = 7003
    # a2 (Completed) first: b2 is satisfied by it alone
    au = Au(base_url, launch(lms, course, au_id(course, "a2"), student))
    au.start()
    registration = au.registration
    assert au.send(au.statement("initialized")).status_code == 200
    response = au.send(au.statement("completed", {"completion": True, "duration": "PT1M"}, moveon=True))
    assert response.status_code == 200, response.text
    satisfied = {s["object"]["id"] for s in lms_statements(xapi, registration, SATISFIED)}
    assert satisfied == {course["blocks"][f"{course['id']}/blocks/b2"]}  # b2 only
    assert au.send(au.statement("terminated", {"duration": "PT1M5S"})).status_code == 200
    assert au.state("LMS.LaunchData").status_code == 401  # the token ended with its session

    # a1 (CompletedAndPassed, mastery 0.8) in a second launch of the same registration
    au = Au(base_url, launch(lms, course, au_id(course, "a1"), student))
    assert au.registration == registration
    au.start()
    assert au.send(au.statement("initialized")).status_code == 200
    passed = au.statement("passed", {"success": True, "duration": "PT2M", "score": {"scaled": 0.9}},
                          moveon=True, **{MASTERY: 0.8})  # fmt: skip
    assert au.send(passed).status_code == 200
    assert len(lms_statements(xapi, registration, SATISFIED)) == 1  # passed alone does not satisfy a1
    assert (
        au.send(au.statement("completed", {"completion": True, "duration": "PT3M"}, moveon=True)).status_code
        == 200
    )
    found = lms_statements(xapi, registration, SATISFIED)
    assert sorted(s["object"]["id"] for s in found) == sorted(
        [*course["blocks"].values(), course["activityId"]]
    )
    types = sorted(s["object"]["definition"]["type"].rsplit("/", 1)[1] for s in found)
    assert types == ["block", "block", "course"]
    course_satisfied = next(s for s in found if s["object"]["definition"]["type"].endswith("course"))
    assert course_satisfied["context"]["extensions"][SESSION] == au.launch["sessionId"]
    assert au.send(au.statement("terminated", {"duration": "PT3M"})).status_code == 200
    session = lms.get(f"/cmi5/sessions/{au.launch['sessionId']}").json()
    assert session["ended"] == "terminated" and session["verbs"] == [
        "completed",
        "initialized",
        "passed",
        "terminated",
    ]


@pytest.mark.parametrize(
    "case",
    ["before-initialized", "below-mastery", "twice-initialized", "void", "other-object", "no-session-id",
     "moveon-missing"],
)  # fmt: skip
def test_statements_that_break_the_rules_are_refused_and_not_stored(base_url, lms, course, xapi, case):
    au = Au(base_url, launch(lms, course, au_id(course, "a1"), 10**6 + uuid.uuid4().int % 10**6))
    au.start()
    if case != "before-initialized":
        assert au.send(au.statement("initialized")).status_code == 200
    bad = {
        "before-initialized": lambda: au.statement("completed", {"completion": True, "duration": "PT1S"}, moveon=True),
        "below-mastery": lambda: au.statement("passed", {"success": True, "duration": "PT1S", "score": {"scaled": 0.5}},
                                              moveon=True, **{MASTERY: 0.8}),
        "twice-initialized": lambda: au.statement("initialized"),
        "void": lambda: {**au.statement("voided"), "object": {"objectType": "StatementRef", "id": str(uuid.uuid4())}},
        "other-object": lambda: {**au.statement("completed", {"completion": True, "duration": "PT1S"}, moveon=True),
                                 "object": {"id": "https://elsewhere.example/x"}},
        "no-session-id": lambda: _without_session(au.statement("experienced")),
        "moveon-missing": lambda: au.statement("completed", {"completion": True, "duration": "PT1S"}),
    }[case]()  # fmt: skip
    response = au.send(bad)
    assert response.status_code == 403, response.text
    assert "cmi5" in response.text
    got = httpx.get(base_url + "/xapi/statements", params={"statementId": bad["id"]}, auth=ADMIN,
                    headers={"X-Experience-API-Version": V1})  # fmt: skip
    assert got.status_code == 404


def _without_session(statement: dict) -> dict:
    statement["context"]["extensions"].pop(SESSION)
    return statement


def test_a_session_token_reaches_only_its_learner_registration_and_au(base_url, lms, course):
    mine = Au(base_url, launch(lms, course, au_id(course, "a2"), 7201))
    mine.start()
    other = launch(lms, course, au_id(course, "a2"), 7202)
    other_actor = json.loads(parse_qs(urlsplit(other["url"]).query)["actor"][0])
    params = {"activityId": mine.activity_id, "agent": json.dumps(mine.actor),
              "registration": mine.registration, "stateId": "bookmark"}  # fmt: skip
    ok = mine.client.put(mine.endpoint + "activities/state", params=params, json={"page": 3})
    assert ok.status_code == 204, ok.text
    refused = {
        "other learner": {**params, "agent": json.dumps(other_actor)},
        "other registration": {**params, "registration": other["registration"]},
        "other AU": {**params, "activityId": course["aus"][au_id(course, "a1")]["activityId"]},
    }
    for what, query in refused.items():
        response = mine.client.get(mine.endpoint + "activities/state", params=query)
        assert response.status_code == 403, (what, response.text)
    assert mine.state("LMS.LaunchData", "PUT", json={"launchMode": "Review"}).status_code == 403
    assert mine.client.delete(mine.endpoint + "activities/state", params={
        k: v for k, v in params.items() if k != "stateId"}).status_code == 403  # fmt: skip
    # statements of another registration stay out of the token's queries
    listed = mine.client.get(mine.endpoint + "statements", params={"registration": other["registration"]})
    assert listed.status_code == 200 and listed.json()["statements"] == []
    # a session token manages nothing of the LMS
    assert mine.client.post(base_url + "/cmi5/launch", json={}).status_code == 403


def test_abandoned_waived_and_a_new_launch(base_url, lms, course, xapi):
    student = 7301
    first = Au(base_url, launch(lms, course, au_id(course, "a1"), student))
    first.start()
    assert first.send(first.statement("initialized")).status_code == 200
    second = launch(lms, course, au_id(course, "a1"), student)  # the first session never terminated
    (abandoned,) = lms_statements(xapi, second["registration"], "https://w3id.org/xapi/adl/verbs/abandoned")
    assert abandoned["context"]["extensions"][SESSION] == first.launch["sessionId"]
    assert abandoned["result"]["duration"].startswith("PT")
    assert first.send(first.statement("experienced")).status_code == 401  # its token ended with it
    # an administrator abandons the second one
    ended = lms.post(f"/cmi5/sessions/{second['sessionId']}/abandon")
    assert ended.status_code == 200 and ended.json()["ended"] == "abandoned"
    assert lms.post(f"/cmi5/sessions/{second['sessionId']}/abandon").status_code == 404
    # waiving a1 and a2 satisfies both blocks and the course (a3 is NotApplicable)
    for name in ("a1", "a2"):
        waived = lms.post(f"/cmi5/registrations/{second['registration']}/waive",
                          json={"au": au_id(course, name), "reason": "Tested Out"})  # fmt: skip
        assert waived.status_code == 200, waived.text
    blocks = f"{course['id']}/blocks"
    assert waived.json() == {"waived": True, "satisfied": [f"{blocks}/b2", f"{blocks}/b1", course["id"]]}
    assert len(lms_statements(xapi, second["registration"], "https://w3id.org/xapi/adl/verbs/waived")) == 2


def test_course_import_refuses_bad_packages_with_the_element_named(lms):
    bad = (DATA / "two_blocks.xml").read_text().replace('moveOn="Completed"', 'moveOn="Finished"').encode()
    response = lms.post("/cmi5/courses", content=bad, headers={"Content-Type": "application/xml"})
    assert response.status_code == 400 and "moveOn" in response.text, response.text
    response = lms.post("/cmi5/courses", content=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "application/zip" in response.text
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("course/readme.txt", "no cmi5.xml at the root")
    response = lms.post(
        "/cmi5/courses", content=buffer.getvalue(), headers={"Content-Type": "application/zip"}
    )
    assert response.status_code == 400 and "cmi5.xml" in response.text, response.text


def test_course_import_needs_the_admin_scope_and_reimport_updates_in_place(base_url, lms, make_credential):
    course_id = f"https://example.com/courses/{uuid.uuid4()}"
    key = make_credential(["statements/write", "statements/read"])
    denied = httpx.post(base_url + "/cmi5/courses", content=cmi5_course_xml(course_id), auth=key,
                        headers={"Content-Type": "application/xml"})  # fmt: skip
    assert denied.status_code == 403
    first = lms.post(
        "/cmi5/courses", content=cmi5_course_xml(course_id), headers={"Content-Type": "application/xml"}
    )
    before = lms.get(f"/cmi5/courses/{first.json()['course_id']}").json()
    renamed = cmi5_course_xml(course_id).replace(b"AU two", b"AU two, revised").replace(
        b'moveOn="NotApplicable"', b'moveOn="Completed"')  # fmt: skip
    again = lms.post("/cmi5/courses", content=renamed, headers={"Content-Type": "application/xml"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["course_id"] == first.json()["course_id"]
    after = lms.get(f"/cmi5/courses/{first.json()['course_id']}").json()
    assert [(a["lesson_id"], a["activityId"]) for a in after["aus"]] == [
        (a["lesson_id"], a["activityId"]) for a in before["aus"]]  # fmt: skip
    assert [a["title"] for a in after["aus"]] == ["AU one", "AU two, revised", "AU three"]
    assert [a["moveOn"] for a in after["aus"]] == ["CompletedAndPassed", "Completed", "Completed"]


def test_an_idle_session_is_abandoned_after_the_timeout(pg_dsn):
    """A server whose sessions time out after a second: the sweep records abandoned with the
    session's length and the token stops working."""
    app = create_app(
        pg_dsn, ServerSettings(), StoreSettings(), AuthSettings(admin_key=ADMIN[0], admin_secret=ADMIN[1]),
        cmi5=Cmi5Settings(session_timeout_seconds=1, sweep_seconds=0.2),
    )  # fmt: skip
    with (
        RunningServer(app, free_port()) as running,
        httpx.Client(base_url=f"http://127.0.0.1:{running.port}", auth=ADMIN, timeout=30) as client,
    ):
        imported = client.post("/cmi5/courses", content=cmi5_course_xml(f"https://example.com/courses/{uuid.uuid4()}"),
                               headers={"Content-Type": "application/xml"}).json()  # fmt: skip
        au = Au(
            f"http://127.0.0.1:{running.port}", launch(client, imported, _first_au(client, imported), 9001)
        )
        au.start()
        assert au.send(au.statement("initialized")).status_code == 200
        deadline = time.monotonic() + 30
        while client.get(f"/cmi5/sessions/{au.launch['sessionId']}").json()["ended"] != "abandoned":
            assert time.monotonic() < deadline, "the idle session was not abandoned"
            time.sleep(0.1)
        assert au.send(au.statement("experienced")).status_code == 401
        found = client.get("/xapi/statements", params={"registration": au.registration,
                           "verb": "https://w3id.org/xapi/adl/verbs/abandoned"},
                           headers={"X-Experience-API-Version": V1}).json()["statements"]  # fmt: skip
        assert len(found) == 1 and found[0]["context"]["extensions"][SESSION] == au.launch["sessionId"]


def _first_au(client: httpx.Client, imported: dict) -> str:
    return client.get(f"/cmi5/courses/{imported['course_id']}").json()["aus"][0]["id"]


HOSTILE_BODIES = [
    b"", b"null", b"[]", b"{}", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"student_id": 1e309}',
    b'{"student_id": -1, "course_id": 1, "au": "x"}', b'{"student_id": 1, "course_id": 99999999999, "au": "x"}',
    b'{"student_id": 1, "course_id": 1, "au": ""}', b'{"student_id": "1", "course_id": [], "au": {}}',
    b'{"student_id": 1, "course_id": 1, "au": "x", "launch_mode": "Sideways"}',
    b'{"student_id": 1, "course_id": 1, "au": "x", "return_url": "javascript:alert(1)"}',
    b'{"au": "\\u0000", "reason": "Tested Out"}', b'{"au": "x", "reason": "Because"}',
    b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><a>&e;</a>",
    b"PK\x03\x04" + b"\x00" * 64, b"<courseStructure/>",
]  # fmt: skip


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_requests_to_the_cmi5_endpoints_get_a_4xx_naming_the_problem(lms, course, body):
    registration = str(uuid.uuid4())
    requests = [
        ("POST", "/cmi5/launch", {"Content-Type": "application/json"}),
        ("POST", "/cmi5/courses", {"Content-Type": "application/xml"}),
        ("POST", "/cmi5/courses", {"Content-Type": "application/zip"}),
        ("POST", f"/cmi5/registrations/{registration}/waive", {"Content-Type": "application/json"}),
        ("POST", "/cmi5/registrations/not-a-uuid/waive", {"Content-Type": "application/json"}),
        ("POST", "/cmi5/fetch/%00%ff", {}),
        ("GET", "/cmi5/sessions/not-a-session", {}),
        ("POST", "/cmi5/sessions/00000000-0000-0000-0000-000000000000/abandon", {}),
        ("GET", "/cmi5/content/1/..%2F..%2Fetc%2Fpasswd", {}),
        ("GET", "/cmi5/courses/99999999999", {}),
    ]
    for method, path, headers in requests:
        response = lms.request(method, path, content=body, headers=headers)
        assert response.status_code < 500, (method, path, response.text)
        if response.status_code >= 400:
            assert response.json()["error"]["message"] or response.json()["detail"], response.text
