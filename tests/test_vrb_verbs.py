"""Verb validation (checklist section 7, VRB-1 … VRB-3)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import VERBS, statement, unique_activity, voiding
from .helpers import post_accepted, post_rejected


def with_verb(verb: Any, **extra: Any) -> dict[str, Any]:
    st = statement(**extra)
    st["verb"] = verb
    return st


def in_substatement(verb: Any) -> dict[str, Any]:
    return statement(
        obj={"objectType": "SubStatement", "actor": {"mbox": "mailto:sub@example.com"}, "verb": verb,
             "object": unique_activity()}
    )  # fmt: skip


# --- VRB-1: id required, an IRI ------------------------------------------------------------------

BAD_VERBS = {
    "no-id": {"display": {"en-US": "completed"}},
    "empty-object": {},
    "id-empty": {"id": ""},
    "id-no-scheme": {"id": "adlnet.gov/expapi/verbs/completed"},
    "id-word": {"id": "completed"},
    "id-with-space": {"id": "http://example.com/verbs/has space"},
    "id-number": {"id": 42},
    "id-array": {"id": ["http://adlnet.gov/expapi/verbs/completed"]},
    "id-wrong-case-key": {"ID": "http://adlnet.gov/expapi/verbs/completed"},
    "unknown-key": {"id": "http://adlnet.gov/expapi/verbs/completed", "name": {"en-US": "completed"}},
}


@pytest.mark.parametrize("case", list(BAD_VERBS))
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_vrb1_verb_id_required_and_an_iri(xapi, where, case):
    """VRB-1: verb.id is required and must be an IRI (also in a SubStatement) → 400 naming verb."""
    verb = BAD_VERBS[case]
    st = with_verb(verb) if where == "statement" else in_substatement(verb)
    post_rejected(xapi, st, "verb")


@pytest.mark.parametrize(
    "value", ["http://adlnet.gov/expapi/verbs/completed", "urn:example:verb:done", 7, []]
)
def test_vrb1_verb_must_be_an_object(any_xapi, value):
    """VRB-1: a verb given as a bare string/number/array → 400."""
    post_rejected(any_xapi, with_verb(value), "verb")


@pytest.mark.parametrize(
    "verb_id",
    ["http://adlnet.gov/expapi/verbs/completed", "urn:example:verb:done", "https://例え.jp/動詞/完了",
     "http://example.com/verbs/UPPER?query=1#fragment"],
)  # fmt: skip
def test_vrb1_verb_without_display_accepted_and_kept(any_xapi, verb_id):
    """VRB-1 / VRB-2: a verb with only an IRI id is valid and read back unchanged."""
    got = post_accepted(any_xapi, with_verb({"id": verb_id}))
    assert got["verb"] == {"id": verb_id}


# --- VRB-2: display is a language map ----------------------------------------------------------

BAD_DISPLAYS = {
    "string": "completed",
    "number": 1,
    "array": [{"en-US": "completed"}],
    "bad-tag": {"a12345": "completed"},
    "bad-tag-underscore": {"en_US": "completed"},
    "value-number": {"en-US": 1},
    "value-object": {"en-US": {"text": "completed"}},
    "value-null": {"en-US": None},
}


@pytest.mark.parametrize("case", list(BAD_DISPLAYS))
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_vrb2_display_must_be_a_language_map(xapi, where, case):
    """VRB-2: verb.display, when present, is a valid language map → otherwise 400 naming display."""
    verb = {"id": VERBS["completed"], "display": BAD_DISPLAYS[case]}
    st = with_verb(verb) if where == "statement" else in_substatement(verb)
    post_rejected(xapi, st, "display")


@pytest.mark.parametrize(
    "display",
    [{}, {"en-US": "completed"}, {"en-US": "completed", "fr-FR": "terminé", "zh-Hans-CN": "完成", "und": "?"},
     {"en-US": ""}],
    ids=["empty", "one", "several", "empty-string"],
)  # fmt: skip
def test_vrb2_valid_displays_accepted_and_kept(any_xapi, display):
    """VRB-2: `{}` and multi-language maps are valid displays, read back unchanged."""
    verb = {"id": VERBS["completed"], "display": display}
    got = post_accepted(any_xapi, with_verb(verb))
    assert got["verb"] == verb


# --- VRB-3: the voiding verb --------------------------------------------------------------------


def test_vrb3_voided_verb_voids_its_statement_ref_target(any_xapi):
    """VRB-3: `http://adlnet.gov/expapi/verbs/voided` with a StatementRef voids the target."""
    (target,) = any_xapi.store(statement())
    (voider,) = any_xapi.store(voiding(target))
    assert any_xapi.get("/statements", params={"statementId": target}).status_code == 404
    voided = any_xapi.get("/statements", params={"voidedStatementId": target})
    assert voided.status_code == 200
    assert voided.json()["id"] == target
    assert any_xapi.get("/statements", params={"statementId": voider}).json()["verb"]["id"] == VERBS["voided"]


@pytest.mark.parametrize(
    "obj",
    [
        lambda: unique_activity(),
        lambda: {"objectType": "Agent", "mbox": "mailto:someone@example.com"},
        lambda: {"objectType": "SubStatement", "actor": {"mbox": "mailto:s@example.com"},
                 "verb": {"id": VERBS["completed"]}, "object": unique_activity()},
    ],
    ids=["activity", "agent", "substatement"],
)  # fmt: skip
def test_vrb3_voided_verb_needs_a_statement_ref(xapi, obj):
    """VRB-3 / LIFE-3: a statement with the voiding verb whose object is not a StatementRef → 400."""
    post_rejected(xapi, statement(verb="voided", obj=obj()), "StatementRef")


@pytest.mark.parametrize(
    "verb_id",
    ["http://adlnet.gov/expapi/verbs/Voided", "https://adlnet.gov/expapi/verbs/voided",
     "http://adlnet.gov/expapi/verbs/voided/"],
)  # fmt: skip
def test_vrb3_only_the_exact_voided_iri_voids(xapi, verb_id):
    """VRB-3: look-alike verb IRIs are ordinary verbs: with an Activity they are valid, and with a
    StatementRef they do not void the target."""
    post_accepted(xapi, statement(verb=verb_id))
    (target,) = xapi.store(statement())
    xapi.store(statement(verb=verb_id, obj={"objectType": "StatementRef", "id": target}))
    assert xapi.get("/statements", params={"statementId": target}).status_code == 200
