"""Erasing a learner from every store (issue 16; the rules: ``lrs.xapi.erasure``,
docs/data-rights.md). ``lrs erase`` and ``POST /admin/erasures`` both run ``EraseLearner``.

1. The learner's identity keys and student ids, closed under the catalog's student mapping.
2. Every statement naming them (one key lookup per identity, voided ones too): erased, redacted,
   or kept with recomputed lookup keys (it had inherited them from an erased statement).
3. The record and the sinks' task are written first (from then on the workers drop the learner's
   statements still in flight), then the statement store, the document store and the LMS's own
   tables are erased, then the workers are woken to erase in the sinks; the answer waits for them
   up to ``LRS_ERASURE_WAIT_SECONDS``.

Every step is idempotent and a rerun of the same learner reopens the unfinished record, so an
interrupted erasure is completed by running it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lrs.store.ports import DEFAULT_TENANT, Rewrite, StatementQuery
from lrs.xapi.agents import ifi_key
from lrs.xapi.erasure import keyed_hash, learner_keys, redact, referred, student_key, verdict, voided_target
from lrs.xapi.indexkeys import lookup_key
from lrs.xapi.models import Agent, Group
from lrs.xapi.statements import INHERITED_PREFIXES, index_keys
from sinks.ports import ErasureLedger, ErasureTask

from .errors import BadRequest, Forbidden, NotFound
from .stores import Stores

ADMIN_SCOPE = "admin"
PAGE = 500


class ErasureRequest(BaseModel):
    """Whom to erase: an agent (by any of its identifiers) or a catalog student id."""

    model_config = ConfigDict(extra="forbid")
    agent: dict[str, Any] | None = None
    student_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    dry_run: bool = False


def read_request(raw: Any) -> ErasureRequest:
    """A request body as sent (400 when it is not one)."""
    try:
        request = ErasureRequest.model_validate(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        raise BadRequest(f"erasure request: {where}: {problem['msg']}") from None
    if (request.agent is None) == (request.student_id is None):
        raise BadRequest("erasure request: give exactly one of 'agent' and 'student_id'")
    if request.agent is not None:
        try:
            model = Group if request.agent.get("objectType") == "Group" else Agent
            model.model_validate(request.agent)
        except ValidationError as exc:
            raise BadRequest(
                f"erasure request: 'agent' is not an xAPI Agent: {exc.errors()[0]['msg']}"
            ) from None
        if ifi_key(request.agent) is None:
            raise BadRequest(
                "erasure request: the agent needs an identifier (mbox, mbox_sha1sum, openid, account)"
            )
    return request


def check_access(scopes: Iterable[str]) -> None:
    """Erasures and their records need scope ``admin`` (which no xAPI scope grants): ``Forbidden``."""
    if ADMIN_SCOPE not in set(scopes):
        raise Forbidden("erasing learners and reading erasure records need a credential with scope 'admin'")


def _sha1_variant(key: str) -> str | None:
    """The ``mbox_sha1sum`` key of an ``mbox`` key."""
    return "sha1:" + hashlib.sha1(key[5:].encode()).hexdigest() if key.startswith("mbox:") else None


class EraseLearner:
    def __init__(
        self, stores: Stores | None, ledger: ErasureLedger, *, student_homepage: str | None = None,
        wait_seconds: float = 60.0,
    ) -> None:  # fmt: skip
        """``stores``: ``None`` until the server has opened them (``with_stores``)."""
        self.stores, self.ledger = stores, ledger
        self.student_homepage = student_homepage.rstrip("/") if student_homepage else None
        self.wait_seconds = wait_seconds

    async def __call__(
        self, scopes: Iterable[str], credential: str, request: ErasureRequest, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        """Erase a learner of ``tenant`` (whose stores this use case holds) from every store."""
        check_access(scopes)
        keys, students, asked = await self._identities(request, tenant)
        secret = await self.ledger.secret()
        subject = keyed_hash(secret, asked)
        found = await self._statements(keys)
        delete, rewrites = await self._decide(found, keys)
        # a Group actor or object that lost the learner is counted under another identity now: the
        # sinks drop its rows too (``lrs replay`` brings them back under the group's new identity)
        regrouped = {r.id for r in rewrites if _identity_changed(found[r.id][1], orjson.loads(r.document))}
        if request.dry_run:
            return {
                "dry_run": True, "subject": subject,
                "counts": {"statements": {"statements": len(delete), "redacted": sum(
                    1 for r in rewrites if r.document != found[r.id][0])},
                    "lms": {"students": len(students)}},
            }  # fmt: skip
        by_identity = sorted(
            {keyed_hash(secret, k) for k in keys} | {keyed_hash(secret, student_key(s)) for s in students}
        )
        task = await self.ledger.open_task(subject, by_identity, tenant)
        if task is None:
            task = ErasureTask(_new_id(), [], [], [], {}, [], tenant)  # the ledger lists the sinks
        task.identity_keys = sorted(set(task.identity_keys) | keys)
        task.student_ids = sorted(set(task.student_ids) | students)
        task.statement_ids = sorted(set(task.statement_ids) | delete | regrouped)
        task.redacted.update(
            {r.id: orjson.loads(r.document) for r in rewrites if r.document != found[r.id][0]}
        )
        hashes = sorted({keyed_hash(secret, k) for k in task.identity_keys}
                        | {keyed_hash(secret, student_key(s)) for s in task.student_ids})  # fmt: skip
        await self.ledger.begin(task, subject, hashes, credential)
        erased = await self.stores.statements.erase(sorted(delete), rewrites, sorted(keys))
        await self.ledger.add_counts(task.id, "statements", {
            "statements": erased.statements, "rewritten": erased.redacted, "attachments": erased.attachments,
            "agent_names": erased.agent_names,
        })  # fmt: skip
        documents = await self.stores.documents.erase_agents(sorted(keys))
        await self.ledger.add_counts(task.id, "documents", {"documents": documents})
        await self.ledger.add_counts(task.id, "lms", await self.ledger.forget_learner(task))
        await self.ledger.settle(task)  # complete at once when no sink has to erase
        await self.ledger.wake_workers()
        return await self._wait(task.id)

    def with_stores(self, stores: Stores) -> EraseLearner:
        return EraseLearner(
            stores, self.ledger, student_homepage=self.student_homepage, wait_seconds=self.wait_seconds
        )

    async def status(
        self, scopes: Iterable[str], erasure_id: str, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        """The record of one of the tenant's erasures (another tenant's is not found)."""
        check_access(scopes)
        try:
            wanted = str(uuid.UUID(erasure_id))
        except ValueError:
            raise NotFound(f"no erasure {erasure_id[:60]!r}") from None
        report = await self.ledger.report(wanted)
        if report is None or report.get("tenant", DEFAULT_TENANT) != tenant:
            raise NotFound(f"no erasure {wanted!r}")
        return report

    # --- steps -----------------------------------------------------------------------------------

    async def _identities(self, request: ErasureRequest, tenant: str) -> tuple[set[str], set[int], str]:
        keys: set[str] = set()
        students: set[int] = set()
        if request.agent is not None:
            try:
                keys = learner_keys(request.agent)
            except ValueError as exc:
                raise BadRequest(f"erasure request: {exc}") from None
            asked = ifi_key(request.agent) or ""
            account = request.agent.get("account") or {}
            if (
                self.student_homepage
                and str(account.get("homePage", "")).rstrip("/") == self.student_homepage
            ):
                if str(account.get("name", "")).isdigit():
                    students.add(int(account["name"]))
        else:
            students = {int(request.student_id or 0)}
            asked = student_key(int(request.student_id or 0))
        keys, students = await self.ledger.students_of(keys, students, tenant)
        if self.student_homepage:
            for sid in students:
                keys.add(ifi_key({"account": {"homePage": self.student_homepage, "name": str(sid)}}) or "")
        keys |= {v for k in list(keys) if (v := _sha1_variant(k))}
        keys.discard("")
        return keys, students, asked

    async def _statements(self, keys: set[str]) -> dict[str, tuple[bytes, dict[str, Any]]]:
        """Every statement with one of the identities among its related agents (voided ones too, and
        those that inherited the keys from a statement they refer to): id → (document, parsed)."""
        found: dict[str, tuple[bytes, dict[str, Any]]] = {}
        for key in sorted(keys):
            query = StatementQuery(keys=[lookup_key("A:" + key)], ascending=True, limit=PAGE, voided=True)
            while True:
                page = await self.stores.statements.query(query)
                for s in page.statements:
                    found.setdefault(s.id.lower(), (s.document, orjson.loads(s.document)))
                if page.cursor is None:
                    break
                query.cursor, query.snapshot = page.cursor, page.snapshot
        return found

    async def _decide(
        self, found: dict[str, tuple[bytes, dict[str, Any]]], keys: set[str]
    ) -> tuple[set[str], list[Rewrite]]:
        delete = {i for i, (_, doc) in found.items() if verdict(doc, keys) == "erase"}
        while True:  # voiding statements of erased ones go with them
            more = {i for i, (_, doc) in found.items() if i not in delete and voided_target(doc) in delete}
            if not more:
                break
            delete |= more
        kept = {i: redact(doc, keys) if verdict(doc, keys) == "redact" else doc
                for i, (_, doc) in found.items() if i not in delete}  # fmt: skip
        memo: dict[str, set[str]] = {}

        async def keys_of(statement_id: str, doc: dict[str, Any], depth: int = 0) -> set[str]:
            if statement_id in memo:
                return memo[statement_id]
            own = index_keys(doc)
            target = referred(doc)
            if target and target not in delete and depth < 16:
                if target in kept:
                    target_doc: dict[str, Any] | None = kept[target]
                else:
                    stored = await self.stores.statements.get(target)
                    target_doc = orjson.loads(stored.document) if stored else None
                if target_doc is not None:
                    own |= {
                        k for k in await keys_of(target, target_doc, depth + 1) if k[:2] in INHERITED_PREFIXES
                    }
            memo[statement_id] = own
            return own

        rewrites = []
        for statement_id, doc in kept.items():
            raw = found[statement_id][0] if doc is found[statement_id][1] else orjson.dumps(doc)
            rewrites.append(Rewrite(statement_id, raw, await keys_of(statement_id, doc)))
        return delete, rewrites

    async def _wait(self, erasure_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            report = await self.ledger.report(erasure_id) or {}
            if not report.get("pending_sinks") or time.monotonic() >= deadline:
                return report
            await asyncio.sleep(0.2)


def _identity_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return before.get("actor") != after.get("actor") or before.get("object") != after.get("object")


def _new_id() -> str:
    return str(uuid.uuid4())
