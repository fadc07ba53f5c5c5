"""The limits that keep hostile input from a 500 (issue 12), each at its edge, over HTTP.

One nesting limit for every JSON the LRS parses (LRS_MAX_JSON_DEPTH), a cap on statements per
request (LRS_MAX_STATEMENTS_PER_REQUEST), identifiers of any length stored and queryable, credentials
that cannot exist refused before any store sees them, bounded parameter parsers, and the last
resort: an unexpected error is a JSON 500 naming a request id, logged once, on a connection the
client is told to close. ``test_fuzz_hostile.py`` holds the hostile corpus and the fuzz run.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lrs.auth.credentials import MAX_KEY_LENGTH, AuthenticationError, new_credential, parse_basic
from lrs.http.app import create_app
from lrs.http.params import Params
from lrs.settings import AuthSettings, ServerSettings, StoreSettings
from lrs.store import is_mongodb
from lrs.store.batch import SeenCache
from lrs.usecases.errors import BadRequest
from lrs.xapi import formats
from lrs.xapi.jsontext import JsonTextError, nesting_depth, parse_bounded

from .conftest import ADMIN, RunningServer, Xapi, free_port, statement, unique_activity, unique_agent
from .helpers import error_message

DEPTH = 40  # the server below runs with LRS_MAX_JSON_DEPTH=40
PER_REQUEST = 5  # and LRS_MAX_STATEMENTS_PER_REQUEST=5
BODY_LIMIT = 24 * 1024 * 1024


@pytest.fixture(scope="module")
def limited(store_url: str, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    lms = request.getfixturevalue("pg_dsn") if is_mongodb(store_url) else None
    settings = ServerSettings(
        max_body_bytes=BODY_LIMIT,
        max_json_depth=DEPTH,
        max_statements_per_request=PER_REQUEST,
        max_page_size=50,
    )
    app = create_app(
        store_url,
        settings,
        StoreSettings(lms_database_url=lms),
        AuthSettings(admin_key=ADMIN[0], admin_secret=ADMIN[1]),
    )
    with RunningServer(app, free_port()) as running:
        yield running


@pytest.fixture()
def client(limited: RunningServer) -> Iterator[Xapi]:
    with Xapi(f"http://127.0.0.1:{limited.port}") as xapi:
        yield xapi


def incompressible(length: int) -> str:
    """``length`` characters a database cannot compress into an index entry (hex of random
    bytes, the same for the same length): repeated characters would compress and fit."""
    return random.Random(length).randbytes(length // 2 + 1).hex()[:length]


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep (arrays, one object at the bottom)."""
    value: Any = {"leaf": 1}
    for _ in range(depth - 1):
        value = [value]
    return value


def with_result_extension(value: Any, **extra: Any) -> dict[str, Any]:
    """A statement carrying ``value`` 3 levels down (statement → result → extensions → value)."""
    return statement(result={"extensions": {"https://limits.example/x": value}}, **extra)


# --- one nesting limit ------------------------------------------------------------------------------------


def test_a_statement_at_the_nesting_limit_is_stored_and_one_level_deeper_is_refused(client: Xapi):
    at_limit = with_result_extension(nested(DEPTH - 3), id=str(uuid.uuid4()))
    assert client.post_statements(at_limit).status_code == 200
    stored = client.get("/statements", params={"statementId": at_limit["id"]}).json()
    assert stored["result"] == at_limit["result"]
    deeper = with_result_extension(nested(DEPTH - 2), id=str(uuid.uuid4()))
    refused = client.post_statements(deeper)
    assert refused.status_code == 400
    assert f"nested deeper than {DEPTH} levels" in error_message(refused)
    assert "LRS_MAX_JSON_DEPTH" in error_message(refused)
    assert client.get("/statements", params={"statementId": deeper["id"]}).status_code == 404


def test_a_batch_counts_its_array_as_a_level(client: Xapi):
    batch = [with_result_extension(nested(DEPTH - 3))]
    assert "nested deeper" in error_message(client.post_statements(batch), 400)
    assert client.post_statements([with_result_extension(nested(DEPTH - 4))]).status_code == 200


def test_merged_documents_are_read_under_the_same_limit(client: Xapi):
    params = {
        "activityId": unique_activity()["id"],
        "agent": json.dumps(unique_agent()),
        "stateId": "merge",
    }
    assert client.post("/activities/state", params=params, json={"a": nested(DEPTH - 1)}).status_code == 204
    refused = client.post("/activities/state", params=params, json={"b": nested(DEPTH)})
    assert "the posted document is JSON nested deeper" in error_message(refused, 400)
    assert client.get("/activities/state", params=params).json() == {"a": nested(DEPTH - 1)}
    # a PUT stores any bytes unread; merging into a document nested too deep is refused, not a 500
    deep = {**params, "stateId": "deep"}
    assert client.put("/activities/state", params=deep, json=nested(DEPTH + 5)).status_code == 204
    refused = client.post("/activities/state", params=deep, json={"c": 1})
    assert "the stored document is JSON nested deeper" in error_message(refused, 400)
    assert client.get("/activities/state", params=deep).json() == nested(DEPTH + 5)


def test_json_parameters_are_read_under_the_same_limit(client: Xapi):
    agent = {"objectType": "Group", "member": nested(DEPTH)}
    assert "parameter 'agent' is JSON nested deeper" in error_message(
        client.get("/statements", params={"agent": json.dumps(agent)}), 400
    )


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ("x", 0), ([], 1), ({}, 1), ([[1], {"a": [2]}], 3), (nested(500), 500)],
)
def test_nesting_depth(value: Any, depth: int):
    assert nesting_depth(value, 1_000) == depth


def test_parse_bounded_names_what_and_the_limit():
    assert parse_bounded(b"[[1]]", 2, "body") == [[1]]
    with pytest.raises(JsonTextError, match="body is JSON nested deeper than 2 levels"):
        parse_bounded(b"[[[1]]]", 2, "body")
    with pytest.raises(JsonTextError, match="nested deeper than 2 levels"):  # beyond orjson's own limit
        parse_bounded(b"[" * 5_000 + b"]" * 5_000, 2, "body")
    with pytest.raises(JsonTextError, match="body is not valid JSON"):
        parse_bounded(b"[1", 2, "body")


def test_the_nesting_limit_has_a_ceiling():
    with pytest.raises(ValueError):
        ServerSettings(max_json_depth=300)  # orjson cannot serialise that deep


# --- statements per request ------------------------------------------------------------------------------


def test_more_statements_than_the_cap_are_413_and_none_is_stored(client: Xapi):
    allowed = [statement(id=str(uuid.uuid4())) for _ in range(PER_REQUEST)]
    assert client.post_statements(allowed).status_code == 200
    too_many = [statement(id=str(uuid.uuid4())) for _ in range(PER_REQUEST + 1)]
    refused = client.post_statements(too_many)
    message = error_message(refused, 413)
    assert f"at most {PER_REQUEST}" in message and "LRS_MAX_STATEMENTS_PER_REQUEST" in message
    assert client.get("/statements", params={"statementId": too_many[0]["id"]}).status_code == 404


# --- identifiers of any length -------------------------------------------------------------------------------


def test_statements_with_3_kb_identifiers_are_stored_and_queryable(client: Xapi):
    long_iri = f"https://limits.example/{uuid.uuid4()}/" + incompressible(3_000)
    actor = {
        "objectType": "Agent",
        "name": "Long",
        "mbox": f"mailto:{incompressible(3_000)}@{uuid.uuid4().hex}.example",
    }
    activity = {"id": long_iri + "/activity", "definition": {"name": {"en-US": "long activity"}}}
    sent = statement(actor, long_iri + "/verb", activity, id=str(uuid.uuid4()))
    assert client.post_statements(sent).status_code == 200
    for params in (
        {"verb": long_iri + "/verb"},
        {"activity": activity["id"]},
        {"agent": json.dumps({"mbox": actor["mbox"]})},
    ):
        assert [s["id"] for s in client.find(**params)] == [sent["id"]], list(params)
    assert (
        client.get("/activities", params={"activityId": activity["id"]}).json()["definition"]
        == (activity["definition"])
    )
    assert client.get("/agents", params={"agent": json.dumps({"mbox": actor["mbox"]})}).json()["name"] == [
        "Long"
    ]


def test_a_statement_with_a_1_9_mb_verb_iri_is_stored_and_found_with_the_alternate_syntax(client: Xapi):
    """A URL that long is more than HTTP servers take: xAPI's alternate request syntax carries
    the query in a form body instead."""
    verb = f"https://limits.example/{uuid.uuid4()}/" + incompressible(1_900_000)
    sent = statement(verb=verb, id=str(uuid.uuid4()))
    assert client.post_statements(sent).status_code == 200
    found = client.post(
        "/statements",
        params={"method": "GET"},
        data={"verb": verb, "Authorization": _basic(), "X-Experience-API-Version": "1.0.3"},
    )
    assert found.status_code == 200, found.text
    assert [s["id"] for s in found.json()["statements"]] == [sent["id"]]


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()


@pytest.mark.parametrize("resource", ["/activities/state", "/activities/profile", "/agents/profile"])
def test_documents_with_3_kb_identifiers_can_be_put_read_listed_merged_and_deleted(
    client: Xapi, resource: str
):
    agent = json.dumps({"mbox": f"mailto:{incompressible(3_000)}@{uuid.uuid4().hex}.example"})
    activity = f"https://limits.example/{uuid.uuid4()}/" + incompressible(3_000)
    scope = {
        "/activities/state": {"activityId": activity, "agent": agent},
        "/activities/profile": {"activityId": activity},
        "/agents/profile": {"agent": agent},
    }[resource]
    id_param = "stateId" if resource == "/activities/state" else "profileId"
    doc_id = incompressible(3_000)
    params = {**scope, id_param: doc_id}
    assert (
        client.put(resource, params=params, json={"a": 1}, headers={"If-None-Match": "*"}).status_code == 204
    )
    assert client.post(resource, params=params, json={"b": 2}).status_code == 204
    assert client.get(resource, params=params).json() == {"a": 1, "b": 2}
    assert client.get(resource, params=scope).json() == [doc_id]
    etag = client.get(resource, params=params).headers["etag"]
    assert client.delete(resource, params=params, headers={"If-Match": etag}).status_code == 204
    assert client.get(resource, params=params).status_code == 404


def test_a_statement_or_document_larger_than_a_store_record_is_413_not_500(client: Xapi, store_url: str):
    """BSON documents hold 16 MB: on MongoDB a larger statement or document is 413 and nothing is
    kept; PostgreSQL stores it."""
    response_text = "r" * (17 * 1024 * 1024)
    sent = statement(id=str(uuid.uuid4()), result={"response": response_text})
    params = {"activityId": unique_activity()["id"], "agent": json.dumps(unique_agent()), "stateId": "big"}
    posted = client.post_statements(sent)
    put = client.put("/activities/state", params=params, content=response_text.encode())
    if is_mongodb(store_url):
        assert "16 MB a MongoDB document holds" in error_message(posted, 413)
        assert "16 MB a MongoDB document holds" in error_message(put, 413)
        assert client.get("/statements", params={"statementId": sent["id"]}).status_code == 404
        assert client.get("/activities/state", params=params).status_code == 404
    else:
        assert posted.status_code == 200 and put.status_code == 204
        assert client.get("/activities/state", params=params).content == response_text.encode()


# --- credentials that cannot exist -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret", "problem"),
    [
        ("a\x00b", "s", "control character"),
        ("key", "se\x00cret", "control character"),
        ("a:b", "s", "':'"),
        ("k" * (MAX_KEY_LENGTH + 1), "s", "longer than"),
    ],
)
def test_credentials_that_no_client_could_present_cannot_be_created(key: str, secret: str, problem: str):
    with pytest.raises(ValueError, match=problem):
        new_credential("x", ["all"], "urn:test", key=key, secret=secret)


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"a\x00:b").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic éé",
        "Basic " + "A" * 10,
        "Basic " + base64.b64encode(b"k" * 300 + b":s").decode(),
    ],
)
def test_basic_headers_that_cannot_carry_a_credential_are_refused_before_any_lookup(header: str):
    with pytest.raises(AuthenticationError, match="malformed Basic credentials"):
        parse_basic(header)


# --- parameters ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("7", 7), ("50", 50), ("51", 50), ("9" * 5_000, 50), ("0" * 5_000 + "3", 3)],
)
def test_counts_of_any_length_are_clamped_to_the_ceiling(value: str, expected: int):
    assert Params([("limit", value)], ("limit",), max_json_depth=DEPTH).count("limit", ceiling=50) == expected


@pytest.mark.parametrize("value", ["-1", "1e3", "٣", "²", "", " 1"])
def test_counts_that_are_not_ascii_digits_are_400(value: str):
    with pytest.raises(BadRequest, match="limit"):
        Params([("limit", value)], ("limit",), max_json_depth=DEPTH).count("limit", ceiling=50)


# --- the last resort -------------------------------------------------------------------------------------------


class Exploding:
    """An authenticator that fails unexpectedly (stands for any bug)."""

    async def authenticate(self, header: str | None):
        raise RuntimeError("boom: an unexpected failure")

    def clear(self) -> None:
        pass


@pytest.fixture()
def exploding(limited: RunningServer) -> Iterator[int]:
    state = limited.server.config.app.state
    working, state.authenticator = state.authenticator, Exploding()
    try:
        yield limited.port
    finally:
        state.authenticator = working


@pytest.mark.parametrize("path", ["/xapi/statements", "/analytics/api/courses", "/analytics/"])
def test_an_unexpected_error_is_a_json_500_with_a_request_id_logged_once_on_a_closing_connection(
    exploding: int, path: str, caplog: pytest.LogCaptureFixture
):
    connection = http.client.HTTPConnection("127.0.0.1", exploding, timeout=30)
    try:
        with caplog.at_level(logging.ERROR):
            connection.request(
                "GET", path, headers={"X-Experience-API-Version": "1.0.3", "Authorization": _basic()}
            )
            response = connection.getresponse()
            body = json.loads(response.read())
        assert response.status == 500
        request_id = body["error"]["request_id"]
        assert request_id in body["error"]["message"] and response.getheader("X-Request-Id") == request_id
        assert response.getheader("Connection") == "close" and response.will_close
        logged = [r for r in caplog.records if request_id in r.getMessage()]
        assert len(logged) == 1 and "boom" in str(logged[0].exc_info[1])
        connection.request("GET", "/xapi/about")  # the client reconnects, as it was told to
        assert connection.getresponse().status == 200
    finally:
        connection.close()


# --- caches keep only short values ------------------------------------------------------------------


def test_validation_caches_keep_only_short_values():
    """Hostile long values are checked, never cached: the caches' memory stays bounded."""
    before = formats.is_iri.cache_info().currsize
    for n in range(50):
        assert formats.is_iri(f"https://limits.example/{n}/" + "x" * formats.CACHED_UP_TO)
    assert formats.is_iri.cache_info().currsize == before
    seen = SeenCache(size=10, item_up_to=100)
    seen.add(("def", "https://a.example", b"{}"))
    seen.add(("def", "https://b.example", b"x" * 200))
    assert ("def", "https://a.example", b"{}") in seen
    assert ("def", "https://b.example", b"x" * 200) not in seen
