"""CORS for browser clients (checklist section 3, CORS-*).

xAPI 1.0.3 has no CORS requirement (it offers the alternate request syntax to cross-domain
browsers instead); this LRS answers preflights itself. These tests pin that behaviour.
"""

from __future__ import annotations

import json

import pytest

from .conftest import statement, unique_activity, unique_agent

ORIGIN = "https://learning-app.example.org"
RESOURCES = [
    "/statements",
    "/activities",
    "/activities/state",
    "/activities/profile",
    "/agents",
    "/agents/profile",
    "/about",
]
REQUEST_HEADERS = [
    "Authorization", "Content-Type", "X-Experience-API-Version", "If-Match", "If-None-Match", "Accept-Language",
]  # fmt: skip
EXPOSED = [
    "ETag",
    "Last-Modified",
    "X-Experience-API-Version",
    "X-Experience-API-Consistent-Through",
    "Content-Type",
]


def header_list(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",") if item.strip()}


def preflight(client, path: str, method: str, headers: list[str]):
    return client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ", ".join(headers),
        },
    )


@pytest.mark.parametrize("path", RESOURCES)
def test_cors2_preflight_answered_for_every_resource_without_credentials(client_for, path):
    """CORS-2: OPTIONS preflight on every resource succeeds without credentials or a version header
    (browsers send neither on a preflight) and allows the xAPI methods and request headers."""
    client = client_for(auth=None, version=None)
    response = preflight(client, path, "PUT", REQUEST_HEADERS)
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    methods = header_list(response.headers["access-control-allow-methods"])
    assert {"head", "get", "post", "put", "delete"} <= methods
    allowed = header_list(response.headers["access-control-allow-headers"])
    assert {h.lower() for h in REQUEST_HEADERS} <= allowed


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE"])
def test_cors2_each_xapi_method_passes_preflight(client_for, method):
    """CORS-2: every method a client may use is listed as allowed."""
    response = preflight(client_for(auth=None, version=None), "/activities/state", method, ["Authorization"])
    assert response.status_code in (200, 204)
    assert method.lower() in header_list(response.headers["access-control-allow-methods"])


def test_cors3_actual_responses_expose_the_xapi_headers(xapi):
    """CORS-3: real responses carry Access-Control-Allow-Origin and expose ETag, Last-Modified,
    X-Experience-API-Version, X-Experience-API-Consistent-Through and Content-Type."""
    agent, activity = unique_agent(), unique_activity()
    xapi.store(statement(agent, obj=activity))
    params = {"activityId": activity["id"], "agent": json.dumps(agent), "stateId": "cors"}
    assert xapi.put("/activities/state", params=params, json={"a": 1}).status_code == 204
    for response in (
        xapi.get("/statements", params={"activity": activity["id"]}, headers={"Origin": ORIGIN}),
        xapi.get("/activities/state", params=params, headers={"Origin": ORIGIN}),
    ):
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
        exposed = header_list(response.headers["access-control-expose-headers"])
        assert {h.lower() for h in EXPOSED} <= exposed
        # the exposed headers are really there to read
        for name in ("last-modified", "x-experience-api-version", "content-type"):
            assert name in response.headers


def test_cors3_error_responses_carry_cors_headers_too(client_for):
    """CORS-3: a browser can read 400 and 401 answers (the version header and message) as well."""
    for client in (client_for(auth=None, version="1.0.3"), client_for(version=None)):
        response = client.get("/statements", headers={"Origin": ORIGIN})
        assert response.status_code in (400, 401)
        assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
        assert "x-experience-api-version" in header_list(response.headers["access-control-expose-headers"])


def test_cors1_cross_origin_requests_work_like_same_origin_ones(xapi):
    """CORS-1 (no normative requirement): an Origin header changes nothing about how a request is
    processed — the statement is stored and read back the same way."""
    agent = unique_agent()
    response = xapi.post("/statements", json=statement(agent), headers={"Origin": ORIGIN})
    assert response.status_code == 200
    (sid,) = response.json()
    got = xapi.get("/statements", params={"statementId": sid}, headers={"Origin": ORIGIN})
    assert got.status_code == 200
    assert got.json()["actor"] == agent
