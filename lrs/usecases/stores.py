"""The set of storage ports a running LRS works with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from lrs.store.ports import CredentialStore, DocumentStore, StatementStore


@dataclass
class Stores:
    statements: StatementStore
    documents: DocumentStore
    credentials: CredentialStore
    _consistent: tuple[float, datetime] | None = field(default=None, repr=False)

    async def consistent_through(self, max_age: float = 0.0) -> datetime:
        """The statement store's consistent-through instant, reused for ``max_age`` seconds.

        A reused value is older, hence still true: it only promises less.
        """
        now = time.monotonic()
        if self._consistent is None or now - self._consistent[0] > max_age:
            self._consistent = (now, await self.statements.consistent_through())
        return self._consistent[1]
