"""Property test: no query string makes GET /statements fail with a server error (SQ-16, SGET-3, SPAGE-5, ERR-4).

Hypothesis draws query strings from known parameter names (also in the wrong case), unknown names and
random text, with values that are valid, almost valid (JSON fragments, agents, timestamps at the edges
of the calendar with offsets, huge numbers, UUID look-alikes) or random unicode. Whatever arrives, the
LRS must answer 200/400/404 — never 5xx — and every 400 must carry an explanatory message. The run is
derandomised and bounded, so it is deterministic and fast.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import statement

KNOWN = [
    "statementId", "voidedStatementId", "agent", "verb", "activity", "registration", "related_activities",
    "related_agents", "since", "until", "limit", "format", "attachments", "ascending", "more",
]  # fmt: skip

names = st.one_of(
    st.sampled_from(KNOWN),
    st.sampled_from(KNOWN).map(str.upper),
    st.sampled_from(KNOWN).map(str.capitalize),
    st.sampled_from(["foo", "method", "Agent", "statementID", "callback", "_", "limit[]", "agent.mbox"]),
    st.text(min_size=1, max_size=12),
)

json_fragments = st.sampled_from(
    [
        "{",
        "}",
        "[]",
        "{}",
        "null",
        "true",
        "1e999",
        "-0",
        '"x"',
        '{"mbox":',
        '{"mbox": null}',
        '{"objectType": "Group"}',
        '{"objectType": "Group", "mbox": "mailto:g@example.com", "member": []}',
        '{"mbox": "mailto:a@example.com", "mbox": "mailto:b@example.com"}',
        '{"account": {"homePage": "x", "name": 1}}',
        '{"account": {"homePage": "https://a.example", "name": "\\u0000"}}',
        '{"openid": "\\ud800"}',
        '{"mbox_sha1sum": "' + "f" * 40 + '"}',
        '{"mbox": "mailto:' + "a" * 5000 + '@example.com"}',
        '{"mbox": "mailto:a@example.com", "objectType": "Agent", "name": ' + "9" * 400 + "}",
    ]
)

agents = st.builds(
    lambda key, kind: json.dumps(
        {
            "mbox": {"mbox": f"mailto:{key}@example.com"},
            "openid": {"openid": f"https://openid.example/{key}"},
            "account": {"account": {"homePage": "https://a.example", "name": key}},
            "group": {"objectType": "Group", "mbox": f"mailto:{key}@groups.example"},
        }[kind]
    ),
    st.text(min_size=1, max_size=10),
    st.sampled_from(["mbox", "openid", "account", "group"]),
)

offsets = st.sampled_from(
    ["Z", "+00:00", "-00:00", "+23:59", "-23:59", "+05:30", "-0500", "+14", "", "+24:00", "z"]
)
timestamps = st.builds(
    lambda moment, offset, fraction: moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    offsets,
    st.sampled_from(["", ".5", ".123456", ".1234567890123"]),
)

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["0", "00", "+1", "1.0", "1e3", "٣", "９", "9" * 100, "-0", " 1", "0x10"]),
)

values = st.one_of(
    st.sampled_from(
        [
            "true",
            "false",
            "True",
            "",
            "exact",
            "ids",
            "canonical",
            "IDS",
            "http://adlnet.gov/expapi/verbs/completed",
            "not an iri",
            "urn:x",
            "https://lms.example/a b",
        ]
    ),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: str(u)[:-1] + "g"),
    json_fragments,
    agents,
    timestamps,
    numbers,
    st.text(max_size=40),
    st.text(
        alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
        max_size=20,
    ),
)


def continuation(state: dict) -> str:
    """A `more` token in the shape this LRS issues (URL-safe base64 of a JSON object), forged."""
    return base64.urlsafe_b64encode(json.dumps(state).encode()).rstrip(b"=").decode()


moments = st.sampled_from(
    ["2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00", "x", "", "9999-12-31T23:59:59-05:00"]
)
forged_more = st.fixed_dictionaries(
    {
        "k": st.one_of(st.lists(st.text(max_size=8), max_size=2), st.text(max_size=4)),
        "s": st.one_of(st.none(), moments),
        "u": st.one_of(st.none(), moments),
        "a": st.booleans(),
        "l": st.one_of(st.integers(min_value=-5, max_value=2**62), st.text(max_size=3)),
        "c": st.one_of(
            st.none(),
            moments,
            st.builds("{}/{}".format, moments, st.one_of(st.integers(-1, 10**25), st.text(max_size=4))),
        ),
        "n": moments,
        "f": st.sampled_from(["exact", "ids", "canonical", "other"]),
        "t": st.booleans(),
    }
).map(continuation)

queries = st.one_of(
    st.lists(st.tuples(names, values), min_size=0, max_size=4),
    forged_more.map(lambda token: [("more", token)]),
)


def check_answer(response, query) -> None:
    assert response.status_code < 500, (query, response.status_code, response.text)
    assert response.status_code in (200, 400, 404), (query, response.status_code, response.text)
    assert response.headers.get("X-Experience-API-Consistent-Through"), query
    if response.status_code == 200:
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type in ("application/json", "multipart/mixed"), query
        return
    body = response.json()
    assert body["error"]["status"] == response.status_code, query
    message = body["error"]["message"]
    assert isinstance(message, str) and len(message) > 10, (query, message)
    if response.status_code == 404:
        assert any(name in ("statementId", "voidedStatementId") for name, _ in query), query


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(query=queries, use_v2=st.booleans())
@example(query=[("since", "9999-12-31T23:59:59-05:00")], use_v2=False)
@example(query=[("until", "0001-01-01T00:00:00+05:00")], use_v2=True)
@example(query=[("limit", "9" * 40)], use_v2=False)
@example(query=[("agent", '{"account": {"homePage": "https://a.example", "name": "\\u0000"}}')], use_v2=False)
@example(query=[("statementId", str(uuid.UUID(int=0, version=4))), ("format", "ids")], use_v2=True)
@example(query=[("more", "eyJrIjpbXSwicyI6bnVsbH0")], use_v2=False)
@example(
    query=[
        (
            "more",
            continuation(
                {
                    "k": [],
                    "s": None,
                    "u": None,
                    "a": False,
                    "l": 1,
                    "c": "x",
                    "n": "2024-01-01T00:00:00+00:00",
                    "f": "exact",
                    "t": False,
                }
            ),
        )
    ],
    use_v2=False,
)
def test_fuzz_query_strings_never_cause_a_server_error(xapi, xapi2, query, use_v2):
    """SQ-16 / SGET-3 / ERR-4 / SPAGE-5: any GET /statements query string → 200, 400 or 404 (404 only for an
    id parameter), never 5xx; errors carry an explanatory message; Consistent-Through is always sent."""
    client = xapi2 if use_v2 else xapi
    response = client.get("/statements", params=query)
    check_answer(response, query)


@pytest.mark.parametrize(
    "name, value",
    [
        ("since", "9999-12-31T23:59:59-05:00"),
        ("until", "9999-12-31T20:00:00-12:00"),
        ("since", "0001-01-01T00:00:00+05:00"),
        ("until", "0001-01-01T03:00:00+14:00"),
    ],
)
def test_fuzz_timestamps_at_the_edges_of_the_calendar(xapi, name, value):
    """SQ-9/SQ-10 (found by the property test): a well-formed timestamp whose UTC instant falls outside
    years 1..9999 must be answered without a server error: 200 (nothing or everything matches) or 400."""
    response = xapi.get("/statements", params={name: value})
    check_answer(response, [(name, value)])


def test_fuzz_valid_extreme_time_window_is_200(xapi):
    """SQ-9/SQ-10: the widest representable window in UTC is a valid query."""
    xapi.store(statement())
    since = datetime(1, 1, 1, tzinfo=timezone.utc).isoformat()
    until = (datetime(9999, 12, 31, tzinfo=timezone.utc) + timedelta(hours=23)).isoformat()
    response = xapi.get("/statements", params={"since": since, "until": until, "limit": "1"})
    assert response.status_code == 200, response.text
    assert len(response.json()["statements"]) == 1
