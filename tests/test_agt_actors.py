"""Actor, Agent, Group and IFI validation (checklist section 6, AGT-1 … AGT-11).

AGT-10: every agent/group check is repeated at every position an agent can take — actor,
object, authority, context.instructor, context.team, and the same inside a SubStatement.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from typing import Any

import pytest

from .conftest import statement
from .helpers import mbox, post_accepted, post_rejected, sub_statement

# --- helpers -------------------------------------------------------------------------------------


def agent(**fields: Any) -> dict[str, Any]:
    """A valid Agent (with objectType, so it is valid at every position) updated by ``fields``."""
    out: dict[str, Any] = {"objectType": "Agent", "name": "Someone", "mbox": mbox()}
    out.update(fields)
    return {k: v for k, v in out.items() if v is not DROP}


def group(**fields: Any) -> dict[str, Any]:
    """A valid anonymous Group of two Agents updated by ``fields``."""
    out: dict[str, Any] = {"objectType": "Group", "name": "A team", "member": [agent(), agent()]}
    out.update(fields)
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()


def at(position: str, who: dict[str, Any]) -> dict[str, Any]:
    """A statement carrying ``who`` at ``position`` (sub_* = inside a SubStatement)."""
    who = copy.deepcopy(who)
    inner = position.removeprefix("sub_")
    if inner == "actor":
        part: dict[str, Any] = {"actor": who}
    elif inner == "object":
        part = {"object": who}
    elif inner == "authority":
        part = {"authority": who}
    else:  # instructor / team
        part = {"context": {inner: who}}
    if position.startswith("sub_"):
        return statement(obj=sub_statement(**part))
    st = statement()
    st.update(part)
    return st


#: what a message must mention for an error at each position
WHERE = {
    "actor": ("actor",),
    "object": ("object",),
    "authority": ("authority",),
    "instructor": ("instructor",),
    "team": ("team",),
    "sub_actor": ("object", "actor"),
    "sub_object": ("object",),
    "sub_instructor": ("object", "instructor"),
    "sub_team": ("object", "team"),
}
AGENT_POSITIONS = ["actor", "object", "authority", "instructor", "sub_actor", "sub_object", "sub_instructor"]
GROUP_POSITIONS = [
    "actor",
    "object",
    "instructor",
    "team",
    "sub_actor",
    "sub_object",
    "sub_instructor",
    "sub_team",
]


# --- invalid agents, at every position (AGT-1 … AGT-7, AGT-10) ----------------------------------

INVALID_AGENTS = {
    # AGT-1 objectType is exactly "Agent" (or "Group") and a string
    "objectType-lowercase": (lambda: agent(objectType="agent"), "objectType"),
    "objectType-person": (lambda: agent(objectType="Person"), "objectType"),
    "objectType-number": (lambda: agent(objectType=1), "objectType"),
    # AGT-2 name is a string
    "name-number": (lambda: agent(name=42), "name"),
    "name-array": (lambda: agent(name=["Some", "One"]), "name"),
    "name-object": (lambda: agent(name={"en-US": "Someone"}), "name"),
    # AGT-3 exactly one IFI
    "no-ifi": (lambda: agent(mbox=DROP), "mbox"),
    "mbox-and-openid": (lambda: agent(openid="http://openid.example.org/someone"), "mbox"),
    "mbox-and-sha1": (lambda: agent(mbox_sha1sum=hashlib.sha1(b"mailto:x@example.com").hexdigest()), "mbox"),
    "mbox-and-account": (lambda: agent(account={"homePage": "https://lms.example", "name": "u1"}), "mbox"),
    # AGT-4 mbox is mailto:
    "mbox-no-mailto": (lambda: agent(mbox="someone@example.com"), "mbox"),
    "mbox-http": (lambda: agent(mbox="http://example.com/someone"), "mbox"),
    "mbox-empty": (lambda: agent(mbox=""), "mbox"),
    "mbox-mailto-only": (lambda: agent(mbox="mailto:"), "mbox"),
    "mbox-number": (lambda: agent(mbox=12345), "mbox"),
    # AGT-5 mbox_sha1sum is a string
    "sha1-number": (lambda: agent(mbox=DROP, mbox_sha1sum=1234567890), "mbox_sha1sum"),
    "sha1-object": (lambda: agent(mbox=DROP, mbox_sha1sum={"sha1": "x"}), "mbox_sha1sum"),
    "sha1-not-hex": (lambda: agent(mbox=DROP, mbox_sha1sum="not a sha1 sum"), "mbox_sha1sum"),
    # AGT-6 openid is a URI
    "openid-no-scheme": (lambda: agent(mbox=DROP, openid="openid.example.org/someone"), "openid"),
    "openid-number": (lambda: agent(mbox=DROP, openid=5), "openid"),
    # AGT-7 account: object with homePage (IRL) and name (string)
    "account-string": (lambda: agent(mbox=DROP, account="u1@lms.example"), "account"),
    "account-no-homepage": (lambda: agent(mbox=DROP, account={"name": "u1"}), "homePage"),
    "account-no-name": (lambda: agent(mbox=DROP, account={"homePage": "https://lms.example"}), "name"),
    "account-homepage-no-scheme": (
        lambda: agent(mbox=DROP, account={"homePage": "lms.example", "name": "u1"}),
        "homePage",
    ),
    "account-name-number": (
        lambda: agent(mbox=DROP, account={"homePage": "https://lms.example", "name": 7}),
        "name",
    ),
    "account-wrong-case-key": (
        lambda: agent(mbox=DROP, account={"homepage": "https://lms.example", "name": "u1"}),
        "homepage",
    ),
    # unknown keys, AGT-9 member on an Agent
    "unknown-key": (lambda: agent(email="someone@example.com"), "email"),
    "member-on-agent": (lambda: agent(member=[agent()]), "member"),
}


@pytest.mark.parametrize("position", AGENT_POSITIONS)
@pytest.mark.parametrize("case", list(INVALID_AGENTS))
def test_agt10_invalid_agent_rejected_at_every_position(xapi, case, position):
    """AGT-1, AGT-2, AGT-3, AGT-4, AGT-5, AGT-6, AGT-7, AGT-9, AGT-10: each invalid Agent → 400 at
    actor, object, authority, context.instructor and the same inside a SubStatement; the message
    names the property."""
    make, fragment = INVALID_AGENTS[case]
    post_rejected(xapi, at(position, make()), *WHERE[position], fragment)


VALID_AGENTS = {
    "mbox": lambda: agent(),
    "mbox_sha1sum": lambda: agent(mbox=DROP, mbox_sha1sum=hashlib.sha1(mbox().encode()).hexdigest()),
    "openid": lambda: agent(mbox=DROP, openid=f"http://openid.example.org/{uuid.uuid4()}"),
    "account": lambda: agent(
        mbox=DROP, account={"homePage": "https://lms.example", "name": str(uuid.uuid4())}
    ),
    "no-name": lambda: agent(name=DROP),
}


@pytest.mark.parametrize("position", AGENT_POSITIONS)
@pytest.mark.parametrize("case", list(VALID_AGENTS))
def test_agt3_agt10_each_ifi_accepted_at_every_position(xapi, case, position):
    """AGT-3, AGT-4, AGT-5, AGT-6, AGT-7, AGT-10: an Agent with exactly one IFI of each kind is
    valid everywhere."""
    who = VALID_AGENTS[case]()
    got = post_accepted(xapi, at(position, who))
    if position in ("actor", "object"):
        assert got[position] == who


def test_agt3_object_type_may_be_omitted_for_actor(any_xapi):
    """AGT-3: `objectType` may be omitted for an actor (it is then an Agent)."""
    who = {"mbox": mbox()}
    got = post_accepted(any_xapi, statement(actor=who))
    assert got["actor"]["mbox"] == who["mbox"]


def test_agt3_object_type_may_be_omitted_for_instructor(any_xapi):
    """AGT-3: likewise for context.instructor (an Agent)."""
    who = {"account": {"homePage": "https://lms.example", "name": str(uuid.uuid4())}}
    got = post_accepted(any_xapi, statement(context={"instructor": who}))
    assert got["context"]["instructor"] == who


@pytest.mark.parametrize("value", [{"objectType": "Agent"}, {}, "mailto:someone@example.com", 5, []])
def test_agt3_actor_without_identifier_or_not_an_object(any_xapi, value):
    """AGT-3: an actor with no IFI, or that is not a JSON object at all → 400."""
    post_rejected(any_xapi, {**statement(), "actor": value}, "actor")


def test_agt4_mixed_case_mailto_accepted_and_kept(xapi):
    """AGT-4: any valid mailto IRI is accepted and returned as given in the `exact` format."""
    who = {"mbox": f"mailto:Mixed.Case.{uuid.uuid4().hex[:6]}@Example.COM"}
    got = post_accepted(xapi, statement(actor=who))
    assert got["actor"] == who


# --- groups, at every position (AGT-8, AGT-9, AGT-10) -------------------------------------------

INVALID_GROUPS = {
    # AGT-8 an anonymous Group must have member
    "anonymous-no-member": (lambda: group(member=DROP), "member"),
    # AGT-8 an identified Group has exactly one IFI
    "two-ifis": (lambda: group(member=DROP, mbox=mbox(), openid="http://openid.example.org/team"), "mbox"),
    "bad-ifi": (lambda: group(mbox="team@example.com"), "mbox"),
    # AGT-9 member is an array of Agents only
    "member-object": (lambda: group(member=agent()), "member"),
    "member-string": (lambda: group(member="everyone"), "member"),
    "member-with-group": (lambda: group(member=[agent(), group()]), "member"),
    "member-without-ifi": (lambda: group(member=[agent(), agent(mbox=DROP)]), "member"),
    "member-bad-mbox": (lambda: group(member=[agent(mbox="someone@example.com")]), "mbox"),
    "member-unknown-key": (lambda: group(member=[agent(Mbox=mbox())]), "Mbox"),
    # AGT-1 objectType exact
    "objectType-lowercase": (lambda: group(objectType="group"), "objectType"),
    # AGT-2 name
    "name-number": (lambda: group(name=3), "name"),
}


@pytest.mark.parametrize("position", GROUP_POSITIONS)
@pytest.mark.parametrize("case", list(INVALID_GROUPS))
def test_agt10_invalid_group_rejected_at_every_position(xapi, case, position):
    """AGT-8, AGT-9, AGT-10: invalid Groups → 400 at actor, object, instructor, team, and inside
    a SubStatement; the message names the property."""
    make, fragment = INVALID_GROUPS[case]
    post_rejected(xapi, at(position, make()), *WHERE[position], fragment)


VALID_GROUPS = {
    "anonymous": lambda: group(),
    "anonymous-one-member": lambda: group(member=[agent()]),
    "identified-no-member": lambda: group(member=DROP, mbox=mbox()),
    "identified-with-members": lambda: group(
        account={"homePage": "https://lms.example", "name": f"team-{uuid.uuid4()}"}),
    "identified-empty-member": lambda: group(member=[], openid=f"http://openid.example.org/{uuid.uuid4()}"),
    "members-with-other-ifis": lambda: group(member=[
        agent(mbox=DROP, openid=f"http://openid.example.org/{uuid.uuid4()}"),
        agent(mbox=DROP, account={"homePage": "https://lms.example", "name": "m"}),
        agent(mbox=DROP, mbox_sha1sum=hashlib.sha1(b"mailto:m@example.com").hexdigest()),
    ]),
}  # fmt: skip


@pytest.mark.parametrize("position", GROUP_POSITIONS)
@pytest.mark.parametrize("case", list(VALID_GROUPS))
def test_agt8_agt10_valid_groups_accepted_at_every_position(xapi, case, position):
    """AGT-8, AGT-10: anonymous Groups with members and identified Groups (member optional)
    are valid at every group position."""
    who = VALID_GROUPS[case]()
    got = post_accepted(xapi, at(position, who))
    if position in ("actor", "object"):
        assert got[position]["objectType"] == "Group"
        canon = lambda m: json.dumps(m, sort_keys=True)  # noqa: E731
        assert sorted(map(canon, got[position].get("member", []))) == sorted(
            map(canon, who.get("member", []))
        )


def test_agt8_group_actor_needs_object_type(any_xapi):
    """AGT-8: without objectType "Group" an actor is an Agent, and `member` is not allowed."""
    post_rejected(any_xapi, statement(actor={"name": "team", "member": [agent()]}), "actor", "member")


# --- AGT-9: member outside a Group, team must be a Group ---------------------------------------


@pytest.mark.parametrize("position", ["actor", "object", "instructor", "sub_actor", "sub_object"])
def test_agt9_member_invalid_outside_a_group(xapi, position):
    """AGT-9: `member` is only valid on a Group (an Agent with members → 400)."""
    post_rejected(xapi, at(position, agent(member=[agent()])), "member")


@pytest.mark.parametrize("position", ["team", "sub_team"])
def test_agt10_team_must_be_a_group(xapi, position):
    """AGT-10 / CTX-2: context.team holds a Group; an Agent there → 400."""
    post_rejected(xapi, at(position, agent()), "team")


# --- AGT-11: member order ----------------------------------------------------------------------


def test_agt11_member_order_not_significant(any_xapi):
    """AGT-11: Group member order need not be preserved: the same statement re-sent with members
    reversed is the same statement (204, not 409), and the stored member set is unchanged."""
    members = [agent(name=f"m{i}") for i in range(3)]
    st = statement(actor=group(member=members))
    sid = str(uuid.uuid4())
    response = any_xapi.put("/statements", params={"statementId": sid}, json=st)
    assert response.status_code == 204, response.text
    reordered = copy.deepcopy(st)
    reordered["actor"]["member"].reverse()
    response = any_xapi.put("/statements", params={"statementId": sid}, json=reordered)
    assert response.status_code == 204, response.text
    got = any_xapi.get("/statements", params={"statementId": sid}).json()
    key = lambda m: m["mbox"]  # noqa: E731
    assert sorted(got["actor"]["member"], key=key) == sorted(members, key=key)


def test_agt11_group_found_by_any_member(xapi):
    """AGT-11 / AGT-9: the members of a stored Group are each found by the agent filter,
    whatever their position in the array."""
    members = [agent(), agent(), agent()]
    (sid,) = xapi.store(statement(actor=group(member=members)))
    for member in members:
        found = xapi.find(agent={"mbox": member["mbox"]})
        assert [s["id"] for s in found] == [sid]
