"""The erasure rules (``lrs.xapi.erasure``, docs/data-rights.md) on hand-made statements."""

from __future__ import annotations

import hashlib

import pytest

from lrs.xapi.erasure import identities_in, keyed_hash, learner_keys, redact, verdict, voided_target
from lrs.xapi.statements import validate_statement
from lrs.xapi.models import XapiVersion

ERASED = {"objectType": "Agent", "name": "Erased", "mbox": "mailto:erased@school.example"}
OTHER = {"objectType": "Agent", "name": "Other", "mbox": "mailto:other@school.example"}
THIRD = {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "3"}}
KEYS = learner_keys(ERASED)
ACTIVITY = {"objectType": "Activity", "id": "https://lms.example/a"}
VERB = {"id": "http://adlnet.gov/expapi/verbs/completed"}


def st(actor, obj=ACTIVITY, **extra):
    return {"actor": actor, "verb": VERB, "object": obj, **extra}


def test_keys_cover_the_mailbox_and_its_sha1():
    sha1 = hashlib.sha1(b"mailto:erased@school.example").hexdigest()
    assert KEYS == {"mbox:mailto:erased@school.example", "sha1:" + sha1}
    assert verdict(st({"mbox_sha1sum": sha1}), KEYS) == "erase"
    with pytest.raises(ValueError):
        learner_keys({"name": "no identifier"})


@pytest.mark.parametrize(
    "statement",
    [
        st(ERASED),
        st(OTHER, ERASED),
        st({"objectType": "Group", "member": [ERASED, {"objectType": "Agent", "name": "anonymous"}]}),
        st(OTHER, {"objectType": "SubStatement", "actor": ERASED, "verb": VERB, "object": ACTIVITY}),
        st(OTHER, {"objectType": "SubStatement", "actor": OTHER, "verb": VERB, "object": ERASED}),
    ],
    ids=["actor", "object", "only identified member", "substatement actor", "substatement object"],
)
def test_statements_that_are_the_learners_are_erased(statement):
    assert verdict(statement, KEYS) == "erase"


def test_the_learner_is_taken_out_of_other_learners_statements_which_stay_valid():
    team = {"objectType": "Group", "name": "T", "member": [OTHER, ERASED]}
    statement = st(
        {"objectType": "Group", "member": [OTHER, ERASED, THIRD]},
        context={
            "instructor": ERASED, "team": team,
            "contextAgents": [{"objectType": "contextAgent", "agent": ERASED}],
            "contextGroups": [{"objectType": "contextGroup", "group": {"objectType": "Group", "member": [ERASED]}},
                              {"objectType": "contextGroup", "group": team}],
        },
    )  # fmt: skip
    assert verdict(statement, KEYS) == "redact"
    kept = redact(statement, KEYS)
    assert kept["actor"]["member"] == [OTHER, THIRD]
    assert kept["context"] == {
        "team": {"objectType": "Group", "name": "T", "member": [OTHER]},
        "contextGroups": [{"objectType": "contextGroup", "group": {"objectType": "Group", "name": "T",
                                                                    "member": [OTHER]}}],
    }  # fmt: skip
    assert not set(identities_in(kept)) & KEYS
    validate_statement(kept | {"id": "6f8a1d0e-3c56-4b8e-9b7e-0d5f3c2a1b4d"}, XapiVersion.V2)
    assert statement["context"]["instructor"] == ERASED  # the original is untouched


def test_other_statements_are_left_alone_and_voidings_are_recognised():
    assert verdict(st(OTHER), KEYS) is None
    assert verdict(st(OTHER), set()) is None
    void = st(OTHER, {"objectType": "StatementRef", "id": "6F8A1D0E-3C56-4B8E-9B7E-0D5F3C2A1B4D"},
              verb={"id": "http://adlnet.gov/expapi/verbs/voided"})  # fmt: skip
    assert voided_target(void) == "6f8a1d0e-3c56-4b8e-9b7e-0d5f3c2a1b4d"
    assert voided_target(st(OTHER)) is None


def test_keyed_hashes_depend_on_the_secret():
    assert keyed_hash(b"a", "mbox:x") == keyed_hash(b"a", "mbox:x") != keyed_hash(b"b", "mbox:x")
    assert "mbox" not in keyed_hash(b"a", "mbox:x")
