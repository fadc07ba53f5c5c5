"""The LMS's side of the cmi5 rules, as pure functions (``lrs/cmi5/rules.py``): each case is a
statement an AU could send, judged against a session written by hand, with the verdict cmi5
(quartz) gives it."""

from __future__ import annotations

import copy

import pytest

from lrs.cmi5 import rules
from lrs.cmi5.rules import Member, RuleViolation, Session

ACTOR = {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "42"}}
ACTOR_KEY = 'account:["https://lms.example","42"]'  # lrs.xapi.agents.ifi_key of ACTOR
AU = "urn:uuid:6f9d3c1e-0000-4000-8000-000000000001"
PUBLISHER = "https://example.com/aus/a1"
REGISTRATION = "0b6f5d2c-8a2e-4f6e-9d55-1a2b3c4d5e6f"
SESSION_ID = "5d3c2b1a-0000-4000-8000-00000000beef"
CMI5 = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
MOVEON = "https://w3id.org/xapi/cmi5/context/categories/moveon"
SID = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"
MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"


def session(**changes) -> Session:
    base = Session(SESSION_ID, REGISTRATION, ACTOR_KEY, AU, PUBLISHER, mastery_score=0.8)
    return Session(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})


def sent(verb: str, result: dict | None = None, *, defined: bool = True, moveon: bool = False, **ext) -> dict:
    categories = ([{"id": CMI5}] if defined else []) + ([{"id": MOVEON}] if moveon else [])
    statement = {
        "id": "a1b2c3d4-0000-4000-8000-000000000001", "actor": ACTOR, "timestamp": "2026-12-07T10:00:00.000Z",
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}"}, "object": {"id": AU},
        "context": {"registration": REGISTRATION, "extensions": {SID: SESSION_ID, **ext},
                    "contextActivities": {"grouping": [{"id": PUBLISHER}], "category": categories}},
    }  # fmt: skip
    if result is not None:
        statement["result"] = result
    return statement


STARTED = {"initialized": True, "verbs": frozenset({"initialized"})}


def test_a_normal_session_is_accepted_and_remembered():
    state = rules.check(sent("initialized"), session())
    state = rules.check(sent("passed", {"success": True, "duration": "PT1M", "score": {"scaled": 0.8}},
                             moveon=True, **{MASTERY: 0.8}), state)  # fmt: skip
    state = rules.check(sent("completed", {"completion": True, "duration": "PT2M"}, moveon=True), state)
    state = rules.check(sent("experienced", defined=False), state)
    state = rules.check(sent("terminated", {"duration": "PT3M"}), state)
    assert state.verbs == {"initialized", "passed", "completed", "terminated"}
    assert (state.passed_before, state.completed_before, state.terminated) == (True, True, True)


@pytest.mark.parametrize(
    ("statement", "state", "section"),
    [
        (sent("completed", {"completion": True, "duration": "PT1S"}, moveon=True), {}, "§9.3"),
        (sent("experienced", defined=False), {}, "§9.3"),
        (sent("initialized"), STARTED, "§9.3"),
        (sent("completed", {"completion": True, "duration": "PT1S"}, moveon=True), {**STARTED, "completed_before": True}, "§9.3.3"),
        (sent("passed", {"success": True, "duration": "PT1S"}, moveon=True), {**STARTED, "passed_before": True}, "§9.3.4"),
        (sent("failed", {"success": False, "duration": "PT1S"}, moveon=True), {**STARTED, "passed_before": True}, "§9.3"),
        (sent("failed", {"success": False, "duration": "PT1S"}, moveon=True),
         {**STARTED, "verbs": frozenset({"initialized", "passed"})}, "§9.3"),
        (sent("completed", {"completion": True, "duration": "PT1S"}, moveon=True), {**STARTED, "launch_mode": "Browse"}, "§10"),
        (sent("passed", {"success": True, "duration": "PT1S", "score": {"scaled": 0.7}}, moveon=True, **{MASTERY: 0.8}),
         STARTED, "§9.3.4"),
        (sent("failed", {"success": False, "duration": "PT1S", "score": {"scaled": 0.9}}, moveon=True, **{MASTERY: 0.8}),
         STARTED, "§9.3.5"),
        (sent("passed", {"success": True, "duration": "PT1S", "score": {"scaled": 0.9}}, moveon=True), STARTED, "§9.6.3.2"),
        (sent("passed", {"success": True, "duration": "PT1S"}, moveon=True, **{MASTERY: 0.5}), STARTED, "§9.6.3.2"),
        (sent("passed", {"success": True, "duration": "PT1S", "score": {"raw": 5}}, moveon=True), STARTED, "§9.5.1"),
        (sent("completed", {"completion": True, "duration": "PT1S", "score": {"scaled": 1}}, moveon=True), STARTED, "§9.5.1"),
        (sent("completed", {"completion": True}, moveon=True), STARTED, "§9.5.4.1"),
        (sent("completed", {"completion": True, "duration": "PT1S"}), STARTED, "§9.6.2.2"),
        (sent("terminated", {"duration": "PT1S"}, moveon=True), STARTED, "§9.6.2.2"),
        (sent("experienced", defined=False, moveon=True), STARTED, "§9.6.2.2"),
        (sent("completed", {"completion": True, "duration": "PT1S", "extensions": {
            "https://w3id.org/xapi/cmi5/result/extensions/progress": 150}}, moveon=True), STARTED, "§9.5.5.1"),
        (sent("launched"), STARTED, "§9.3"),
        (sent("voided", defined=False), STARTED, "§6.3"),
    ],
)  # fmt: skip
def test_a_statement_that_breaks_a_rule_names_it(statement, state, section):
    with pytest.raises(RuleViolation, match=section.replace(".", r"\.")):
        rules.check(statement, session(**state))


@pytest.mark.parametrize(
    ("change", "section"),
    [
        (lambda s: s.pop("id"), "§9.1"),
        (lambda s: s.update(timestamp="2026-12-07T10:00:00+02:00"), "§9.7"),
        (lambda s: s.update(actor={"mbox": "mailto:learner@example.com"}), "§9.2"),
        (lambda s: s.update(actor={"account": {"homePage": "https://lms.example", "name": "43"}}), "§8.1"),
        (lambda s: s["context"].update(registration="00000000-0000-4000-8000-000000000000"), "§9.6.1"),
        (lambda s: s["context"]["extensions"].update({SID: "another"}), "§9.6.3.1"),
        (lambda s: s["context"]["contextActivities"].update(grouping=[]), "§10"),
        (lambda s: s.update(object={"id": "https://example.com/elsewhere"}), "§9.4"),
    ],
)  # fmt: skip
def test_the_launch_context_is_required_of_every_statement(change, section):
    statement = copy.deepcopy(sent("initialized"))
    change(statement)
    with pytest.raises(RuleViolation, match=section.replace(".", r"\.")):
        rules.check(statement, session())


@pytest.mark.parametrize(
    ("move_on", "completed", "passed", "waived", "satisfied"),
    [
        ("Completed", True, False, False, True), ("Completed", False, True, False, False),
        ("Passed", False, True, False, True), ("Passed", True, False, False, False),
        ("CompletedAndPassed", True, False, False, False), ("CompletedAndPassed", True, True, False, True),
        ("CompletedOrPassed", False, True, False, True), ("CompletedOrPassed", False, False, False, False),
        ("NotApplicable", False, False, False, True), ("CompletedAndPassed", False, False, True, True),
    ],
)  # fmt: skip
def test_au_satisfaction_follows_move_on(move_on, completed, passed, waived, satisfied):
    assert rules.au_satisfied(move_on, completed=completed, passed=passed, waived=waived) is satisfied


def test_blocks_are_satisfied_innermost_first_and_the_course_last():
    members = [Member("a1", ("b1",)), Member("a2", ("b1", "b2")), Member("a3", ())]
    assert rules.satisfied_blocks(members, {"a2"}) == ["b2"]
    assert rules.satisfied_blocks(members, {"a1", "a2"}) == ["b2", "b1"]
    assert not rules.course_satisfied(members, {"a1", "a2"})
    assert rules.course_satisfied(members, {"a1", "a2", "a3"})
