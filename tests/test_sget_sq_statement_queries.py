"""GET on the Statement resource: single statements (SGET-*, V2-17) and queries (SQ-*, V2-8).

Time filters use the ``stored`` values the LRS itself returned, never the test machine's clock.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest

from .conftest import MAX_PAGE, VERBS, statement, unique_activity, unique_agent, voiding
from .helpers import error_message, store_one_by_one


def get(client, **params):
    return client.get(
        "/statements", params={k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    )


def ids_of(client, **params) -> list[str]:
    return [s["id"] for s in client.find(**params)]


def stored_of(client, statement_id: str) -> str:
    response = get(client, statementId=statement_id)
    assert response.status_code == 200
    return response.json()["stored"]


def unique_verb() -> str:
    return f"https://verbs.example/{uuid.uuid4()}"


def group_of(*members, identified: bool = False) -> dict:
    group = {"objectType": "Group", "member": [dict(m) for m in members]}
    if identified:
        group["mbox"] = f"mailto:group-{uuid.uuid4().hex[:10]}@example.com"
    return group


def as_object(agent: dict) -> dict:
    return dict(agent, objectType=agent.get("objectType", "Agent"))


def substatement(actor=None, obj=None, **extra) -> dict:
    sub = {
        "objectType": "SubStatement",
        "actor": actor or unique_agent(),
        "verb": {"id": VERBS["attempted"]},
        "object": obj or unique_activity(),
    }
    sub.update(extra)
    return sub


def ref(statement_id: str) -> dict:
    return {"objectType": "StatementRef", "id": statement_id}


# --- SGET-1 ---------------------------------------------------------------------------------------------


def test_sget1_statement_id_returns_that_statement(any_xapi):
    """SGET-1: statementId → 200 and the Statement itself (not a StatementResult)."""
    st = statement(result={"completion": True})
    (sid,) = any_xapi.store(st)
    response = get(any_xapi, statementId=sid)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    got = response.json()
    assert "statements" not in got
    assert got["id"] == sid
    assert {k: got[k] for k in ("actor", "verb", "object", "result")} == {
        k: st[k] for k in ("actor", "verb", "object", "result")
    }


def test_sget1_statement_id_is_case_insensitive(any_xapi):
    """SGET-1: the UUID may be given in upper case."""
    (sid,) = any_xapi.store(statement())
    assert get(any_xapi, statementId=sid.upper()).json()["id"] == sid


def test_sget1_voided_statement_id_returns_the_voided_statement(any_xapi):
    """SGET-1: voidedStatementId → 200 and that voided statement."""
    st = statement()
    (sid,) = any_xapi.store(st)
    any_xapi.store(voiding(sid))
    response = get(any_xapi, voidedStatementId=sid)
    assert response.status_code == 200
    assert response.json()["id"] == sid and response.json()["object"] == st["object"]


# --- SGET-2 / SGET-3 ------------------------------------------------------------------------------------


def test_sget2_statement_id_and_voided_statement_id_together_are_rejected(any_xapi):
    """SGET-2: both id parameters → 400 naming them."""
    (sid,) = any_xapi.store(statement())
    (voided,) = any_xapi.store(statement())
    any_xapi.store(voiding(voided))
    response = get(any_xapi, statementId=sid, voidedStatementId=voided)
    assert response.status_code == 400
    message = error_message(response)
    assert "statementId" in message and "voidedStatementId" in message


OTHER_PARAMETERS = {
    "agent": lambda: unique_agent(),
    "verb": lambda: VERBS["completed"],
    "activity": lambda: unique_activity()["id"],
    "registration": lambda: str(uuid.uuid4()),
    "related_activities": lambda: "true",
    "related_agents": lambda: "false",
    "since": lambda: "2020-01-01T00:00:00Z",
    "until": lambda: "2099-01-01T00:00:00Z",
    "limit": lambda: "1",
    "ascending": lambda: "true",
}


@pytest.mark.parametrize("id_param", ["statementId", "voidedStatementId"])
@pytest.mark.parametrize("other", sorted(OTHER_PARAMETERS))
def test_sget3_id_parameter_with_a_filter_is_rejected(any_xapi, id_param, other):
    """SGET-3: statementId/voidedStatementId with any parameter but format/attachments → 400 naming it."""
    (sid,) = any_xapi.store(statement())
    if id_param == "voidedStatementId":
        any_xapi.store(voiding(sid))
    response = get(any_xapi, **{id_param: sid, other: OTHER_PARAMETERS[other]()})
    assert response.status_code == 400
    assert other in error_message(response)


@pytest.mark.parametrize("id_param", ["statementId", "voidedStatementId"])
@pytest.mark.parametrize(
    "extra",
    [
        {"format": "ids"},
        {"format": "canonical"},
        {"format": "exact"},
        {"attachments": "false"},
        {"attachments": "true", "format": "ids"},
    ],
)
def test_sget3_id_parameter_with_format_or_attachments_is_accepted(any_xapi, id_param, extra):
    """SGET-3: format and attachments are the only companions of an id parameter → 200."""
    (sid,) = any_xapi.store(statement())
    if id_param == "voidedStatementId":
        any_xapi.store(voiding(sid))
    response = get(any_xapi, **{id_param: sid, **extra})
    assert response.status_code == 200, response.text
    assert sid.encode() in response.content


# --- SGET-4 / SGET-5 ------------------------------------------------------------------------------------


def test_sget4_voided_statement_by_statement_id_is_404(any_xapi):
    """SGET-4: a voided statement is not served by statementId."""
    (sid,) = any_xapi.store(statement())
    any_xapi.store(voiding(sid))
    response = get(any_xapi, statementId=sid)
    assert response.status_code == 404
    assert sid in error_message(response)


def test_sget4_unknown_statement_id_is_404(any_xapi):
    """SGET-4: an id the LRS does not have → 404."""
    missing = str(uuid.uuid4())
    response = get(any_xapi, statementId=missing)
    assert response.status_code == 404
    assert missing in error_message(response)


@pytest.mark.parametrize("id_param", ["statementId", "voidedStatementId"])
@pytest.mark.parametrize("value", ["not-a-uuid", "", "12345", "{00000000-0000-4000-8000-000000000000}"])
def test_sget4_malformed_id_is_400(any_xapi, id_param, value):
    """SGET-4 / SQ-16: an id parameter that is not a UUID → 400 naming the parameter."""
    response = get(any_xapi, **{id_param: value})
    assert response.status_code == 400
    assert id_param in error_message(response)


def test_sget5_voided_statement_id_of_a_statement_that_is_not_voided_is_404(any_xapi):
    """SGET-5: voidedStatementId for a statement that exists but is not voided (and for an unknown id) → 404."""
    (sid,) = any_xapi.store(statement())
    (voider,) = any_xapi.store(voiding(str(uuid.uuid4())))
    for candidate in (sid, voider, str(uuid.uuid4())):
        response = get(any_xapi, voidedStatementId=candidate)
        assert response.status_code == 404
        assert candidate in error_message(response)


# --- SGET-6 / V2-17 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("id_param", ["statementId", "voidedStatementId"])
def test_sget6_v2_17_last_modified_is_the_stored_time(any_xapi, id_param):
    """SGET-6 / V2-17: GET of one statement carries Last-Modified equal to its stored time (to the second)."""
    (sid,) = any_xapi.store(statement())
    if id_param == "voidedStatementId":
        any_xapi.store(voiding(sid))
    response = get(any_xapi, **{id_param: sid})
    assert response.status_code == 200
    stored = datetime.fromisoformat(response.json()["stored"])
    assert len(response.headers.get_list("last-modified")) == 1
    last_modified = parsedate_to_datetime(response.headers["last-modified"])
    assert last_modified == stored.replace(microsecond=0)


# --- SQ-1 / SQ-2 ------------------------------------------------------------------------------------------


def test_sq1_query_returns_a_statement_result(any_xapi):
    """SQ-1: without an id parameter → 200 and a StatementResult {statements: [...], more}."""
    actor = unique_agent()
    (sid,) = any_xapi.store(statement(actor=actor))
    response = get(any_xapi, agent=actor)
    assert response.status_code == 200
    body = response.json()
    assert set(body) <= {"statements", "more"} and isinstance(body["statements"], list)
    assert [s["id"] for s in body["statements"]] == [sid]
    assert body.get("more", "") == ""


def test_sq1_no_match_is_200_with_an_empty_array(any_xapi):
    """SQ-1: zero matches → 200 with statements: []."""
    response = get(any_xapi, agent=unique_agent())
    assert response.status_code == 200
    assert response.json()["statements"] == []


def test_sq1_unfiltered_query_returns_recent_statements(any_xapi):
    """SQ-1: no parameter at all is a valid query (newest first, at most a page)."""
    (sid,) = any_xapi.store(statement())
    response = any_xapi.get("/statements")
    assert response.status_code == 200
    statements = response.json()["statements"]
    assert 1 <= len(statements) <= MAX_PAGE
    assert sid in [s["id"] for s in statements]


def test_sq2_every_filter_given_must_be_satisfied(any_xapi):
    """SQ-2: with agent, verb, activity and registration together, only the statement matching all of them
    is returned; statements that miss any single one are not."""
    actor, activity, verb, registration = unique_agent(), unique_activity(), unique_verb(), str(uuid.uuid4())

    def make(a=actor, v=verb, o=activity, r=registration):
        return statement(actor=a, verb=v, obj=o, context={"registration": r})

    target = make()
    misses = [
        make(a=unique_agent()),
        make(v=unique_verb()),
        make(o=unique_activity()),
        make(r=str(uuid.uuid4())),
    ]
    ids = any_xapi.store(target, *misses)
    found = ids_of(any_xapi, agent=actor, verb=verb, activity=activity["id"], registration=registration)
    assert found == [ids[0]]
    for params, expected in [
        ({"agent": actor}, {ids[0], ids[2], ids[3], ids[4]}),
        ({"verb": verb}, {ids[0], ids[1], ids[3], ids[4]}),
        ({"activity": activity["id"]}, {ids[0], ids[1], ids[2], ids[4]}),
        ({"registration": registration}, {ids[0], ids[1], ids[2], ids[3]}),
    ]:
        assert set(ids_of(any_xapi, **params)) == expected, params


# --- SQ-3: agent --------------------------------------------------------------------------------------------


def test_sq3_agent_matches_actor_or_object(any_xapi):
    """SQ-3: agent matches the actor or an Agent object; not instructor, team, authority or SubStatement."""
    x = unique_agent()
    as_actor, as_object_, elsewhere = any_xapi.store(
        statement(actor=x),
        statement(obj=as_object(x)),
        statement(context={"instructor": x, "team": group_of(x)}, obj=substatement(actor=x)),
    )
    assert set(ids_of(any_xapi, agent=x)) == {as_actor, as_object_}


@pytest.mark.parametrize("identifier", ["mbox", "mbox_sha1sum", "openid", "account"])
def test_sq3_agent_matches_by_each_kind_of_identifier(any_xapi, identifier):
    """SQ-3: matching is IFI equality for every IFI kind; the name does not matter."""
    key = uuid.uuid4().hex
    ifi = {
        "mbox": f"mailto:{key[:12]}@example.com",
        "mbox_sha1sum": key[:40].ljust(40, "0"),
        "openid": f"https://openid.example/{key}",
        "account": {"homePage": "https://accounts.example", "name": key},
    }[identifier]
    (sid,) = any_xapi.store(statement(actor={"name": "Original name", identifier: ifi}))
    assert ids_of(any_xapi, agent={"name": "Other name", identifier: ifi}) == [sid]
    assert ids_of(any_xapi, agent={"objectType": "Agent", identifier: ifi}) == [sid]


def test_sq3_account_must_match_on_both_home_page_and_name(any_xapi):
    """SQ-3: account equality needs homePage and name to be equal."""
    name = uuid.uuid4().hex
    (sid,) = any_xapi.store(statement(actor={"account": {"homePage": "https://a.example", "name": name}}))
    assert ids_of(any_xapi, agent={"account": {"homePage": "https://b.example", "name": name}}) == []
    assert ids_of(any_xapi, agent={"account": {"homePage": "https://a.example", "name": name}}) == [sid]


@pytest.mark.parametrize("identified", [False, True], ids=["anonymous", "identified"])
@pytest.mark.parametrize("where", ["actor", "object"])
def test_sq3_group_with_the_agent_as_member_matches(any_xapi, identified, where):
    """SQ-3: a Group (actor or object) whose members include the agent matches the agent."""
    x = unique_agent()
    group = group_of(unique_agent(), x, identified=identified)
    st = statement(actor=group) if where == "actor" else statement(obj=group)
    (sid,) = any_xapi.store(st)
    assert ids_of(any_xapi, agent=x) == [sid]


def test_sq3_identified_group_as_agent_parameter(any_xapi):
    """SQ-3: the agent parameter may be an Identified Group; it matches that group by its IFI."""
    group = group_of(unique_agent(), identified=True)
    (sid,) = any_xapi.store(statement(actor=group))
    assert ids_of(any_xapi, agent={"objectType": "Group", "mbox": group["mbox"]}) == [sid]


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[]",
        '"mailto:someone@example.com"',
        '{"mbox": "someone@example.com"}',
        '{"mbox": "mailto:a@example.com", "openid": "https://openid.example/a"}',
        '{"name": "No identifier"}',
        '{"mbox": "mailto:a@example.com", "Name": "wrong case"}',
        '{"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]}',
        '{"objectType": "Person", "mbox": "mailto:a@example.com"}',
        '{"account": {"homePage": "https://a.example"}}',
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "bad-mbox",
        "two-ifis",
        "no-ifi",
        "unknown-key",
        "anonymous-group",
        "person",
        "incomplete-account",
    ],
)
def test_sq3_invalid_agent_parameter_is_400(any_xapi, value):
    """SQ-3: an agent parameter that is not a valid Agent / Identified Group as JSON → 400 naming agent."""
    response = any_xapi.get("/statements", params={"agent": value})
    assert response.status_code == 400
    assert "agent" in error_message(response)


# --- SQ-4 / SQ-5 / SQ-6 -------------------------------------------------------------------------------------


def test_sq4_verb_matches_exactly(any_xapi):
    """SQ-4: verb matches the verb id exactly (no prefix, no case folding of the path)."""
    verb = unique_verb()
    exact, longer, upper = any_xapi.store(
        statement(verb=verb),
        statement(verb=verb + "/more"),
        statement(verb=verb.upper().replace("HTTPS", "https")),
    )
    assert ids_of(any_xapi, verb=verb) == [exact]


def test_sq5_activity_matches_the_object_activity_only(any_xapi):
    """SQ-5: activity matches statements whose object is that activity — not context activities, not a
    SubStatement's object, not a longer id."""
    activity = unique_activity()
    as_object_, *_ = any_xapi.store(
        statement(obj=activity),
        statement(context={"contextActivities": {"parent": [activity]}}),
        statement(obj=substatement(obj=activity)),
        statement(obj={"objectType": "Activity", "id": activity["id"] + "/child"}),
    )
    assert ids_of(any_xapi, activity=activity["id"]) == [as_object_]


def test_sq6_registration_matches_context_registration(any_xapi):
    """SQ-6: registration matches context.registration (UUIDs compare case-insensitively)."""
    registration = str(uuid.uuid4())
    wanted, _ = any_xapi.store(
        statement(context={"registration": registration}),
        statement(context={"registration": str(uuid.uuid4())}),
    )
    assert ids_of(any_xapi, registration=registration) == [wanted]
    assert ids_of(any_xapi, registration=registration.upper()) == [wanted]


@pytest.mark.parametrize(
    "param, value",
    [
        ("registration", "not-a-uuid"),
        ("registration", "12345678123456781234567812345678"),
        ("verb", "completed"),
        ("verb", "not an iri"),
        ("activity", "lms.example/activity"),
        ("activity", ""),
        ("since", "yesterday"),
        ("since", "2024-01-01T00:00:00-00:00"),
        ("until", "2024-13-01T00:00:00Z"),
        ("until", "1700000000"),
        ("limit", "-1"),
        ("limit", "ten"),
        ("limit", "1.5"),
        ("format", "full"),
        ("format", "IDS"),
    ],
)
def test_sq_malformed_filter_values_are_400(any_xapi, param, value):
    """SQ-4..SQ-11 / SFMT: malformed filter values → 400 naming the parameter."""
    response = any_xapi.get("/statements", params={param: value})
    assert response.status_code == 400
    assert param in error_message(response)


# --- SQ-7: related_activities -------------------------------------------------------------------------------


def test_sq7_related_activities_matches_context_and_substatement_activities(any_xapi):
    """SQ-7: related_activities=true matches the object, every context activity list, and the same inside a
    SubStatement; false (or absent) only the object."""
    a = unique_activity()
    other = unique_activity
    placements = [
        statement(obj=a),
        *[
            statement(obj=other(), context={"contextActivities": {kind: [other(), a]}})
            for kind in ("parent", "grouping", "category", "other")
        ],
        statement(obj=substatement(obj=a)),
        statement(obj=substatement(context={"contextActivities": {"grouping": [a]}})),
    ]
    ids = any_xapi.store(*placements)
    unrelated = any_xapi.store(statement(obj=other(), context={"contextActivities": {"parent": [other()]}}))
    assert set(ids_of(any_xapi, activity=a["id"], related_activities="true")) == set(ids)
    assert ids_of(any_xapi, activity=a["id"], related_activities="false") == [ids[0]]
    assert ids_of(any_xapi, activity=a["id"]) == [ids[0]]
    assert not set(unrelated) & set(ids_of(any_xapi, activity=a["id"], related_activities="true"))


# --- SQ-8 / V2-8: related_agents -------------------------------------------------------------------------------


def test_sq8_related_agents_matches_authority_instructor_team_and_substatement(
    any_xapi, make_credential, client_for
):
    """SQ-8: related_agents=true matches actor, object, authority, instructor, team (also as a member) and
    the same inside a SubStatement; without it only actor and object."""
    x = unique_agent()
    ids = any_xapi.store(
        statement(actor=x),
        statement(obj=as_object(x)),
        statement(context={"instructor": x}),
        statement(context={"instructor": group_of(unique_agent(), x)}),
        statement(context={"team": group_of(x, identified=True)}),
        statement(obj=substatement(actor=x)),
        statement(obj=substatement(obj=as_object(x))),
        statement(obj=substatement(context={"instructor": x})),
        statement(obj=substatement(context={"team": group_of(x)})),
    )
    assert set(ids_of(any_xapi, agent=x, related_agents="true")) == set(ids)
    assert set(ids_of(any_xapi, agent=x, related_agents="false")) == set(ids[:2])
    assert set(ids_of(any_xapi, agent=x)) == set(ids[:2])

    writer = client_for(
        auth=make_credential(["statements/write", "statements/read"]), version=any_xapi.version
    )
    (by_writer,) = writer.store(statement())
    authority = get(any_xapi, statementId=by_writer).json()["authority"]
    assert ids_of(any_xapi, agent=authority, related_agents="true") == [by_writer]
    assert ids_of(any_xapi, agent=authority) == []


def test_v2_8_related_agents_searches_context_agents_and_groups(xapi2):
    """V2-8: in 2.0, related_agents also matches contextAgents and contextGroups (their members included)."""
    x = unique_agent()
    in_agents, in_groups, in_sub = xapi2.store(
        statement(context={"contextAgents": [{"objectType": "contextAgent", "agent": x}]}),
        statement(
            context={"contextGroups": [{"objectType": "contextGroup", "group": group_of(unique_agent(), x)}]}
        ),
        statement(
            obj=substatement(
                context={
                    "contextAgents": [
                        {
                            "objectType": "contextAgent",
                            "agent": x,
                            "relevantTypes": ["https://types.example/coach"],
                        }
                    ]
                }
            )
        ),
    )
    assert set(ids_of(xapi2, agent=x, related_agents="true")) == {in_agents, in_groups, in_sub}
    assert ids_of(xapi2, agent=x) == []


# --- SQ-9 / SQ-10: since and until on stored ----------------------------------------------------------------


def test_sq9_sq10_since_is_exclusive_until_is_inclusive_on_stored(any_xapi):
    """SQ-9/SQ-10: since keeps statements stored strictly after it, until those stored at or before it."""
    actor = unique_agent()
    ids = store_one_by_one(any_xapi, *(statement(actor=actor) for _ in range(3)))
    stored = [stored_of(any_xapi, sid) for sid in ids]
    assert stored == sorted(stored) and len(set(stored)) == 3
    assert set(ids_of(any_xapi, agent=actor, since=stored[0])) == {ids[1], ids[2]}
    assert set(ids_of(any_xapi, agent=actor, until=stored[1])) == {ids[0], ids[1]}
    assert ids_of(any_xapi, agent=actor, since=stored[0], until=stored[1]) == [ids[1]]
    assert ids_of(any_xapi, agent=actor, since=stored[2]) == []
    assert ids_of(any_xapi, agent=actor, since=stored[1], until=stored[0]) == []


def test_sq9_sq10_time_filters_accept_any_offset(any_xapi):
    """SQ-9/SQ-10: since/until are instants; the same instant written with another offset filters the same."""
    actor = unique_agent()
    ids = store_one_by_one(any_xapi, statement(actor=actor), statement(actor=actor))
    first = datetime.fromisoformat(stored_of(any_xapi, ids[0]))
    shifted = first.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    assert ids_of(any_xapi, agent=actor, since=shifted) == [ids[1]]
    assert ids_of(any_xapi, agent=actor, until=shifted) == [ids[0]]


def test_sq9_time_filters_use_stored_not_timestamp(any_xapi):
    """SQ-9/SQ-10: a statement's own timestamp (here long ago / far ahead) does not matter, stored does."""
    actor = unique_agent()
    old, future = store_one_by_one(
        any_xapi,
        statement(actor=actor, timestamp="2001-01-01T00:00:00Z"),
        statement(actor=actor, timestamp="2090-01-01T00:00:00Z"),
    )
    old_stored = stored_of(any_xapi, old)
    assert ids_of(any_xapi, agent=actor, since=old_stored) == [future]
    assert ids_of(any_xapi, agent=actor, until=old_stored) == [old]
    assert set(ids_of(any_xapi, agent=actor, since="2002-01-01T00:00:00Z")) == {old, future}


# --- SQ-11 / SQ-12 --------------------------------------------------------------------------------------------


def test_sq11_limit_caps_each_page(any_xapi):
    """SQ-11: limit=n returns at most n statements (with a more link to the rest)."""
    actor = unique_agent()
    any_xapi.store(*(statement(actor=actor) for _ in range(5)))
    for limit in (1, 2, 4, 5, 6):
        body = get(any_xapi, agent=actor, limit=str(limit)).json()
        assert len(body["statements"]) == min(limit, 5)
        assert bool(body.get("more")) == (limit < 5)


def test_sq11_limit_zero_or_too_large_means_the_server_maximum(any_xapi):
    """SQ-11: limit=0 (or absent, or above the maximum) returns the server's maximum page (50 here)."""
    actor = unique_agent()
    any_xapi.store(*(statement(actor=actor) for _ in range(MAX_PAGE + 3)))
    for params in ({"limit": "0"}, {}, {"limit": str(MAX_PAGE * 10)}):
        body = get(any_xapi, agent=actor, **params).json()
        assert len(body["statements"]) == MAX_PAGE, params
        assert body["more"]
    assert len(ids_of(any_xapi, agent=actor, limit="0")) == MAX_PAGE + 3


def test_sq12_default_order_is_newest_stored_first_and_ascending_reverses_it(any_xapi):
    """SQ-12: by default newest stored first; ascending=true oldest first (ascending=false = default)."""
    actor = unique_agent()
    ids = store_one_by_one(any_xapi, *(statement(actor=actor) for _ in range(4)))
    assert ids_of(any_xapi, agent=actor) == ids[::-1]
    assert ids_of(any_xapi, agent=actor, ascending="false") == ids[::-1]
    assert ids_of(any_xapi, agent=actor, ascending="true") == ids
    assert ids_of(any_xapi, agent=actor, ascending="true", limit="1") == ids


# --- SQ-14 / SQ-16: parameter syntax --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["related_agents", "related_activities", "ascending", "attachments"])
@pytest.mark.parametrize("value", ["True", "FALSE", "1", "0", "yes", "", '"true"'])
def test_sq14_booleans_are_json_literals(any_xapi, name, value):
    """SQ-14: boolean parameters take exactly true/false; anything else → 400 naming the parameter."""
    response = any_xapi.get("/statements", params={name: value})
    assert response.status_code == 400
    assert name in error_message(response)


@pytest.mark.parametrize("name", ["related_agents", "related_activities", "ascending", "attachments"])
@pytest.mark.parametrize("value", ["true", "false"])
def test_sq14_boolean_literals_are_accepted(any_xapi, name, value):
    """SQ-14: true and false are accepted for every boolean parameter."""
    response = get(any_xapi, agent=unique_agent(), **{name: value})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "name",
    [
        "foo",
        "Agent",
        "VERB",
        "Activity",
        "Limit",
        "statementID",
        "StatementId",
        "voidedStatementID",
        "related_Agents",
        "relatedActivities",
        "Since",
        "UNTIL",
        "Format",
        "Attachments",
        "Ascending",
        "registrationId",
        "method_",
        "callback",
    ],
)
def test_sq16_unknown_or_wrong_case_parameters_are_400(any_xapi, name):
    """SQ-16: unknown parameters and known ones in the wrong case → 400 naming the parameter."""
    response = any_xapi.get("/statements", params={name: "true"})
    assert response.status_code == 400
    assert name in error_message(response)


def test_sq16_unknown_parameter_alongside_valid_ones_is_400(any_xapi):
    """SQ-16: one unknown parameter spoils an otherwise valid query."""
    response = get(any_xapi, agent=unique_agent(), verb=VERBS["completed"], foo="bar")
    assert response.status_code == 400
    assert "foo" in error_message(response)


def test_sq16_repeated_parameter_is_400(any_xapi):
    """SQ-16: a parameter given twice is ambiguous → 400 naming it."""
    response = any_xapi.get(
        "/statements", params=[("verb", VERBS["completed"]), ("verb", VERBS["attempted"])]
    )
    assert response.status_code == 400
    assert "verb" in error_message(response)


# --- SQ-15: StatementRef filtering -------------------------------------------------------------------------------


def _target_and_context():
    actor, activity, parent = unique_agent(), unique_activity(), unique_activity()
    registration, verb = str(uuid.uuid4()), unique_verb()
    target = statement(
        actor=actor,
        verb=verb,
        obj=activity,
        context={"registration": registration, "contextActivities": {"parent": [parent]}},
    )
    return target, actor, activity, parent, registration, verb


def _assert_referrer_matches_target_filters(
    client, target_id, referrer_id, actor, activity, parent, registration, verb
):
    both = {target_id, referrer_id}
    assert set(ids_of(client, agent=actor)) == both
    assert set(ids_of(client, agent=actor, related_agents="true")) == both
    assert set(ids_of(client, activity=activity["id"])) == both
    assert set(ids_of(client, activity=parent["id"], related_activities="true")) == both
    assert set(ids_of(client, registration=registration)) == both
    assert set(ids_of(client, verb=verb)) == both
    assert set(ids_of(client, agent=actor, verb=verb, activity=activity["id"])) == both


def test_sq15_statement_referring_to_a_match_matches(any_xapi):
    """SQ-15: a statement whose object is a StatementRef meets every non-time filter its target meets
    (agent, related agents, activity, related activities, registration, verb)."""
    target, actor, activity, parent, registration, verb = _target_and_context()
    (target_id,) = any_xapi.store(target)
    (referrer,) = any_xapi.store(statement(verb="experienced", obj=ref(target_id)))
    _assert_referrer_matches_target_filters(
        any_xapi, target_id, referrer, actor, activity, parent, registration, verb
    )


def test_sq15_target_arriving_after_the_referring_statement(any_xapi):
    """SQ-15: the rule holds when the target is stored after the statement referring to it."""
    target, actor, activity, parent, registration, verb = _target_and_context()
    target["id"] = str(uuid.uuid4())
    (referrer,) = any_xapi.store(statement(verb="experienced", obj=ref(target["id"])))
    assert ids_of(any_xapi, agent=actor) == []
    any_xapi.store(target)
    _assert_referrer_matches_target_filters(
        any_xapi, target["id"], referrer, actor, activity, parent, registration, verb
    )


def test_sq15_rule_applies_recursively_in_any_arrival_order(any_xapi):
    """SQ-15: a → b → c matches c's filters; also when c arrives last and b before a."""
    actor = unique_agent()
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    any_xapi.store(statement(id=b, verb="experienced", obj=ref(c)))
    any_xapi.store(statement(id=a, verb="experienced", obj=ref(b)))
    assert ids_of(any_xapi, agent=actor) == []
    any_xapi.store(statement(id=c, actor=actor))
    assert set(ids_of(any_xapi, agent=actor)) == {a, b, c}

    actor2 = unique_agent()
    (c2,) = any_xapi.store(statement(actor=actor2))
    (b2,) = any_xapi.store(statement(verb="experienced", obj=ref(c2)))
    (a2,) = any_xapi.store(statement(verb="experienced", obj=ref(b2)))
    assert ids_of(any_xapi, agent=actor2) == [a2, b2, c2]


def test_sq15_referring_statement_keeps_its_own_matches(any_xapi):
    """SQ-15: the referring statement still matches on its own actor; the target does not match the
    referrer's properties."""
    actor, referrer_actor = unique_agent(), unique_agent()
    (target,) = any_xapi.store(statement(actor=actor))
    (referrer,) = any_xapi.store(statement(actor=referrer_actor, verb="experienced", obj=ref(target)))
    assert ids_of(any_xapi, agent=referrer_actor) == [referrer]


def test_sq15_context_statement_references_do_not_count(any_xapi):
    """SQ-15: a StatementRef in context.statement does not make a statement match its target's filters."""
    actor = unique_agent()
    (target,) = any_xapi.store(statement(actor=actor))
    any_xapi.store(statement(context={"statement": ref(target)}))
    assert ids_of(any_xapi, agent=actor) == [target]


def test_sq15_time_filters_apply_to_the_referring_statement(any_xapi):
    """SQ-15: since/until/limit are applied to the referring statement's own stored time."""
    actor = unique_agent()
    (target,) = any_xapi.store(statement(actor=actor))
    (referrer,) = any_xapi.store(statement(verb="experienced", obj=ref(target)))
    target_stored, referrer_stored = stored_of(any_xapi, target), stored_of(any_xapi, referrer)
    assert ids_of(any_xapi, agent=actor, since=target_stored) == [referrer]
    assert ids_of(any_xapi, agent=actor, until=target_stored) == [target]
    assert ids_of(any_xapi, agent=actor, since=target_stored, until=referrer_stored) == [referrer]
    assert get(any_xapi, agent=actor, limit="1").json()["statements"][0]["id"] == referrer


def test_sq15_rule_does_not_apply_to_single_statement_retrieval(any_xapi):
    """SQ-15: statementId returns exactly the statement asked for (the referrer, not its target)."""
    (target,) = any_xapi.store(statement())
    (referrer,) = any_xapi.store(statement(verb="experienced", obj=ref(target)))
    assert get(any_xapi, statementId=referrer).json()["object"] == ref(target)


# --- SQ-17: permission-based filtering --------------------------------------------------------------------


def test_sq17_read_mine_credential_sees_only_its_own_statements(any_xapi, make_credential, client_for):
    """SQ-17: extra filtering by permissions is allowed: a statements/read/mine credential sees only the
    statements it stored (queries and single GET), while the admin credential used by tests sees all."""
    actor = unique_agent()
    mine_client = client_for(
        auth=make_credential(["statements/write", "statements/read/mine"]), version=any_xapi.version
    )
    (mine,) = mine_client.store(statement(actor=actor))
    (theirs,) = any_xapi.store(statement(actor=actor))
    assert ids_of(mine_client, agent=actor) == [mine]
    assert set(ids_of(any_xapi, agent=actor)) == {mine, theirs}
    assert get(mine_client, statementId=mine).status_code == 200
    assert get(mine_client, statementId=theirs).status_code == 404


# --- filter values are data -------------------------------------------------------------------------------


@pytest.mark.parametrize("lookalike", ['{"$gt": ""}', "$where", "$ne"])
def test_filter_values_that_look_like_database_operators_match_only_themselves(xapi, lookalike):
    """An agent account name or an activity id spelled like a database query operator is matched
    literally, like any other value: never as query syntax that would match everything."""
    agent = {
        "objectType": "Agent",
        "account": {"homePage": f"https://lms.example/{uuid.uuid4()}", "name": lookalike},
    }
    activity = {"objectType": "Activity", "id": unique_activity()["id"] + "/" + lookalike.strip('{}" :')}
    (own,) = xapi.store(statement(actor=agent, obj=activity))
    (other,) = xapi.store(statement(obj=activity))
    assert ids_of(xapi, agent=agent) == [own]
    assert sorted(ids_of(xapi, activity=activity["id"])) == sorted([own, other])
    assert ids_of(xapi, agent={**agent, "account": {**agent["account"], "name": lookalike + "x"}}) == []
    assert ids_of(xapi, activity=activity["id"] + "x") == []
