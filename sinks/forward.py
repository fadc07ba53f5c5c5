"""Statement forwarding: a sink that queues the statements each forward rule matches, and delivers
them to the rule's target — another LRS or a webhook — outside the request path.

**Rules** (``lms.forward_rules``, managed with ``lrs forward add|list|pause|resume|remove|retry``)
have a target, a filter (``ForwardFilter``: verbs, activity IRI prefixes, agents, registrations)
and a batch size. A rule forwards the statements stored from when it was added.

**Queueing** is the sink's ``apply``: in one transaction of the LMS database it reads the rules,
queues each new statement for every rule it matches (``lms.forward_queue``, keyed by rule and
statement id) and records the partition's position (``lms.sink_watermarks``, sink ``forward``),
so a crash or a broker restart re-sends what was not recorded and nothing is queued twice. The
position only moves forward and the sink skips what lies before it: a replay (``lrs replay``)
sends nothing again (``begin_replay`` is a no-op; forwarded statements cannot be taken back).
A voiding statement is queued for a rule that queued the statement it voids (within
``LRS_FORWARD_KEEP_DAYS``), so the target voids it too. Queueing never waits for a target: an
unreachable target does not hold up the pipeline.

**Delivery** runs beside the sink, one task per active rule, in store order, ``batch_size``
statements a request. One worker at a time delivers for a rule (a lease in the rule's row, so
several workers can share the partitions). An LRS target gets ``POST /statements`` with the
statements as stored (original ids: the target skips what it has; attachments whose data this LRS
holds as multipart/mixed; the version header of the statements' version); a credential with scope
``import`` there keeps their authority. A webhook gets ``{"rule", "delivery", "statements"}`` as
JSON, signed: ``X-LRS-Timestamp`` (Unix seconds) and ``X-LRS-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>" with the rule's secret>``. A failed delivery is retried with exponential
backoff (``LRS_FORWARD_BACKOFF`` doubling to ``LRS_FORWARD_BACKOFF_MAX``); after a refusal (4xx
other than 408/429) the rule sends one statement at a time until the refused one is through or
dead; a statement that failed ``LRS_FORWARD_MAX_ATTEMPTS`` times goes to the rule's dead letters.
At least once: a target may see a statement twice (LRS targets deduplicate by id; webhooks get a
``delivery`` id per request and the statement ids).

Metrics (the worker's ``/metrics``): ``lrs_forward_delivered_total``, ``lrs_forward_failed_total``
(statements in failed attempts), ``lrs_forward_dead_letters_total``, ``lrs_forward_queued`` and
``lrs_forward_lag_seconds`` (age of the oldest statement waiting), per rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client import Counter, Gauge

from lrs.store.postgres.pool import create_pool
from lrs.xapi.agents import identity_keys, ifi_key

from .lms import migrate
from .ports import Batch, IgnoresCatalog, ReplayStatus, Retraction
from .positions import since_position
from .settings import ForwardSettings

log = logging.getLogger(__name__)

DELIVERED = Counter(
    "lrs_forward_delivered_total", "Statements delivered to a forward rule's target", ["rule"]
)
FAILED = Counter("lrs_forward_failed_total", "Statements in failed deliveries (retried)", ["rule"])
DEAD = Counter("lrs_forward_dead_letters_total", "Statements a forward rule gave up on", ["rule"])
QUEUED = Gauge("lrs_forward_queued", "Statements waiting for a forward rule's target", ["rule"])
LAG = Gauge("lrs_forward_lag_seconds", "Age of the oldest statement waiting for a forward rule", ["rule"])

SINK = "forward"
KINDS = ("lrs", "webhook")
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
SIGNATURE_HEADER = "X-LRS-Signature"
TIMESTAMP_HEADER = "X-LRS-Timestamp"
DELIVERY_HEADER = "X-LRS-Delivery"


# --- rules --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForwardFilter:
    """Which statements a rule forwards: all of the given kinds must match; within a kind, any
    value. ``agents`` are identity keys (``lrs.xapi.agents.ifi_key``) matched against the actor
    (a Group's members too); ``activity_prefixes`` against the object activity's IRI."""

    verbs: tuple[str, ...] = ()
    activity_prefixes: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    registrations: tuple[str, ...] = ()

    @classmethod
    def of(cls, data: dict[str, Any]) -> ForwardFilter:
        return cls(
            *(tuple(data.get(k) or ()) for k in ("verbs", "activity_prefixes", "agents", "registrations"))
        )

    def to_json(self) -> dict[str, list[str]]:
        return {
            k: list(getattr(self, k))
            for k in ("verbs", "activity_prefixes", "agents", "registrations")
            if getattr(self, k)
        }

    def matches(self, statement: dict[str, Any]) -> bool:
        if self.verbs and (statement.get("verb") or {}).get("id") not in self.verbs:
            return False
        if self.activity_prefixes:
            obj = statement.get("object") or {}
            if obj.get("objectType", "Activity") != "Activity":
                return False
            if not any(str(obj.get("id", "")).startswith(p) for p in self.activity_prefixes):
                return False
        if self.agents and not set(identity_keys(statement.get("actor") or {})) & set(self.agents):
            return False
        if self.registrations:
            registration = str((statement.get("context") or {}).get("registration", "")).lower()
            if registration not in self.registrations:
                return False
        return True

    def describe(self) -> str:
        parts = [f"{k}={','.join(getattr(self, k))}" for k in ("verbs", "activity_prefixes", "agents", "registrations")
                 if getattr(self, k)]  # fmt: skip
        return " ".join(parts) or "every statement"


def agent_key(agent: Any) -> str:
    """The identity key a filter matches an agent (xAPI agent JSON) by; ``ValueError`` if none."""
    key = ifi_key(agent) if isinstance(agent, dict) else None
    if key is None:
        raise ValueError("an agent filter needs an identified agent (mbox, mbox_sha1sum, openid or account)")
    return key


@dataclass(slots=True)
class Rule:
    id: int
    name: str
    kind: str
    url: str
    auth: str | None
    secret: str | None
    filter: ForwardFilter
    batch_size: int
    paused: bool
    created: datetime
    failures: int = 0
    next_attempt: datetime | None = None
    single: bool = False
    last_error: str | None = None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Rule:
        return cls(
            row["id"], row["name"], row["kind"], row["url"], row["auth"], row["secret"],
            ForwardFilter.of(orjson.loads(row["filter"])), row["batch_size"], row["paused"], row["created"],
            row["failures"], row["next_attempt"], row["single"], row["last_error"],
        )  # fmt: skip


_RULE_COLUMNS = (
    "id, name, kind, url, auth, secret, filter::text AS filter, batch_size, paused, created, failures,"
    " next_attempt, single, last_error"
)


class ForwardRules:
    """The rules in the LMS database, as ``lrs forward`` manages them."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await create_pool(
                self.dsn, min_size=1, max_size=2, application_name="lrs-forward-rules"
            )
            await migrate(self._pool)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def add(
        self, name: str, kind: str, url: str, *, auth: str | None, secret: str | None, filter: ForwardFilter,
        batch_size: int,
    ) -> Rule:  # fmt: skip
        if kind not in KINDS:
            raise ValueError(f"a rule's target is one of {', '.join(KINDS)}")
        pool = await self._get_pool()
        try:
            row = await pool.fetchrow(
                "INSERT INTO lms.forward_rules (name, kind, url, auth, secret, filter, batch_size)"
                f" VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7) RETURNING {_RULE_COLUMNS}",
                name, kind, url, auth, secret, orjson.dumps(filter.to_json()).decode(), batch_size,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise ValueError(f"a forward rule named {name!r} exists") from None
        return Rule.of(row)

    async def all(self) -> list[tuple[Rule, dict[str, int]]]:
        """Every rule with its statements by state (pending, sent, dead)."""
        pool = await self._get_pool()
        rules = [
            Rule.of(r) for r in await pool.fetch(f"SELECT {_RULE_COLUMNS} FROM lms.forward_rules ORDER BY id")
        ]
        counts = await pool.fetch("SELECT rule_id, state, count(*) AS n FROM lms.forward_queue GROUP BY 1, 2")
        by_rule: dict[int, dict[str, int]] = {}
        for r in counts:
            by_rule.setdefault(r["rule_id"], {})[r["state"]] = r["n"]
        return [(rule, {"pending": 0, "sent": 0, "dead": 0, **by_rule.get(rule.id, {})}) for rule in rules]

    async def set_paused(self, name: str, paused: bool) -> bool:
        pool = await self._get_pool()
        done = await pool.execute(
            "UPDATE lms.forward_rules SET paused = $2, failures = 0, next_attempt = NULL WHERE name = $1",
            name,
            paused,
        )
        return done.endswith(" 1")

    async def remove(self, name: str) -> bool:
        pool = await self._get_pool()
        return (await pool.execute("DELETE FROM lms.forward_rules WHERE name = $1", name)).endswith(" 1")

    async def retry_dead(self, name: str) -> int | None:
        """Put a rule's dead letters back in its queue; how many (``None``: no such rule)."""
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            rule = await conn.fetchval("SELECT id FROM lms.forward_rules WHERE name = $1", name)
            if rule is None:
                return None
            done = await conn.execute(
                "UPDATE lms.forward_queue SET state = 'pending', attempts = 0, error = NULL, done_at = NULL"
                " WHERE rule_id = $1 AND state = 'dead'",
                rule,
            )
            await conn.execute(
                "UPDATE lms.forward_rules SET failures = 0, next_attempt = NULL, single = false WHERE id = $1",
                rule,
            )
        return int(done.split()[-1])


# --- the sink -----------------------------------------------------------------------------------------


class ForwardSink(IgnoresCatalog):
    name = SINK
    serves_tenants = False  # the default tenant's only (docs/tenants.md)

    def __init__(
        self, lms_dsn: str, partitions: int, *, store_url: str | None = None, owner: str | None = None,
        settings: ForwardSettings | None = None,
    ) -> None:  # fmt: skip
        self._dsn, self._partitions = lms_dsn, partitions
        self._store_url = store_url
        self._owner = owner or f"worker-{uuid.uuid4()}"
        self.settings = settings or ForwardSettings()
        self._pool: asyncpg.Pool | None = None
        self._client: httpx.AsyncClient | None = None
        self._store: Any = None
        self._tasks: dict[int, asyncio.Task] = {}
        self._supervisor: asyncio.Task | None = None
        self._queued = asyncio.Condition()
        self._closing = False

    async def start(self) -> None:
        self._pool = await create_pool(self._dsn, min_size=1, max_size=4, application_name="lrs-forward")
        await migrate(self._pool)
        async with self._pool.acquire() as conn, conn.transaction():
            # A sink that never ran starts where the earliest rule began (now without rules): it
            # must not make the relay send the whole store again, and must miss no rule's statement.
            start = await conn.fetchval("SELECT least(now(), (SELECT min(created) FROM lms.forward_rules))")
            await conn.executemany(
                "INSERT INTO lms.sink_watermarks (sink, partition, position) VALUES ($1, $2, $3)"
                " ON CONFLICT (sink, partition) DO NOTHING",
                [(SINK, p, since_position(start)) for p in range(self._partitions)],
            )
        self._client = httpx.AsyncClient(timeout=self.settings.forward_timeout)
        self._supervisor = asyncio.create_task(self._supervise(), name="forward-supervisor")

    async def close(self) -> None:
        self._closing = True
        tasks = [*self._tasks.values(), *([self._supervisor] if self._supervisor else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        if self._store is not None:
            await self._store.close()
        if self._pool is not None:
            await self._pool.close()

    # --- positions and replays ---------------------------------------------------------------------

    async def watermarks(self, partitions: int) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT partition, position FROM lms.sink_watermarks WHERE sink = $1", SINK
        )
        found = {r["partition"]: r["position"] for r in rows}
        return [found.get(p, "") for p in range(partitions)]

    async def begin_replay(self, since: datetime | None, epoch: str, target: str) -> None:
        """Forwarding keeps its own position through a replay: what it forwarded is not sent again."""

    async def replay_status(self) -> ReplayStatus | None:
        return None

    # --- queueing ------------------------------------------------------------------------------------

    async def apply(self, batches: Sequence[Batch]) -> None:
        queued = False
        async with self._pool.acquire() as conn, conn.transaction():
            rules = [Rule.of(r) for r in await conn.fetch(f"SELECT {_RULE_COLUMNS} FROM lms.forward_rules")]
            marks = {
                r["partition"]: r["position"]
                for r in await conn.fetch(
                    "SELECT partition, position FROM lms.sink_watermarks WHERE sink = $1 FOR UPDATE", SINK
                )
            }
            rows: list[tuple] = []
            if rules:
                rows = await self._matching(conn, rules, batches, marks)
            if rows:
                await conn.executemany(
                    "INSERT INTO lms.forward_queue (rule_id, statement_id, position, stored, body)"
                    " VALUES ($1, $2::uuid, $3, $4, $5) ON CONFLICT DO NOTHING",
                    rows,
                )
                queued = True
            moved = [b for b in batches if b.through and b.through > marks.get(b.partition, "")]
            if moved:
                await conn.executemany(
                    "INSERT INTO lms.sink_watermarks AS w (sink, partition, position, epoch) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (sink, partition) DO UPDATE SET position = GREATEST(w.position, EXCLUDED.position),"
                    " epoch = EXCLUDED.epoch, updated = now()",
                    [(SINK, b.partition, b.through, b.epoch) for b in moved],
                )
        if queued:
            async with self._queued:
                self._queued.notify_all()

    async def _matching(
        self, conn: asyncpg.Connection, rules: list[Rule], batches: Sequence[Batch], marks: dict[int, str]
    ) -> list[tuple]:
        """(rule, statement id, position, stored, body) of every new statement a rule takes."""
        fresh = [op for b in batches for op in b.operations if op.position > marks.get(b.partition, "")]
        targets = [
            op.statement_id.lower() for op in fresh if isinstance(op, Retraction) and op.statement is not None
        ]
        forwarded: set[tuple[int, str]] = set()
        if targets:
            forwarded = {
                (r["rule_id"], r["statement_id"])
                for r in await conn.fetch(
                    "SELECT rule_id, statement_id::text FROM lms.forward_queue WHERE statement_id = ANY($1::uuid[])",
                    targets,
                )
            }
        rows = []
        for op in fresh:
            statement = op.source or op.statement  # what was stored, never the analytics' pseudonyms
            if statement is None:
                continue
            if isinstance(op, Retraction):
                chosen = [r for r in rules if (r.id, op.statement_id.lower()) in forwarded]
                stored = _instant(statement.get("stored"))
            else:
                stored = op.stored
                chosen = [r for r in rules if stored >= r.created and r.filter.matches(statement)]
            if not chosen or stored is None:
                continue
            body = orjson.dumps(statement)
            sid = str(statement["id"]).lower()
            for rule in chosen:
                rows.append((rule.id, sid, op.position, stored, body))
                forwarded.add((rule.id, sid))  # a voiding statement later in this very take follows it
        return rows

    # --- delivery ------------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Keep one delivery task per active rule; refresh the gauges; forget old delivered ids."""
        purged = 0.0
        while not self._closing:
            try:
                active = {r["id"]: r["name"] for r in await self._pool.fetch(
                    "SELECT id, name FROM lms.forward_rules WHERE NOT paused")}  # fmt: skip
                for rule_id, name in active.items():
                    task = self._tasks.get(rule_id)
                    if task is None or task.done():
                        self._tasks[rule_id] = asyncio.create_task(
                            self._deliver(rule_id), name=f"forward-{name}"
                        )
                for rule_id in set(self._tasks) - set(active):
                    self._tasks.pop(rule_id).cancel()
                await self._gauges()
                if time.monotonic() - purged > 600:
                    purged = time.monotonic()
                    await self._pool.execute(
                        "DELETE FROM lms.forward_queue WHERE state = 'sent' AND done_at < now() - $1::float8 * interval '1 day'",
                        self.settings.forward_keep_days,
                    )
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("forwarding: %s; trying again", exc)
            await asyncio.sleep(1.0)

    async def _gauges(self) -> None:
        rows = await self._pool.fetch(
            "SELECT r.name, count(q.rule_id) AS n, extract(epoch FROM now() - min(q.stored)) AS age"
            " FROM lms.forward_rules r LEFT JOIN lms.forward_queue q ON q.rule_id = r.id AND q.state = 'pending'"
            " GROUP BY r.name"
        )
        for r in rows:
            QUEUED.labels(r["name"]).set(r["n"])
            LAG.labels(r["name"]).set(float(r["age"] or 0.0))

    async def _lease(self, rule_id: int) -> tuple[Rule, datetime] | None:
        """The rule, if this worker may deliver for it now (lease taken or renewed), and the time."""
        lease = self.settings.forward_timeout * 2 + 10
        row = await self._pool.fetchrow(
            "UPDATE lms.forward_rules SET lease_owner = $2, lease_until = now() + $3::float8 * interval '1 second'"
            " WHERE id = $1 AND NOT paused AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < now())"
            f" RETURNING {_RULE_COLUMNS}, now() AS now",
            rule_id, self._owner, lease,
        )  # fmt: skip
        return None if row is None else (Rule.of(row), row["now"])

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with self._queued:
                await asyncio.wait_for(self._queued.wait(), seconds)

    async def _deliver(self, rule_id: int) -> None:
        while not self._closing:
            try:
                leased = await self._lease(rule_id)
                if leased is None:  # another worker delivers (or the rule is gone or paused)
                    await asyncio.sleep(1.0)
                    continue
                rule, now = leased
                if rule.next_attempt is not None and rule.next_attempt > now:
                    await asyncio.sleep(min((rule.next_attempt - now).total_seconds(), 5.0))
                    continue
                rows = await self._pool.fetch(
                    "SELECT statement_id::text AS id, body, attempts FROM lms.forward_queue"
                    " WHERE rule_id = $1 AND state = 'pending' ORDER BY position LIMIT $2",
                    rule_id, 1 if rule.single else rule.batch_size,
                )  # fmt: skip
                if not rows:
                    await self._wait(1.0)
                    continue
                error, refused = await self._send(rule, [orjson.loads(r["body"]) for r in rows])
                await self._record(rule, [r["id"] for r in rows], error, refused)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database away, a bug: log, wait, go on
                log.exception("forwarding for rule %d failed; trying again", rule_id)
                await asyncio.sleep(1.0)

    async def _record(self, rule: Rule, ids: list[str], error: str | None, refused: bool) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if error is None:
                await conn.execute(
                    "UPDATE lms.forward_queue SET state = 'sent', body = NULL, error = NULL, done_at = now()"
                    " WHERE rule_id = $1 AND statement_id = ANY($2::uuid[])",
                    rule.id, ids,
                )  # fmt: skip
                await conn.execute(
                    "UPDATE lms.forward_rules SET failures = 0, next_attempt = NULL, single = false, last_error = NULL"
                    " WHERE id = $1",
                    rule.id,
                )
                DELIVERED.labels(rule.name).inc(len(ids))
                return
            dead = await conn.fetchval(
                "WITH failed AS (UPDATE lms.forward_queue SET attempts = attempts + 1, error = $3,"
                " state = CASE WHEN attempts + 1 >= $4 THEN 'dead' ELSE state END,"
                " done_at = CASE WHEN attempts + 1 >= $4 THEN now() END"
                " WHERE rule_id = $1 AND statement_id = ANY($2::uuid[]) RETURNING state)"
                " SELECT count(*) FROM failed WHERE state = 'dead'",
                rule.id, ids, error[:2000], self.settings.forward_max_attempts,
            )  # fmt: skip
            failures = rule.failures + 1
            delay = min(
                self.settings.forward_backoff * 2 ** (failures - 1), self.settings.forward_backoff_max
            )
            await conn.execute(
                "UPDATE lms.forward_rules SET failures = $2, last_error = $3, single = single OR $4,"
                " next_attempt = now() + $5::float8 * interval '1 second' WHERE id = $1",
                rule.id, failures, error[:2000], refused and len(ids) > 1, delay,
            )  # fmt: skip
        FAILED.labels(rule.name).inc(len(ids))
        if dead:
            DEAD.labels(rule.name).inc(dead)
            log.warning("forward rule %s: %d statements dead-lettered after %d attempts (%s)",
                        rule.name, dead, self.settings.forward_max_attempts, error)  # fmt: skip
        else:
            log.info("forward rule %s: delivery failed (%s); next attempt in %.1f s", rule.name, error, delay)

    async def _send(self, rule: Rule, statements: list[dict[str, Any]]) -> tuple[str | None, bool]:
        """Deliver to the rule's target: (``None``, _) when delivered, else (the problem, whether
        the target refused the content — a 4xx other than 408/429 — rather than failed)."""
        try:
            if rule.kind == "webhook":
                response = await self._webhook(rule, statements)
                return _outcome(response)
            for run in _by_version(statements):
                problem, refused = _outcome(await self._post_statements(rule, run))
                if problem is not None:
                    return problem, refused
            return None, False
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}", False

    async def _webhook(self, rule: Rule, statements: list[dict[str, Any]]) -> httpx.Response:
        body = orjson.dumps({"rule": rule.name, "delivery": str(uuid.uuid4()), "statements": statements})
        timestamp = str(int(time.time()))
        return await self._client.post(
            rule.url, content=body,
            headers={"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                     SIGNATURE_HEADER: signature(rule.secret or "", timestamp, body)},
        )  # fmt: skip

    async def _post_statements(self, rule: Rule, statements: list[dict[str, Any]]) -> httpx.Response:
        version = "2.0.0" if str(statements[0].get("version", "")).startswith("2.") else "1.0.3"
        headers = {"X-Experience-API-Version": version}
        key, _, secret = (rule.auth or "").partition(":")
        body = orjson.dumps(statements)
        hashes = _attachment_data(statements)
        if hashes:
            parts = await self._attachments(hashes)
            if parts:
                body, headers["Content-Type"] = _multipart(body, parts)
        headers.setdefault("Content-Type", "application/json")
        url = rule.url.rstrip("/") + "/statements"
        return await self._client.post(
            url, content=body, headers=headers, auth=(key, secret) if rule.auth else None
        )

    async def _attachments(self, hashes: list[str]) -> list[tuple[str, str, bytes]]:
        if self._store_url is None:
            return []
        if self._store is None:
            from lrs.store import open_stores

            self._store = await open_stores(self._store_url, pool_min=1, pool_max=2)
        found = {a.sha2: a for a in await self._store.statements.attachments(hashes)}
        return [(h, found[h].content_type, found[h].content) for h in hashes if h in found]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-LRS-Signature`` of a webhook delivery: ``sha256=`` and the hex HMAC-SHA256, keyed by the
    rule's secret, of ``<timestamp>.<body>`` (the ``X-LRS-Timestamp`` value, a dot, the raw body)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _outcome(response: httpx.Response) -> tuple[str | None, bool]:
    if 200 <= response.status_code < 300:
        return None, False
    problem = f"HTTP {response.status_code}: {response.text[:300]}"
    return problem, 400 <= response.status_code < 500 and response.status_code not in (408, 429)


def _by_version(statements: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive runs of statements of one xAPI version (each is POSTed with its version header)."""
    runs: list[list[dict[str, Any]]] = []
    for statement in statements:
        major = str(statement.get("version", "1")).startswith("2.")
        if runs and (str(runs[-1][0].get("version", "1")).startswith("2.")) == major:
            runs[-1].append(statement)
        else:
            runs.append([statement])
    return runs


def _attachment_data(statements: list[dict[str, Any]]) -> list[str]:
    """SHA-2s of attachments whose data travels with the statements (those without ``fileUrl``)."""
    found: dict[str, None] = {}
    for statement in statements:
        declared = list(statement.get("attachments") or ())
        obj = statement.get("object") or {}
        if obj.get("objectType") == "SubStatement":
            declared += obj.get("attachments") or ()
        for attachment in declared:
            if isinstance(attachment, dict) and "fileUrl" not in attachment and "sha2" in attachment:
                found.setdefault(attachment["sha2"], None)
    return list(found)


def _multipart(first: bytes, parts: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    delimiter = f"--{boundary}\r\n".encode()
    chunks = [delimiter, b"Content-Type: application/json\r\n\r\n", first, b"\r\n"]
    for sha2, content_type, content in parts:
        chunks += [delimiter, f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n"
                   f"X-Experience-API-Hash: {sha2}\r\n\r\n".encode(), content, b"\r\n"]  # fmt: skip
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
