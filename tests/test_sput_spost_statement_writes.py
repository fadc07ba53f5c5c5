"""Storing statements: PUT (SPUT-*) and POST (SPOST-*, V2-10) on the Statement resource."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime

import pytest

from .conftest import VERBS, statement, unique_activity, unique_agent
from .helpers import assert_not_stored, error_message, get_by_id

UUID_LENGTH = 36


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == UUID_LENGTH
    except ValueError:
        return False


def canonical_name(client, activity_id: str) -> dict:
    response = client.get("/activities", params={"activityId": activity_id})
    assert response.status_code == 200, response.text
    return response.json().get("definition", {}).get("name", {})


# --- SPUT-1 / SPUT-2 ---------------------------------------------------------------------------------


def test_sput1_sput2_put_with_statement_id_stores_and_answers_204(any_xapi):
    """SPUT-1/SPUT-2: PUT /statements?statementId=… → 204 with no body; the statement is stored under it."""
    sid = str(uuid.uuid4())
    st = statement()
    response = any_xapi.put("/statements", params={"statementId": sid}, json=st)
    assert response.status_code == 204
    assert response.content == b""
    got = get_by_id(any_xapi, sid).json()
    assert got["id"] == sid
    assert got["actor"] == st["actor"] and got["verb"] == st["verb"] and got["object"] == st["object"]


@pytest.mark.parametrize(
    "params, named",
    [
        ({}, "statementId"),
        ({"StatementId": "{sid}"}, "StatementId"),
        ({"statementid": "{sid}"}, "statementid"),
        ({"statementId": "not-a-uuid"}, "statementId"),
        ({"statementId": ""}, "statementId"),
        ({"statementId": "{sid}", "verb": VERBS["completed"]}, "verb"),
    ],
)
def test_sput1_put_needs_exactly_a_valid_statement_id_parameter(any_xapi, params, named):
    """SPUT-1: missing, wrong-case or malformed statementId, or any other parameter → 400 naming it."""
    sid = str(uuid.uuid4())
    st = statement(id=sid)
    response = any_xapi.put("/statements", params={k: v.format(sid=sid) for k, v in params.items()}, json=st)
    assert response.status_code == 400
    assert named in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_sput1_put_of_an_array_is_rejected(any_xapi):
    """SPUT-1: PUT stores a single statement; an array body → 400."""
    sid = str(uuid.uuid4())
    response = any_xapi.put("/statements", params={"statementId": sid}, json=[statement()])
    assert response.status_code == 400
    assert "array" in error_message(response)
    assert_not_stored(any_xapi, sid)


def test_sput1_put_of_an_invalid_statement_is_rejected(any_xapi):
    """SPUT-1: the body is validated like a POST; invalid → 400 naming the property, nothing stored."""
    sid = str(uuid.uuid4())
    st = statement()
    del st["verb"]
    response = any_xapi.put("/statements", params={"statementId": sid}, json=st)
    assert response.status_code == 400
    assert "verb" in error_message(response)
    assert_not_stored(any_xapi, sid)


# --- SPUT-3 --------------------------------------------------------------------------------------------


def test_sput3_body_id_differing_from_statement_id_is_rejected(any_xapi):
    """SPUT-3: a body id that is not the statementId parameter → 400 naming both; neither is stored."""
    param_id, body_id = str(uuid.uuid4()), str(uuid.uuid4())
    response = any_xapi.put("/statements", params={"statementId": param_id}, json=statement(id=body_id))
    assert response.status_code == 400
    message = error_message(response)
    assert param_id in message and body_id in message
    assert_not_stored(any_xapi, param_id, body_id)


def test_sput3_body_id_equal_to_statement_id_in_other_case_is_accepted(any_xapi):
    """SPUT-3: UUIDs compare case-insensitively; the same id in upper case is the same id."""
    sid = str(uuid.uuid4())
    response = any_xapi.put("/statements", params={"statementId": sid}, json=statement(id=sid.upper()))
    assert response.status_code == 204, response.text
    assert get_by_id(any_xapi, sid).json()["id"] == sid


# --- SPUT-4 / SPOST-3: existing ids ---------------------------------------------------------------------


def test_sput4_identical_put_again_is_204_and_changes_nothing(any_xapi):
    """SPUT-4: re-PUT of the same statement → 204; stored (and everything else) unchanged."""
    sid = str(uuid.uuid4())
    st = statement(id=sid)
    assert any_xapi.put("/statements", params={"statementId": sid}, json=st).status_code == 204
    before = get_by_id(any_xapi, sid).json()
    again = any_xapi.put("/statements", params={"statementId": sid}, json=st)
    assert again.status_code == 204
    assert get_by_id(any_xapi, sid).json() == before


def test_sput4_different_put_with_existing_id_is_409_and_changes_nothing(any_xapi):
    """SPUT-4: a different statement under an existing id → 409 with a message; neither the statement nor
    any other object (here the canonical activity definition it carried) changes."""
    sid = str(uuid.uuid4())
    activity = unique_activity(name={"en-US": "Original name"})
    st = statement(id=sid, obj=activity)
    assert any_xapi.put("/statements", params={"statementId": sid}, json=st).status_code == 204
    before = get_by_id(any_xapi, sid).json()

    changed = copy.deepcopy(st)
    changed["object"]["definition"]["name"] = {"en-US": "Changed name"}
    changed["result"] = {"score": {"scaled": 0.5}}
    conflict = any_xapi.put("/statements", params={"statementId": sid}, json=changed)
    assert conflict.status_code == 409
    assert sid in error_message(conflict)
    assert get_by_id(any_xapi, sid).json() == before
    assert canonical_name(any_xapi, activity["id"]) == {"en-US": "Original name"}


def test_spost3_post_with_existing_id_and_different_content_is_409(any_xapi):
    """SPOST-3: a POST batch re-using a stored id for different content → 409; the rest of the batch is not
    stored and the existing statement is unchanged."""
    (sid,) = any_xapi.store(statement(id=str(uuid.uuid4())))
    before = get_by_id(any_xapi, sid).json()
    fresh = str(uuid.uuid4())
    response = any_xapi.post_statements([statement(id=fresh), statement(id=sid)])
    assert response.status_code == 409
    assert sid in error_message(response)
    assert_not_stored(any_xapi, fresh)
    assert get_by_id(any_xapi, sid).json() == before


def test_spost3_post_with_existing_identical_statement_is_accepted_and_unchanged(any_xapi):
    """SPOST-3: re-POSTing an identical stored statement in a batch changes nothing; the new one is stored
    and both ids come back in order."""
    st = statement(id=str(uuid.uuid4()))
    any_xapi.store(st)
    before = get_by_id(any_xapi, st["id"]).json()
    fresh = statement(id=str(uuid.uuid4()))
    response = any_xapi.post_statements([fresh, st])
    assert response.status_code == 200, response.text
    assert response.json() == [fresh["id"], st["id"]]
    assert get_by_id(any_xapi, st["id"]).json() == before
    assert get_by_id(any_xapi, fresh["id"]).status_code == 200


def test_sput5_statement_is_retrievable_once_put_answered(any_xapi):
    """SPUT-5: the LRS may answer before a statement is queryable, bounded by Consistent-Through; this LRS
    stores synchronously, so right after 204 it is retrievable and a query's Consistent-Through covers it."""
    sid = str(uuid.uuid4())
    actor = unique_agent()
    assert (
        any_xapi.put("/statements", params={"statementId": sid}, json=statement(actor=actor)).status_code
        == 204
    )
    stored = datetime.fromisoformat(get_by_id(any_xapi, sid).json()["stored"])
    query = any_xapi.get("/statements", params={"agent": json.dumps(actor)})
    assert [s["id"] for s in query.json()["statements"]] == [sid]
    assert datetime.fromisoformat(query.headers["X-Experience-API-Consistent-Through"]) >= stored


# --- SPOST-1 / SPOST-2 --------------------------------------------------------------------------------


def test_spost1_single_statement_object_is_accepted(any_xapi):
    """SPOST-1/SPOST-2: a single statement (not in an array) → 200 with an array of its one id."""
    st = statement(id=str(uuid.uuid4()))
    response = any_xapi.post_statements(st)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == [st["id"]]


def test_spost2_ids_come_back_in_request_order_including_generated_ones(any_xapi):
    """SPOST-2: 200 + the ids in request order; statements without id get a generated UUID, which names
    exactly that statement."""
    activities = [unique_activity() for _ in range(4)]
    given = [str(uuid.uuid4()), None, str(uuid.uuid4()), None]
    batch = [statement(obj=a, **({"id": i} if i else {})) for a, i in zip(activities, given, strict=True)]
    response = any_xapi.post_statements(batch)
    assert response.status_code == 200
    ids = response.json()
    assert len(ids) == 4 and len(set(ids)) == 4
    assert ids[0] == given[0] and ids[2] == given[2]
    for sid, activity in zip(ids, activities, strict=True):
        assert is_uuid(sid)
        assert get_by_id(any_xapi, sid).json()["object"]["id"] == activity["id"]


def test_spost2_upper_case_id_is_returned_as_stored(any_xapi):
    """SPOST-2: a client id in upper case identifies the same statement (UUIDs are case-insensitive)."""
    sid = str(uuid.uuid4())
    (returned,) = any_xapi.store(statement(id=sid.upper()))
    assert returned.lower() == sid
    assert get_by_id(any_xapi, sid).status_code == 200


def test_spost2_statement_with_nul_character_in_a_string_is_stored(any_xapi):
    """SPOST-2: U+0000 is a valid JSON string character; a statement holding one is a valid statement and is
    stored and returned unchanged (never a 500)."""
    activity = unique_activity(name={"en-US": "before\u0000after"})
    st = statement(id=str(uuid.uuid4()), obj=activity, result={"response": "a\u0000b"})
    response = any_xapi.post_statements(st)
    assert response.status_code == 200, response.text
    got = get_by_id(any_xapi, st["id"]).json()
    assert got["object"] == activity and got["result"] == {"response": "a\u0000b"}


# --- SPOST-4: atomic batches ---------------------------------------------------------------------------


def _missing_verb(st: dict) -> None:
    del st["verb"]


def _bad_mbox(st: dict) -> None:
    st["actor"]["mbox"] = "not-an-email"


def _null_result(st: dict) -> None:
    st["result"] = None


def _bad_timestamp(st: dict) -> None:
    st["timestamp"] = "2024-13-45T99:99:99Z"


def _voiding_an_activity(st: dict) -> None:
    st["verb"] = {"id": VERBS["voided"]}


@pytest.mark.parametrize(
    "invalid", [_missing_verb, _bad_mbox, _null_result, _bad_timestamp, _voiding_an_activity]
)
@pytest.mark.parametrize("position", [0, 1, 2])
def test_spost4_one_invalid_statement_rejects_the_whole_batch(any_xapi, invalid, position):
    """SPOST-4: one invalid statement anywhere in a batch → 400 naming its index; the valid statements of
    the batch are not stored (GET by their ids → 404)."""
    batch = [statement(id=str(uuid.uuid4())) for _ in range(3)]
    invalid(batch[position])
    response = any_xapi.post_statements(batch)
    assert response.status_code == 400
    assert f"statements[{position}]" in error_message(response)
    assert_not_stored(any_xapi, *[s["id"] for s in batch])


def test_spost4_batch_failing_after_validation_leaves_no_trace(any_xapi):
    """SPOST-4 / ERR-5: a batch refused for a conflict (detected at store time) stores none of its voiding
    statements either: the would-be voided target stays visible."""
    (target,) = any_xapi.store(statement())
    (existing,) = any_xapi.store(statement(id=str(uuid.uuid4())))
    voider = statement(id=str(uuid.uuid4()), verb="voided", obj={"objectType": "StatementRef", "id": target})
    response = any_xapi.post_statements([voider, statement(id=existing, result={"success": False})])
    assert response.status_code == 409
    assert_not_stored(any_xapi, voider["id"])
    assert get_by_id(any_xapi, target).status_code == 200


# --- SPOST-5 / V2-10: duplicate ids in a batch ------------------------------------------------------------


@pytest.mark.parametrize("same_content", [True, False])
@pytest.mark.parametrize("upper", [False, True], ids=["same-case", "other-case"])
def test_spost5_v2_10_duplicate_ids_in_one_batch_are_rejected(any_xapi, same_content, upper):
    """SPOST-5 / V2-10: two statements with the same id (also when only the case differs, also when they are
    identical) in one batch → 400; nothing of the batch is stored."""
    sid = str(uuid.uuid4())
    first = statement(id=sid)
    second = copy.deepcopy(first) if same_content else statement()
    second["id"] = sid.upper() if upper else sid
    other = statement(id=str(uuid.uuid4()))
    response = any_xapi.post_statements([other, first, second])
    assert response.status_code == 400
    assert "same statement id" in error_message(response)
    assert_not_stored(any_xapi, sid, other["id"])


# --- SPOST-6: POST that is a query ---------------------------------------------------------------------


def test_spost6_alternate_syntax_post_with_get_parameters_is_a_query(xapi):
    """SPOST-6 (1.0.3 alternate request syntax): POST ?method=GET with the GET parameters as form fields
    is a query (200 StatementResult), and stores nothing."""
    actor = unique_agent()
    (sid,) = xapi.store(statement(actor=actor))
    response = xapi.post(
        "/statements",
        params={"method": "GET"},
        data={"agent": json.dumps(actor), "X-Experience-API-Version": "1.0.3"},
    )
    assert response.status_code == 200, response.text
    assert [s["id"] for s in response.json()["statements"]] == [sid]
    assert [s["id"] for s in xapi.find(agent=actor)] == [sid]


def test_spost6_alternate_syntax_post_with_statement_id_fetches_one(xapi):
    """SPOST-6: POST ?method=GET with statementId as a form field returns that statement."""
    (sid,) = xapi.store(statement())
    response = xapi.post("/statements", params={"method": "GET"}, data={"statementId": sid})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == sid


@pytest.mark.parametrize(
    "params",
    [{"statementId": "{sid}"}, {"agent": "{agent}"}, {"verb": VERBS["completed"]}, {"foo": "bar"}],
)
def test_spost6_post_with_query_parameters_stores_nothing(any_xapi, params):
    """SPOST-6: a plain POST carrying query parameters is not a store: 400 naming them, nothing stored."""
    actor = unique_agent()
    sid = str(uuid.uuid4())
    filled = {k: v.format(sid=sid, agent=json.dumps(actor)) for k, v in params.items()}
    response = any_xapi.post("/statements", params=filled, json=statement(actor=actor, id=sid))
    assert response.status_code == 400
    assert next(iter(params)) in error_message(response)
    assert_not_stored(any_xapi, sid)
    assert any_xapi.find(agent=actor) == []
