"""Statement object validation (checklist section 8, OBJ-1 … OBJ-13)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from .conftest import statement, unique_activity, unique_agent
from .helpers import post_accepted, post_rejected, sub_statement


def with_definition(definition: Any, where: str = "statement") -> dict[str, Any]:
    activity = {"objectType": "Activity", "id": f"https://lms.example/activities/{uuid.uuid4()}",
                "definition": definition}  # fmt: skip
    if where == "substatement":
        return statement(obj=sub_statement(verb_display=True, object=activity))
    return statement(obj=activity)


def with_object(obj: Any, where: str) -> dict[str, Any]:
    """A statement with ``obj`` as its object, or (``where="substatement"``) as its SubStatement's object."""
    if where == "statement":
        return statement(obj=obj)
    return statement(obj=sub_statement(verb_display=True, object=obj))


# --- OBJ-1: objectType ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "object_type", ["activity", "ACTIVITY", "Activities", "Person", "Statement", "statementRef", "", 5, True]
)
def test_obj1_object_type_must_be_a_known_exact_value(xapi, object_type):
    """OBJ-1: objectType is one of Activity, Agent, Group, SubStatement, StatementRef (exact)."""
    obj = {**unique_activity(), "objectType": object_type}
    post_rejected(xapi, statement(obj=obj), "objectType")


def test_obj1_missing_object_type_means_activity(any_xapi):
    """OBJ-1: an object without objectType is an Activity and is read back as sent."""
    obj = {"id": f"https://lms.example/activities/{uuid.uuid4()}"}
    got = post_accepted(any_xapi, statement(obj=obj))
    assert got["object"]["id"] == obj["id"]
    assert got["object"].get("objectType", "Activity") == "Activity"
    found = any_xapi.find(activity=obj["id"])
    assert [s["object"]["id"] for s in found] == [obj["id"]]


# --- OBJ-2: Activity id --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        {"objectType": "Activity"},
        {"objectType": "Activity", "definition": {"name": {"en-US": "no id"}}},
        {"objectType": "Activity", "id": ""},
        {"objectType": "Activity", "id": "lms.example/activities/1"},
        {"objectType": "Activity", "id": 1},
        {"objectType": "Activity", "id": {"iri": "http://example.com"}},
        {"objectType": "Activity", "ID": "http://example.com/activity"},
    ],
    ids=["no-id", "definition-no-id", "empty", "no-scheme", "number", "object", "wrong-case-key"],
)
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj2_activity_id_required_and_an_iri(xapi, where, obj):
    """OBJ-2: an Activity needs an IRI `id` (statement and SubStatement)."""
    st = with_object(obj, where)
    post_rejected(xapi, st, "id" if "ID" not in obj else "ID")


# --- OBJ-3 / OBJ-4: definition --------------------------------------------------------------------

FULL_DEFINITION = {
    "name": {"en-US": "Sequencing question"},
    "description": {"en-US": "Order these"},
    "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
    "moreInfo": "https://lms.example/help",
    "interactionType": "sequencing",
    "correctResponsesPattern": ["tim[,]mike[,]ells[,]ben"],
    "choices": [
        {"id": "tim", "description": {"en-US": "Tim"}},
        {"id": "ben", "description": {"en-US": "Ben"}},
        {"id": "ells", "description": {"en-US": "Ells"}},
        {"id": "mike", "description": {"en-US": "Mike"}},
    ],
    "extensions": {"http://example.com/ext/difficulty": 3},
}


def test_obj3_all_definition_properties_accepted_and_kept(any_xapi):
    """OBJ-3 / OBJ-4: a definition using the allowed keys is valid and read back unchanged."""
    got = post_accepted(any_xapi, with_definition(FULL_DEFINITION))
    assert got["object"]["definition"] == FULL_DEFINITION


@pytest.mark.parametrize(
    "definition", ["a definition", 5, [], True], ids=["string", "number", "array", "bool"]
)
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj3_definition_must_be_an_object(xapi, where, definition):
    """OBJ-3: `definition` must be a JSON object."""
    post_rejected(xapi, with_definition(definition, where), "definition")


@pytest.mark.parametrize("key", ["Name", "moreinfo", "interactiontype", "foo", "id", "objectType", "display"])
def test_obj3_definition_keys_are_limited(xapi, key):
    """OBJ-3: only name, description, type, moreInfo, interactionType, correctResponsesPattern,
    choices, scale, source, target, steps, extensions are allowed."""
    definition = {"name": {"en-US": "x"}, key: "value"} if key != "Name" else {"Name": {"en-US": "x"}}
    post_rejected(xapi, with_definition(definition), key)


BAD_DEFINITION_FIELDS = [
    ("name", "A name", "name"),
    ("name", {"not a tag!": "x"}, "name"),
    ("description", ["x"], "description"),
    ("description", {"en-US": 5}, "description"),
    ("type", "cmi.interaction", "type"),
    ("type", "", "type"),
    ("type", 5, "type"),
    ("moreInfo", "lms.example/help", "moreInfo"),
    ("moreInfo", {"href": "https://lms.example"}, "moreInfo"),
    ("extensions", "x", "extensions"),
    ("extensions", ["http://example.com/ext"], "extensions"),
    ("extensions", {"no-scheme": 1}, "extensions"),
]


@pytest.mark.parametrize(
    "key, value, named", BAD_DEFINITION_FIELDS, ids=[f"{k}={v!r}" for k, v, _ in BAD_DEFINITION_FIELDS]
)
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj4_definition_field_types(xapi, where, key, value, named):
    """OBJ-4: name/description are language maps, type an IRI, moreInfo an IRL, extensions an object."""
    post_rejected(xapi, with_definition({key: value}, where), named)


# --- OBJ-5: interactionType ----------------------------------------------------------------------

INTERACTIONS = {
    "true-false": {"correctResponsesPattern": ["true"]},
    "choice": {"correctResponsesPattern": ["golf[,]tetris"],
               "choices": [{"id": "golf", "description": {"en-US": "Golf"}}, {"id": "tetris"}]},
    "fill-in": {"correctResponsesPattern": ["{case_matters=false}{lang=en}To store and provide access"]},
    "long-fill-in": {"correctResponsesPattern": ["{lang=en}It's a long answer"]},
    "matching": {"correctResponsesPattern": ["ben[.]3[,]chris[.]2"],
                 "source": [{"id": "ben"}, {"id": "chris"}], "target": [{"id": "2"}, {"id": "3"}]},
    "performance": {"correctResponsesPattern": ["pong[.]1:[,]dg[.]:10"],
                    "steps": [{"id": "pong", "description": {"en-US": "Pong"}}, {"id": "dg"}]},
    "sequencing": {"correctResponsesPattern": ["tim[,]mike"], "choices": [{"id": "tim"}, {"id": "mike"}]},
    "likert": {"correctResponsesPattern": ["likert_3"],
               "scale": [{"id": "likert_0", "description": {"en-US": "Not at all"}}, {"id": "likert_3"}]},
    "numeric": {"correctResponsesPattern": ["4[:]"]},
    "other": {"correctResponsesPattern": ["(35.937432,-86.868896)"]},
}  # fmt: skip


@pytest.mark.parametrize("interaction_type", list(INTERACTIONS))
def test_obj5_every_interaction_type_accepted(any_xapi, interaction_type):
    """OBJ-5: each of the ten interaction types, with its components, is valid and kept."""
    definition = {"interactionType": interaction_type, **INTERACTIONS[interaction_type]}
    got = post_accepted(any_xapi, with_definition(definition))
    assert got["object"]["definition"] == definition


@pytest.mark.parametrize(
    "value",
    ["Choice", "TRUE-FALSE", "multiple-choice", "true_false", "fill_in", "http://adlnet.gov/expapi/interactions/choice",
     "", 1, {"type": "choice"}, ["choice"]],
)  # fmt: skip
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj5_invalid_interaction_types_rejected(xapi, where, value):
    """OBJ-5: other strings (wrong case included), IRIs, numbers and objects → 400."""
    post_rejected(xapi, with_definition({"interactionType": value}, where), "interactionType")


# --- OBJ-6: interaction properties need interactionType -----------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [("correctResponsesPattern", ["a"]), ("choices", [{"id": "a"}]), ("scale", [{"id": "a"}]),
     ("source", [{"id": "a"}]), ("target", [{"id": "a"}]), ("steps", [{"id": "a"}])],
)  # fmt: skip
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj6_interaction_properties_require_interaction_type(xapi, where, key, value):
    """OBJ-6: correctResponsesPattern/choices/scale/source/target/steps without interactionType → 400."""
    post_rejected(xapi, with_definition({"name": {"en-US": "x"}, key: value}, where), key, "interactionType")


# --- OBJ-7: shapes of the interaction arrays ----------------------------------------------------

BAD_ARRAYS = [
    ("correctResponsesPattern", "golf"),
    ("correctResponsesPattern", [1, 2]),
    ("correctResponsesPattern", [["golf"]]),
    ("correctResponsesPattern", {"0": "golf"}),
    ("choices", {"id": "golf"}),
    ("choices", ["golf", "tetris"]),
    ("choices", [[{"id": "golf"}]]),
    ("scale", "likert_1"),
    ("source", [1]),
    ("target", {"id": "x"}),
    ("steps", ["pong"]),
]


@pytest.mark.parametrize("key, value", BAD_ARRAYS, ids=[f"{k}={v!r}" for k, v in BAD_ARRAYS])
def test_obj7_interaction_arrays_have_the_right_shape(xapi, key, value):
    """OBJ-7: correctResponsesPattern is an array of strings; choices/scale/source/target/steps are
    arrays of interaction-component objects."""
    post_rejected(xapi, with_definition({"interactionType": "other", key: value}), key)


def test_obj7_empty_arrays_accepted(any_xapi):
    """OBJ-7: an empty correctResponsesPattern (no correct answer) and empty component lists are arrays."""
    definition = {"interactionType": "choice", "correctResponsesPattern": [], "choices": []}
    got = post_accepted(any_xapi, with_definition(definition))
    assert got["object"]["definition"] == definition


# --- OBJ-8: interaction components -------------------------------------------------------------

BAD_COMPONENTS = [
    ({"description": {"en-US": "no id"}}, "id"),
    ({"id": 1}, "id"),
    ({"id": None}, "id"),
    ({"id": "a", "description": "A"}, "description"),
    ({"id": "a", "description": {"bad tag!": "A"}}, "description"),
    ({"id": "a", "name": {"en-US": "A"}}, "name"),
    ({"ID": "a"}, "ID"),
]


@pytest.mark.parametrize("component, named", BAD_COMPONENTS, ids=[repr(c) for c, _ in BAD_COMPONENTS])
@pytest.mark.parametrize("key", ["choices", "scale", "source", "target", "steps"])
def test_obj8_interaction_component_shape(xapi, key, component, named):
    """OBJ-8: a component needs a string `id`; `description` is a language map; nothing else."""
    definition = {"interactionType": "other", key: [{"id": "ok"}, component]}
    post_rejected(xapi, with_definition(definition), key, named)


@pytest.mark.parametrize("key", ["choices", "scale", "source", "target", "steps"])
def test_obj8_component_ids_unique_within_an_array(xapi, key):
    """OBJ-8: ids are unique within one array → duplicates → 400 naming the array."""
    definition = {"interactionType": "other", key: [{"id": "same"}, {"id": "other"}, {"id": "same"}]}
    post_rejected(xapi, with_definition(definition), key)


def test_obj8_same_component_id_in_different_arrays_is_fine(any_xapi):
    """OBJ-8: uniqueness is per array: source and target may share an id."""
    definition = {"interactionType": "matching", "source": [{"id": "x"}], "target": [{"id": "x"}]}
    got = post_accepted(any_xapi, with_definition(definition))
    assert got["object"]["definition"] == definition


# --- OBJ-9: no length limits ---------------------------------------------------------------------


def test_obj9_no_length_limits_on_patterns_and_responses(any_xapi):
    """OBJ-9: long response patterns, long correctResponsesPattern arrays and long responses are
    accepted and kept."""
    long_pattern = "[,]".join(f"choice_{i}" for i in range(2000))
    patterns = [f"pattern {i}" for i in range(500)] + [long_pattern]
    definition = {"interactionType": "sequencing", "correctResponsesPattern": patterns}
    st = with_definition(definition)
    st["result"] = {"response": long_pattern}
    got = post_accepted(any_xapi, st)
    assert got["object"]["definition"]["correctResponsesPattern"] == patterns
    assert got["result"]["response"] == long_pattern


# --- OBJ-10: Agent/Group objects need objectType -----------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [{"mbox": "mailto:someone@example.com"}, {"name": "A team", "member": [{"mbox": "mailto:m@example.com"}]},
     {"account": {"homePage": "https://lms.example", "name": "u1"}}],
    ids=["agent", "group", "account-agent"],
)  # fmt: skip
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj10_agent_or_group_object_needs_object_type(xapi, where, obj):
    """OBJ-10: an Agent or Group as object must carry objectType (top level and in SubStatements);
    without it the object is read as an Activity and is invalid."""
    st = with_object(obj, where)
    post_rejected(xapi, st, "object")


@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj10_agent_and_group_objects_with_object_type_accepted(any_xapi, where):
    """OBJ-10: the same objects with objectType are valid and read back unchanged."""
    for obj in (
        {"objectType": "Agent", "mbox": f"mailto:{uuid.uuid4().hex[:10]}@example.com"},
        {"objectType": "Group", "name": "A team", "member": [unique_agent()]},
    ):
        st = with_object(obj, where)
        got = post_accepted(any_xapi, st)
        assert (got["object"] if where == "statement" else got["object"]["object"]) == obj


# --- OBJ-11: StatementRef ------------------------------------------------------------------------

BAD_REFS = [
    ({"objectType": "StatementRef"}, "id"),
    ({"objectType": "StatementRef", "id": "not-a-uuid"}, "id"),
    ({"objectType": "StatementRef", "id": 12345}, "id"),
    ({"objectType": "StatementRef", "id": ""}, "id"),
    ({"objectType": "StatementRef", "id": "{ID}", "definition": {}}, "definition"),
    ({"objectType": "StatementRef", "id": "{ID}", "Id": "{ID}"}, "Id"),
    ({"id": "{ID}"}, "id"),  # without objectType it is an Activity whose id is no IRI
]


@pytest.mark.parametrize("ref, named", BAD_REFS, ids=[repr(r) for r, _ in BAD_REFS])
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj11_statement_ref_requires_object_type_and_uuid(xapi, where, ref, named):
    """OBJ-11: a StatementRef has objectType "StatementRef" and a UUID id, nothing else."""
    ref = {k: (v.replace("{ID}", str(uuid.uuid4())) if isinstance(v, str) else v) for k, v in ref.items()}
    st = with_object(ref, where)
    post_rejected(xapi, st, named)


@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_obj11_statement_ref_to_unknown_statement_accepted(any_xapi, where):
    """OBJ-11: a StatementRef is valid whether or not the target is known to the LRS."""
    ref = {"objectType": "StatementRef", "id": str(uuid.uuid4())}
    st = with_object(ref, where)
    got = post_accepted(any_xapi, st)
    assert (got["object"] if where == "statement" else got["object"]["object"]) == ref


# --- OBJ-12: SubStatement ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [("id", "{ID}"), ("stored", "2024-01-01T00:00:00Z"), ("version", "1.0.0"),
     ("authority", {"objectType": "Agent", "mbox": "mailto:authority@example.com"})],
)  # fmt: skip
def test_obj12_substatement_must_not_have_lrs_properties(any_xapi, key, value):
    """OBJ-12: a SubStatement must not contain id, stored, version or authority."""
    value = str(uuid.uuid4()) if value == "{ID}" else value
    sub = sub_statement(verb_display=True, **{key: value})
    post_rejected(any_xapi, statement(obj=sub), "SubStatement", key)


def test_obj12_substatement_must_not_nest(any_xapi):
    """OBJ-12: a SubStatement cannot contain another SubStatement."""
    sub = sub_statement(verb_display=True, object=sub_statement(verb_display=True))
    post_rejected(any_xapi, statement(obj=sub), "SubStatement")


def test_obj12_substatement_needs_object_type(any_xapi):
    """OBJ-12: without objectType "SubStatement" the object is read as an Activity → 400."""
    sub = sub_statement(verb_display=True)
    del sub["objectType"]
    post_rejected(any_xapi, statement(obj=sub), "object")


@pytest.mark.parametrize(
    "mutate, named",
    [
        (lambda s: s["actor"].update(mbox="not-mailto"), "mbox"),
        (lambda s: s["verb"].update(id="not an iri"), "verb"),
        (lambda s: s.update(result={"success": "yes"}), "success"),
        (lambda s: s.update(context={"registration": "nope"}), "registration"),
        (lambda s: s.update(timestamp="2008-09-15T15:53:00.601-00:00"), "timestamp"),
        (lambda s: s.update(dummy=1), "dummy"),
    ],
    ids=["actor", "verb", "result", "context", "timestamp", "extra-key"],
)
def test_obj12_substatement_validated_as_a_full_statement(xapi, mutate, named):
    """OBJ-12: everything inside a SubStatement is validated like a statement."""
    sub = sub_statement(verb_display=True)
    mutate(sub)
    post_rejected(xapi, statement(obj=sub), "object", named)


def test_obj12_complete_substatement_accepted_and_kept(any_xapi):
    """OBJ-12: a SubStatement with result, context and a (future) timestamp is valid and kept."""
    sub = sub_statement(
        verb_display=True,
        result={"success": True, "duration": "PT2M"},
        context={"registration": str(uuid.uuid4()), "contextActivities": {"parent": [unique_activity()]}},
        timestamp="2099-01-01T00:00:00Z",
    )
    got = post_accepted(any_xapi, statement(obj=sub))
    assert got["object"] == sub


# --- OBJ-13: one activity id = one activity -----------------------------------------------------


def test_obj13_same_activity_id_is_one_activity(any_xapi):
    """OBJ-13: statements using one activity id (with or without a definition) all refer to that
    activity: the activity filter finds them all and the Activities resource answers one object."""
    activity_id = f"https://lms.example/activities/{uuid.uuid4()}"
    first = {"objectType": "Activity", "id": activity_id, "definition": {"name": {"en-US": "First name"}}}
    second = {"id": activity_id}
    third = {"objectType": "Activity", "id": activity_id, "definition": {"description": {"en-US": "More"}}}
    ids = any_xapi.store(statement(obj=first), statement(obj=second), statement(obj=third))
    found = any_xapi.find(activity=activity_id)
    assert sorted(s["id"] for s in found) == sorted(ids)
    response = any_xapi.get("/activities", params={"activityId": activity_id})
    assert response.status_code == 200
    assert response.json()["id"] == activity_id


def test_obj13_activity_ids_differing_in_path_case_are_different_activities(xapi):
    """OBJ-13: IRI paths are case-sensitive; `.../Quiz` and `.../quiz` are not merged."""
    base = f"https://lms.example/activities/{uuid.uuid4().hex}"
    upper, lower = base + "/Quiz", base + "/quiz"
    (sid_upper,) = xapi.store(statement(obj={"id": upper}))
    (sid_lower,) = xapi.store(statement(obj={"id": lower}))
    assert [s["id"] for s in xapi.find(activity=upper)] == [sid_upper]
    assert [s["id"] for s in xapi.find(activity=lower)] == [sid_lower]


def test_obj13_definition_does_not_change_stored_object(xapi):
    """OBJ-13 / FMT-15: a later statement defining the activity differently does not rewrite the
    object of an earlier stored statement (exact format)."""
    activity_id = f"https://lms.example/activities/{uuid.uuid4()}"
    first = {"objectType": "Activity", "id": activity_id, "definition": {"name": {"en-US": "Old"}}}
    (sid,) = xapi.store(statement(obj=copy.deepcopy(first)))
    xapi.store(statement(obj={"objectType": "Activity", "id": activity_id,
                              "definition": {"name": {"en-US": "New"}}}))  # fmt: skip
    got = xapi.get("/statements", params={"statementId": sid}).json()
    assert got["object"] == first
