"""Loading the LMS catalog (``POST /catalog``, ``lrs catalog load``): one use case, one rule for
who may, one validation, whatever the door."""

from __future__ import annotations

from typing import Any

from lrs.store.ports import DEFAULT_TENANT
from sinks.catalog import CatalogDocument
from sinks.ports import CatalogStore

from .errors import Forbidden, LRSError, validated

CATALOG_SCOPE = "all"


class Unavailable(LRSError):
    status = 503


def read_document(raw: Any) -> CatalogDocument:
    """A catalog document from parsed JSON; ``BadRequest`` names the first problem and where."""
    return validated(CatalogDocument, raw, "a catalog document")


class LoadCatalog:
    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    async def __call__(
        self, scopes: frozenset[str], raw: Any, tenant: str = DEFAULT_TENANT
    ) -> dict[str, int]:
        """Merge a catalog document into the tenant's catalog in the LMS database (workers reload
        theirs); how many of each kind it held. Needs scope ``all``."""
        if CATALOG_SCOPE not in scopes:
            raise Forbidden(f"loading the catalog needs a credential with scope {CATALOG_SCOPE}")
        document = read_document(raw)
        try:
            return await self._store.save_catalog(document, tenant)
        except OSError as exc:
            raise Unavailable(f"the LMS database is unavailable: {exc}") from None
