"""Connection pool and versioned migrations for the PostgreSQL adapters."""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

from ..ports import DEFAULT_TENANT

log = logging.getLogger(__name__)

APPLICATION_NAME = "lrs"
"""Every LRS connection announces itself with this name; consistent-through looks for it."""

_MIGRATION_LOCK = 0x4C5253  # pg_advisory_xact_lock key: "LRS"


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb travels as raw JSON bytes both ways: statements are serialised once with orjson
    # and served without being parsed again.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: b"\x01" + value,
        decoder=lambda value: value[1:],
        format="binary",
    )
    await conn.set_type_codec(
        "json", schema="pg_catalog", encoder=lambda value: value, decoder=lambda value: value, format="binary"
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Connections keep no session state (no LISTEN, temp tables or settings): skip the reset query."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    custom_plans: bool = False,
    application_name: str = APPLICATION_NAME,
    schema: str | None = None,
    idle_seconds: float = 300.0,
) -> asyncpg.Pool:
    """A pool of connections that exchange JSON as bytes and announce ``APPLICATION_NAME``.

    ``application_name``: only connections that write statements may use ``APPLICATION_NAME``;
    consistent-through waits for their open transactions.

    ``custom_plans``: plan every execution with its parameters. Statement queries need it (a
    generic plan cannot know whether a lookup key matches ten rows or a million); the write path
    does not, and re-planning its statements each time would cost more than running them.
    These connections also plan pages as index walks only (see migration 0003): a page of
    ``limit`` rows walks one key's index in stored order and probes the others, which a merge or
    hash join (or parallel workers, whose start-up alone costs more than such a page) cannot
    stop early on when the planner misjudges how the keys overlap, with joins in the order the
    query writes them (the key walks first, then the statements they reach).

    ``schema``: a tenant's schema (``lrs.store.postgres.tenants``), the connections' only
    ``search_path``: every statement they prepare names that schema's tables, so a connection of
    one tenant cannot reach another's. ``idle_seconds``: connections unused this long are closed.
    """
    settings = {"application_name": application_name, "jit": "off"}
    if schema is not None:
        settings["search_path"] = quote_identifier(schema)
    if custom_plans:
        settings["plan_cache_mode"] = "force_custom_plan"
        settings["enable_mergejoin"] = "off"
        settings["enable_hashjoin"] = "off"
        settings["max_parallel_workers_per_gather"] = "0"
        settings["enable_bitmapscan"] = "off"
        settings["enable_sort"] = "off"
        settings["join_collapse_limit"] = "1"
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_no_reset,
        server_settings=settings,
        max_inactive_connection_lifetime=idle_seconds,
    )


def writers_name(tenant: str | None) -> str:
    """The ``application_name`` of a tenant's writers (``None`` or the default tenant: the LRS's
    own): the consistent instant of a tenant waits for its writers."""
    return APPLICATION_NAME if tenant in (None, DEFAULT_TENANT) else f"{APPLICATION_NAME}:{tenant}"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _migrations(package: str) -> list[tuple[int, str, str]]:
    folder = resources.files(package) / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(
    pool: asyncpg.Pool, package: str = "lrs.store.postgres", table: str = "lrs_schema_migrations"
) -> list[str]:
    """Apply the pending ``<package>/migrations/NNNN_*.sql`` in order, each in its own
    transaction, recording them in ``table``; returns their names.

    Concurrent starters (several LRS replicas or workers) serialise on an advisory lock.
    """
    applied = []
    async with pool.acquire() as conn:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table}"
            " (version int PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in _migrations(package):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                done = await conn.fetchval(f"SELECT 1 FROM {table} WHERE version = $1", version)
                if done:
                    continue
                await conn.execute(sql)
                await conn.execute(f"INSERT INTO {table} (version, name) VALUES ($1, $2)", version, name)
                applied.append(name)
                log.info("applied migration %s", name)
    return applied
