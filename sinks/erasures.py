"""Erasure records and tasks in the LMS database (``sinks/migrations/0006_erasure.sql``), the
LMS's own learner data (catalog mapping, cmi5 registrations, queued forwards), and what a worker
needs to drop statements of erased learners in flight (``ErasedIdentities``).

The LRS side (``lrs.usecases.erasure``) writes the record and the task, erases the statement and
document stores and this database's learner data, then wakes the workers (``ERASURE_CHANNEL``);
each worker refreshes its set of erased hashes, drains its sink lanes and erases in its sinks
(``streams.erasure``), recording each sink as done; the task (the only row with personal data)
is deleted once every sink of the record has erased.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from lrs.xapi.erasure import keyed_hash, student_key

from lrs.store.ports import DEFAULT_TENANT

from .lms import CATALOG_CHANNEL, LmsDatabase
from .ports import ErasureTask

ERASURE_CHANNEL = "lrs_erasure"


def _task(row: asyncpg.Record) -> ErasureTask:
    return ErasureTask(
        str(row["erasure_id"]), list(row["identity_keys"]), list(row["student_ids"]),
        list(row["statement_ids"]), orjson.loads(row["redacted"]), list(row["sinks"]), row["tenant"],
    )  # fmt: skip


_TASKS = """
SELECT t.*, e.sinks FROM lms.erasure_tasks t JOIN lms.erasures e ON e.id = t.erasure_id
"""


class LmsErasures:
    """``sinks.ports.ErasureLedger`` on the LMS database."""

    def __init__(self, lms: LmsDatabase, secret: str | None = None) -> None:
        self.lms = lms
        self._configured = secret.encode() if secret else None
        self._secret: bytes | None = None

    async def secret(self) -> bytes:
        if self._configured is not None:
            return self._configured
        if self._secret is None:
            pool = await self.lms.pool()
            await pool.execute(
                "INSERT INTO lms.data_rights_secret (secret) VALUES ($1) ON CONFLICT DO NOTHING",
                os.urandom(32),
            )
            self._secret = bytes(await pool.fetchval("SELECT secret FROM lms.data_rights_secret"))
        return self._secret

    async def students_of(
        self, keys: set[str], student_ids: set[int], tenant: str = DEFAULT_TENANT
    ) -> tuple[set[str], set[int]]:
        if tenant != DEFAULT_TENANT:  # its catalog document's student mapping
            students = (await self.lms.read_catalog(tenant)).students
            ids = set(student_ids) | {students[k] for k in keys if k in students}
            return set(keys) | {k for k, sid in students.items() if sid in ids}, ids
        pool = await self.lms.pool()
        ids = set(student_ids) | {
            r[0] for r in await pool.fetch(
                "SELECT student_id FROM lms.student_identities WHERE agent_key = ANY($1::text[])", list(keys)
            )
        }  # fmt: skip
        found = set(keys) | {
            r[0] for r in await pool.fetch(
                "SELECT agent_key FROM lms.student_identities WHERE student_id = ANY($1::int[])", list(ids)
            )
        }  # fmt: skip
        return found, ids

    async def open_task(
        self, subject: str, identities: list[str] | None = None, tenant: str = DEFAULT_TENANT
    ) -> ErasureTask | None:
        row = await (await self.lms.pool()).fetchrow(
            _TASKS + " WHERE e.completed_at IS NULL AND e.tenant = $3"
            " AND (e.subject = $1 OR e.identities && $2::text[]) ORDER BY e.requested_at LIMIT 1",
            subject, identities or [], tenant,
        )  # fmt: skip
        return None if row is None else _task(row)

    async def begin(self, task: ErasureTask, subject: str, identities: list[str], requested_by: str) -> None:
        async with (await self.lms.pool()).acquire() as conn, conn.transaction():
            if not task.sinks:
                task.sinks = [
                    r[0] for r in await conn.fetch("SELECT sink FROM lms.pipeline_sinks ORDER BY sink")
                ]
            await conn.execute(
                "INSERT INTO lms.erasures (id, subject, identities, requested_by, sinks, tenant)"
                " VALUES ($1::uuid, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET"
                " identities = ARRAY(SELECT DISTINCT unnest(lms.erasures.identities || EXCLUDED.identities)),"
                " completed_at = NULL",
                task.id, subject, sorted(identities), requested_by, task.sinks, task.tenant,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO lms.erasure_tasks (erasure_id, identity_keys, student_ids, statement_ids, redacted,"
                " tenant) VALUES ($1::uuid, $2, $3, $4, $5, $6) ON CONFLICT (erasure_id) DO UPDATE SET"
                " identity_keys = EXCLUDED.identity_keys, student_ids = EXCLUDED.student_ids,"
                " statement_ids = EXCLUDED.statement_ids, redacted = EXCLUDED.redacted",
                task.id, sorted(task.identity_keys), sorted(task.student_ids), sorted(task.statement_ids),
                orjson.dumps(task.redacted), task.tenant,
            )  # fmt: skip
            await conn.execute("DELETE FROM lms.erasure_sinks WHERE erasure_id = $1::uuid", task.id)

    async def forget_learner(self, task: ErasureTask) -> dict[str, int]:
        if task.tenant != DEFAULT_TENANT:  # its catalog document is all the LMS keeps of another tenant
            return await self.lms.forget_students(task.tenant, set(task.identity_keys), set(task.student_ids))
        counts: dict[str, int] = {}
        async with (await self.lms.pool()).acquire() as conn, conn.transaction():
            done = await conn.execute(
                "DELETE FROM lms.student_identities WHERE agent_key = ANY($1::text[]) OR student_id = ANY($2::int[])",
                task.identity_keys, task.student_ids,
            )  # fmt: skip
            counts["student_identities"] = int(done.split()[-1])
            done = await conn.execute(
                "DELETE FROM lms.students WHERE student_id = ANY($1::int[])", task.student_ids
            )
            counts["students"] = int(done.split()[-1])
            done = await conn.execute(
                "DELETE FROM lms.cmi5_registrations WHERE student_id = ANY($1::int[])", task.student_ids
            )
            counts["cmi5_registrations"] = int(done.split()[-1])
            done = await conn.execute(
                "DELETE FROM lms.forward_queue WHERE statement_id = ANY($1::uuid[]) AND state <> 'sent'",
                task.statement_ids,
            )
            counts["forward_queue"] = int(done.split()[-1])
            await conn.execute(
                "UPDATE lms.forward_queue SET body = NULL WHERE statement_id = ANY($1::uuid[])",
                task.statement_ids,
            )
            await conn.execute(f"NOTIFY {CATALOG_CHANNEL}")
        return counts

    async def add_counts(self, erasure_id: str, store: str, counts: dict[str, int]) -> None:
        """Add ``counts`` to the record's counts of ``store`` (a rerun adds what it found still there)."""
        async with (await self.lms.pool()).acquire() as conn, conn.transaction():
            current = orjson.loads(
                await conn.fetchval(
                    "SELECT counts FROM lms.erasures WHERE id = $1::uuid FOR UPDATE", erasure_id
                )
            )
            mine = current.setdefault(store, {})
            for name, value in counts.items():
                mine[name] = mine.get(name, 0) + value
            await conn.execute(
                "UPDATE lms.erasures SET counts = $2 WHERE id = $1::uuid", erasure_id, orjson.dumps(current)
            )

    async def wake_workers(self) -> None:
        await self.lms.notify(ERASURE_CHANNEL)

    async def report(self, erasure_id: str) -> dict[str, Any] | None:
        pool = await self.lms.pool()
        row = await pool.fetchrow("SELECT * FROM lms.erasures WHERE id = $1::uuid", erasure_id)
        if row is None:
            return None
        done = {r["sink"] for r in await pool.fetch(
            "SELECT sink FROM lms.erasure_sinks WHERE erasure_id = $1::uuid", erasure_id)}  # fmt: skip
        return {
            "id": str(row["id"]), "tenant": row["tenant"], "subject": row["subject"],
            "requested_by": row["requested_by"],
            "requested_at": row["requested_at"].isoformat(), "counts": orjson.loads(row["counts"]),
            "pending_sinks": [s for s in row["sinks"] if s not in done],
            "completed_at": row["completed_at"].isoformat() if row["completed_at"] else None,
        }  # fmt: skip

    # --- the worker's side ---------------------------------------------------------------------

    async def register_sinks(self, names: list[str]) -> None:
        """The sinks this worker feeds: erasures wait for them from now on."""
        await (await self.lms.pool()).executemany(
            "INSERT INTO lms.pipeline_sinks (sink) VALUES ($1) ON CONFLICT DO NOTHING", [(n,) for n in names]
        )

    async def erased_hashes(self) -> dict[tuple[str, str], datetime]:
        """Every (tenant, erased identity hash) → when it was last erased (statements stored until
        then go)."""
        rows = await (await self.lms.pool()).fetch(
            "SELECT tenant, h, max(requested_at) FROM lms.erasures, unnest(identities) AS h GROUP BY tenant, h"
        )
        return {(r[0], r[1]): r[2] for r in rows}

    async def pending_tasks(self) -> list[ErasureTask]:
        rows = await (await self.lms.pool()).fetch(_TASKS + " ORDER BY t.erasure_id")
        return [_task(r) for r in rows]

    async def sinks_done(self, erasure_id: str) -> set[str]:
        rows = await (await self.lms.pool()).fetch(
            "SELECT sink FROM lms.erasure_sinks WHERE erasure_id = $1::uuid", erasure_id
        )
        return {r[0] for r in rows}

    async def sink_done(self, task: ErasureTask, sink: str, counts: dict[str, int]) -> None:
        """Record ``sink`` as erased; the last sink of the record completes it and deletes the task."""
        async with (await self.lms.pool()).acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM lms.erasures WHERE id = $1::uuid FOR UPDATE", task.id)
            inserted = await conn.execute(
                "INSERT INTO lms.erasure_sinks (erasure_id, sink, counts) VALUES ($1::uuid, $2, $3)"
                " ON CONFLICT DO NOTHING",
                task.id, sink, orjson.dumps(counts),
            )  # fmt: skip
            if inserted.endswith(" 1"):
                current = orjson.loads(
                    await conn.fetchval("SELECT counts FROM lms.erasures WHERE id = $1::uuid", task.id)
                )
                current[sink] = counts
                await conn.execute(
                    "UPDATE lms.erasures SET counts = $2 WHERE id = $1::uuid", task.id, orjson.dumps(current)
                )
            await _complete_if_done(conn, task)

    async def settle(self, task: ErasureTask) -> None:
        async with (await self.lms.pool()).acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM lms.erasures WHERE id = $1::uuid FOR UPDATE", task.id)
            await _complete_if_done(conn, task)


async def _complete_if_done(conn: asyncpg.Connection, task: ErasureTask) -> None:
    done = {r[0] for r in await conn.fetch(
        "SELECT sink FROM lms.erasure_sinks WHERE erasure_id = $1::uuid", task.id)}  # fmt: skip
    if set(task.sinks) <= done:
        await conn.execute("DELETE FROM lms.erasure_tasks WHERE erasure_id = $1::uuid", task.id)
        await conn.execute(
            "UPDATE lms.erasures SET completed_at = now() WHERE id = $1::uuid AND completed_at IS NULL",
            task.id,
        )


def new_erasure_id() -> str:
    return str(uuid.uuid4())


def identity_hashes(secret: bytes, keys: Iterable[str], student_ids: Iterable[int]) -> list[str]:
    """The keyed hashes an erasure record keeps for these identity keys and student ids."""
    return sorted(
        {keyed_hash(secret, k) for k in keys} | {keyed_hash(secret, student_key(s)) for s in student_ids}
    )
