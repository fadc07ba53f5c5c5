"""Paging (`more`) and the consistency headers of the Statement resource (SPAGE-1..7).

The walk over pages is done by hand here (not with ``Xapi.find``) so every page can be inspected, and
each `more` IRL is resolved against the server root exactly as the specification describes it.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import ADMIN, statement, unique_activity, unique_agent, voiding
from .helpers import error_message, store_one_by_one

CONSISTENT = "X-Experience-API-Consistent-Through"


def encode(params: dict) -> dict:
    return {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}


def follow(client: httpx.Client, base_url: str, more: str, **headers) -> httpx.Response:
    """GET a `more` IRL: a path from the server root, resolved against scheme, host and port."""
    parts = urlsplit(more)
    assert parts.scheme == "" and parts.netloc == "", more
    assert more.startswith("/"), more
    return client.get(base_url + more, headers=headers or None)


def walk(client, base_url: str, between_pages=None, **params) -> list[list[dict]]:
    """Every page of a query, in order; ``between_pages(n)`` runs after page n has been read."""
    response = client.get("/statements", params=encode(params))
    assert response.status_code == 200, response.text
    pages = [response.json()["statements"]]
    more = response.json().get("more", "")
    while more:
        if between_pages:
            between_pages(len(pages))
        response = follow(client, base_url, more)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) <= {"statements", "more"}
        pages.append(body["statements"])
        more = body.get("more", "")
        assert len(pages) < 100, "paging does not end"
    return pages


def consistent_through(response) -> datetime:
    values = response.headers.get_list(CONSISTENT)
    assert len(values) == 1, f"{CONSISTENT}: {values}"
    value = datetime.fromisoformat(values[0])
    assert value.tzinfo is not None, values[0]
    return value


def date_header(response) -> datetime:
    values = response.headers.get_list("date")
    assert len(values) == 1, f"Date: {values}"
    return parsedate_to_datetime(values[0])


# --- SPAGE-1 / SPAGE-2 / SPAGE-3 ---------------------------------------------------------------------------


def test_spage1_more_is_a_relative_irl_that_returns_the_next_page(any_xapi, base_url):
    """SPAGE-1: with more results, `more` is a path from the server root (no scheme, host or port) that
    returns the next page; SPAGE-2: the last page has more "" (or none)."""
    actor = unique_agent()
    ids = store_one_by_one(any_xapi, *(statement(actor=actor) for _ in range(5)))
    first = any_xapi.get("/statements", params={"agent": json.dumps(actor), "limit": "2"})
    more = first.json()["more"]
    assert more and len(more) < 2048
    second = follow(any_xapi, base_url, more)
    assert second.status_code == 200
    assert [s["id"] for s in second.json()["statements"]] == ids[::-1][2:4]
    last = follow(any_xapi, base_url, second.json()["more"])
    assert [s["id"] for s in last.json()["statements"]] == [ids[0]]
    assert last.json().get("more", "") == ""


def test_spage2_no_more_when_everything_fits(any_xapi):
    """SPAGE-2: when all matches are returned (also when exactly `limit` match), more is empty or absent."""
    actor = unique_agent()
    any_xapi.store(statement(actor=actor), statement(actor=actor))
    for limit in ("2", "3", "0"):
        body = any_xapi.get("/statements", params={"agent": json.dumps(actor), "limit": limit}).json()
        assert len(body["statements"]) == 2
        assert body.get("more", "") == ""


def test_spage3_more_page_has_the_same_shape_and_rules(any_xapi, base_url, make_credential):
    """SPAGE-3: a `more` page is a StatementResult like the first and needs the same authentication and
    version header as any request (401 without credentials, 400 without the version, 403 without read)."""
    actor = unique_agent()
    any_xapi.store(*(statement(actor=actor) for _ in range(3)))
    more = any_xapi.get("/statements", params={"agent": json.dumps(actor), "limit": "1"}).json()["more"]
    version = {"X-Experience-API-Version": any_xapi.version}
    with httpx.Client() as raw:
        anonymous = raw.get(base_url + more, headers=version)
        assert anonymous.status_code == 401
        assert raw.get(base_url + more, auth=ADMIN).status_code == 400
        writer = make_credential(["statements/write"])
        forbidden = raw.get(base_url + more, auth=writer, headers=version)
        assert forbidden.status_code == 403
        page = raw.get(base_url + more, auth=ADMIN, headers=version)
    assert page.status_code == 200
    body = page.json()
    assert set(body) == {"statements", "more"} and len(body["statements"]) == 1
    assert page.headers["X-Experience-API-Version"] == any_xapi.version


@pytest.mark.parametrize("token", ["garbage", "", "eyJrIjpbXX0", "%00"])
def test_spage3_more_token_not_issued_by_the_lrs_is_400(any_xapi, token):
    """SPAGE-3: a `more` value the LRS did not issue → 400 with a message."""
    response = any_xapi.get("/statements", params={"more": token})
    assert response.status_code == 400
    assert "more" in error_message(response)


@pytest.mark.parametrize(
    "cursor", ["x", None, "2024-01-01T00:00:00+00:00/not-a-number", "2024-01-01T00:00:00+00:00/" + "9" * 25]
)
def test_spage3_tampered_more_token_is_400(any_xapi, base_url, cursor):
    """SPAGE-3: a continuation altered by the client is not one the LRS issued → 400, never a 5xx. (This
    LRS's tokens are URL-safe base64 JSON; the test alters the position field of a real one.)"""
    actor = unique_agent()
    any_xapi.store(statement(actor=actor), statement(actor=actor))
    more = any_xapi.get("/statements", params={"agent": json.dumps(actor), "limit": "1"}).json()["more"]
    token = more.split("more=", 1)[1]
    state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert "c" in state
    state["c"] = cursor
    forged = base64.urlsafe_b64encode(json.dumps(state).encode()).rstrip(b"=").decode()
    response = any_xapi.get("/statements", params={"more": forged})
    assert response.status_code == 400, response.text
    assert "more" in error_message(response)


def test_spage3_more_with_other_parameters_is_400(any_xapi, base_url):
    """SPAGE-3: the continuation carries the whole query; adding parameters to it → 400."""
    actor = unique_agent()
    any_xapi.store(statement(actor=actor), statement(actor=actor))
    more = any_xapi.get("/statements", params={"agent": json.dumps(actor), "limit": "1"}).json()["more"]
    response = any_xapi.get(base_url + more + "&limit=5")
    assert response.status_code == 400
    assert "limit" in error_message(response)


# --- walking all pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ascending", ["false", "true"])
def test_spage1_walk_returns_every_statement_once_in_order(any_xapi, base_url, ascending):
    """SPAGE-1/SPAGE-2: following `more` to the end yields every match exactly once, in stored order."""
    actor = unique_agent()
    ids = store_one_by_one(any_xapi, *(statement(actor=actor) for _ in range(7)))
    pages = walk(any_xapi, base_url, agent=actor, limit="3", ascending=ascending)
    assert [len(p) for p in pages] == [3, 3, 1]
    walked = [s["id"] for p in pages for s in p]
    assert walked == (ids if ascending == "true" else ids[::-1])


@pytest.mark.parametrize("ascending", ["false", "true"])
def test_spage1_walk_is_stable_while_statements_are_added(any_xapi, base_url, ascending):
    """SPAGE-1/SPAGE-4: statements POSTed between pages neither duplicate nor skip any original match, and
    the walk stays in stored order (this LRS pins a snapshot, so the new ones are not included)."""
    actor = unique_agent()
    ids = store_one_by_one(any_xapi, *(statement(actor=actor) for _ in range(6)))
    added: list[str] = []

    def write(_page: int) -> None:
        added.extend(any_xapi.store(statement(actor=actor), statement(actor=actor)))

    pages = walk(any_xapi, base_url, between_pages=write, agent=actor, limit="2", ascending=ascending)
    walked = [s for p in pages for s in p]
    walked_ids = [s["id"] for s in walked]
    assert len(walked_ids) == len(set(walked_ids))
    assert [i for i in walked_ids if i in ids] == (ids if ascending == "true" else ids[::-1])
    stored = [s["stored"] for s in walked]
    assert stored == sorted(stored, reverse=ascending == "false")
    assert added and not set(added) & set(walked_ids)
    assert set(added) <= {s["id"] for s in any_xapi.find(agent=actor)}


def test_spage4_statement_voided_between_pages_is_dropped(any_xapi, base_url):
    """SPAGE-4: `more` may re-run the query; this LRS does, so a statement voided after the first page was
    read is not returned by a later page (never a voided statement from a query, SFMT-5)."""
    actor = unique_agent()
    ids = store_one_by_one(any_xapi, *(statement(actor=actor) for _ in range(4)))
    victim = ids[0]  # the oldest: on the last page of a newest-first walk

    def void(page: int) -> None:
        if page == 1:
            any_xapi.store(voiding(victim))

    walked = [
        s["id"] for p in walk(any_xapi, base_url, between_pages=void, agent=actor, limit="2") for s in p
    ]
    assert walked == ids[:0:-1]


def test_spage4_more_irl_can_be_used_again(any_xapi, base_url):
    """SPAGE-4: a `more` IRL stays usable (the continuation holds the whole query): fetching it twice gives
    the same page."""
    actor = unique_agent()
    any_xapi.store(*(statement(actor=actor) for _ in range(3)))
    more = any_xapi.get("/statements", params={"agent": json.dumps(actor), "limit": "1"}).json()["more"]
    first, second = follow(any_xapi, base_url, more), follow(any_xapi, base_url, more)
    assert first.status_code == second.status_code == 200
    assert first.json()["statements"] == second.json()["statements"]


@pytest.mark.parametrize(
    "params",
    [
        {"verb": "https://verbs.example/{v}"},
        {"activity": "{a}", "related_activities": "true"},
        {"registration": "{r}"},
        {"agent": "{agent}", "related_agents": "true"},
    ],
    ids=["verb", "related-activities", "registration", "related-agents"],
)
def test_spage1_more_pages_keep_the_filters(any_xapi, base_url, params):
    """SPAGE-1: later pages apply the same filters as the first: matches are all returned, nothing else."""
    verb, activity, registration, actor = (
        f"https://verbs.example/{uuid.uuid4()}",
        unique_activity(),
        str(uuid.uuid4()),
        unique_agent(),
    )
    matching = statement(actor=actor, verb=verb, obj=activity, context={"registration": registration})
    noise = [statement(actor=unique_agent()) for _ in range(3)]
    ids = store_one_by_one(any_xapi, matching, noise[0], dict(matching), noise[1], dict(matching), noise[2])
    filled = {
        k: v.format(v=verb.rsplit("/", 1)[1], a=activity["id"], r=registration, agent=json.dumps(actor))
        for k, v in params.items()
    }
    pages = walk(any_xapi, base_url, limit="1", **filled)
    assert [s["id"] for p in pages for s in p] == [ids[4], ids[2], ids[0]]


def test_spage1_more_pages_keep_format_and_attachments(any_xapi, base_url):
    """SPAGE-1: format (and attachments) carry over to later pages."""
    actor = unique_agent("Has a name")
    any_xapi.store(*(statement(actor=actor) for _ in range(3)))
    pages = walk(any_xapi, base_url, agent=actor, limit="1", format="ids")
    assert len(pages) == 3
    for page in pages:
        assert page[0]["actor"] == {"objectType": "Agent", "mbox": actor["mbox"]}
        assert page[0]["verb"] == {"id": "http://adlnet.gov/expapi/verbs/completed"}

    response = any_xapi.get(
        "/statements", params={"agent": json.dumps(actor), "limit": "1", "attachments": "true"}
    )
    assert response.headers["content-type"].startswith("multipart/mixed")
    first_part = response.content.split(b"\r\n\r\n", 1)[1]
    more = json.loads(first_part[: first_part.rindex(b"}") + 1])["more"]
    assert follow(any_xapi, base_url, more).headers["content-type"].startswith("multipart/mixed")


# --- SPAGE-5 / SPAGE-6 / SPAGE-7: headers ----------------------------------------------------------------


def _responses(client, base_url) -> dict[str, httpx.Response]:
    actor = unique_agent()
    (sid,) = client.store(statement(actor=actor))
    client.store(statement(actor=actor))
    (voided,) = client.store(statement())
    client.store(voiding(voided))
    more = client.get("/statements", params={"agent": json.dumps(actor), "limit": "1"}).json()["more"]
    version = {"X-Experience-API-Version": client.version}
    with httpx.Client(base_url=base_url + "/xapi") as raw:
        return {
            "query 200": client.get("/statements", params={"agent": json.dumps(actor)}),
            "more 200": follow(client, base_url, more),
            "single 200": client.get("/statements", params={"statementId": sid}),
            "voided 200": client.get("/statements", params={"voidedStatementId": voided}),
            "attachments 200": client.get("/statements", params={"statementId": sid, "attachments": "true"}),
            "head 200": client.head("/statements", params={"statementId": sid}),
            "post 200": client.post_statements(statement()),
            "put 204": client.put("/statements", params={"statementId": str(uuid.uuid4())}, json=statement()),
            "put 409": client.put("/statements", params={"statementId": sid}, json=statement()),
            "get 404": client.get("/statements", params={"statementId": str(uuid.uuid4())}),
            "get 400": client.get("/statements", params={"foo": "bar"}),
            "post 400": client.post_statements({"actor": "nobody"}),
            "no version 400": raw.get("/statements", auth=ADMIN),
            "no auth 401": raw.get("/statements", headers=version),
        }


def test_spage5_consistent_through_on_every_statements_response(any_xapi, base_url):
    """SPAGE-5: every /statements response, whatever its status (200, 204, 400, 401, 404, 409), carries
    exactly one X-Experience-API-Consistent-Through: an ISO 8601 date-time, recent (within a minute of the
    response's own Date) and not in its future (Date has one-second resolution and the server refreshes it
    once a second, so it may trail the true time by up to two seconds)."""
    for name, response in _responses(any_xapi, base_url).items():
        assert response.status_code == int(name.rsplit(" ", 1)[1]), (name, response.text)
        moment = consistent_through(response)
        date = date_header(response)
        assert date - timedelta(seconds=60) <= moment < date + timedelta(seconds=3), name


def test_spage7_exactly_one_valid_date_header(any_xapi, base_url):
    """SPAGE-7: every /statements response carries exactly one valid Date header."""
    for name, response in _responses(any_xapi, base_url).items():
        date = date_header(response)
        assert date.tzinfo is not None, name


def test_spage6_consistent_through_not_earlier_than_returned_statements(any_xapi):
    """SPAGE-6: Consistent-Through is never earlier than the stored time of a statement in the same
    response — for queries and for single statements fetched right after they were written (also right
    after another /statements request was answered)."""
    actor = unique_agent()
    for _ in range(5):
        any_xapi.get("/statements", params={"statementId": str(uuid.uuid4())})
        (sid,) = any_xapi.store(statement(actor=actor))
        single = any_xapi.get("/statements", params={"statementId": sid})
        assert consistent_through(single) >= datetime.fromisoformat(single.json()["stored"]), sid
        page = any_xapi.get("/statements", params={"agent": json.dumps(actor)})
        newest = max(datetime.fromisoformat(s["stored"]) for s in page.json()["statements"])
        assert consistent_through(page) >= newest
