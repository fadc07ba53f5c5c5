"""Contract tests of the storage ports (``lrs.store.ports``), run against every adapter.

The HTTP tests prove the LRS; these prove an adapter keeps the promises the use cases rely on,
so a new adapter is done when it passes this module unchanged. Adapters are those of conftest's
``STORES``; each test gets fresh stores on its own event loop.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest

from lrs.auth.credentials import new_credential
from lrs.store import open_stores
from lrs.store.ports import (
    AttachmentContent,
    ConflictError,
    Delete,
    Document,
    DocumentKind,
    DocumentScope,
    InvalidCursor,
    StatementQuery,
    Write,
)
from lrs.usecases.stores import Stores
from lrs.xapi.compare import same_statement
from lrs.xapi.indexkeys import index_key, lookup_key
from lrs.xapi.models import XapiVersion
from lrs.xapi.statements import prepare

from .conftest import STORES, statement, unique_activity, unique_agent, voiding

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "urn:test", "name": "contract"}}


class Harness:
    """Stores of one adapter plus a way to run coroutines on the loop that owns them."""

    def __init__(self, runner: asyncio.Runner, stores: Stores, url: str) -> None:
        self.runner, self.stores, self.url = runner, stores, url

    def __call__(self, coroutine: Coroutine) -> Any:
        return self.runner.run(coroutine)

    def store(
        self, *statements: dict, define: bool = True, attachments: list[AttachmentContent] = ()
    ) -> list[str]:
        prepared = [prepare(s, AUTHORITY, XapiVersion.V1) for s in statements]
        self(self.stores.statements.store(prepared, list(attachments), same_statement, define))
        return [p.id for p in prepared]

    def document(self, statement_id: str) -> dict:
        found = self(self.stores.statements.get(statement_id))
        assert found is not None
        return orjson.loads(found.document)

    def query(self, **fields: Any) -> list[dict]:
        """Every statement the query matches, page after page (limit 2 to exercise cursors)."""
        query = StatementQuery(**{"limit": 2, **fields})
        found = []
        while True:
            page = self(self.stores.statements.query(query))
            found.extend(orjson.loads(s.document) for s in page.statements)
            if page.cursor is None:
                return found
            query.cursor, query.snapshot = page.cursor, page.snapshot


@pytest.fixture(params=sorted(STORES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    url = request.getfixturevalue(STORES[request.param])
    with asyncio.Runner() as runner:
        backend = runner.run(open_stores(url, pool_min=1, pool_max=4))
        yield Harness(runner, Stores(backend.statements, backend.documents, backend.credentials), url)
        runner.run(backend.close())


def keys_of(kind: str, value: str) -> list[str]:
    return [f"{kind}:{value}"]


# --- StatementStore ----------------------------------------------------------------------------------


def test_store_assigns_stored_and_timestamp_and_get_returns_it(harness: Harness):
    sent = statement()
    (sid,) = harness.store(sent)
    found = harness(harness.stores.statements.get(sid))
    doc = orjson.loads(found.document)
    assert doc["actor"] == sent["actor"] and doc["authority"] == AUTHORITY
    assert doc["stored"] == doc["timestamp"] and doc["stored"].endswith("Z")
    assert not found.voided
    assert harness(harness.stores.statements.get(str(uuid.uuid4()))) is None


def test_same_id_same_content_is_skipped_different_content_conflicts_atomically(harness: Harness):
    first = statement(id=str(uuid.uuid4()))
    harness.store(first)
    harness.store(dict(first))  # identical re-send: no error, nothing changes
    bystander = statement(id=str(uuid.uuid4()))
    with pytest.raises(ConflictError):
        harness.store(bystander, {**first, "verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}})
    assert harness(harness.stores.statements.get(bystander["id"])) is None  # the batch stored nothing
    assert harness.document(first["id"])["verb"] == first["verb"]


def test_voiding_marks_the_target_in_either_arrival_order(harness: Harness):
    target = statement(id=str(uuid.uuid4()))
    harness.store(target)
    (voider,) = harness.store(voiding(target["id"]))
    assert harness(harness.stores.statements.get(target["id"])).voided
    late_target_id = str(uuid.uuid4())
    harness.store(voiding(late_target_id))  # the voiding statement first ...
    harness.store(statement(id=late_target_id))  # ... then its target: voided on arrival
    assert harness(harness.stores.statements.get(late_target_id)).voided
    harness.store(voiding(voider))  # a voiding statement cannot be voided
    assert not harness(harness.stores.statements.get(voider)).voided


def test_query_matches_keys_orders_by_stored_and_pages_completely(harness: Harness):
    agent = unique_agent()
    ids = [harness.store(statement(agent))[0] for _ in range(5)]
    other = harness.store(statement())[0]
    key = keys_of("a", "mbox:" + agent["mbox"])
    newest_first = [s["id"] for s in harness.query(keys=key)]
    assert newest_first == ids[::-1] and other not in newest_first
    assert [s["id"] for s in harness.query(keys=key, ascending=True)] == ids


def test_query_since_is_exclusive_until_inclusive(harness: Harness):
    agent = unique_agent()
    ids = [harness.store(statement(agent))[0] for _ in range(3)]
    stored = [harness(harness.stores.statements.get(i)).stored for i in ids]
    key = keys_of("a", "mbox:" + agent["mbox"])
    assert [s["id"] for s in harness.query(keys=key, since=stored[0], ascending=True)] == ids[1:]
    assert [s["id"] for s in harness.query(keys=key, until=stored[1], ascending=True)] == ids[:2]


def test_snapshot_keeps_later_statements_out_of_a_result(harness: Harness):
    agent = unique_agent()
    key = keys_of("a", "mbox:" + agent["mbox"])
    harness.store(statement(agent), statement(agent), statement(agent))
    first = harness(harness.stores.statements.query(StatementQuery(keys=key, limit=2, ascending=True)))
    harness.store(statement(agent))  # arrives while a client pages
    rest = harness(
        harness.stores.statements.query(
            StatementQuery(keys=key, limit=2, ascending=True, cursor=first.cursor, snapshot=first.snapshot)
        )
    )
    assert len(first.statements) + len(rest.statements) == 3 and rest.cursor is None


def test_voided_statements_leave_queries_but_their_referrers_match_their_keys(harness: Harness):
    activity = unique_activity()
    (target,) = harness.store(statement(obj=activity))
    (voider,) = harness.store(voiding(target))
    found = [s["id"] for s in harness.query(keys=keys_of("o", activity["id"]))]
    assert found == [voider]


def test_statement_ref_inherits_keys_of_a_target_that_arrives_later(harness: Harness):
    activity = unique_activity()
    target_id = str(uuid.uuid4())
    (ref,) = harness.store(statement(obj={"objectType": "StatementRef", "id": target_id}))
    assert harness.query(keys=keys_of("o", activity["id"])) == []
    harness.store(statement(obj=activity, id=target_id))
    assert {s["id"] for s in harness.query(keys=keys_of("o", activity["id"]))} == {ref, target_id}


def test_invalid_cursor_is_refused(harness: Harness):
    with pytest.raises(InvalidCursor):
        harness(harness.stores.statements.query(StatementQuery(cursor="not-a-cursor")))


def test_consistent_through_covers_committed_statements(harness: Harness):
    (sid,) = harness.store(statement())
    stored = harness(harness.stores.statements.get(sid)).stored
    assert harness(harness.stores.statements.consistent_through()) >= stored


def test_canonical_definitions_merge_languages_only_with_define(harness: Harness):
    activity_id = unique_activity()["id"]
    harness.store(statement(obj={"id": activity_id, "definition": {"name": {"en-US": "Lesson"}}}))
    harness.store(statement(obj={"id": activity_id, "definition": {"name": {"fr-FR": "Leçon"}}}))
    harness.store(
        statement(obj={"id": activity_id, "definition": {"name": {"de-DE": "Lektion"}}}), define=False
    )
    definition = harness(harness.stores.statements.activity_definition(activity_id))
    assert definition == {"name": {"en-US": "Lesson", "fr-FR": "Leçon"}}
    activities, verbs = harness(
        harness.stores.statements.canonical([activity_id], ["http://adlnet.gov/expapi/verbs/completed"])
    )
    assert activities[activity_id] == definition
    assert verbs["http://adlnet.gov/expapi/verbs/completed"]["en-US"] == "completed"


def test_agent_names_are_recorded_per_identity(harness: Harness):
    agent = unique_agent("Ada")
    harness.store(statement(agent), statement({**agent, "name": "Ada L."}))
    names = harness(harness.stores.statements.agent_names("mbox:" + agent["mbox"]))
    assert sorted(names) == ["Ada", "Ada L."]


def test_attachments_are_stored_once_per_hash(harness: Harness):
    content = uuid.uuid4().bytes + b"\x00\r\n"
    sha2 = __import__("hashlib").sha256(content).hexdigest()
    meta = {"usageType": "http://example.com/u", "display": {"en-US": "a"}, "contentType": "text/plain",
            "length": len(content), "sha2": sha2}  # fmt: skip
    blob = AttachmentContent(sha2, "text/plain", content)
    harness.store(statement(attachments=[meta]), attachments=[blob])
    harness.store(statement(attachments=[meta]), attachments=[blob])
    assert harness(harness.stores.statements.attachments([sha2])) == [blob]


# --- DocumentStore -----------------------------------------------------------------------------------


def test_document_update_runs_decide_on_the_current_document(harness: Harness):
    documents = harness.stores.documents
    scope = DocumentScope(DocumentKind.STATE, unique_activity()["id"], "mbox:mailto:a@example.com", "")
    seen: list[Document | None] = []

    def write(content: bytes) -> Callable[[Document | None], Write]:
        def decide(current: Document | None) -> Write:
            seen.append(current)
            return Write(content, "application/json", f'"{len(content)}"')

        return decide

    harness(documents.update(scope, "s1", write(b'{"a":1}')))
    harness(documents.update(scope, "s1", write(b'{"a":22}')))
    assert seen[0] is None and seen[1].content == b'{"a":1}'
    assert harness(documents.get(scope, "s1")).content == b'{"a":22}'

    def refuse(current: Document | None):
        raise ValueError("precondition failed")

    with pytest.raises(ValueError):
        harness(documents.update(scope, "s1", refuse))
    assert harness(documents.get(scope, "s1")).content == b'{"a":22}'  # untouched
    harness(documents.update(scope, "s1", lambda current: Delete()))
    assert harness(documents.get(scope, "s1")) is None


def test_document_ids_since_and_scoped_delete_all(harness: Harness):
    documents = harness.stores.documents
    activity = unique_activity()["id"]
    mine = DocumentScope(DocumentKind.STATE, activity, "mbox:mailto:me@example.com", "")
    theirs = DocumentScope(DocumentKind.STATE, activity, "mbox:mailto:them@example.com", "")
    for scope, doc_id in ((mine, "a"), (mine, "b"), (theirs, "c")):
        harness(documents.update(scope, doc_id, lambda current: Write(b"x", "text/plain", '"x"')))
    ids, latest = harness(documents.ids(mine, None))
    assert ids == ["a", "b"] and latest is not None
    assert harness(documents.ids(mine, latest))[0] == []
    assert harness(documents.ids(mine, latest - timedelta(seconds=60)))[0] == ["a", "b"]
    harness(documents.delete_all(mine))
    assert harness(documents.ids(mine, None))[0] == []
    assert harness(documents.ids(theirs, None))[0] == ["c"]


# --- CredentialStore ---------------------------------------------------------------------------------


def test_credentials_save_find_revoke(harness: Harness):
    credentials = harness.stores.credentials
    credential, _ = new_credential("player", ["statements/write"], "urn:test")
    harness(credentials.save(credential))
    found = harness(credentials.find(credential.key))
    assert found.scopes == frozenset({"statements/write"}) and found.revoked is None
    assert harness(credentials.revoke(credential.key)) is True
    assert harness(credentials.revoke(credential.key)) is False
    assert harness(credentials.find(credential.key)).revoked is not None
    harness(credentials.save(credential))  # saving again restores it
    assert harness(credentials.find(credential.key)).revoked is None
    assert credential.key in [c.key for c in harness(credentials.all())]


# --- values that look like query operators -----------------------------------------------------------


OPERATOR_LOOKALIKES = ['{"$gt": ""}', "$gt", "$where", '{"$ne": null}']


@pytest.mark.parametrize("value", OPERATOR_LOOKALIKES)
def test_values_that_look_like_query_operators_are_matched_literally(harness: Harness, value: str):
    """Lookup keys, agent keys, activity and document ids are data, never query syntax: a value
    such as ``{"$gt": ""}`` or ``$where`` matches only itself (a MongoDB filter built from it
    by mistake would match everything, or fail)."""
    agent = {"objectType": "Agent", "name": value, "account": {"homePage": "urn:test", "name": value}}
    activity = {"id": f"https://lms.example/{uuid.uuid4()}/{value}", "definition": {"name": {"en": value}}}
    sid, _ = harness.store(statement(agent, obj=activity), statement(obj=activity))
    agent_key = "account:" + orjson.dumps(["urn:test", value]).decode()
    found = harness.query(keys=["a:" + agent_key])
    assert [s["id"] for s in found] == [sid]
    assert harness.query(keys=[value]) == [] and harness.query(keys=["a:" + value]) == []
    assert harness(harness.stores.statements.agent_names(agent_key)) == [value]
    assert harness(harness.stores.statements.agent_names(value)) == []
    assert harness(harness.stores.statements.activity_definition(activity["id"])) == {"name": {"en": value}}
    assert harness(harness.stores.statements.activity_definition(value)) is None
    assert harness(harness.stores.credentials.find(value)) is None
    scope = DocumentScope(DocumentKind.STATE, value, value, value)
    harness(harness.stores.documents.update(scope, value, lambda current: Write(b"x", value, '"x"')))
    assert harness(harness.stores.documents.ids(scope, None))[0] == [value]
    other = DocumentScope(DocumentKind.STATE, "", "", "")
    assert harness(harness.stores.documents.get(other, value)) is None


# --- identifiers of any length ---------------------------------------------------------------------------
# xAPI sets no length limit on IRIs, mailto addresses or document ids; database index entries have
# one (PostgreSQL: about 2.7 KB). Stores index long values by their digest (lrs.xapi.indexkeys).


def incompressible(length: int) -> str:
    """``length`` characters a database cannot compress into an index entry (hex of random
    bytes, the same for the same length): repeated characters would compress and fit."""
    return random.Random(length).randbytes(length // 2 + 1).hex()[:length]


@pytest.mark.parametrize("length", [300, 3_000, 1_900_000])
def test_statements_with_long_identifiers_are_stored_and_found(harness: Harness, length: int):
    long_iri = "https://lms.example/" + uuid.uuid4().hex + "/é" + incompressible(length)
    verb = {"id": long_iri + "/verb", "display": {"en-US": "did"}}
    actor = {
        "objectType": "Agent",
        "name": "Long",
        "mbox": f"mailto:{incompressible(min(length, 5_000))}@{uuid.uuid4().hex}.example",
    }
    activity = {"id": long_iri + "/activity", "definition": {"name": {"en-US": "long"}}}
    parent = {"id": long_iri + "/parent"}
    sent = statement(actor, obj=activity, context={"contextActivities": {"parent": [parent]}})
    (sid,) = harness.store({**sent, "verb": verb})
    for key in (
        "v:" + verb["id"],
        "o:" + activity["id"],
        "O:" + parent["id"],
        "a:mbox:" + actor["mbox"],
    ):
        assert [s["id"] for s in harness.query(keys=[lookup_key(key)])] == [sid], key[:40]
    statements = harness.stores.statements
    assert harness(statements.activity_definition(activity["id"])) == activity["definition"]
    activities, verbs = harness(statements.canonical([activity["id"]], [verb["id"]]))
    assert activities == {activity["id"]: activity["definition"]} and verbs == {verb["id"]: verb["display"]}
    assert harness(statements.agent_names("mbox:" + actor["mbox"])) == ["Long"]
    assert harness.document(sid)["verb"]["id"] == verb["id"]  # the statement keeps the full value


def test_documents_with_long_identifiers_are_stored_found_listed_and_deleted(harness: Harness):
    documents = harness.stores.documents
    activity = "https://lms.example/" + incompressible(3_000)
    agent_key = "mbox:mailto:é" + incompressible(3_000) + f"@{uuid.uuid4().hex}.example"
    scope = DocumentScope(DocumentKind.STATE, activity, agent_key, "")
    long_id, other_id = incompressible(3_000) + "1", incompressible(3_000) + "2"
    for doc_id in (long_id, other_id):
        harness(
            documents.update(
                scope, doc_id, lambda current, d=doc_id: Write(d[-1].encode(), "text/plain", '"x"')
            )
        )
    assert harness(documents.get(scope, long_id)).content == b"1"
    assert harness(documents.get(scope, other_id)).content == b"2"
    assert harness(documents.ids(scope, None))[0] == [long_id, other_id]  # the full ids
    # an id spelled like the digest of another is its own document (no value poses as a digest)
    posing = index_key(long_id)
    harness(documents.update(scope, posing, lambda current: Write(b"posing", "text/plain", '"p"')))
    assert harness(documents.get(scope, long_id)).content == b"1"
    assert harness(documents.get(scope, posing)).content == b"posing"
    harness(documents.update(scope, long_id, lambda current: Delete()))
    assert harness(documents.get(scope, long_id)) is None
    harness(documents.delete_all(scope))
    assert harness(documents.ids(scope, None))[0] == []


# --- concurrency ---------------------------------------------------------------------------------------


def test_concurrent_writers_of_one_id_store_it_once_and_conflict_on_different_content(harness: Harness):
    """Writers racing on one id (several requests at once, through two servers' stores): identical
    statements are stored once and all succeed; of different ones, exactly one wins."""
    agent = unique_agent()
    sent = statement(agent, id=str(uuid.uuid4()))
    contested = str(uuid.uuid4())
    variants = [
        statement(agent, verb=verb, id=contested) for verb in ("completed", "attempted", "experienced")
    ]

    async def race() -> list[BaseException | None]:
        other = await open_stores(harness.url, pool_min=1, pool_max=2)  # another server's
        try:
            stores = [harness.stores.statements.store, other.statements.store]

            def write(i: int, st: dict) -> Coroutine:
                return stores[i % 2]([prepare(st, AUTHORITY, XapiVersion.V1)], [], same_statement, True)

            copies = [write(i, sent) for i in range(4)]
            rivals = [write(i, v) for i, v in enumerate(variants)]
            return await asyncio.gather(*copies, *rivals, return_exceptions=True)
        finally:
            await other.close()

    outcomes = harness(race())
    assert outcomes[:4] == [None] * 4
    assert sum(o is None for o in outcomes[4:]) == 1
    assert all(isinstance(o, ConflictError) for o in outcomes[4:] if o is not None)
    found = harness.query(keys=keys_of("a", "mbox:" + agent["mbox"]))
    assert sorted(s["id"] for s in found) == sorted([sent["id"], contested])


def test_concurrent_document_updates_each_see_the_previous_one(harness: Harness):
    """update() runs decide on the current document with it locked: concurrent read-modify-write
    increments lose none."""
    documents = harness.stores.documents
    scope = DocumentScope(DocumentKind.STATE, unique_activity()["id"], "mbox:mailto:c@example.com", "")

    def increment(current: Document | None) -> Write:
        count = 1 + (int(current.content) if current else 0)
        return Write(str(count).encode(), "text/plain", f'"{count}"')

    async def race() -> None:
        await asyncio.gather(*(documents.update(scope, "counter", increment) for _ in range(12)))

    harness(race())
    assert harness(documents.get(scope, "counter")).content == b"12"


def test_document_content_is_kept_byte_for_byte(harness: Harness):
    documents = harness.stores.documents
    scope = DocumentScope(DocumentKind.AGENT_PROFILE, "", "mbox:mailto:b@example.com", "")
    content = bytes(range(256)) * 3 + b"\x00\xff\xfe"
    harness(
        documents.update(scope, "blob", lambda current: Write(content, "application/octet-stream", '"b"'))
    )
    found = harness(documents.get(scope, "blob"))
    assert found.content == content and found.content_type == "application/octet-stream"


# --- export and restore (lrs export / lrs import) -------------------------------------------------


def test_query_with_voided_returns_every_statement_in_store_order_marking_the_voided(harness: Harness):
    activity = unique_activity()
    ids = harness.store(statement(obj=activity), statement(obj=activity), statement(obj=activity))
    (voider,) = harness.store(voiding(ids[1]))
    key = keys_of("o", activity["id"])
    assert [s["id"] for s in harness.query(keys=key, ascending=True)] == [ids[0], ids[2], voider]
    found = []
    query = StatementQuery(keys=key, limit=2, ascending=True, voided=True)
    while True:
        page = harness(harness.stores.statements.query(query))
        found += [(s.id, s.voided) for s in page.statements]
        if page.cursor is None:
            break
        query.cursor, query.snapshot = page.cursor, page.snapshot
    assert found == [(ids[0], False), (ids[1], True), (ids[2], False), (voider, False)]
    # without keys: the whole store in store order, the voiding statement after its target
    everything: list[tuple[str, bool]] = []
    query = StatementQuery(limit=50, ascending=True, voided=True)
    while True:
        page = harness(harness.stores.statements.query(query))
        everything += [(s.id, s.voided) for s in page.statements]
        if page.cursor is None:
            break
        query.cursor, query.snapshot = page.cursor, page.snapshot
    mine = [pair for pair in everything if pair[0] in {*ids, voider}]
    assert mine == [(ids[0], False), (ids[1], True), (ids[2], False), (voider, False)]
    assert len({i for i, _ in everything}) == len(everything)


def _exported(harness: Harness, limit: int = 2) -> list:
    found, after = [], None
    while True:
        page, after = harness(harness.stores.documents.export(after, limit))
        found += page
        if after is None:
            return found


def test_documents_export_every_document_once_and_restore_without_overwriting(harness: Harness):
    documents = harness.stores.documents
    activity = "https://lms.example/" + incompressible(400)  # indexed by its digest
    scopes = [
        DocumentScope(DocumentKind.STATE, activity, "mbox:mailto:x@example.com", str(uuid.uuid4())),
        DocumentScope(DocumentKind.ACTIVITY_PROFILE, activity),
        DocumentScope(DocumentKind.AGENT_PROFILE, agent_key="mbox:mailto:" + incompressible(300) + "@x.org"),
    ]
    for n, scope in enumerate(scopes):
        for doc_id in ("one", "two"):
            content = f"{n}/{doc_id}".encode() + b"\x00\xff"
            harness(documents.update(scope, doc_id, lambda c, b=content: Write(b, "application/x-b", '"e"')))
    keys = {index_key(activity), index_key(scopes[2].agent_key)}
    everything = _exported(harness)
    identities = [(d.kind, d.activity_key, d.agent_key, d.registration, d.doc_id) for d in everything]
    assert len(identities) == len(set(identities))
    mine = [d for d in everything if d.activity_key in keys or d.agent_key in keys]
    assert len(mine) == 6
    assert {d.content for d in mine} == {
        f"{n}/{i}".encode() + b"\x00\xff" for n in range(3) for i in ("one", "two")
    }
    assert all(d.content_type == "application/x-b" and d.etag == '"e"' for d in mine)
    # restoring what is there changes nothing; other content is a conflict, never written
    assert harness(documents.restore(mine)) == []
    changed = [replace(mine[0], content=b"other")]
    assert harness(documents.restore(changed)) == changed
    assert harness(documents.get(scopes[mine[0].kind - 1], mine[0].doc_id)).content != b"other"
    # restoring into an empty place creates them as they were, long identifiers included
    for scope in scopes:
        harness(documents.delete_all(scope))
    assert harness(documents.restore(mine)) == []
    for scope, d in zip(scopes, sorted(mine, key=lambda d: d.kind)[::2], strict=True):
        assert d.kind == scope.kind
        got = harness(documents.get(scope, d.doc_id))
        assert (got.content, got.content_type, got.etag) == (d.content, d.content_type, d.etag)
        assert abs((got.updated - d.updated).total_seconds()) < 0.002
        assert harness(documents.ids(scope, None))[0] == ["one", "two"]


def test_documents_export_refuses_a_position_it_did_not_issue(harness: Harness):
    with pytest.raises(InvalidCursor):
        harness(harness.stores.documents.export("not a position", 10))


def test_existing_names_the_stored_ids(harness: Harness):
    ids = harness.store(statement(), statement())
    absent = str(uuid.uuid4())
    assert harness(harness.stores.statements.existing([*ids, absent])) == set(ids)
    assert harness(harness.stores.statements.existing([])) == set()


# --- erasure (docs/data-rights.md) -------------------------------------------------------------------


def test_erase_deletes_statements_rewrites_redacted_ones_and_frees_unreferenced_attachments(harness: Harness):
    from lrs.store.ports import Rewrite
    from lrs.xapi.statements import index_keys

    learner, other = unique_agent("Erased"), unique_agent("Other")
    key = "mbox:" + learner["mbox"]

    def attachment(content: bytes) -> tuple[dict, AttachmentContent]:
        sha2 = __import__("hashlib").sha256(content).hexdigest()
        meta = {"usageType": "http://example.com/u", "display": {"en-US": "a"}, "contentType": "text/plain",
                "length": len(content), "sha2": sha2}  # fmt: skip
        return meta, AttachmentContent(sha2, "text/plain", content)

    own_meta, own_blob = attachment(uuid.uuid4().bytes)
    shared_meta, shared_blob = attachment(uuid.uuid4().bytes)
    mine = harness.store(
        statement(learner, attachments=[own_meta, shared_meta]), attachments=[own_blob, shared_blob]
    )
    mine += harness.store(statement(learner))
    (kept,) = harness.store(statement(other, attachments=[shared_meta]), attachments=[shared_blob])
    (instructed,) = harness.store(statement(other, context={"instructor": learner}))
    scope = DocumentScope(DocumentKind.STATE, "https://lms.example/a", key, "")
    other_scope = DocumentScope(DocumentKind.STATE, "https://lms.example/a", "mbox:" + other["mbox"], "")
    for s in (scope, other_scope, DocumentScope(DocumentKind.AGENT_PROFILE, "", key, "")):
        harness(harness.stores.documents.update(s, "d", lambda _: Write(b"{}", "application/json", '"e"')))

    redacted = {k: v for k, v in harness.document(instructed).items() if k != "context"}
    rewrite = Rewrite(instructed, orjson.dumps(redacted), {lookup_key(k) for k in index_keys(redacted)})
    erased = harness(harness.stores.statements.erase(mine, [rewrite], [key]))
    assert (erased.statements, erased.redacted, erased.attachments, erased.agent_names) == (2, 1, 1, 1)
    assert [harness(harness.stores.statements.get(i)) for i in mine] == [None, None]
    assert "context" not in harness.document(instructed)
    assert harness.query(keys=keys_of("A", key), voided=True) == []
    assert [s["id"] for s in harness.query(keys=keys_of("A", "mbox:" + other["mbox"]))] == [instructed, kept]
    assert harness(harness.stores.statements.attachments([own_blob.sha2, shared_blob.sha2])) == [shared_blob]
    assert harness(harness.stores.statements.agent_names(key)) == []
    assert harness(harness.stores.documents.erase_agents([key])) == 2
    assert harness(harness.stores.documents.get(scope, "d")) is None
    assert harness(harness.stores.documents.get(other_scope, "d")) is not None
    again = harness(harness.stores.statements.erase(mine, [], [key]))  # a rerun finds nothing left
    assert (again.statements, again.attachments, again.agent_names) == (0, 0, 0)
