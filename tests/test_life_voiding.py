"""Statement lifecycle: immutability, comparison exceptions and voiding (checklist §12 LIFE-*, SFMT-5/6, V2-23).

Every test works on its own agents and activities, so queries only see the statements it made.
"""

from __future__ import annotations

import copy
import json
import uuid

import httpx
import pytest

from .conftest import VERBS, statement, unique_activity, unique_agent, voiding
from .helpers import error_message, get_by_id


def get_voided(client, statement_id: str):
    return client.get("/statements", params={"voidedStatementId": statement_id})


def assert_voided(client, statement_id: str) -> dict:
    """The statement is hidden from statementId (404) and served by voidedStatementId (200)."""
    hidden = get_by_id(client, statement_id)
    assert hidden.status_code == 404, hidden.text
    assert statement_id in hidden.json()["error"]["message"]
    found = get_voided(client, statement_id)
    assert found.status_code == 200, found.text
    assert found.json()["id"] == statement_id
    return found.json()


def assert_not_voided(client, statement_id: str) -> dict:
    found = get_by_id(client, statement_id)
    assert found.status_code == 200, found.text
    assert found.json()["id"] == statement_id
    missing = get_voided(client, statement_id)
    assert missing.status_code == 404, missing.text
    return found.json()


def comparable(stored: dict) -> dict:
    """A returned statement without the properties an LRS assigns."""
    return {k: v for k, v in stored.items() if k not in ("stored", "authority", "version", "timestamp")}


# --- LIFE-1 / LIFE-2: immutability and the comparison rules -----------------------------------


def test_life1_statement_is_immutable_and_voiding_is_the_only_undo(any_xapi):
    """LIFE-1: a stored statement cannot be replaced; voiding hides it but keeps it unchanged."""
    sid = str(uuid.uuid4())
    original = statement(id=sid, result={"success": True})
    assert any_xapi.put("/statements", params={"statementId": sid}, json=original).status_code == 204
    before = get_by_id(any_xapi, sid).json()

    changed = copy.deepcopy(original)
    changed["result"] = {"success": False}
    conflict = any_xapi.put("/statements", params={"statementId": sid}, json=changed)
    assert conflict.status_code == 409
    assert sid in error_message(conflict)
    assert get_by_id(any_xapi, sid).json() == before

    any_xapi.store(voiding(sid))
    assert assert_voided(any_xapi, sid) == before


def _timestamp_other_zone(st: dict) -> None:
    st["timestamp"] = "2024-03-01T13:30:00.000+01:30"


def _members_reordered(st: dict) -> None:
    st["actor"]["member"].reverse()


def _mbox_domain_upper(st: dict) -> None:
    local, domain = st["object"]["mbox"].split("@")
    st["object"]["mbox"] = f"{local}@{domain.upper()}"


def _context_activity_as_object(st: dict) -> None:
    st["context"]["contextActivities"]["parent"] = st["context"]["contextActivities"]["parent"][0]


def _lrs_assigned_properties(st: dict) -> None:
    st["version"] = "1.0.0"
    st["stored"] = "2001-01-01T00:00:00Z"
    st["authority"] = unique_agent("Someone else")


def _registration_upper(st: dict) -> None:
    st["context"]["registration"] = st["context"]["registration"].upper()


def _activity_definition_changed(st: dict) -> None:
    st["context"]["contextActivities"]["parent"][0]["definition"] = {"name": {"fr-FR": "Un autre nom"}}


def _verb_display_changed(st: dict) -> None:
    st["verb"]["display"] = {"en-GB": "finished", "de-DE": "abgeschlossen"}


def _attachments_added(st: dict) -> None:
    st["attachments"] = [
        {
            "usageType": "http://example.com/attachment-usage/certificate",
            "display": {"en-US": "certificate"},
            "contentType": "application/pdf",
            "length": 10,
            "sha2": "a" * 64,
            "fileUrl": "https://files.example/certificate.pdf",
        }
    ]


def _base_for_comparison() -> dict:
    members = [unique_agent("A"), unique_agent("B"), unique_agent("C")]
    for m in members:
        m.pop("objectType")
    return statement(
        actor={"objectType": "Group", "member": members},
        obj={"objectType": "Agent", "mbox": f"mailto:{uuid.uuid4().hex[:10]}@example.com"},
        timestamp="2024-03-01T12:00:00.000Z",
        context={
            "registration": str(uuid.uuid4()),
            "contextActivities": {"parent": [unique_activity(name={"en-US": "Parent"})]},
        },
    )


def _put_then_resend(client, mutate) -> tuple[str, dict, httpx.Response]:
    """PUT the comparison base under a fresh id, then PUT it again changed by ``mutate``:
    (the id, the statement as first stored, the answer to the re-send)."""
    sid = str(uuid.uuid4())
    original = _base_for_comparison()
    original["id"] = sid
    assert client.put("/statements", params={"statementId": sid}, json=original).status_code == 204
    before = get_by_id(client, sid).json()

    resent = copy.deepcopy(original)
    mutate(resent)
    return sid, before, client.put("/statements", params={"statementId": sid}, json=resent)


@pytest.mark.parametrize(
    "mutate",
    [
        _timestamp_other_zone,
        _members_reordered,
        _mbox_domain_upper,
        _context_activity_as_object,
        _lrs_assigned_properties,
        _registration_upper,
        _activity_definition_changed,
        _verb_display_changed,
        _attachments_added,
    ],
)
def test_life2_resend_differing_only_by_immutability_exceptions_is_the_same_statement(xapi, mutate):
    """LIFE-2 (+SPUT-4): differences allowed by the immutability exceptions (timestamp serialisation,
    member order, e-mail domain case, LRS-assigned properties, UUID case, activity definitions, verb
    display, attachments) are ignored when a statement id is re-sent: 204, and nothing changes."""
    sid, before, response = _put_then_resend(xapi, mutate)
    assert response.status_code == 204, response.text
    assert get_by_id(xapi, sid).json() == before


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda st: st.update(timestamp="2024-03-01T12:00:01.000Z"), id="other-instant"),
        pytest.param(lambda st: st["actor"]["member"].pop(), id="member-removed"),
        pytest.param(lambda st: st.update(result={"completion": True}), id="result-added"),
        pytest.param(
            lambda st: st["object"].update(mbox=st["object"]["mbox"].replace("mailto:", "mailto:X")),
            id="mbox-local-part",
        ),
        pytest.param(lambda st: st["verb"].update(id=VERBS["attempted"]), id="verb-id"),
        pytest.param(lambda st: st["context"].update(language="en-US"), id="context-language"),
        pytest.param(lambda st: st.update(result={"duration": "PT1.50S"}), id="duration-added"),
    ],
)
def test_life2_resend_with_a_real_difference_is_a_conflict(xapi, mutate):
    """LIFE-1/LIFE-2 (+SPUT-4): anything outside the exceptions is a different statement: 409, unchanged."""
    sid, before, response = _put_then_resend(xapi, mutate)
    assert response.status_code == 409, response.text
    assert sid in error_message(response)
    assert get_by_id(xapi, sid).json() == before


def test_life2_v1_result_duration_is_compared_as_a_string(xapi):
    """LIFE-2: in 1.0.3 the Result Duration is explicitly *not* an exception: it is compared as a
    string, so PT1.001S and PT1.009S are different statements (409)."""
    sid = str(uuid.uuid4())
    original = statement(id=sid, result={"duration": "PT1.001S"})
    assert xapi.put("/statements", params={"statementId": sid}, json=original).status_code == 204
    resent = dict(original, result={"duration": "PT1.009S"})
    response = xapi.put("/statements", params={"statementId": sid}, json=resent)
    assert response.status_code == 409, response.text
    assert get_by_id(xapi, sid).json()["result"] == {"duration": "PT1.001S"}


# --- LIFE-3: what a voiding statement is -------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(lambda: unique_activity(), id="activity"),
        pytest.param(lambda: dict(unique_agent(), objectType="Agent"), id="agent"),
        pytest.param(
            lambda: {
                "objectType": "SubStatement",
                "actor": unique_agent(),
                "verb": {"id": VERBS["completed"]},
                "object": unique_activity(),
            },
            id="substatement",
        ),
    ],
)
def test_life3_voiding_statement_needs_a_statementref_object(any_xapi, obj):
    """LIFE-3: verb voided with an object other than a StatementRef → 400 naming StatementRef; nothing stored."""
    sid = str(uuid.uuid4())
    response = any_xapi.post_statements(statement(verb="voided", obj=obj(), id=sid))
    assert response.status_code == 400
    assert "StatementRef" in error_message(response)
    assert get_by_id(any_xapi, sid).status_code == 404


def test_life3_statementref_with_another_verb_does_not_void(xapi):
    """LIFE-3/LIFE-4: only the voided verb voids; another verb pointing at a statement leaves it alone."""
    (target,) = xapi.store(statement())
    xapi.store(statement(verb="experienced", obj={"objectType": "StatementRef", "id": target}))
    assert_not_voided(xapi, target)


# --- LIFE-4: when a statement counts as voided -------------------------------------------------


def test_life4_voided_statement_is_hidden_and_served_by_voided_statement_id(any_xapi):
    """LIFE-4 (+SGET-1/SGET-4): a voided target → 404 by statementId, 200 by voidedStatementId; the
    voiding statement itself stays an ordinary statement."""
    original = statement()
    (target,) = any_xapi.store(original)
    (voider,) = any_xapi.store(voiding(target))
    got = assert_voided(any_xapi, target)
    assert got["actor"] == original["actor"] and got["object"] == original["object"]
    assert assert_not_voided(any_xapi, voider)["object"] == {"objectType": "StatementRef", "id": target}


@pytest.mark.parametrize("order", ["target-first", "voiding-first"])
def test_life4_voiding_and_target_in_one_batch(any_xapi, order):
    """LIFE-4: in one batch, the target is voided whichever comes first."""
    target = str(uuid.uuid4())
    pair = [statement(id=target), voiding(target)]
    if order == "voiding-first":
        pair.reverse()
    any_xapi.store(*pair)
    assert_voided(any_xapi, target)


def test_life4_target_arriving_after_its_voiding_statement_is_voided(any_xapi):
    """LIFE-4 + LIFE-6: a voiding statement for an unknown id is accepted; once the target arrives it is
    voided, because the LRS contains a voiding statement referring to it."""
    target = str(uuid.uuid4())
    (voider,) = any_xapi.store(voiding(target))
    assert get_by_id(any_xapi, target).status_code == 404
    assert get_voided(any_xapi, target).status_code == 404
    actor = unique_agent()
    any_xapi.store(statement(actor=actor, id=target))
    assert_voided(any_xapi, target)
    assert any_xapi.find(agent=actor) == [get_by_id(any_xapi, voider).json()]


def test_life4_voiding_statement_is_never_voided_even_when_it_arrives_after_its_voider(any_xapi):
    """LIFE-4/LIFE-5: a statement that is itself a voiding statement is never voided, even when a
    "voiding" of it was stored before it arrived."""
    target = statement()
    (target_id,) = any_xapi.store(target)
    first_voider = str(uuid.uuid4())
    any_xapi.store(voiding(first_voider))  # aims at the voiding statement that does not exist yet
    any_xapi.store(dict(voiding(target_id), id=first_voider))
    assert_not_voided(any_xapi, first_voider)
    assert_voided(any_xapi, target_id)


# --- LIFE-5: voiding a voiding or an already voided statement ---------------------------------


@pytest.mark.parametrize("batch", [False, True], ids=["separate-requests", "one-batch"])
def test_life5_voiding_a_voiding_statement_changes_nothing(any_xapi, batch):
    """LIFE-5: a voiding statement cannot be voided. This LRS accepts the attempt (200) and ignores it:
    the first voiding statement stays visible and its target stays voided."""
    actor = unique_agent()
    (target,) = any_xapi.store(statement(actor=actor))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    voiders = [dict(voiding(target), id=first), dict(voiding(first), id=second)]
    if batch:
        any_xapi.store(*voiders)
    else:
        any_xapi.store(voiders[0])
        any_xapi.store(voiders[1])
    assert_voided(any_xapi, target)
    assert_not_voided(any_xapi, first)
    assert_not_voided(any_xapi, second)
    assert {s["id"] for s in any_xapi.find(agent=actor)} == {first, second}


def test_life5_voiding_an_already_voided_statement_keeps_it_voided(any_xapi):
    """LIFE-5: a second void of an already voided statement is accepted (this LRS: 200) and the
    target keeps its voided status; both voiding statements remain visible."""
    actor = unique_agent()
    (target,) = any_xapi.store(statement(actor=actor))
    (first,) = any_xapi.store(voiding(target))
    (second,) = any_xapi.store(voiding(target))
    assert_voided(any_xapi, target)
    assert {s["id"] for s in any_xapi.find(agent=actor)} == {first, second}


# --- LIFE-6 / V2-23: unknown targets ---------------------------------------------------------


def test_life6_v2_23_voiding_statement_for_unknown_target_is_accepted(any_xapi):
    """LIFE-6 / V2-23: the LRS does not reject a voiding statement whose target it does not have."""
    missing = str(uuid.uuid4())
    response = any_xapi.post_statements(voiding(missing))
    assert response.status_code == 200, response.text
    (voider,) = response.json()
    assert get_by_id(any_xapi, voider).json()["object"]["id"] == missing
    sid = str(uuid.uuid4())
    put = any_xapi.put("/statements", params={"statementId": sid}, json=voiding(str(uuid.uuid4())))
    assert put.status_code == 204, put.text


# --- LIFE-7: authorisation ----------------------------------------------------------------------


def test_life7_voiding_without_write_permission_is_forbidden(make_credential, client_for, xapi):
    """LIFE-7: this LRS authorises voiding like any write (scope statements/write); a credential that may
    only read gets 403 and the target is not voided."""
    (target,) = xapi.store(statement())
    reader = client_for(auth=make_credential(["statements/read"]))
    response = reader.post_statements(voiding(target))
    assert response.status_code == 403
    assert "scope" in error_message(response)
    assert_not_voided(xapi, target)


def test_life7_voiding_by_another_writer_is_allowed(make_credential, client_for, xapi):
    """LIFE-7: what this LRS does — any credential allowed to write statements may void (403 is only a
    recommendation); the voiding statement carries that credential's authority."""
    (target,) = xapi.store(statement())
    writer = client_for(auth=make_credential(["statements/write", "statements/read"]))
    (voider,) = writer.store(voiding(target))
    assert_voided(xapi, target)
    authority = get_by_id(xapi, voider).json()["authority"]
    assert authority != get_voided(xapi, target).json()["authority"]


# --- SFMT-5 / SFMT-6: voided statements in queries ------------------------------------------


def test_sfmt5_voided_statement_never_returned_by_queries(any_xapi):
    """SFMT-5: a voided statement is returned by no query (any filter, any order, any format)."""
    actor, activity = unique_agent(), unique_activity()
    registration = str(uuid.uuid4())
    (target,) = any_xapi.store(statement(actor=actor, obj=activity, context={"registration": registration}))
    (kept,) = any_xapi.store(statement(actor=actor, verb="attempted", obj=activity))
    any_xapi.store(voiding(target))
    stored = assert_voided(any_xapi, target)["stored"]
    queries = [
        {"agent": actor},
        {"agent": actor, "related_agents": "true"},
        {"activity": activity["id"]},
        {"activity": activity["id"], "related_activities": "true", "ascending": "true"},
        {"registration": registration},
        {"agent": actor, "verb": VERBS["completed"]},
        {"agent": actor, "until": stored, "format": "ids"},
        {"since": "2000-01-01T00:00:00Z", "agent": actor, "format": "canonical"},
    ]
    for params in queries:
        ids = [s["id"] for s in any_xapi.find(**params)]
        assert target not in ids, params
    assert kept in [s["id"] for s in any_xapi.find(agent=actor)]


def test_sfmt6_statements_targeting_a_voided_statement_are_still_returned(any_xapi):
    """SFMT-6: the voiding statement and other statements referring to the voided one still match the
    target's filters (StatementRef rule), while the voided target itself does not."""
    actor, activity = unique_agent(), unique_activity()
    (target,) = any_xapi.store(statement(actor=actor, obj=activity))
    (comment,) = any_xapi.store(
        statement(verb="experienced", obj={"objectType": "StatementRef", "id": target})
    )
    (voider,) = any_xapi.store(voiding(target))
    assert {s["id"] for s in any_xapi.find(agent=actor)} == {comment, voider}
    assert {s["id"] for s in any_xapi.find(activity=activity["id"])} == {comment, voider}
    assert [s["id"] for s in any_xapi.find(activity=activity["id"], verb=VERBS["voided"])] == [voider]


def test_sfmt6_time_filters_apply_to_the_voiding_statement_itself(any_xapi):
    """SFMT-6: since/until/limit are applied to the statement doing the referring, not to its target."""
    actor = unique_agent()
    (target,) = any_xapi.store(statement(actor=actor))
    target_stored = get_by_id(any_xapi, target).json()["stored"]
    (voider,) = any_xapi.store(voiding(target))
    voider_stored = get_by_id(any_xapi, voider).json()["stored"]
    assert voider_stored > target_stored
    assert any_xapi.find(agent=actor, until=target_stored) == []
    assert [s["id"] for s in any_xapi.find(agent=actor, since=target_stored)] == [voider]
    assert [s["id"] for s in any_xapi.find(agent=actor, until=voider_stored)] == [voider]
    assert any_xapi.find(agent=actor, since=voider_stored) == []


def test_voided_statement_keeps_its_content_and_is_not_returned_with_other_parameters(xapi):
    """SGET-3 with voidedStatementId: format/attachments allowed, filters are not."""
    actor = unique_agent()
    (target,) = xapi.store(statement(actor=actor))
    xapi.store(voiding(target))
    ok = xapi.get(
        "/statements", params={"voidedStatementId": target, "format": "ids", "attachments": "false"}
    )
    assert ok.status_code == 200
    assert ok.json()["actor"] == {"objectType": "Agent", "mbox": actor["mbox"]}
    bad = xapi.get("/statements", params={"voidedStatementId": target, "agent": json.dumps(actor)})
    assert bad.status_code == 400
    assert "agent" in error_message(bad)
