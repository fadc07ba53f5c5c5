"""The set of storage ports a running LRS works with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from lrs.auth.credentials import SessionGrant
from lrs.store.ports import CredentialStore, DocumentStore, StatementStore


class SessionWriter(Protocol):
    async def write(
        self, grant: SessionGrant, statements: list[dict[str, Any]],
        store: Callable[[list[dict[str, Any]]], Awaitable[list[str]]],
    ) -> list[str]:  # fmt: skip
        """Judge statements sent with a session token, store them with ``store``, follow up."""


@dataclass
class Stores:
    statements: StatementStore
    documents: DocumentStore
    credentials: CredentialStore
    cmi5: SessionWriter | None = None
    """Statements sent with cmi5 session tokens go through it (``lrs.usecases.cmi5.SessionWrites``)."""
    _consistent: tuple[float, datetime] | None = field(default=None, repr=False)

    async def consistent_through(self, max_age: float = 0.0) -> datetime:
        """The statement store's consistent-through instant, reused for ``max_age`` seconds.

        A reused value is older, hence still true: it only promises less.
        """
        now = time.monotonic()
        if self._consistent is None or now - self._consistent[0] > max_age:
            self._consistent = (now, await self.statements.consistent_through())
        return self._consistent[1]
