"""Statement validation — general formatting (checklist section 5, FMT-1 … FMT-18).

Each invalid case is POSTed under a fresh statement id: the LRS must answer 400 with a message
naming the offending property, and a GET of that id afterwards must be 404 (nothing stored).
Valid variants must be accepted (200) and read back unchanged.
"""

from __future__ import annotations

import copy
import json
import math
import uuid
from typing import Any

import pytest

from .conftest import VERBS, statement, unique_activity, unique_agent
from .helpers import (
    assert_not_stored,
    assert_rejected,
    error_message,
    instant,
    post_accepted,
    post_rejected,
    sub_statement,
)

# --- helpers -------------------------------------------------------------------------------------


def post_raw(client, body: bytes):
    return client.post("/statements", content=body, headers={"Content-Type": "application/json"})


def set_path(doc: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    """A deep copy of ``doc`` with ``value`` at ``path`` (keys and list indexes)."""
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def del_path(doc: dict[str, Any], path: tuple) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return doc


def rich_statement() -> dict[str, Any]:
    """A valid statement exercising most properties (used as the base for mutations)."""
    return statement(
        obj=unique_activity(
            name={"en-US": "Quiz question"},
            description={"en-US": "Pick one"},
            type="http://adlnet.gov/expapi/activities/cmi.interaction",
            moreInfo="https://lms.example/more",
            interactionType="choice",
            correctResponsesPattern=["golf"],
            choices=[
                {"id": "golf", "description": {"en-US": "Golf"}},
                {"id": "tetris", "description": {"en-US": "Tetris"}},
            ],
            extensions={"http://example.com/ext/definition": 1},
        ),
        result={
            "score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10},
            "success": True,
            "completion": True,
            "response": "golf",
            "duration": "PT1M",
            "extensions": {"http://example.com/ext/result": "r"},
        },
        context={
            "registration": str(uuid.uuid4()),
            "instructor": unique_agent("Instructor"),
            "contextActivities": {"parent": [unique_activity()], "grouping": [unique_activity()]},
            "revision": "1",
            "platform": "pytest",
            "language": "en-US",
            "extensions": {"http://example.com/ext/context": True},
        },
        timestamp="2024-01-02T03:04:05.678Z",
    )


# --- FMT-1: well-formed JSON body -----------------------------------------------------------------


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"", "JSON"),
        (b"{not json", "JSON"),
        (b'{"actor": {"mbox": "mailto:a@example.com"}', "JSON"),
        (b"[{}, ", "JSON"),
        (b"NaN", "JSON"),
        (b'"a statement"', "statement"),
        (b"42", "statement"),
        (b"null", "statement"),
        (b"true", "statement"),
        (b"[1]", "statements[0]"),
        (b"[null]", "statements[0]"),
        (b'[["nested"]]', "statements[0]"),
        (b"\xff\xfe{}", "UTF-8"),
    ],
    ids=[
        "empty",
        "garbage",
        "truncated",
        "truncated-array",
        "nan",
        "string",
        "number",
        "null",
        "bool",
        "array-of-number",
        "array-of-null",
        "array-of-array",
        "not-utf8",
    ],
)
def test_fmt1_body_must_be_json_object_or_array_of_objects(xapi, body, fragment):
    """FMT-1: a body that is not a JSON object or an array of objects is rejected with 400."""
    assert_rejected(post_raw(xapi, body), fragment)


def test_fmt1_array_with_one_non_object_stores_nothing(xapi):
    """FMT-1: a batch whose second element is not an object is rejected whole; the first is not stored."""
    good = {**statement(), "id": str(uuid.uuid4())}
    assert_rejected(xapi.post_statements([good, "not a statement"]), "statements[1]")
    assert_not_stored(xapi, good["id"])


def test_fmt1_single_object_and_array_are_both_accepted(any_xapi):
    """FMT-1: an object and an array of objects are both well-formed bodies."""
    one, two, three = statement(), statement(), statement()
    response = any_xapi.post_statements(one)
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1
    response = any_xapi.post_statements([two, three])
    assert response.status_code == 200, response.text
    assert len(response.json()) == 2


def test_fmt1_lone_surrogate_escape_is_a_client_error(xapi):
    """FMT-1 / HDR-5: a JSON string escape that is no Unicode character (lone surrogate \\ud800)
    cannot be UTF-8; the LRS must answer 400 (a client error), never a 5xx."""
    sid = str(uuid.uuid4())
    body = (
        '{"id": "%s", "actor": {"mbox": "mailto:surrogate@example.com", "name": "a\\ud800b"},'
        ' "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},'
        ' "object": {"id": "https://lms.example/activities/surrogate"}}' % sid
    ).encode()
    message = error_message(post_raw(xapi, body), 400)
    assert "surrogate" in message or "name" in message, message
    assert_not_stored(xapi, sid)


def test_fmt1_nul_character_in_a_string_round_trips(xapi):
    """FMT-1 / FMT-15: "\\u0000" is a valid JSON string character; a statement carrying it is
    valid xAPI, must be accepted (200, never 5xx) and read back unchanged."""
    st = statement(result={"response": "before\u0000after"})
    got = post_accepted(xapi, st, check_ids=True)
    assert got["result"]["response"] == "before\u0000after"


# --- FMT-2: actor, verb, object mandatory ------------------------------------------------------


@pytest.mark.parametrize("missing", ["actor", "verb", "object"])
def test_fmt2_statement_requires_actor_verb_object(any_xapi, missing):
    """FMT-2: a statement without actor, verb or object → 400 naming it."""
    post_rejected(any_xapi, del_path(statement(), (missing,)), missing)


@pytest.mark.parametrize("missing", ["actor", "verb", "object"])
def test_fmt2_substatement_requires_actor_verb_object(any_xapi, missing):
    """FMT-2: the same inside a SubStatement."""
    st = statement(obj=del_path(sub_statement(verb_display=True), (missing,)))
    post_rejected(any_xapi, st, "object", missing)


def test_fmt2_put_validates_like_post(xapi):
    """FMT-2: PUT uses the same validation (missing verb → 400, not stored)."""
    sid = str(uuid.uuid4())
    response = xapi.put("/statements", params={"statementId": sid}, json=del_path(statement(), ("verb",)))
    assert_rejected(response, "verb")
    assert_not_stored(xapi, sid)


# --- FMT-3: null only as extension values ------------------------------------------------------

NULL_PATHS = [
    ("actor",),
    ("verb",),
    ("object",),
    ("context",),
    ("result",),
    ("timestamp",),
    ("version",),
    ("attachments",),
    ("authority",),
    ("actor", "name"),
    ("actor", "objectType"),
    ("actor", "mbox"),
    ("verb", "id"),
    ("verb", "display"),
    ("verb", "display", "en-US"),
    ("object", "objectType"),
    ("object", "definition"),
    ("object", "definition", "name"),
    ("object", "definition", "interactionType"),
    ("object", "definition", "choices"),
    ("object", "definition", "choices", 0, "id"),
    ("object", "definition", "extensions"),
    ("result", "score"),
    ("result", "score", "raw"),
    ("result", "success"),
    ("result", "duration"),
    ("result", "extensions"),
    ("context", "registration"),
    ("context", "instructor"),
    ("context", "contextActivities"),
    ("context", "contextActivities", "parent"),
    ("context", "contextActivities", "parent", 0),
    ("context", "language"),
    ("context", "extensions"),
]


@pytest.mark.parametrize("path", NULL_PATHS, ids=[".".join(map(str, p)) for p in NULL_PATHS])
def test_fmt3_null_rejected_outside_extension_values(xapi, path):
    """FMT-3: null anywhere but as an extension value → 400 naming the property."""
    named = next(p for p in reversed(path) if isinstance(p, str))
    post_rejected(xapi, set_path(rich_statement(), path, None), named)


@pytest.mark.parametrize("path", [("actor",), ("verb",), ("object",), ("context",), ("result",)])
def test_fmt3_null_rejected_inside_substatement(xapi, path):
    """FMT-3: the same inside a SubStatement."""
    sub = sub_statement(verb_display=True, result={"success": True}, context={"language": "en"})
    sub = set_path(sub, path, None)
    post_rejected(xapi, statement(obj=sub), "object", path[0])


def test_fmt3_null_extension_values_are_accepted_and_kept(any_xapi):
    """FMT-3 / FMT-16: null is allowed as an extension value, everywhere extensions live."""
    ext = {"http://example.com/ext/null": None}
    st = statement(
        obj=unique_activity(name={"en-US": "x"}, extensions=ext),
        result={"extensions": ext},
        context={"extensions": ext},
    )
    got = post_accepted(any_xapi, st, check_ids=True)
    assert got["object"]["definition"]["extensions"] == ext
    assert got["result"]["extensions"] == ext
    assert got["context"]["extensions"] == ext


# --- FMT-4: wrong JSON types -----------------------------------------------------------------------

WRONG_TYPES = [
    (("result", "success"), "true", "success"),
    (("result", "success"), 1, "success"),
    (("result", "completion"), "false", "completion"),
    (("result", "completion"), 0, "completion"),
    (("result", "score", "raw"), "12", "raw"),
    (("result", "score", "raw"), True, "raw"),
    (("result", "score", "scaled"), "0.5", "scaled"),
    (("result", "score", "min"), "0", "min"),
    (("result", "score", "max"), [10], "max"),
    (("result", "response"), 12, "response"),
    (("result", "response"), True, "response"),
    (("result", "duration"), 60, "duration"),
    (("actor", "name"), 12, "name"),
    (("actor", "name"), True, "name"),
    (("actor",), [{"mbox": "mailto:a@example.com"}], "actor"),
    (("actor",), "mailto:a@example.com", "actor"),
    (("verb",), "http://adlnet.gov/expapi/verbs/completed", "verb"),
    (("verb", "id"), 5, "id"),
    (("object",), [], "object"),
    (("object", "definition", "correctResponsesPattern"), "golf", "correctResponsesPattern"),
    (("object", "definition", "correctResponsesPattern"), [1], "correctResponsesPattern"),
    (("context", "revision"), 1, "revision"),
    (("context", "platform"), False, "platform"),
    (("context", "registration"), 1234, "registration"),
    (("timestamp",), 1704164645, "timestamp"),
    (("version",), 1.0, "version"),
    (("id",), 123, "id"),
]


@pytest.mark.parametrize(
    "path, value, named", WRONG_TYPES, ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v, _ in WRONG_TYPES]
)
def test_fmt4_wrong_json_types_rejected(xapi, path, value, named):
    """FMT-4: numeric strings for numbers, "true"/"false" for booleans and other wrong types → 400."""
    st = set_path(rich_statement(), path, value)
    if path == ("id",):
        assert_rejected(xapi.post_statements(st), named)
    else:
        post_rejected(xapi, st, named)


def test_fmt4_integers_are_valid_numbers(xapi):
    """FMT-4: JSON integers are numbers (score values need not carry a fraction)."""
    st = statement(result={"score": {"raw": 7, "min": 0, "max": 10, "scaled": 1}})
    got = post_accepted(xapi, st, check_ids=True)
    assert got["result"]["score"] == {"raw": 7, "min": 0, "max": 10, "scaled": 1}


# --- FMT-5: formatted strings must parse (incl. "") ------------------------------------------------

BAD_FORMATTED = [
    (("actor", "mbox"), "", "mbox"),
    (("actor", "mbox"), "mailto:", "mbox"),
    (("actor", "mbox"), "someone@example.com", "mbox"),
    (("verb", "id"), "", "verb"),
    (("verb", "id"), "completed", "verb"),
    (("verb", "id"), "http://example.com/has space", "verb"),
    (("object", "id"), "", "object"),
    (("object", "definition", "moreInfo"), "", "moreInfo"),
    (("object", "definition", "type"), "", "type"),
    (("context", "registration"), "", "registration"),
    (("context", "registration"), "not-a-uuid", "registration"),
    (("context", "language"), "", "language"),
    (("context", "language"), "english language", "language"),
    (("timestamp",), "", "timestamp"),
    (("timestamp",), "yesterday", "timestamp"),
    (("timestamp",), "2024-02-30T00:00:00Z", "timestamp"),
    (("timestamp",), "2024-01-01T24:30:00Z", "timestamp"),
    (("result", "duration"), "", "duration"),
    (("result", "duration"), "1 hour", "duration"),
    (("verb", "display"), {"": "completed"}, "display"),
]


@pytest.mark.parametrize(
    "path, value, named", BAD_FORMATTED, ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v, _ in BAD_FORMATTED]
)
def test_fmt5_formatted_strings_must_parse(xapi, path, value, named):
    """FMT-5: mailto IRIs, UUIDs, IRIs, timestamps, durations, language tags that do not parse
    (the empty string included) → 400."""
    post_rejected(xapi, set_path(rich_statement(), path, value), named)


@pytest.mark.parametrize("value", ["", "not-a-uuid"])
def test_fmt5_statement_id_must_parse(any_xapi, value):
    """FMT-5: the statement id itself ("" or junk) → 400."""
    assert_rejected(any_xapi.post_statements({**statement(), "id": value}), "id")


# --- FMT-6: keys are case sensitive ------------------------------------------------------------

WRONG_CASE_KEYS = [
    ((), "actor", "Actor"),
    ((), "verb", "Verb"),
    ((), "object", "OBJECT"),
    ((), "timestamp", "TimeStamp"),
    (("actor",), "mbox", "MBOX"),
    (("actor",), "objectType", "objecttype"),
    (("verb",), "id", "ID"),
    (("verb",), "display", "Display"),
    (("object",), "definition", "Definition"),
    (("object", "definition"), "moreInfo", "moreinfo"),
    (("object", "definition"), "interactionType", "interactiontype"),
    (("object", "definition"), "correctResponsesPattern", "CorrectResponsesPattern"),
    (("result",), "success", "Success"),
    (("result", "score"), "raw", "Raw"),
    (("context",), "registration", "Registration"),
    (("context",), "contextActivities", "contextactivities"),
]


@pytest.mark.parametrize(
    "parent, key, wrong", WRONG_CASE_KEYS, ids=[f"{'.'.join(p + (k,))}->{w}" for p, k, w in WRONG_CASE_KEYS]
)
def test_fmt6_keys_are_case_sensitive(xapi, parent, key, wrong):
    """FMT-6: `Actor`, `ID`, `moreinfo` etc. are not the xAPI properties → 400 naming the key."""
    st = rich_statement()
    target = st
    for p in parent:
        target = target[p]
    target[wrong] = target.pop(key)
    post_rejected(xapi, st, wrong)


# --- FMT-7: enumerated values are exact-case ---------------------------------------------------

WRONG_CASE_ENUMS = [
    (("actor", "objectType"), "agent", "objectType"),
    (("actor", "objectType"), "AGENT", "objectType"),
    (("object", "objectType"), "activity", "objectType"),
    (("object", "definition", "interactionType"), "Choice", "interactionType"),
    (("object", "definition", "interactionType"), "CHOICE", "interactionType"),
    (("object", "definition", "interactionType"), "True-False", "interactionType"),
]


@pytest.mark.parametrize(
    "path, value, named",
    WRONG_CASE_ENUMS,
    ids=[f"{'.'.join(map(str, p))}={v}" for p, v, _ in WRONG_CASE_ENUMS],
)
def test_fmt7_enumerations_are_exact_case(xapi, path, value, named):
    """FMT-7: objectType and interactionType values must match exactly."""
    post_rejected(xapi, set_path(rich_statement(), path, value), named)


@pytest.mark.parametrize(
    "obj",
    [
        {"objectType": "agent", "mbox": "mailto:enum@example.com"},
        {"objectType": "group", "mbox": "mailto:enum@example.com"},
        {"objectType": "statementref", "id": "8f87ccde-bb56-4c2e-ab83-44982ef22df0"},
        {"objectType": "statementRef", "id": "8f87ccde-bb56-4c2e-ab83-44982ef22df0"},
    ],
    ids=["agent", "group", "statementref", "statementRef"],
)
def test_fmt7_object_types_are_exact_case(any_xapi, obj):
    """FMT-7: object objectType spelled in the wrong case → 400."""
    post_rejected(any_xapi, statement(obj=obj), "objectType")


def test_fmt7_substatement_object_type_is_exact_case(any_xapi):
    """FMT-7: `substatement` is not `SubStatement`."""
    sub = sub_statement(verb_display=True, objectType="substatement")
    post_rejected(any_xapi, statement(obj=sub), "objectType")


@pytest.mark.parametrize("key", ["Parent", "GROUPING", "Category", "oTHER"])
def test_fmt7_context_activities_keys_are_exact_case(any_xapi, key):
    """FMT-7: contextActivities keys parent/grouping/category/other are exact-case."""
    st = statement(context={"contextActivities": {key: [unique_activity()]}})
    post_rejected(any_xapi, st, key)


# --- FMT-8: properties not defined by the specification ----------------------------------------

EXTRA_AT = [
    (),
    ("actor",),
    ("verb",),
    ("object",),
    ("object", "definition"),
    ("object", "definition", "choices", 0),
    ("result",),
    ("result", "score"),
    ("context",),
    ("context", "instructor"),
    ("context", "contextActivities"),
    ("context", "contextActivities", "parent", 0),
]


@pytest.mark.parametrize("parent", EXTRA_AT, ids=[".".join(map(str, p)) or "statement" for p in EXTRA_AT])
def test_fmt8_undefined_properties_rejected(xapi, parent):
    """FMT-8: a property xAPI does not define (here `dummy`) → 400 naming it."""
    st = rich_statement()
    target = st
    for p in parent:
        target = target[p]
    target["dummy"] = "value"
    post_rejected(xapi, st, "dummy")


def test_fmt8_undefined_properties_rejected_in_account_statementref_substatement_attachment(xapi):
    """FMT-8: also in account, StatementRef, SubStatement and attachment objects."""
    account_agent = {"account": {"homePage": "https://lms.example", "name": "u1", "dummy": 1}}
    post_rejected(xapi, statement(actor=account_agent), "dummy")
    ref = {"objectType": "StatementRef", "id": str(uuid.uuid4()), "dummy": 1}
    post_rejected(xapi, statement(obj=ref), "dummy")
    post_rejected(xapi, statement(obj=sub_statement(verb_display=True, dummy=1)), "dummy")
    attachment = {
        "usageType": "http://example.com/usage", "display": {"en-US": "a"}, "contentType": "text/plain",
        "length": 1, "sha2": "a" * 64, "fileUrl": "https://example.com/a.txt", "dummy": 1,
    }  # fmt: skip
    post_rejected(xapi, statement(attachments=[attachment]), "dummy")


def test_fmt8_any_keys_allowed_inside_extension_values(any_xapi):
    """FMT-8: additional properties are fine inside extensions (values are free JSON)."""
    ext = {"http://example.com/ext": {"dummy": 1, "Actor": {"ID": None}}}
    got = post_accepted(any_xapi, statement(result={"extensions": ext}), check_ids=True)
    assert got["result"]["extensions"] == ext


# --- FMT-9: IRIs need a scheme -------------------------------------------------------------------

NO_SCHEME = [
    (("verb", "id"), "adlnet.gov/expapi/verbs/completed", "verb"),
    (("object", "id"), "lms.example/activities/1", "object"),
    (("object", "definition", "type"), "adlnet.gov/expapi/activities/cmi.interaction", "type"),
    (("object", "definition", "moreInfo"), "lms.example/more", "moreInfo"),
    (("context", "contextActivities", "parent", 0, "id"), "lms.example/parent", "parent"),
]


@pytest.mark.parametrize(
    "path, value, named", NO_SCHEME, ids=[".".join(map(str, p)) for p, _, _ in NO_SCHEME]
)
def test_fmt9_iris_need_a_scheme(xapi, path, value, named):
    """FMT-9: scheme-less IRIs in verb id, activity id/type/moreInfo, context activities → 400."""
    post_rejected(xapi, set_path(rich_statement(), path, value), named)


@pytest.mark.parametrize(
    "actor, named",
    [
        ({"openid": "openid.example.org/12345"}, "openid"),
        ({"account": {"homePage": "lms.example", "name": "u1"}}, "homePage"),
    ],
    ids=["openid", "account.homePage"],
)
def test_fmt9_agent_iris_need_a_scheme(any_xapi, actor, named):
    """FMT-9: openid and account homePage are IRIs/IRLs."""
    post_rejected(any_xapi, statement(actor=actor), named)


@pytest.mark.parametrize("field", ["usageType", "fileUrl"])
def test_fmt9_attachment_iris_need_a_scheme(any_xapi, field):
    """FMT-9: attachment usageType and fileUrl need a scheme."""
    attachment = {
        "usageType": "http://example.com/usage", "display": {"en-US": "a"}, "contentType": "text/plain",
        "length": 1, "sha2": "a" * 64, "fileUrl": "https://example.com/a.txt",
    }  # fmt: skip
    attachment[field] = "example.com/no-scheme"
    post_rejected(any_xapi, statement(attachments=[attachment]), field)


@pytest.mark.parametrize("where", ["result", "context", "definition"])
def test_fmt9_extension_keys_need_a_scheme(any_xapi, where):
    """FMT-9 / FMT-16: extension keys are IRIs."""
    ext = {"example.com/ext": 1}
    if where == "definition":
        st = statement(obj=unique_activity(name={"en-US": "x"}, extensions=ext))
    else:
        st = statement(**{where: {"extensions": ext}})
    post_rejected(any_xapi, st, "extensions")


@pytest.mark.parametrize(
    "iri", ["urn:uuid:8f87ccde-bb56-4c2e-ab83-44982ef22df0", "tag:example.com,2024:x", "https://例え.jp/活動"]
)
def test_fmt9_any_scheme_and_non_ascii_iris_accepted(any_xapi, iri):
    """FMT-9: IRIs with other schemes, and non-ASCII IRIs, are valid activity ids / verb ids."""
    st = statement(obj={"objectType": "Activity", "id": iri}, verb=iri)
    got = post_accepted(any_xapi, st, check_ids=True)
    assert got["object"]["id"] == iri
    assert got["verb"]["id"] == iri


# --- FMT-10 / FMT-18: language tags --------------------------------------------------------------

BAD_TAGS = ["zh-z-aaa-z-bbb-c-ccc", "a12345", "en_US", "en-US-", "en--US", "abcdefghi", "123", "-en"]
GOOD_TAGS = ["sr-Latn-RS", "cmn", "ase", "es-MX", "en-US", "en", "zh-Hant-TW", "de-CH-1996", "en-us"]


def _map_positions(lang_map: dict) -> dict[str, dict]:
    attachment = {
        "usageType": "http://example.com/usage", "display": lang_map, "description": lang_map,
        "contentType": "text/plain", "length": 1, "sha2": "a" * 64, "fileUrl": "https://example.com/a.txt",
    }  # fmt: skip
    return {
        "verb.display": {**statement(), "verb": {"id": VERBS["completed"], "display": lang_map}},
        "definition.name": statement(obj=unique_activity(name=lang_map)),
        "definition.description": statement(obj=unique_activity(description=lang_map)),
        "choices.description": statement(
            obj=unique_activity(interactionType="choice", choices=[{"id": "a", "description": lang_map}])
        ),
        "attachment": statement(attachments=[attachment]),
        "substatement.verb.display": statement(
            obj=sub_statement(verb_display=True, verb={"id": VERBS["completed"], "display": lang_map})
        ),
    }


POSITIONS = list(_map_positions({}).keys())


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("tag", BAD_TAGS)
def test_fmt10_fmt18_invalid_language_tags_rejected(xapi, tag, position):
    """FMT-10 / FMT-18: language-map keys must be RFC 5646 tags; the suite's sample
    `zh-z-aaa-z-bbb-c-ccc` (repeated singleton) and malformed tags such as `en_US` → 400."""
    st = _map_positions({tag: "text"})[position]
    post_rejected(xapi, st, tag)


@pytest.mark.parametrize("tag", GOOD_TAGS)
def test_fmt10_valid_language_tags_accepted(xapi, tag):
    """FMT-10: `sr-Latn-RS`, `cmn`, `ase`, `es-MX` … pass (tags are case-insensitive)."""
    for position, st in _map_positions({tag: "text"}).items():
        got = post_accepted(xapi, st, check_ids=True)
        if position == "verb.display":
            assert got["verb"]["display"] == {tag: "text"}


@pytest.mark.parametrize("position", POSITIONS)
def test_fmt10_empty_language_map_accepted(xapi, position):
    """FMT-10: `{}` is an acceptable language map (suite #129)."""
    post_accepted(xapi, _map_positions({})[position], check_ids=True)


# --- FMT-11: language-map values are strings ----------------------------------------------------


@pytest.mark.parametrize(
    "lang_map",
    [
        "completed",
        5,
        ["completed"],
        {"en-US": 5},
        {"en-US": ["a"]},
        {"en-US": {"text": "a"}},
        {"en-US": True},
    ],
    ids=["string", "number", "array", "value-number", "value-array", "value-object", "value-bool"],
)
@pytest.mark.parametrize("position", ["verb.display", "definition.name", "definition.description"])
def test_fmt11_language_maps_hold_strings(xapi, position, lang_map):
    """FMT-11: a language map given as a string/number/array, or with non-string values → 400."""
    st = _map_positions(lang_map)[position]
    post_rejected(xapi, st, position.split(".")[-1])


# --- FMT-12: number precision --------------------------------------------------------------------


def test_fmt12_numbers_keep_at_least_single_precision(any_xapi):
    """FMT-12: min 0.12123434 (the suite's value) and other numbers survive storage."""
    score = {"min": 0.12123434, "raw": 0.98765432, "max": 1.23456789, "scaled": -0.33333333}
    ext = {"http://example.com/ext/pi": 3.141592653589793, "http://example.com/ext/big": 123456789012}
    got = post_accepted(any_xapi, statement(result={"score": score, "extensions": ext}), check_ids=True)
    for key, value in score.items():
        assert math.isclose(got["result"]["score"][key], value, rel_tol=1e-7), (key, got["result"]["score"])
    for key, value in ext.items():
        assert math.isclose(got["result"]["extensions"][key], value, rel_tol=1e-7)


def test_fmt12_number_beyond_double_range_is_not_stored_as_null(xapi):
    """FMT-12 / FMT-3: 1e400 is valid JSON syntax but no IEEE-754 number; the LRS cannot keep it.
    It must reject the statement with 400 naming the problem (the number / `raw`) rather than
    store it as null (nulls are not allowed in a score) or fail."""
    sid = str(uuid.uuid4())
    body = (
        '{"id": "%s", "actor": {"mbox": "mailto:bignum@example.com"},'
        ' "verb": {"id": "http://adlnet.gov/expapi/verbs/scored"},'
        ' "object": {"id": "https://lms.example/activities/bignum"}, "result": {"score": {"raw": 1e400}}}'
        % sid
    ).encode()
    response = post_raw(xapi, body)
    if response.status_code == 200:  # say what went wrong in the stored copy
        stored = xapi.get("/statements", params={"statementId": sid}).json()
        pytest.fail(f"accepted 1e400 and stored score {stored['result']['score']!r}")
    message = error_message(response, 400)
    assert "raw" in message or "number" in message, message
    assert_not_stored(xapi, sid)


# --- FMT-13: duplicate keys --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["top-level", "verb", "result"])
def test_fmt13_duplicate_properties_rejected(xapi, where):
    """FMT-13: each property at most once per object; a duplicated key → 400 naming it."""
    sid = str(uuid.uuid4())
    actor = json.dumps(unique_agent())
    verb = json.dumps({"id": VERBS["completed"]})
    extra = ""
    if where == "top-level":
        extra, key = f', "actor": {actor}', "actor"
    elif where == "verb":
        verb, key = '{"id": "%s", "id": "%s"}' % (VERBS["completed"], VERBS["completed"]), "id"
    else:
        extra, key = ', "result": {"success": true, "success": false}', "success"
    body = '{"id": "%s", "actor": %s, "verb": %s, "object": %s%s}' % (
        sid,
        actor,
        verb,
        json.dumps(unique_activity()),
        extra,
    )
    assert_rejected(post_raw(xapi, body.encode()), key, "more than once")
    assert_not_stored(xapi, sid)


# --- FMT-14: UUIDs -------------------------------------------------------------------------------

BAD_UUIDS = [
    "8f87ccde-bb56-4c2e-ab83-44982ef22df0a",  # too many digits
    "8f87ccde-bb56-4c2e-ab83-44982ef22df",  # too few
    "8f87ccde-bb56-4c2e-ab83-44982ef22dfg",  # non-hex
    "8f87ccdebb564c2eab8344982ef22df0",  # no hyphens
    "{8f87ccde-bb56-4c2e-ab83-44982ef22df0}",  # braces
    "urn:uuid:8f87ccde-bb56-4c2e-ab83-44982ef22df0",  # URN form
    "8f87ccde-bb56-4c2e-cb83-44982ef22df0",  # variant bits 110 (Microsoft), not RFC 4122
    "8f87ccde-bb56-4c2e-0b83-44982ef22df0",  # variant bits 0xx (NCS), not RFC 4122
    "8f87ccde-bb564-c2e-ab83-44982ef22df0",  # hyphens misplaced
]


@pytest.mark.parametrize("value", BAD_UUIDS)
def test_fmt14_statement_id_must_be_rfc4122_uuid(xapi, value):
    """FMT-14 / PROP-1: statement id with too many digits, non-hex, other forms or variant → 400."""
    assert_rejected(xapi.post_statements({**statement(), "id": value}), "id")


@pytest.mark.parametrize("value", [123, {"id": "8f87ccde-bb56-4c2e-ab83-44982ef22df0"}, True])
def test_fmt14_uuid_must_be_a_string(any_xapi, value):
    """FMT-14: numbers or objects as UUIDs → 400."""
    assert_rejected(any_xapi.post_statements({**statement(), "id": value}), "id")


@pytest.mark.parametrize("value", BAD_UUIDS + [123])
@pytest.mark.parametrize("where", ["registration", "statementref", "context.statement"])
def test_fmt14_uuids_checked_everywhere(xapi, where, value):
    """FMT-14: the same UUID rules for context.registration, StatementRef ids and context.statement."""
    if where == "registration":
        st = statement(context={"registration": value})
    elif where == "statementref":
        st = statement(obj={"objectType": "StatementRef", "id": value})
    else:
        st = statement(context={"statement": {"objectType": "StatementRef", "id": value}})
    post_rejected(xapi, st, "registration" if where == "registration" else "id")


def test_fmt14_uppercase_uuid_accepted(any_xapi):
    """FMT-14: hex digits are case-insensitive; an upper-case UUID is valid."""
    sid = str(uuid.uuid4()).upper()
    response = any_xapi.post_statements({**statement(), "id": sid})
    assert response.status_code == 200, response.text
    assert response.json()[0].lower() == sid.lower()
    got = any_xapi.get("/statements", params={"statementId": sid})
    assert got.status_code == 200
    assert got.json()["id"].lower() == sid.lower()


# --- FMT-15: no re-serialisation -----------------------------------------------------------------


def test_fmt15_statement_read_back_exactly_as_sent(any_xapi):
    """FMT-15: apart from LRS-assigned properties (stored, authority), the statement comes back
    exactly as sent — unusual but valid forms included (non-ASCII, nested extension JSON, odd
    key order, mixed-case language tag). The timestamp may be re-serialised (LIFE-2) but must
    name the same instant."""
    st = rich_statement()
    st["id"] = str(uuid.uuid4())
    st["version"] = "1.0.0"
    st["actor"] = {"name": "Zoë Ñandú 学习者", "mbox": f"mailto:{uuid.uuid4().hex[:8]}@example.com"}
    st["verb"]["display"] = {"EN-gb": "completed", "fr": "terminé"}
    st["result"]["extensions"] = {
        "http://example.com/ext/deep": {"z": [1, {"y": None}, "s"], "a": {}, "m": ""}
    }
    st["context"]["contextActivities"] = {
        "category": [{"id": "http://example.com/cat", "objectType": "Activity"}],
        "parent": [unique_activity(name={"de": "Übung"})],
    }
    got = post_accepted(any_xapi, st, check_ids=True)
    for assigned in ("stored", "authority"):
        got.pop(assigned)
    assert instant(got.pop("timestamp")) == instant(st.pop("timestamp"))
    assert got == st


# --- FMT-16: extensions --------------------------------------------------------------------------

EXTENSION_VALUES = [None, "", {}, [], 0, -1.5, False, True, "text", {"nested": {"deep": [1, None]}}, 2**53]


def _with_extensions(where: str, ext: Any) -> dict[str, Any]:
    if where == "definition":
        return statement(obj=unique_activity(name={"en-US": "x"}, extensions=ext))
    if where == "substatement.result":
        return statement(obj=sub_statement(verb_display=True, result={"extensions": ext}))
    return statement(**{where: {"extensions": ext}})


def _read_extensions(got: dict[str, Any], where: str) -> Any:
    if where == "definition":
        return got["object"]["definition"]["extensions"]
    if where == "substatement.result":
        return got["object"]["result"]["extensions"]
    return got[where]["extensions"]


EXT_POSITIONS = ["result", "context", "definition", "substatement.result"]


@pytest.mark.parametrize("where", EXT_POSITIONS)
def test_fmt16_any_extension_values_accepted_and_kept(any_xapi, where):
    """FMT-16: extension values may be any JSON (null, "", {}, [], numbers, booleans)."""
    ext = {f"http://example.com/ext/{i}": value for i, value in enumerate(EXTENSION_VALUES)}
    got = post_accepted(any_xapi, _with_extensions(where, ext), check_ids=True)
    assert _read_extensions(got, where) == ext


@pytest.mark.parametrize("where", EXT_POSITIONS)
def test_fmt16_empty_extensions_object_accepted(any_xapi, where):
    """FMT-16: `extensions: {}` is allowed."""
    got = post_accepted(any_xapi, _with_extensions(where, {}), check_ids=True)
    assert _read_extensions(got, where) == {}


@pytest.mark.parametrize("value", ["text", ["http://example.com/ext"], 5, True])
@pytest.mark.parametrize("where", EXT_POSITIONS)
def test_fmt16_extensions_must_be_an_object(xapi, where, value):
    """FMT-16: a non-object `extensions` → 400."""
    post_rejected(xapi, _with_extensions(where, value), "extensions")


def test_fmt16_extension_value_beyond_64_bits_is_not_rejected(xapi):
    """FMT-16 / FMT-12: never reject (or fail) because of an extension value; 2**64 + 1 is a valid
    JSON number. It must be accepted and kept to at least single precision."""
    value = 2**64 + 1
    st = statement(result={"extensions": {"http://example.com/ext/huge": value}})
    got = post_accepted(xapi, st, check_ids=True)
    assert math.isclose(got["result"]["extensions"]["http://example.com/ext/huge"], value, rel_tol=1e-7)


# --- FMT-17: query parameters validated like statement values ----------------------------------

BAD_PARAMS = [
    ("statementId", "not-a-uuid"),
    ("statementId", "8f87ccde-bb56-4c2e-cb83-44982ef22df0"),
    ("voidedStatementId", "12345"),
    ("registration", "8f87ccdebb564c2eab8344982ef22df0"),
    ("verb", "completed"),
    ("activity", "lms.example/activity"),
    ("since", "yesterday"),
    ("until", "2008-09-15T15:53:00.601-00:00"),
    ("agent", '{"mbox": "someone@example.com"}'),
    ("agent", '{"mbox": "mailto:a@example.com", "openid": "http://openid.example.org/a"}'),
    ("agent", "not json"),
    ("related_agents", "True"),
    ("ascending", "1"),
    ("limit", "-1"),
    ("format", "Exact"),
]


@pytest.mark.parametrize("name, value", BAD_PARAMS, ids=[f"{n}={v}" for n, v in BAD_PARAMS])
def test_fmt17_query_parameters_validated(xapi, name, value):
    """FMT-17: a query parameter value that would be invalid in a statement → 400 naming it."""
    assert_rejected(xapi.get("/statements", params={name: value}), name)


def test_fmt17_valid_query_parameter_values_accepted(any_xapi):
    """FMT-17: the same parameters with valid values are answered (200)."""
    agent = unique_agent()
    activity = unique_activity()
    registration = str(uuid.uuid4()).upper()
    (sid,) = any_xapi.store(statement(actor=agent, obj=activity, context={"registration": registration}))
    found = any_xapi.find(
        agent={"mbox": agent["mbox"]},
        verb=VERBS["completed"],
        activity=activity["id"],
        registration=registration,
        since="2000-01-01T00:00:00Z",
        ascending="true",
    )
    assert [s["id"] for s in found] == [sid]
