"""Result validation (checklist section 9, RES-1 … RES-8)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import VERBS, statement, unique_activity, unique_agent
from .helpers import WHERE, post_accepted, post_rejected


def with_result(result: Any, where: str = "statement") -> dict[str, Any]:
    if where == "substatement":
        sub = {"objectType": "SubStatement", "actor": unique_agent(), "verb": {"id": VERBS["completed"]},
               "object": unique_activity(), "result": result}  # fmt: skip
        return statement(obj=sub)
    return statement(result=result)


def read_result(got: dict[str, Any], where: str) -> dict[str, Any]:
    return got["object"]["result"] if where == "substatement" else got["result"]


# --- RES-1: success, completion are booleans -----------------------------------------------------


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "yes", [True], {"value": True}])
@pytest.mark.parametrize("key", ["success", "completion"])
@pytest.mark.parametrize("where", WHERE)
def test_res1_success_and_completion_are_booleans(xapi, where, key, value):
    """RES-1: success/completion must be JSON booleans ("true", 1 … → 400 naming the key)."""
    post_rejected(xapi, with_result({key: value}, where), key)


@pytest.mark.parametrize("where", WHERE)
def test_res1_boolean_values_accepted(any_xapi, where):
    """RES-1: true and false are accepted and kept."""
    for success, completion in ((True, False), (False, True)):
        result = {"success": success, "completion": completion}
        assert read_result(post_accepted(any_xapi, with_result(result, where)), where) == result


# --- RES-2: response is a string -----------------------------------------------------------------


@pytest.mark.parametrize("value", [12, 1.5, True, ["golf"], {"answer": "golf"}])
@pytest.mark.parametrize("where", WHERE)
def test_res2_response_is_a_string(xapi, where, value):
    """RES-2: a non-string response → 400."""
    post_rejected(xapi, with_result({"response": value}, where), "response")


@pytest.mark.parametrize("value", ["", "golf[,]tetris", "12", "true", "多言語の回答"])
def test_res2_any_string_response_accepted(any_xapi, value):
    """RES-2: any string (empty, numeric-looking, non-ASCII) is a valid response and kept."""
    assert post_accepted(any_xapi, with_result({"response": value}))["result"]["response"] == value


# --- RES-3: duration -----------------------------------------------------------------------------

VALID_DURATIONS = [
    "PT4H35M59.14S", "PT16559.14S", "P3Y1M29DT4H35M59.14S", "P3Y", "P4W", "PT1H0M0.1S", "PT0S", "P1D",
    "PT1M", "P1M", "P1Y2M3DT4H5M6S", "PT0.5S", "P0D",
]  # fmt: skip
INVALID_DURATIONS = [
    "P4W1D",  # weeks mixed with other units
    "PA1H0M0S",
    "should fail",
    "",
    "P",
    "PT",
    "P1DT",  # T without a time part
    "PT1H2D",  # date part after T
    "P1H",  # hours need T
    "1H",
    "-P1D",
    "P0003-00-04T10:00:00",  # alternative (point-in-time) format
    "P00030004T100000",  # alternative basic format
    "PT1.5H30M",  # fraction only allowed on the smallest unit
    "PT 1H",
]
NON_STRING_DURATIONS = [12345, 1.5, {"key": "invalid"}, ["PT1H"], True]


@pytest.mark.parametrize("duration", VALID_DURATIONS)
@pytest.mark.parametrize("where", WHERE)
def test_res3_valid_durations_accepted_and_kept(xapi, where, duration):
    """RES-3: ISO 8601 durations (suite samples PT4H35M59.14S, PT16559.14S, P3Y1M29DT4H35M59.14S,
    P3Y, P4W …) are accepted and returned unchanged."""
    got = post_accepted(xapi, with_result({"duration": duration}, where))
    assert read_result(got, where)["duration"] == duration


@pytest.mark.parametrize("duration", INVALID_DURATIONS + NON_STRING_DURATIONS)
@pytest.mark.parametrize("where", WHERE)
def test_res3_invalid_durations_rejected(xapi, where, duration):
    """RES-3: invalid strings, P4W1D, the alternative format, numbers, objects → 400 naming duration."""
    post_rejected(xapi, with_result({"duration": duration}, where), "duration")


def test_res3_durations_checked_in_both_versions(any_xapi):
    """RES-3: the rule holds for 1.0.3 and 2.0 requests."""
    post_rejected(any_xapi, with_result({"duration": "P4W1D"}), "duration")
    assert post_accepted(any_xapi, with_result({"duration": "P4W"}))["result"]["duration"] == "P4W"


# --- RES-4: score is an object -------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.5, "0.5", [0.5], True])
@pytest.mark.parametrize("where", WHERE)
def test_res4_score_is_an_object(xapi, where, value):
    """RES-4: score must be a JSON object."""
    post_rejected(xapi, with_result({"score": value}, where), "score")


@pytest.mark.parametrize("key", ["Scaled", "points", "percent"])
def test_res4_score_has_only_defined_keys(xapi, key):
    """RES-4 / FMT-8: a score holds only scaled, raw, min, max."""
    post_rejected(xapi, with_result({"score": {"raw": 1, key: 1}}), key)


@pytest.mark.parametrize("key", ["scaled", "raw", "min", "max"])
@pytest.mark.parametrize("value", ["1", True, None, [1], {"v": 1}])
def test_res4_score_values_are_numbers(xapi, key, value):
    """RES-4 / FMT-4: score values are JSON numbers."""
    post_rejected(xapi, with_result({"score": {key: value}}), key)


# --- RES-5: scaled in [-1, 1] --------------------------------------------------------------------


@pytest.mark.parametrize("scaled", [1.0, -1.0, 1, -1, 0, 0.0, -1.0000, 0.999999, -0.5])
@pytest.mark.parametrize("where", WHERE)
def test_res5_scaled_within_bounds_accepted(xapi, where, scaled):
    """RES-5: scaled between -1 and 1 inclusive (1.0 and -1.0000 too) is valid."""
    got = post_accepted(xapi, with_result({"score": {"scaled": scaled}}, where))
    assert read_result(got, where)["score"]["scaled"] == scaled


@pytest.mark.parametrize("scaled", [1.01, -1.00001, 2, -2, 100, 1.0000001])
@pytest.mark.parametrize("where", WHERE)
def test_res5_scaled_out_of_bounds_rejected(xapi, where, scaled):
    """RES-5: 1.01, -1.00001 … → 400 naming scaled."""
    post_rejected(xapi, with_result({"score": {"scaled": scaled}}, where), "scaled")


# --- RES-6: raw within [min, max], min < max -----------------------------------------------------

BAD_SCORES = [
    ({"raw": 11, "min": 0, "max": 10}, "raw"),
    ({"raw": -1, "min": 0, "max": 10}, "raw"),
    ({"raw": 11, "max": 10}, "raw"),
    ({"raw": -0.5, "min": 0}, "raw"),
    ({"min": 10, "max": 0}, "min"),
    ({"min": 5, "max": 5}, "min"),
    ({"raw": 5, "min": 5, "max": 5}, "min"),
]
GOOD_SCORES = [
    {"raw": 0, "min": 0, "max": 10},
    {"raw": 10, "min": 0, "max": 10},
    {"raw": 5.5, "min": -10, "max": 10},
    {"raw": -1000},
    {"raw": 1e9},
    {"min": 0},
    {"max": 100},
    {"min": -1.5, "max": -1.25},
    {"scaled": 0.5, "raw": 50, "min": 0, "max": 100},
]


@pytest.mark.parametrize("score, named", BAD_SCORES, ids=[repr(s) for s, _ in BAD_SCORES])
@pytest.mark.parametrize("where", WHERE)
def test_res6_raw_min_max_consistent(xapi, where, score, named):
    """RES-6: raw must lie within [min, max] and min must be less than max → otherwise 400."""
    post_rejected(xapi, with_result({"score": score}, where), named)


@pytest.mark.parametrize("score", GOOD_SCORES, ids=[repr(s) for s in GOOD_SCORES])
def test_res6_consistent_scores_accepted_and_kept(any_xapi, score):
    """RES-6: raw at the bounds, raw without bounds, and lone min/max are valid."""
    assert post_accepted(any_xapi, with_result({"score": score}))["result"]["score"] == score


# --- RES-7: extensions ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["x", 1, ["http://example.com/ext"], True])
@pytest.mark.parametrize("where", WHERE)
def test_res7_extensions_must_be_an_object(xapi, where, value):
    """RES-7: result.extensions must be an object."""
    post_rejected(xapi, with_result({"extensions": value}, where), "extensions")


def test_res7_extension_keys_are_iris(xapi):
    """RES-7 / FMT-16: result extension keys are IRIs."""
    post_rejected(xapi, with_result({"extensions": {"score-detail": 1}}), "extensions")


@pytest.mark.parametrize("where", WHERE)
def test_res7_extension_values_free(any_xapi, where):
    """RES-7 / FMT-16: any extension values (null, "", {}) and `{}` itself are valid."""
    for ext in ({}, {"http://example.com/a": None, "http://example.com/b": "", "http://example.com/c": {}}):
        got = post_accepted(any_xapi, with_result({"extensions": ext}, where))
        assert read_result(got, where)["extensions"] == ext


def test_res_empty_result_accepted(any_xapi):
    """RES-1, RES-2, RES-3, RES-4, RES-6, RES-7: every result property is optional; `result: {}` is valid."""
    assert post_accepted(any_xapi, with_result({}))["result"] == {}


# --- RES-8: duration compared as a string --------------------------------------------------------


def test_res8_duration_not_converted_between_units(any_xapi):
    """RES-8: durations are kept and compared as strings: PT1H is stored as PT1H (not PT3600S),
    and re-sending the statement with PT60M is a different statement (409)."""
    sid = str(uuid.uuid4())
    st = with_result({"duration": "PT1H"})
    response = any_xapi.put("/statements", params={"statementId": sid}, json=st)
    assert response.status_code == 204, response.text
    same = any_xapi.put("/statements", params={"statementId": sid}, json=st)
    assert same.status_code == 204, same.text
    other = {**st, "result": {"duration": "PT60M"}}
    conflict = any_xapi.put("/statements", params={"statementId": sid}, json=other)
    assert conflict.status_code == 409, conflict.text
    got = any_xapi.get("/statements", params={"statementId": sid}).json()
    assert got["result"]["duration"] == "PT1H"
