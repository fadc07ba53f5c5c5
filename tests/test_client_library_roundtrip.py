"""A round trip with an independent xAPI client library: TinCanPython (``tincan`` on PyPI).

The statement, its parts and the state document are built with the library's own classes and
serialised by it; the LRS has to understand what another implementation sends and the library has
to understand what the LRS answers. (HDR-5, STATE-3, CONC-2, AUTH-1, V2-28: a 1.0.3 client.)

Known library limitations (tincan 1.0.0 on Python 3.11), none of them the LRS's doing:
* ``RemoteLRS.about()`` raises ValueError on this LRS's About: ``tincan.About`` only accepts the
  versions 1.0.0-1.0.3 and this LRS (rightly, V2-3) also lists "2.0.0". About is therefore not
  read through the library (it is tested over plain HTTP elsewhere).
* Document bodies go through ``HTTPRequest.content``, which turns them into ``str``; ``http.client``
  then encodes a ``str`` body as Latin-1, so a UTF-8 document with characters outside Latin-1 cannot
  be sent at all (UnicodeEncodeError) and Latin-1 ones would arrive re-encoded. Responses are decoded
  as UTF-8 (``LRSResponse.data``), so binary documents cannot be read either. ``Document.content``
  also rejects ``bytes`` (only ``str``/``bytearray``). The state document used here is ASCII JSON.
* ``RemoteLRS.retrieve_state`` looks headers up in the list ``getheaders()`` returns, so it never
  fills the document's ``etag`` / ``content_type``; the test reads them from the raw response.
* ``RemoteLRS.save_state`` sends its PUT twice and never sends ``registration``; harmless for a
  1.0.3 State document without registration, which is what is used here.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from tincan import (
    Activity,
    ActivityDefinition,
    Agent,
    Context,
    LanguageMap,
    RemoteLRS,
    Result,
    Score,
    Statement,
    Verb,
)
from tincan.documents import StateDocument

from .conftest import ADMIN


@pytest.fixture()
def lrs(base_url) -> RemoteLRS:
    return RemoteLRS(endpoint=base_url + "/xapi/", username=ADMIN[0], password=ADMIN[1], version="1.0.3")


def build_statement() -> tuple[Statement, Agent, Verb, Activity]:
    agent = Agent(name="Ada Lovelace ✓", mbox=f"mailto:ada-{uuid.uuid4().hex[:10]}@example.com")
    verb = Verb(id="http://adlnet.gov/expapi/verbs/completed", display=LanguageMap({"en-US": "completed"}))
    activity = Activity(
        id=f"https://lms.example/tincan/{uuid.uuid4()}",
        definition=ActivityDefinition(
            name=LanguageMap(
                {"en-US": "Analytical Engine basics", "fr-FR": "Bases de la machine analytique"}
            ),
            description=LanguageMap({"en-US": "An introduction"}),
            type="http://adlnet.gov/expapi/activities/lesson",
        ),
    )
    result = Result(
        score=Score(scaled=0.95, raw=95, min=0, max=100), success=True, completion=True, duration="PT12M30S"
    )
    context = Context(registration=str(uuid.uuid4()), language="en-US")
    return (
        Statement(actor=agent, verb=verb, object=activity, result=result, context=context),
        agent,
        verb,
        activity,
    )


def test_tincan_statement_round_trip_by_id_and_query(lrs, xapi):
    """AUTH-1, HDR-5, V2-28: save a statement built with tincan classes (POST, id assigned by the LRS),
    retrieve it by id and by an agent + verb + activity query, and compare field by field."""
    st, agent, verb, activity = build_statement()
    saved = lrs.save_statement(st)
    assert saved.success, saved.data
    assert saved.response.status == 200
    statement_id = saved.content.id
    assert uuid.UUID(str(statement_id))

    by_id = lrs.retrieve_statement(str(statement_id))
    assert by_id.success, by_id.data
    got = by_id.content
    assert str(got.id) == str(statement_id)
    assert got.actor.mbox == agent.mbox
    assert got.actor.name == "Ada Lovelace ✓"
    assert got.verb.id == verb.id
    assert got.object.id == activity.id
    assert dict(got.object.definition.name) == dict(activity.definition.name)
    assert got.result.score.raw == 95 and got.result.success is True
    assert got.context.registration == st.context.registration
    assert got.authority is not None and got.stored is not None

    query = lrs.query_statements({"agent": agent, "verb": verb, "activity": activity, "limit": 10})
    assert query.success, query.data
    found = query.content.statements
    assert [str(s.id) for s in found] == [str(statement_id)]

    # what the library sent is what the LRS keeps (compared with a plain HTTP read)
    raw = xapi.get("/statements", params={"statementId": str(statement_id)}).json()
    sent = json.loads(st.to_json("1.0.3"))
    for key in ("actor", "verb", "object"):
        assert raw[key] == sent[key]


def test_tincan_put_statement_with_its_own_id(lrs):
    """A statement with a client-chosen id goes through PUT ?statementId (204) and reads back."""
    st, *_ = build_statement()
    st.id = str(uuid.uuid4())
    saved = lrs.save_statement(st)
    assert saved.success, saved.data
    assert saved.response.status == 204
    assert str(lrs.retrieve_statement(str(st.id)).content.id) == str(st.id)


def test_tincan_state_document_round_trip(lrs):
    """STATE-3, CONC-2: save a state document with tincan, list its id, retrieve it byte-exact with its
    Content-Type and a SHA-1 ETag, then delete it."""
    _, agent, _, activity = build_statement()
    content = json.dumps({"bookmark": "page-7", "note": "ascii only"}).encode()
    document = StateDocument(
        id="tincan-state",
        activity=activity,
        agent=agent,
        content=bytearray(content),
        content_type="application/json",
    )
    saved = lrs.save_state(document)
    assert saved.success, saved.data
    assert saved.response.status == 204

    ids = lrs.retrieve_state_ids(activity, agent)
    assert ids.success, ids.data
    assert ids.content == ["tincan-state"]

    got = lrs.retrieve_state(activity, agent, "tincan-state")
    assert got.success, got.data
    assert bytes(got.content.content) == content
    assert got.response.getheader("content-type") == "application/json"
    assert got.response.getheader("etag") == '"' + hashlib.sha1(content).hexdigest() + '"'

    deleted = lrs.delete_state(got.content)
    assert deleted.success, deleted.data
    missing = lrs.retrieve_state(activity, agent, "tincan-state")
    assert missing.response.status == 404
