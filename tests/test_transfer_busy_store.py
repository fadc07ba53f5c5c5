"""A store that keeps refusing a write as busy (``StoreBusyError``: on MongoDB, a transaction a
killed process left open conflicts with every write touching the same records until the server
ends it, 60 s later): ``lrs import`` waits and stores the batch again, and POST /statements
answers 503 (nothing stored, send it again), never 500."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from lrs.auth.credentials import Principal
from lrs.store.ports import StoreBusyError
from lrs.usecases.errors import Busy
from lrs.usecases.statements import store_statements
from lrs.usecases.stores import Stores
from lrs.usecases.transfer import Importer
from lrs.xapi.models import XapiVersion

from .conftest import statement

WRITER = Principal("importer", frozenset({"statements/write"}), {"mbox": "mailto:importer@example.com"})


class BusyStatements:
    """A statement store whose writes are refused as busy ``busy`` times, then stored."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.attempts = 0
        self.stored: list[str] = []

    async def existing(self, ids: list[str]) -> set[str]:
        return set(ids) & set(self.stored)

    async def store(self, prepared, attachments, same, define) -> None:
        self.attempts += 1
        if self.attempts <= self.busy:
            raise StoreBusyError("statement write conflicted 20 times: WriteConflict")
        self.stored += [p.id for p in prepared]


class Records:
    def __init__(self, statements: list[dict[str, Any]]) -> None:
        self.statements = statements
        self.committed: list[Any] = []

    async def records(self):
        for n, st in enumerate(self.statements):
            yield {"statement": st}, n

    async def commit(self, position: Any) -> None:
        self.committed.append(position)


def stores(statements: BusyStatements) -> Stores:
    return Stores(statements, None, None)  # type: ignore[arg-type]  (statements only)


def test_an_import_waits_while_the_store_is_busy_then_stores_the_batch():
    sent = [statement(id=str(uuid.uuid4())) for _ in range(5)]
    store = BusyStatements(busy=2)
    importer = Importer(stores(store), WRITER, max_depth=100, batch=10)
    started = time.monotonic()
    report = asyncio.run(importer.run(Records(sent)))
    assert time.monotonic() - started >= 1.5  # waited 0.5 s, then 1 s, before the third attempt
    assert store.attempts == 3
    assert store.stored == [s["id"] for s in sent]
    assert (report.new, report.refused, report.conflicts) == (5, 0, 0)


def test_an_import_stops_when_the_store_stays_busy_and_commits_nothing_unstored():
    store = BusyStatements(busy=1000)
    importer = Importer(stores(store), WRITER, max_depth=100, batch=10)
    importer.busy_seconds = 0.4
    source = Records([statement(id=str(uuid.uuid4())) for _ in range(3)])
    with pytest.raises(StoreBusyError):
        asyncio.run(importer.run(source))
    assert store.attempts == 2 and store.stored == []
    assert source.committed == []  # a resumed import starts from the first record again


def test_post_statements_answers_503_when_the_store_stays_busy():
    store = BusyStatements(busy=1)
    with pytest.raises(Busy) as refused:
        asyncio.run(store_statements(stores(store), WRITER, XapiVersion.V1, [statement()], max_depth=100))
    assert refused.value.status == 503 and "send it again" in refused.value.message
    assert store.stored == []
