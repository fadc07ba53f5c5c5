"""LRS-assigned and special statement properties (checklist section 11, PROP-1 … PROP-10)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .conftest import ADMIN, statement
from .helpers import error_message, instant, mbox, post_accepted, post_rejected, sub_statement

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")


def fraction_digits(value: str) -> int:
    m = re.search(r"\.(\d+)", value)
    return len(m.group(1)) if m else 0


# --- PROP-1: id ----------------------------------------------------------------------------------


def test_prop1_id_generated_when_absent(any_xapi):
    """PROP-1: without an id the LRS generates a UUID (RFC 4122 variant), returns it, and the
    statement is retrievable by it."""
    response = any_xapi.post_statements([statement(), statement()])
    assert response.status_code == 200, response.text
    ids = response.json()
    assert len(ids) == 2 and ids[0] != ids[1]
    for sid in ids:
        assert UUID_RE.fullmatch(sid), sid
        got = any_xapi.get("/statements", params={"statementId": sid})
        assert got.status_code == 200
        assert got.json()["id"].lower() == sid.lower()


def test_prop1_given_id_is_kept(any_xapi):
    """PROP-1: a valid id sent by the client is the statement's id."""
    sid = str(uuid.uuid4())
    response = any_xapi.post_statements({**statement(), "id": sid})
    assert response.status_code == 200
    assert response.json() == [sid]
    assert any_xapi.get("/statements", params={"statementId": sid}).json()["id"] == sid


@pytest.mark.parametrize(
    "value", ["", "1234", "not-a-uuid", 42, None, ["8f87ccde-bb56-4c2e-ab83-44982ef22df0"]]
)
def test_prop1_present_id_must_be_a_uuid_string(any_xapi, value):
    """PROP-1: an id that is present must be a valid UUID string."""
    error_message_text = error_message(any_xapi.post_statements({**statement(), "id": value}), 400)
    assert "id" in error_message_text


# --- PROP-2: timestamp format --------------------------------------------------------------------

INVALID_TIMESTAMPS = [
    "should fail",
    "01/011/2015",
    "",
    "2008-09-15",  # a date is no date-time
    "15:53:00",
    "2008-09-15T15:53:00.601-00",
    "2008-09-15T15:53:00.601-0000",
    "2008-09-15T15:53:00.601-00:00",
    "2008-13-15T15:53:00Z",
    "2008-09-31T15:53:00Z",
    "2008-09-15T15:61:00Z",
    "2008-09-15T15:53:00+25:00",
    "2008-09-15T15:53:00ZZ",
    "2008-09-15T15:53:00.Z",
]
VALID_TIMESTAMPS = [
    "2008-09-15T15:53:00.601Z",
    "2008-09-15T15:53:00Z",
    "2008-09-15T15:53:00.601+00:00",
    "2008-09-15T15:53:00.601+05:30",
    "2008-09-15T15:53:00.601-05:00",
    "2008-09-15T15:53:00.123456789Z",
    "2008-09-15t15:53:00.601z",
]


@pytest.mark.parametrize("value", INVALID_TIMESTAMPS + [1221494000, {"t": "2008-09-15T15:53:00Z"}])
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_prop2_invalid_timestamps_rejected(xapi, where, value):
    """PROP-2: junk, dates without time, impossible values and the -00 / -0000 / -00:00 offsets → 400
    (statement and SubStatement)."""
    st = statement(timestamp=value) if where == "statement" else statement(obj=sub_statement(timestamp=value))
    post_rejected(xapi, st, "timestamp")


@pytest.mark.parametrize("value", VALID_TIMESTAMPS)
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_prop2_valid_timestamps_accepted(xapi, where, value):
    """PROP-2: RFC 3339 date-times with Z, positive/negative offsets, long fractions and lower-case
    separators are valid; the instant read back is the one sent."""
    st = statement(timestamp=value) if where == "statement" else statement(obj=sub_statement(timestamp=value))
    got = post_accepted(xapi, st)
    returned = got["timestamp"] if where == "statement" else got["object"]["timestamp"]
    assert abs(instant(returned) - instant(value)) < timedelta(milliseconds=1)


# --- PROP-3: millisecond precision ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["2015-11-18T12:17:00.123456Z", "2015-11-18T12:17:00.100Z", "2015-11-18T12:17:00.000Z"]
)
def test_prop3_timestamp_keeps_millisecond_precision(any_xapi, value):
    """PROP-3: at least 3 fractional digits are kept on timestamp (trailing zeros included) and the
    millisecond value is unchanged."""
    got = post_accepted(any_xapi, statement(timestamp=value))
    assert fraction_digits(got["timestamp"]) >= 3, got["timestamp"]
    assert abs(instant(value) - instant(got["timestamp"])) < timedelta(milliseconds=1)


def test_prop3_stored_has_millisecond_precision(any_xapi):
    """PROP-3: stored carries at least 3 fractional digits."""
    got = post_accepted(any_xapi, statement())
    assert fraction_digits(got["stored"]) >= 3, got["stored"]


# --- PROP-4: time zones --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2023-05-04T12:00:00.000-05:00", "2023-05-05T02:30:00.000+14:00"])
def test_prop4_timestamp_instant_unchanged(xapi, value):
    """PROP-4: the LRS may return a timestamp in another zone, but the instant must be unchanged."""
    got = post_accepted(xapi, statement(timestamp=value))
    assert instant(got["timestamp"]) == instant(value)


# --- PROP-5: timestamp defaults to stored --------------------------------------------------------


@pytest.mark.parametrize("where", ["statement", "batch"])
def test_prop5_timestamp_set_to_stored_when_omitted(xapi, where):
    """PROP-5: when the client sends no timestamp, timestamp = stored."""
    if where == "statement":
        got = [post_accepted(xapi, statement())]
    else:
        ids = xapi.store(statement(), statement(timestamp="2001-01-01T00:00:00.000Z"))
        got = [xapi.get("/statements", params={"statementId": sid}).json() for sid in ids]
        assert instant(got[1]["timestamp"]) == instant("2001-01-01T00:00:00.000Z")
    assert "timestamp" in got[0]
    assert instant(got[0]["timestamp"]) == instant(got[0]["stored"])


def test_prop5_substatement_timestamp_not_invented(xapi):
    """PROP-5: only the statement's own timestamp is defaulted; a SubStatement without one stays so."""
    got = post_accepted(xapi, statement(obj=sub_statement()))
    assert "timestamp" not in got["object"]


# --- PROP-6: future timestamps --------------------------------------------------------------------


@pytest.mark.parametrize("ahead", [timedelta(minutes=5), timedelta(days=1), timedelta(days=3650)])
@pytest.mark.parametrize("where", ["statement", "substatement"])
def test_prop6_future_timestamps_accepted(xapi, where, ahead):
    """PROP-6: timestamps in the future are not rejected (statement and SubStatement)."""
    value = (datetime.now(timezone.utc) + ahead).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    st = statement(timestamp=value) if where == "statement" else statement(obj=sub_statement(timestamp=value))
    got = post_accepted(xapi, st)
    returned = got["timestamp"] if where == "statement" else got["object"]["timestamp"]
    assert instant(returned) == instant(value)


# --- PROP-7: stored ------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", ["2000-01-01T00:00:00.000Z", "2099-12-31T23:59:59.999Z"])
def test_prop7_stored_set_by_the_lrs(any_xapi, sent):
    """PROP-7: a submitted stored is accepted and overwritten with the time of receipt."""
    before = datetime.now(timezone.utc)
    got = post_accepted(any_xapi, statement(stored=sent))
    after = datetime.now(timezone.utc)
    stored = instant(got["stored"])
    assert got["stored"] != sent
    assert before - timedelta(seconds=60) <= stored <= after + timedelta(seconds=60), (before, stored, after)


def test_prop7_stored_set_when_absent_and_increasing(xapi):
    """PROP-7: stored is always present and reflects receipt order."""
    first = post_accepted(xapi, statement())
    second = post_accepted(xapi, statement())
    assert instant(first["stored"]) <= instant(second["stored"])


@pytest.mark.parametrize("value", ["yesterday", "", "2008-09-15T15:53:00.601-00:00", 12345])
def test_prop7_submitted_stored_must_be_a_valid_timestamp(xapi, value):
    """PROP-7: a submitted stored must still be a valid timestamp."""
    post_rejected(xapi, statement(stored=value), "stored")


# --- PROP-8: authority ---------------------------------------------------------------------------


def agent() -> dict[str, Any]:
    return {"objectType": "Agent", "mbox": mbox()}


@pytest.mark.parametrize(
    "authority",
    [
        lambda: {"objectType": "Group", "mbox": mbox()},
        lambda: {"objectType": "Group", "account": {"homePage": "https://lms.example", "name": "app"},
                 "member": [agent(), agent()]},
        lambda: {"objectType": "Group", "member": [agent()]},
        lambda: {"objectType": "Group", "member": [agent(), agent(), agent()]},
        lambda: {"objectType": "Group", "member": []},
        lambda: {"objectType": "Group"},
        lambda: {"objectType": "Group", "member": [agent(), {"objectType": "Group", "member": [agent()]}]},
        lambda: {"objectType": "Agent"},
        lambda: {"objectType": "Agent", "mbox": "authority@example.com"},
        lambda: {"objectType": "Agent", "mbox": mbox(), "openid": "http://openid.example.org/a"},
        lambda: {"objectType": "Activity", "id": "http://example.com/authority"},
        lambda: "mailto:authority@example.com",
    ],
    ids=["identified-group", "identified-group-with-members", "one-member", "three-members", "no-members",
         "empty-group", "nested-group", "agent-no-ifi", "agent-bad-mbox", "agent-two-ifis", "activity",
         "string"],
)  # fmt: skip
def test_prop8_invalid_authority_rejected(xapi, authority):
    """PROP-8: authority must be an Agent or an anonymous Group of exactly two Agents."""
    post_rejected(xapi, statement(authority=authority()), "authority")


@pytest.mark.parametrize(
    "authority",
    [lambda: agent(), lambda: {"mbox": mbox()}, lambda: {"objectType": "Group", "member": [agent(), agent()]},
     lambda: {"account": {"homePage": "https://lms.example", "name": "app"}}],
    ids=["agent", "agent-no-objectType", "oauth-pair", "account-agent"],
)  # fmt: skip
def test_prop8_valid_authority_accepted_then_set_by_the_lrs(any_xapi, authority):
    """PROP-8 / AUTH-9: a valid authority is accepted; this LRS then records the credential's own
    authority (an Agent identified by the credential key), as the checklist recommends."""
    got = post_accepted(any_xapi, statement(authority=authority()))
    assert got["authority"]["account"]["name"] == ADMIN[0]
    assert "member" not in got["authority"]


# --- PROP-9: version -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.9", "1.0.10"])
def test_prop9_version_1_0_x_accepted_and_returned_as_received(xapi, version):
    """PROP-9: `1.0` and any `1.0.x` are accepted and returned exactly as received."""
    assert post_accepted(xapi, statement(version=version))["version"] == version


@pytest.mark.parametrize(
    "version",
    ["0.9.9", "0.95", "1.1.0", "1.1", "1", "1.0.", "1.0.x", "1.0.3.1", "v1.0.3", " 1.0.3", "should fail", "",
     "2.0.0", "2.0"],
)  # fmt: skip
def test_prop9_other_versions_rejected(xapi, version):
    """PROP-9: anything but 1.0 / 1.0.x (0.9.9, 1.1.0, "should fail" … and, in a 1.0.3 request,
    2.0.x) → 400 naming version."""
    post_rejected(xapi, statement(version=version), "version")


@pytest.mark.parametrize("version", [1.0, 1, None, ["1.0.3"], {"v": "1.0.3"}])
def test_prop9_version_must_be_a_string(xapi, version):
    """PROP-9 / FMT-4: version is a string."""
    post_rejected(xapi, statement(version=version), "version")


def test_prop9_version_set_to_1_0_0_when_absent(xapi):
    """PROP-9: a 1.0.3 statement without version is stored with version "1.0.0"."""
    assert post_accepted(xapi, statement())["version"] == "1.0.0"


# --- PROP-10: attachments ------------------------------------------------------------------------

FILE_URL_ATTACHMENT = {
    "usageType": "http://example.com/attachment-usage/test",
    "display": {"en-US": "A test attachment"},
    "description": {"en-US": "A test attachment (description)"},
    "contentType": "text/plain; charset=ascii",
    "length": 27,
    "sha2": "495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a",
    "fileUrl": "http://over.there.com/file.txt",
}


@pytest.mark.parametrize(
    "value, named",
    [(FILE_URL_ATTACHMENT, "attachments"), ("attachment", "attachments"), (["attachment"], "attachments"),
     ([1], "attachments"), ([{}], "usageType"), ([[FILE_URL_ATTACHMENT]], "attachments")],
    ids=["object", "string", "array-of-string", "array-of-number", "array-of-empty", "nested-array"],
)  # fmt: skip
def test_prop10_attachments_is_an_array_of_attachment_objects(any_xapi, value, named):
    """PROP-10: attachments must be an array of Attachment objects."""
    post_rejected(any_xapi, statement(attachments=value), named)


def test_prop10_file_url_attachments_accepted_and_kept(any_xapi):
    """PROP-10: an array of valid (fileUrl) attachment objects is accepted and kept; `[]` too."""
    got = post_accepted(any_xapi, statement(attachments=[FILE_URL_ATTACHMENT]))
    assert got["attachments"] == [FILE_URL_ATTACHMENT]
    got = post_accepted(any_xapi, statement(attachments=[]))
    assert got.get("attachments", []) == []
