"""The format parameter of GET /statements: exact, ids, canonical and language selection (SFMT-1..4, V2-24).

Canonical verb displays are shared by every statement using a verb id, so tests here use verb ids of
their own. Voided-statement handling (SFMT-5/6) lives in test_life_voiding.py.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import statement as _statement
from .conftest import unique_activity, unique_agent

LANGUAGE_MAPS = ("name", "description")


def statement(actor=None, verb=None, obj=None, **extra) -> dict:
    """conftest's builder, also taking a whole verb object."""
    if isinstance(verb, dict):
        return dict(_statement(actor, "completed", obj, **extra), verb=verb)
    return _statement(actor, verb or "completed", obj, **extra)


def unique_verb(display: dict | None = None) -> dict:
    verb = {"id": f"https://verbs.example/{uuid.uuid4()}"}
    if display is not None:
        verb["display"] = display
    return verb


def fetch(client, statement_id: str, fmt: str | None = None, accept_language: str | None = None) -> dict:
    params = {"statementId": statement_id}
    if fmt:
        params["format"] = fmt
    headers = {"Accept-Language": accept_language} if accept_language else {}
    response = client.get("/statements", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def query(client, fmt: str, accept_language: str | None = None, **params) -> list[dict]:
    params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    headers = {"Accept-Language": accept_language} if accept_language else {}
    response = client.get("/statements", params={**params, "format": fmt}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["statements"]


def interaction_activity() -> dict:
    return unique_activity(
        name={"en-US": "Pick a colour", "fr-FR": "Choisissez une couleur", "de-DE": "Wähle eine Farbe"},
        description={"en-US": "A question", "de-DE": "Eine Frage"},
        type="http://adlnet.gov/expapi/activities/cmi.interaction",
        interactionType="choice",
        correctResponsesPattern=["red"],
        choices=[
            {"id": "red", "description": {"en-US": "Red", "fr-FR": "Rouge", "de-DE": "Rot"}},
            {"id": "blue", "description": {"en-US": "Blue", "de-DE": "Blau"}},
        ],
    )


def rich_statement() -> dict:
    """Agents with names, a group, a multilingual verb and activities everywhere a definition can be."""
    member = unique_agent("Member")
    return statement(
        actor={"objectType": "Group", "name": "Team", "member": [unique_agent("Ann"), member]},
        verb=unique_verb({"en-US": "answered", "fr-FR": "a répondu", "de-DE": "antwortete"}),
        obj=interaction_activity(),
        context={
            "instructor": unique_agent("Teacher"),
            "team": {
                "objectType": "Group",
                "name": "Named team",
                "mbox": f"mailto:{uuid.uuid4().hex[:8]}@teams.example",
                "member": [unique_agent("Bob")],
            },
            "contextActivities": {
                "parent": [unique_activity(name={"en-US": "Course", "fr-FR": "Cours"})],
                "grouping": [unique_activity(name={"en-US": "Program"})],
            },
        },
        result={"response": "red"},
    )


# --- SFMT-1: exact -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [None, "exact"])
def test_sfmt1_exact_returns_everything_as_received(any_xapi, fmt):
    """SFMT-1: the default (and format=exact) returns agents, groups, verbs and activities exactly as sent,
    every language of every map included, whatever Accept-Language says."""
    st = rich_statement()
    (sid,) = any_xapi.store(st)
    got = fetch(any_xapi, sid, fmt, accept_language="fr-FR")
    for key in ("actor", "verb", "object", "context", "result"):
        assert got[key] == st[key], key


def test_sfmt1_exact_is_not_affected_by_later_definitions(any_xapi):
    """SFMT-1: exact keeps the definition the statement was received with even after the LRS learned a
    newer canonical one."""
    activity = unique_activity(name={"en-US": "First name"})
    (sid,) = any_xapi.store(statement(obj=activity))
    any_xapi.store(statement(obj=dict(activity, definition={"name": {"en-US": "Second name"}})))
    assert fetch(any_xapi, sid, "exact")["object"] == activity


# --- SFMT-2: ids --------------------------------------------------------------------------------------------


def test_sfmt2_ids_reduces_objects_to_their_identifiers(any_xapi):
    """SFMT-2: format=ids keeps only identifying data: verb {id}, activities {id} (objectType allowed),
    agents their IFI (+objectType), identified groups their IFI, anonymous groups their members' IFIs."""
    st = rich_statement()
    (sid,) = any_xapi.store(st)
    got = fetch(any_xapi, sid, "ids")

    assert got["verb"] == {"id": st["verb"]["id"]}
    assert {k: v for k, v in got["object"].items() if k != "objectType"} == {"id": st["object"]["id"]}
    actor = got["actor"]
    assert actor["objectType"] == "Group" and "name" not in actor
    assert actor["member"] == [{"objectType": "Agent", "mbox": m["mbox"]} for m in st["actor"]["member"]]
    context = got["context"]
    assert context["instructor"] == {"objectType": "Agent", "mbox": st["context"]["instructor"]["mbox"]}
    assert context["team"] == {"objectType": "Group", "mbox": st["context"]["team"]["mbox"]}
    for kind, activities in st["context"]["contextActivities"].items():
        assert [a["id"] for a in context["contextActivities"][kind]] == [a["id"] for a in activities]
        assert all(set(a) <= {"id", "objectType"} for a in context["contextActivities"][kind])
    assert set(got["authority"]) <= {"objectType", "mbox", "mbox_sha1sum", "openid", "account"}
    assert got["result"] == st["result"] and got["id"] == sid


def test_sfmt2_ids_inside_a_substatement_and_for_agent_objects(any_xapi):
    """SFMT-2: the same reduction applies to Agent objects and inside a SubStatement."""
    target = unique_agent("Named object")
    sub = {
        "objectType": "SubStatement",
        "actor": unique_agent("Sub actor"),
        "verb": unique_verb({"en-US": "did"}),
        "object": interaction_activity(),
    }
    (agent_sid, sub_sid) = any_xapi.store(statement(obj=dict(target, objectType="Agent")), statement(obj=sub))
    assert fetch(any_xapi, agent_sid, "ids")["object"] == {"objectType": "Agent", "mbox": target["mbox"]}
    got = fetch(any_xapi, sub_sid, "ids")["object"]
    assert got["actor"] == {"objectType": "Agent", "mbox": sub["actor"]["mbox"]}
    assert got["verb"] == {"id": sub["verb"]["id"]}
    assert {k: v for k, v in got["object"].items() if k != "objectType"} == {"id": sub["object"]["id"]}


def test_sfmt2_ids_applies_to_every_statement_of_a_query(any_xapi):
    """SFMT-2: format=ids on a query reduces every returned statement."""
    actor = unique_agent("Someone")
    any_xapi.store(*(statement(actor=actor, obj=interaction_activity()) for _ in range(3)))
    statements = query(any_xapi, "ids", agent=actor)
    assert len(statements) == 3
    for st in statements:
        assert st["actor"] == {"objectType": "Agent", "mbox": actor["mbox"]}
        assert "display" not in st["verb"] and "definition" not in st["object"]


# --- SFMT-3: canonical ----------------------------------------------------------------------------------------


def test_sfmt3_canonical_uses_the_lrs_definition_and_keeps_agents(any_xapi):
    """SFMT-3: canonical replaces a statement's activity definition with the LRS's canonical one (learned
    from later statements) while agents and groups stay exactly as received."""
    activity = unique_activity(name={"en-US": "Old name"})
    actor = unique_agent("Agent Name")
    (sid,) = any_xapi.store(statement(actor=actor, obj=activity))
    newer = {"name": {"en-US": "New name"}, "description": {"en-US": "Added later"}}
    any_xapi.store(statement(obj=dict(activity, definition=newer)))
    got = fetch(any_xapi, sid, "canonical", accept_language="en-US")
    assert got["object"]["id"] == activity["id"]
    assert got["object"]["definition"]["name"] == {"en-US": "New name"}
    assert got["object"]["definition"]["description"] == {"en-US": "Added later"}
    assert got["actor"] == actor


def test_sfmt3_canonical_fills_in_a_definition_the_statement_did_not_carry(any_xapi):
    """SFMT-3: a statement that referenced an activity by id only gets the canonical definition."""
    activity_id = f"https://lms.example/activities/{uuid.uuid4()}"
    (bare,) = any_xapi.store(statement(obj={"objectType": "Activity", "id": activity_id}))
    any_xapi.store(
        statement(
            obj={
                "objectType": "Activity",
                "id": activity_id,
                "definition": {"name": {"en-US": "Known later"}},
            }
        )
    )
    assert fetch(any_xapi, bare, "canonical")["object"]["definition"] == {"name": {"en-US": "Known later"}}
    assert "definition" not in fetch(any_xapi, bare, "exact")["object"]


def test_sfmt3_canonical_verb_display(any_xapi):
    """SFMT-3: canonical returns the verb display as the LRS knows it (one language)."""
    verb_id = f"https://verbs.example/{uuid.uuid4()}"
    (sid,) = any_xapi.store(statement(verb={"id": verb_id, "display": {"en-US": "reviewed"}}))
    any_xapi.store(statement(verb={"id": verb_id, "display": {"fr-FR": "a revu"}}))
    assert fetch(any_xapi, sid, "canonical", accept_language="fr-FR")["verb"] == {
        "id": verb_id,
        "display": {"fr-FR": "a revu"},
    }
    assert fetch(any_xapi, sid, "exact")["verb"] == {"id": verb_id, "display": {"en-US": "reviewed"}}


# --- SFMT-4 / V2-24: one language per map ------------------------------------------------------------------


def language_maps(st: dict) -> list[dict]:
    """Every language map of activity definitions and verb displays in a returned statement."""
    maps = [st["verb"]["display"]] if "display" in st["verb"] else []
    activities = [
        st["object"],
        *[a for v in st.get("context", {}).get("contextActivities", {}).values() for a in v],
    ]
    for activity in activities:
        definition = activity.get("definition", {})
        maps += [definition[k] for k in LANGUAGE_MAPS if k in definition]
        maps += [c["description"] for c in definition.get("choices", []) if "description" in c]
    return maps


@pytest.mark.parametrize(
    "accept_language", [None, "fr-FR", "de-DE, fr-FR;q=0.5", "*", "ja-JP", "en-US;q=0.1, de;q=0.9"]
)
def test_sfmt4_v2_24_canonical_keeps_exactly_one_language_per_map(any_xapi, accept_language):
    """SFMT-4 / V2-24: with format=canonical every language map (activity name, description, interaction
    components, verb display) has exactly one entry, whatever Accept-Language is (or without it)."""
    st = rich_statement()
    (sid,) = any_xapi.store(st)
    got = fetch(any_xapi, sid, "canonical", accept_language)
    maps = language_maps(got)
    assert len(maps) == 7
    assert all(len(m) == 1 for m in maps), maps


def test_sfmt4_accept_language_picks_the_language_of_each_map_individually(any_xapi):
    """SFMT-4: the Accept-Language preference is applied to each map on its own: French where a map has
    French, German where it has only German and English, English as the last resort."""
    st = rich_statement()
    (sid,) = any_xapi.store(st)
    got = fetch(any_xapi, sid, "canonical", accept_language="fr-FR, de-DE;q=0.8, en-US;q=0.1")
    definition = got["object"]["definition"]
    assert definition["name"] == {"fr-FR": "Choisissez une couleur"}
    assert definition["description"] == {"de-DE": "Eine Frage"}
    assert [c["description"] for c in definition["choices"]] == [{"fr-FR": "Rouge"}, {"de-DE": "Blau"}]
    assert got["verb"]["display"] == {"fr-FR": "a répondu"}
    (parent,) = got["context"]["contextActivities"]["parent"]
    (grouping,) = got["context"]["contextActivities"]["grouping"]
    assert parent["definition"]["name"] == {"fr-FR": "Cours"}
    assert grouping["definition"]["name"] == {"en-US": "Program"}


@pytest.mark.parametrize(
    "accept_language, expected",
    [
        ("de-DE", "de-DE"),
        ("de", "de-DE"),
        ("fr-FR;q=0.2, de-DE;q=0.9", "de-DE"),
        ("de-DE;q=0, fr-FR;q=0.1", "fr-FR"),
        ("ja-JP, fr-FR;q=0.5", "fr-FR"),
        ("FR-fr", "fr-FR"),
    ],
)
def test_sfmt4_accept_language_ranking_follows_rfc_2616(any_xapi, accept_language, expected):
    """SFMT-4: quality values rank the ranges (q=0 means "not acceptable"), a range matches its more
    specific tags (de → de-DE), tags compare case-insensitively."""
    st = rich_statement()
    (sid,) = any_xapi.store(st)
    got = fetch(any_xapi, sid, "canonical", accept_language)
    assert list(got["object"]["definition"]["name"]) == [expected]
    assert list(got["verb"]["display"]) == [expected]


def test_sfmt4_canonical_language_selection_in_queries_and_substatements(any_xapi):
    """SFMT-4: the selection applies to every statement of a query and inside SubStatements."""
    actor = unique_agent()
    sub = {
        "objectType": "SubStatement",
        "actor": unique_agent(),
        "verb": unique_verb({"en-US": "chose", "de-DE": "wählte"}),
        "object": interaction_activity(),
    }
    any_xapi.store(statement(actor=actor, obj=sub), statement(actor=actor, obj=interaction_activity()))
    statements = query(any_xapi, "canonical", "de-DE", agent=actor)
    assert len(statements) == 2
    substatement = next(s["object"] for s in statements if s["object"].get("objectType") == "SubStatement")
    assert substatement["verb"]["display"] == {"de-DE": "wählte"}
    assert substatement["object"]["definition"]["name"] == {"de-DE": "Wähle eine Farbe"}
    other = next(s for s in statements if s["object"].get("objectType") != "SubStatement")
    assert other["object"]["definition"]["name"] == {"de-DE": "Wähle eine Farbe"}


def test_sfmt4_without_canonical_all_languages_are_kept(any_xapi):
    """SFMT-4: language filtering is for canonical only; exact and ids never drop languages from exact data."""
    st = rich_statement()
    (sid,) = any_xapi.store(st)
    got = fetch(any_xapi, sid, "exact", accept_language="de-DE")
    assert got["object"]["definition"]["name"] == st["object"]["definition"]["name"]
    assert len(language_maps(got)) == 7
    assert sum(len(m) for m in language_maps(got)) > 7
