"""Context validation (checklist section 10, CTX-1 … CTX-9)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import statement, unique_activity, unique_agent
from .helpers import WHERE, post_accepted, post_rejected, read_context, sub_statement, with_context


def group(**fields: Any) -> dict[str, Any]:
    return {"objectType": "Group", "name": "Team", "member": [unique_agent(), unique_agent()], **fields}


def test_ctx_context_must_be_an_object(xapi):
    """CTX-1 (context carrier): context itself must be a JSON object."""
    for value in ("context", 1, [], True):
        post_rejected(xapi, with_context(value), "context")


@pytest.mark.parametrize("key", ["Registration", "instructors", "activities", "dummy", "contextStatement"])
def test_ctx_context_has_only_defined_keys(xapi, key):
    """FMT-6 / FMT-8 (context): unknown or wrong-case context keys → 400."""
    post_rejected(xapi, with_context({key: "x"}), key)


# --- CTX-1: registration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["", "not-a-uuid", "8f87ccdebb564c2eab8344982ef22df0", "8f87ccde-bb56-4c2e-cb83-44982ef22df0",
     "8f87ccde-bb56-4c2e-ab83-44982ef22df0-0000", 12345, {"id": "8f87ccde-bb56-4c2e-ab83-44982ef22df0"}],
)  # fmt: skip
@pytest.mark.parametrize("where", WHERE)
def test_ctx1_registration_is_a_uuid(xapi, where, value):
    """CTX-1: context.registration must be a UUID (RFC 4122 variant, hyphenated, string)."""
    post_rejected(xapi, with_context({"registration": value}, where), "registration")


@pytest.mark.parametrize("where", WHERE)
def test_ctx1_valid_registration_accepted_and_kept(any_xapi, where):
    """CTX-1: a UUID registration (either case) is kept as sent and found by the registration filter."""
    registration = str(uuid.uuid4()).upper()
    got = post_accepted(any_xapi, with_context({"registration": registration}, where))
    assert read_context(got, where)["registration"] == registration
    if where == "statement":
        assert [s["id"] for s in any_xapi.find(registration=registration.lower())] == [got["id"]]


# --- CTX-2: instructor and team ------------------------------------------------------------------


@pytest.mark.parametrize(
    "instructor",
    [unique_agent, lambda: {"mbox": f"mailto:{uuid.uuid4().hex[:8]}@example.com"}, group,
     lambda: group(mbox=f"mailto:team-{uuid.uuid4().hex[:8]}@example.com", member=[])],
    ids=["agent", "agent-no-objectType", "anonymous-group", "identified-group"],
)  # fmt: skip
@pytest.mark.parametrize("where", WHERE)
def test_ctx2_instructor_agent_or_group_accepted(any_xapi, where, instructor):
    """CTX-2: context.instructor may be an Agent or a Group; kept as sent."""
    who = instructor()
    got = post_accepted(any_xapi, with_context({"instructor": who}, where))
    assert read_context(got, where)["instructor"] == who


@pytest.mark.parametrize(
    "instructor, named",
    [("mailto:teacher@example.com", "instructor"), ({"name": "no ifi"}, "instructor"),
     ({"mbox": "teacher@example.com"}, "mbox"), ({"objectType": "Group"}, "member"),
     ([{"mbox": "mailto:t@example.com"}], "instructor")],
    ids=["string", "no-ifi", "bad-mbox", "empty-group", "array"],
)  # fmt: skip
@pytest.mark.parametrize("where", WHERE)
def test_ctx2_instructor_must_be_a_valid_agent_or_group(xapi, where, instructor, named):
    """CTX-2: an invalid instructor → 400."""
    post_rejected(xapi, with_context({"instructor": instructor}, where), named)


@pytest.mark.parametrize(
    "team",
    [lambda: unique_agent(), lambda: {"mbox": "mailto:team@example.com"},
     lambda: {"name": "Team", "member": [unique_agent()]}, lambda: "Team A", lambda: [group()]],
    ids=["agent", "agent-no-objectType", "group-without-objectType", "string", "array"],
)  # fmt: skip
@pytest.mark.parametrize("where", WHERE)
def test_ctx2_team_must_be_a_group(xapi, where, team):
    """CTX-2: context.team is a Group only; an Agent (or anything else) → 400 naming team."""
    post_rejected(xapi, with_context({"team": team()}, where), "team")


@pytest.mark.parametrize("where", WHERE)
def test_ctx2_team_group_accepted_and_kept(any_xapi, where):
    """CTX-2: an anonymous or identified Group as team is valid and kept."""
    for team in (group(), group(account={"homePage": "https://lms.example", "name": "team-1"})):
        got = post_accepted(any_xapi, with_context({"team": team}, where))
        assert read_context(got, where)["team"] == team


# --- CTX-3: revision and platform ----------------------------------------------------------------

NON_ACTIVITY_OBJECTS = {
    "agent": lambda: {"objectType": "Agent", "mbox": "mailto:object@example.com"},
    "group": lambda: group(),
    "statementref": lambda: {"objectType": "StatementRef", "id": str(uuid.uuid4())},
    "substatement": lambda: sub_statement(),
}


@pytest.mark.parametrize("kind", list(NON_ACTIVITY_OBJECTS))
@pytest.mark.parametrize("key", ["revision", "platform"])
def test_ctx3_revision_platform_only_with_activity_object(xapi, key, kind):
    """CTX-3: revision/platform with an Agent, Group, StatementRef or SubStatement object → 400."""
    st = statement(obj=NON_ACTIVITY_OBJECTS[kind](), context={key: "v1"})
    post_rejected(xapi, st, key)


@pytest.mark.parametrize("kind", ["agent", "group", "statementref"])
@pytest.mark.parametrize("key", ["revision", "platform"])
def test_ctx3_revision_platform_rule_inside_substatement(xapi, key, kind):
    """CTX-3: the same rule applies to a SubStatement's own context and object."""
    st = with_context({key: "v1"}, "substatement", obj=NON_ACTIVITY_OBJECTS[kind]())
    post_rejected(xapi, st, key)


@pytest.mark.parametrize("where", WHERE)
def test_ctx3_revision_platform_with_activity_accepted(any_xapi, where):
    """CTX-3: with an Activity object (explicit objectType or none) revision/platform are valid."""
    for obj in (unique_activity(), {"id": f"https://lms.example/activities/{uuid.uuid4()}"}):
        context = {"revision": "r2", "platform": "Example LMS"}
        got = post_accepted(any_xapi, with_context(context, where, obj=obj))
        assert read_context(got, where) == context


@pytest.mark.parametrize("value", [1, True, {"v": 1}, ["r1"]])
@pytest.mark.parametrize("key", ["revision", "platform"])
def test_ctx3_revision_platform_are_strings(xapi, key, value):
    """CTX-3: revision and platform are strings."""
    post_rejected(xapi, with_context({key: value}), key)


# --- CTX-4: language -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "a12345", "en_US", "zh-z-aaa-z-bbb-c-ccc", "english", 1, {"en": "US"}])
@pytest.mark.parametrize("where", WHERE)
def test_ctx4_language_is_an_rfc5646_tag(xapi, where, value):
    """CTX-4: context.language must be an RFC 5646 tag."""
    post_rejected(xapi, with_context({"language": value}, where), "language")


@pytest.mark.parametrize("value", ["en-US", "zh-Hant", "sr-Latn-RS", "cmn", "es-419"])
def test_ctx4_valid_language_accepted_and_kept(any_xapi, value):
    """CTX-4: valid tags are accepted and kept."""
    assert post_accepted(any_xapi, with_context({"language": value}))["context"]["language"] == value


# --- CTX-5: statement (a StatementRef) -----------------------------------------------------------


@pytest.mark.parametrize(
    "ref, named",
    [({"id": "{ID}"}, "objectType"), ({"objectType": "Activity", "id": "{ID}"}, "objectType"),
     ({"objectType": "StatementRef", "id": "nope"}, "id"), ({"objectType": "StatementRef"}, "id"),
     ({"objectType": "StatementRef", "id": "{ID}", "extra": 1}, "extra"), ("{ID}", "statement")],
    ids=["no-objectType", "wrong-objectType", "bad-id", "no-id", "extra-key", "bare-uuid"],
)  # fmt: skip
@pytest.mark.parametrize("where", WHERE)
def test_ctx5_context_statement_is_a_statement_ref(xapi, where, ref, named):
    """CTX-5: context.statement must be a valid StatementRef."""
    if isinstance(ref, dict):
        ref = {k: (str(uuid.uuid4()) if v == "{ID}" else v) for k, v in ref.items()}
    else:
        ref = str(uuid.uuid4())
    post_rejected(xapi, with_context({"statement": ref}, where), named)


def test_ctx5_valid_statement_ref_accepted_and_kept(any_xapi):
    """CTX-5: a StatementRef (target known or not) is valid in context.statement."""
    ref = {"objectType": "StatementRef", "id": str(uuid.uuid4())}
    assert post_accepted(any_xapi, with_context({"statement": ref}))["context"]["statement"] == ref


# --- CTX-6: contextActivities --------------------------------------------------------------------


@pytest.mark.parametrize(
    "activities, named",
    [({"Parent": [{"id": "http://example.com/p"}]}, "Parent"), ({"dummy": []}, "dummy"),
     ({"parent": "http://example.com/p"}, "parent"), ({"grouping": [{"definition": {}}]}, "grouping"),
     ({"category": [{"id": "no-scheme"}]}, "category"),
     ({"other": [{"objectType": "Agent", "mbox": "mailto:a@example.com"}]}, "other"),
     ({"parent": ["http://example.com/p"]}, "parent"), ({"parent": 5}, "parent"),
     ({"other": {"objectType": "StatementRef", "id": str(uuid.uuid4())}}, "other")],
    ids=["wrong-case-key", "unknown-key", "string-value", "activity-without-id", "id-no-scheme",
         "agent-in-list", "string-in-list", "number", "statementref"],
)  # fmt: skip
@pytest.mark.parametrize("where", WHERE)
def test_ctx6_context_activities_keys_and_values(xapi, where, activities, named):
    """CTX-6: keys only parent/grouping/category/other; each value an Activity or array of Activities."""
    post_rejected(xapi, with_context({"contextActivities": activities}, where), named)


@pytest.mark.parametrize("value", [[{"id": "http://example.com/p"}], "parent", 1])
def test_ctx6_context_activities_is_an_object(xapi, value):
    """CTX-6: contextActivities must be a JSON object."""
    post_rejected(xapi, with_context({"contextActivities": value}), "contextActivities")


# --- CTX-7: contextActivities returned as arrays --------------------------------------------------


@pytest.mark.parametrize("where", WHERE)
def test_ctx7_single_context_activities_returned_as_arrays(any_xapi, where):
    """CTX-7: each contextActivities value comes back as an array — a single Activity becomes a
    one-element array — in statements and SubStatements, by id and in query results."""
    parent, grouping, category, other1, other2 = (unique_activity(name={"en-US": f"a{i}"}) for i in range(5))
    context = {"contextActivities": {"parent": parent, "grouping": grouping, "category": [category],
                                     "other": [other1, other2]}}  # fmt: skip
    got = post_accepted(any_xapi, with_context(context, where))
    expected = {"parent": [parent], "grouping": [grouping], "category": [category], "other": [other1, other2]}
    assert read_context(got, where)["contextActivities"] == expected
    if where == "statement":
        found = any_xapi.find(activity=got["object"]["id"])
    else:
        found = any_xapi.find(agent={"mbox": got["actor"]["mbox"]})
    assert [s["id"] for s in found] == [got["id"]]
    assert read_context(found[0], where)["contextActivities"] == expected


def test_ctx7_arrays_in_other_formats(any_xapi):
    """CTX-7: also with format=ids and format=canonical."""
    parent = unique_activity(name={"en-US": "parent"})
    got = post_accepted(any_xapi, with_context({"contextActivities": {"parent": parent}}))
    for fmt in ("ids", "canonical"):
        response = any_xapi.get("/statements", params={"statementId": got["id"], "format": fmt})
        assert response.status_code == 200
        value = response.json()["context"]["contextActivities"]["parent"]
        assert isinstance(value, list) and [a["id"] for a in value] == [parent["id"]]


# --- CTX-8: empty contextActivities --------------------------------------------------------------


@pytest.mark.parametrize("where", WHERE)
def test_ctx8_empty_context_activities_accepted_in_2_0(xapi2, where):
    """CTX-8: xAPI 2.0 dropped the "one or more entries" rule (XAPI-00095 removed), so
    `contextActivities: {}` is accepted and kept."""
    got = post_accepted(xapi2, with_context({"contextActivities": {}}, where))
    assert read_context(got, where)["contextActivities"] == {}


@pytest.mark.parametrize("where", WHERE)
def test_ctx8_empty_context_activities_rejected_in_1_0_3(xapi, where):
    """CTX-8: rejecting an empty `contextActivities` is no longer required but still allowed; this LRS
    keeps the 1.0.3 rule ("one or more key/value pairs"), which the ADL 1.0.3 suite still checks."""
    post_rejected(xapi, with_context({"contextActivities": {}}, where), "contextActivities")


# --- CTX-9: extensions ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["x", 1, [], True])
@pytest.mark.parametrize("where", WHERE)
def test_ctx9_extensions_must_be_an_object(xapi, where, value):
    """CTX-9: context.extensions must be an object."""
    post_rejected(xapi, with_context({"extensions": value}, where), "extensions")


def test_ctx9_extension_keys_are_iris(xapi):
    """CTX-9 / FMT-16: context extension keys are IRIs."""
    post_rejected(xapi, with_context({"extensions": {"session": "abc"}}), "extensions")


@pytest.mark.parametrize("where", WHERE)
def test_ctx9_extension_values_free(any_xapi, where):
    """CTX-9 / FMT-16: `{}` and any extension values (null, "", {}, []) are valid and kept."""
    for ext in ({}, {"http://example.com/a": None, "http://example.com/b": "", "http://example.com/c": [{}]}):
        got = post_accepted(any_xapi, with_context({"extensions": ext}, where))
        assert read_context(got, where)["extensions"] == ext


def test_ctx_full_context_accepted_and_kept(any_xapi):
    """CTX-1, CTX-2, CTX-3, CTX-4, CTX-5, CTX-6, CTX-7, CTX-9: a context using every 1.0.3
    property is valid and read back (arrays normalised)."""
    context = {
        "registration": str(uuid.uuid4()),
        "instructor": unique_agent("Instructor"),
        "team": group(),
        "contextActivities": {"parent": [unique_activity()], "grouping": [unique_activity()],
                              "category": [unique_activity()], "other": [unique_activity()]},
        "revision": "3",
        "platform": "Example LMS",
        "language": "en-GB",
        "statement": {"objectType": "StatementRef", "id": str(uuid.uuid4())},
        "extensions": {"http://example.com/ext/session": "s-1"},
    }  # fmt: skip
    assert post_accepted(any_xapi, with_context(context))["context"] == context
