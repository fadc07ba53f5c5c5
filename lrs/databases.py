"""Where the data lives: the one place that decides it.

* The **statement store** (statements, documents, credentials): ``LRS_STORE`` (a MongoDB URL),
  else ``LRS_DATABASE_URL`` (PostgreSQL), else the embedded PostgreSQL in ``DATA/postgres``.
* The **LMS database** (schema ``lms``: the catalog, the progress rollups, domain events; see
  ``sinks.lms``): ``LRS_LMS_DATABASE_URL``, else the store's PostgreSQL, else — the store being
  MongoDB — the embedded PostgreSQL, started for it.

``lms_url`` answers from the settings alone (``None``: only an embedded server could hold the
LMS tables); ``databases`` also starts the embedded PostgreSQL when either needs it, and stops it
on the way out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .settings import StoreSettings
from .store import is_mongodb

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Places:
    store: str
    """The statement store's URL: a PostgreSQL DSN or a MongoDB URL."""
    lms: str
    """The LMS database's PostgreSQL DSN."""


def store_url(store: StoreSettings) -> str | None:
    """The statement store the settings name (``None``: the embedded PostgreSQL)."""
    return store.store or store.database_url


def lms_url(store: StoreSettings, store_dsn: str | None) -> str | None:
    """The LMS database for a statement store at ``store_dsn`` (``None``: an embedded one)."""
    if store.lms_database_url:
        return store.lms_database_url
    return store_dsn if store_dsn and not is_mongodb(store_dsn) else None


@contextmanager
def databases(store: StoreSettings, data_dir: Path) -> Iterator[Places]:
    """Where the store and the LMS tables are, with the embedded PostgreSQL running if either
    needs it (one already running on ``data_dir``, an ``lrs up`` elsewhere, is used as it is)."""
    given = store_url(store)
    lms = lms_url(store, given)
    if given is not None and lms is not None:
        yield Places(given, lms)
        return
    with embedded_postgres(data_dir) as dsn:
        yield Places(given or dsn, lms or dsn)


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """The embedded PostgreSQL of ``data_dir``: started for the block unless it already runs."""
    from lrs.runtime import embedded_engine

    embedded_engine("embedded_postgres", "the embedded PostgreSQL", "LRS_DATABASE_URL")
    from lrs.store.postgres.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(data_dir)
    if server.running():
        yield server.dsn
        return
    log.info("starting embedded PostgreSQL in %s", server.pgdata)
    server.start()
    try:
        yield server.dsn
    finally:
        server.stop()
        log.info("embedded PostgreSQL stopped")
