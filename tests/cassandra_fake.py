"""A stand-in for a Cassandra cluster in tests: a recording fake of cassandra-driver's Session.

No Cassandra can run on the CI machines. ``FakeCluster(schema).connect()`` returns a session
implementing the part of the driver's ``Session`` the Cassandra sink uses (``prepare``,
``execute``, ``execute_async`` returning a ResponseFuture-like object with ``add_callbacks``,
``result`` and paging, ``set_keyspace``, ``cluster.shutdown``), behaving like Cassandra for it:

* Every statement is checked against the schema the fake was given (the CQL of
  ``sinks/cassandra_schema.cql``): a CREATE TABLE must equal the schema's, tables and columns
  must exist, there is one bound value per ``?``, bound values have plausible types for their
  columns, key columns are bound and never null, INSERT names the whole primary key, UPDATE and
  DELETE name rows, and WHERE clauses are ones Cassandra runs without ALLOW FILTERING.
  Violations raise ``cassandra.InvalidRequest``, as the server would.
* Tables are kept in memory with primary-key upsert semantics (INSERT and UPDATE upsert the
  named columns, DELETE removes a row, a clustering prefix or a partition), clustering order,
  LIMIT, ``COUNT(*)`` and ``TTL(column)``. Timestamps keep milliseconds, ``date`` reads back as
  ``cassandra.util.Date`` and sets as ``SortedSet``, like the driver returns them. TTLs (from
  ``USING TTL`` or the table default) are recorded per row; a row past its TTL is not read.
* Requests complete on another thread, as the driver's I/O thread completes them. Every
  statement run is recorded (``log``), with the most requests in flight at once (``peak``).
  ``fail_next`` makes the next requests time out; ``hold`` queues requests until ``release``.

It is a fake, not Cassandra: no consistency levels, replication, tombstones or token order.
"""

from __future__ import annotations

import ast
import functools
import os
import queue
import re
import threading
import time
import uuid
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from cassandra import InvalidRequest, OperationTimedOut
from cassandra.util import Date, SortedSet

from sinks.cassandra import CassandraSink, connect, schema_statements
from sinks.settings import CassandraSettings

STAND_IN = "an in-memory fake of cassandra-driver's Session (tests/cassandra_fake.py)"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TABLE = rf"(?:({_NAME})\.)?({_NAME})"
_LITERAL = re.compile(r"\?|-?\d+(?:\.\d+)?|true|false|null|'(?:[^']|'')*'", re.IGNORECASE)


def _normal(cql: str) -> str:
    return re.sub(r"\s+", " ", cql).strip().rstrip(";").strip()


def _split(text: str, sep: str = ",") -> list[str]:
    """Split at top-level separators (not inside (), <> or quotes)."""
    parts, depth, quoted, current = [], 0, False, []
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "(<":
            depth += 1
        elif not quoted and ch in ")>":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _literal(token: str) -> Any:
    low = token.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    return float(token) if "." in token else int(token)


# --- the schema ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, str]
    partition: tuple[str, ...]
    clustering: tuple[str, ...]
    descending: frozenset[str] = frozenset()
    default_ttl: int = 0

    @property
    def key(self) -> tuple[str, ...]:
        return self.partition + self.clustering

    def shape(self) -> tuple:
        return (self.columns, self.partition, self.clustering, self.descending, self.default_ttl)

    def star(self) -> list[str]:
        """Columns of ``SELECT *`` in Cassandra's order: keys, then the rest alphabetically."""
        return [*self.key, *sorted(c for c in self.columns if c not in self.key)]


def parse_table(cql: str) -> Table:
    text = _normal(cql)
    m = re.match(rf"CREATE TABLE (?:IF NOT EXISTS )?{_TABLE} \(", text, re.IGNORECASE)
    if not m:
        raise InvalidRequest(f"not a CREATE TABLE: {text[:80]}")
    start, depth = m.end() - 1, 0
    for end in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            break
    body, options = text[start + 1 : end], text[end + 1 :]
    columns: dict[str, str] = {}
    partition: tuple[str, ...] = ()
    clustering: tuple[str, ...] = ()
    for item in _split(body):
        key = re.fullmatch(r"PRIMARY KEY \((.*)\)", item, re.IGNORECASE)
        if key:
            parts = _split(key.group(1))
            head = parts[0].strip("() ")
            partition = tuple(p.strip() for p in head.split(","))
            clustering = tuple(p.strip() for p in parts[1:])
            continue
        name, _, kind = item.partition(" ")
        single = re.search(r"\s+PRIMARY KEY$", kind, re.IGNORECASE)
        if single:
            kind = kind[: single.start()]
            partition = (name,)
        columns[name] = re.sub(r"\s+", "", kind).lower()
    descending: set[str] = set()
    order = re.search(r"CLUSTERING ORDER BY \(([^)]*)\)", options, re.IGNORECASE)
    if order:
        for part in _split(order.group(1)):
            column, _, direction = part.partition(" ")
            if direction.upper() == "DESC":
                descending.add(column)
    ttl = re.search(r"default_time_to_live = (\d+)", options, re.IGNORECASE)
    table = Table(
        m.group(2), columns, partition, clustering, frozenset(descending), int(ttl.group(1)) if ttl else 0
    )
    for column in table.key:
        if column not in columns:
            raise InvalidRequest(f"unknown key column {column} in table {table.name}")
    return table


def parse_schema(cql: str) -> dict[str, Table]:
    lines = [line for line in cql.splitlines() if not line.lstrip().startswith("--")]
    tables = [parse_table(s) for s in "\n".join(lines).split(";") if s.strip()]
    return {t.name: t for t in tables}


_INT32, _INT64 = 2**31, 2**63


def plausible(kind: str, value: Any) -> bool:
    """Whether the driver would serialise ``value`` for a column of CQL type ``kind``."""
    if value is None:
        return True
    collection = re.fullmatch(r"(set|list|frozen<set|frozen<list)<(.+?)>+", kind)
    if collection:
        return isinstance(value, set | frozenset | list | tuple) and all(
            v is not None and plausible(collection.group(2), v) for v in value
        )
    mapping = re.fullmatch(r"map<(.+?),(.+)>", kind)
    if mapping:
        return isinstance(value, dict) and all(
            k is not None
            and v is not None
            and plausible(mapping.group(1), k)
            and plausible(mapping.group(2), v)
            for k, v in value.items()
        )
    integer = isinstance(value, int) and not isinstance(value, bool)
    return {
        "text": lambda: isinstance(value, str),
        "varchar": lambda: isinstance(value, str),
        "ascii": lambda: isinstance(value, str) and value.isascii(),
        "int": lambda: integer and -_INT32 <= value < _INT32,
        "bigint": lambda: integer and -_INT64 <= value < _INT64,
        "double": lambda: integer or isinstance(value, float),
        "float": lambda: integer or isinstance(value, float),
        "boolean": lambda: isinstance(value, bool),
        "uuid": lambda: isinstance(value, uuid.UUID),
        "timeuuid": lambda: isinstance(value, uuid.UUID) and value.version == 1,
        "date": lambda: isinstance(value, Date)
        or (isinstance(value, date) and not isinstance(value, datetime)),
        "timestamp": lambda: isinstance(value, datetime) or integer,
    }.get(kind, lambda: False)()


def _stored(kind: str, value: Any) -> Any:
    """A bound value as Cassandra keeps it."""
    if value is None:
        return None
    if kind == "timestamp":
        if isinstance(value, int):
            value = datetime.fromtimestamp(value / 1000, timezone.utc)
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)  # milliseconds
    if kind == "date":
        return value.date() if isinstance(value, Date) else value
    if kind.startswith(("set<", "frozen<set")):
        return frozenset(value) or None  # an empty collection is null
    if kind.startswith("map<"):
        return dict(value) or None
    if kind in ("double", "float"):
        return float(value)
    return value


def _read(kind: str, value: Any) -> Any:
    """A stored value as the driver returns it."""
    if value is None:
        return None
    if kind == "date":
        return Date(value)
    if kind.startswith(("set<", "frozen<set")):
        return SortedSet(value)
    return value


@functools.lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]) -> type:
    """Rows come back as named tuples, as with the driver's default row factory."""
    return namedtuple("Row", names)


# --- statements ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A value position in a statement: a bound ``?`` (``index``) or a literal."""

    index: int | None
    literal: Any = None

    def value(self, values: Sequence[Any]) -> Any:
        return values[self.index] if self.index is not None else self.literal


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    slot: Slot


@dataclass
class Statement:
    kind: str
    text: str
    table: str | None = None
    keyspace: str | None = None
    assignments: list[tuple[str, Slot]] = field(default_factory=list)
    where: list[Condition] = field(default_factory=list)
    selectors: list[tuple[str, str]] = field(default_factory=list)
    """(function, column): function ``""``, ``"count"`` or ``"ttl"``."""
    limit: Slot | None = None
    ttl: Slot | None = None
    placeholders: int = 0
    ddl: Any = None


class _Slots:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, token: str) -> Slot:
        token = token.strip()
        if token == "?":
            self.count += 1
            return Slot(self.count - 1)
        if not _LITERAL.fullmatch(token):
            raise InvalidRequest(f"cannot read value {token!r}")
        return Slot(None, _literal(token))


def _conditions(text: str, slot: _Slots) -> list[Condition]:
    conditions = []
    for part in re.split(r"\s+AND\s+", text, flags=re.IGNORECASE):
        m = re.fullmatch(rf"({_NAME}) (=|<=|>=|<|>|IN) (.+)", part.strip(), re.IGNORECASE)
        if not m:
            raise InvalidRequest(f"cannot read condition {part!r}")
        conditions.append(Condition(m.group(1), m.group(2).upper(), slot(m.group(3))))
    return conditions


def parse(cql: str) -> Statement:
    text, slot = _normal(cql), _Slots()
    if m := re.fullmatch(rf"USE ({_NAME})", text, re.IGNORECASE):
        return Statement("use", text, keyspace=m.group(1))
    keyspace = rf"CREATE KEYSPACE (?:IF NOT EXISTS )?({_NAME}) WITH replication = (\{{.*\}})(?: AND .*)?"
    if m := re.fullmatch(keyspace, text, re.IGNORECASE):
        try:
            replication = ast.literal_eval(m.group(2))
        except (ValueError, SyntaxError) as exc:
            raise InvalidRequest(f"bad replication map {m.group(2)}") from exc
        if not isinstance(replication, dict) or "class" not in replication:
            raise InvalidRequest("replication needs a 'class'")
        return Statement("create_keyspace", text, keyspace=m.group(1), ddl=replication)
    if re.match(r"CREATE TABLE ", text, re.IGNORECASE):
        table = parse_table(text)
        return Statement("create_table", text, table=table.name, ddl=table)
    if m := re.fullmatch(rf"TRUNCATE (?:TABLE )?{_TABLE}", text, re.IGNORECASE):
        return Statement("truncate", text, m.group(2), m.group(1))
    if m := re.fullmatch(
        rf"INSERT INTO {_TABLE} \(([^)]*)\) VALUES \((.*?)\)(?: USING TTL (\S+))?", text, re.IGNORECASE
    ):
        columns, values = _split(m.group(3)), _split(m.group(4))
        if len(columns) != len(values):
            raise InvalidRequest("unmatched column names/values")
        assignments = [(c, slot(v)) for c, v in zip(columns, values, strict=True)]
        ttl = slot(m.group(5)) if m.group(5) else None
        return Statement(
            "insert", text, m.group(2), m.group(1), assignments, ttl=ttl, placeholders=slot.count
        )
    if m := re.fullmatch(rf"UPDATE {_TABLE}(?: USING TTL (\S+))? SET (.*) WHERE (.*)", text, re.IGNORECASE):
        ttl = slot(m.group(3)) if m.group(3) else None
        assignments = []
        for part in _split(m.group(4)):
            column, _, value = part.partition("=")
            assignments.append((column.strip(), slot(value)))
        where = _conditions(m.group(5), slot)
        return Statement(
            "update", text, m.group(2), m.group(1), assignments, where, ttl=ttl, placeholders=slot.count
        )
    if m := re.fullmatch(rf"DELETE FROM {_TABLE} WHERE (.*)", text, re.IGNORECASE):
        return Statement("delete", text, m.group(2), m.group(1), where=_conditions(m.group(3), slot),
                         placeholders=slot.count)  # fmt: skip
    if m := re.fullmatch(
        rf"SELECT (.*?) FROM {_TABLE}(?: WHERE (.*?))?(?: LIMIT (\S+))?", text, re.IGNORECASE
    ):
        selectors = []
        for part in _split(m.group(1)):
            if part == "*":
                selectors.append(("", "*"))
            elif re.fullmatch(r"COUNT\(\*\)", part, re.IGNORECASE):
                selectors.append(("count", "*"))
            elif f := re.fullmatch(rf"TTL\(({_NAME})\)", part, re.IGNORECASE):
                selectors.append(("ttl", f.group(1)))
            elif re.fullmatch(_NAME, part):
                selectors.append(("", part))
            else:
                raise InvalidRequest(f"the fake does not know selector {part!r}")
        where = _conditions(m.group(4), slot) if m.group(4) else []
        limit = slot(m.group(5)) if m.group(5) else None
        return Statement("select", text, m.group(3), m.group(2), selectors=selectors, where=where,
                         limit=limit, placeholders=slot.count)  # fmt: skip
    raise InvalidRequest(f"the fake cannot run: {text[:120]}")


# --- the store -----------------------------------------------------------------------------------


@dataclass
class StoredRow:
    values: dict[str, Any]
    ttl: int | None = None
    expires: float | None = None


@dataclass
class Prepared:
    """What ``Session.prepare`` returns."""

    query_string: str
    statement: Statement
    keyspace: str
    consistency_level: Any = None
    is_idempotent: bool = False


class FakeFuture:
    """Like ``cassandra.cluster.ResponseFuture``: completes on the fake's I/O thread and calls
    back with each page of rows in turn."""

    __slots__ = ("_session", "_done", "_callbacks", "_rows", "_error", "_page", "_waiter")

    def __init__(self, session: FakeSession) -> None:
        self._session = session
        self._done = False
        self._callbacks: list[tuple[Callable, Callable]] = []
        self._rows: list[Any] = []
        self._error: BaseException | None = None
        self._page = 0
        self._waiter: threading.Event | None = None

    @property
    def has_more_pages(self) -> bool:
        return (self._page + 1) * self._session.default_fetch_size < len(self._rows)

    def _current(self) -> list[Any]:
        size = self._session.default_fetch_size
        return self._rows[self._page * size : (self._page + 1) * size]

    def _finish(self, rows: list[Any] | None, error: BaseException | None) -> None:
        with self._session._futures:
            self._rows, self._error, self._done = rows or [], error, True
            callbacks = list(self._callbacks)
            if self._waiter is not None:
                self._waiter.set()
        for callback, errback in callbacks:
            self._call(callback, errback)

    def _call(self, callback: Callable, errback: Callable) -> None:
        if self._error is not None:
            errback(self._error)
        else:
            callback(self._current())

    def add_callbacks(self, callback: Callable, errback: Callable) -> None:
        with self._session._futures:
            self._callbacks.append((callback, errback))
            done = self._done
        if done:  # the driver calls back at once when the result is already there
            self._call(callback, errback)

    def start_fetching_next_page(self) -> None:
        if not self.has_more_pages:
            raise RuntimeError("no more pages")
        self._page += 1
        self._session._io.put(lambda: [self._call(c, e) for c, e in list(self._callbacks)])

    def result(self) -> list[Any]:
        with self._session._futures:
            if not self._done:
                self._waiter = threading.Event()
        if self._waiter is not None:
            self._waiter.wait()
        if self._error is not None:
            raise self._error
        return list(self._rows)


class FakeSession:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.keyspace: str | None = None
        self.default_fetch_size = 5000
        self._futures = threading.Lock()  # guards the futures' completion and callbacks
        self._io: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="fake-cassandra-io", daemon=True)
        self._thread.start()
        self._held: list[Callable[[], None]] | None = None
        self._in_flight = 0
        self._counts = threading.Lock()
        self.peak = 0
        """Most requests in flight (sent, not completed) at once."""

    # --- the driver's API ------------------------------------------------------------------------

    def set_keyspace(self, keyspace: str) -> None:
        self.execute(f"USE {keyspace}")

    def prepare(self, query: str) -> Prepared:
        statement = parse(query)
        keyspace = statement.keyspace or self.keyspace
        if statement.kind in ("insert", "update", "delete", "select"):
            self.cluster.check(statement, keyspace)
        return Prepared(query, statement, keyspace)

    def execute(self, query: str | Prepared, parameters: Sequence[Any] | None = None) -> list[Any]:
        statement, keyspace = self._statement(query, parameters)
        return self.cluster.run(self, statement, keyspace, tuple(parameters or ()))

    def execute_async(self, query: str | Prepared, parameters: Sequence[Any] | None = None) -> FakeFuture:
        statement, keyspace = self._statement(query, parameters)
        values = tuple(parameters or ())
        future = FakeFuture(self)
        with self._counts:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)

        def run() -> None:
            try:
                rows, error = self.cluster.run(self, statement, keyspace, values), None
            except Exception as exc:  # noqa: BLE001 - delivered to the errback, like the driver does
                rows, error = None, exc
            with self._counts:
                self._in_flight -= 1
            future._finish(rows, error)

        if self._held is not None:
            self._held.append(run)
        else:
            self._io.put(run)
        return future

    def shutdown(self) -> None:
        if self._thread.is_alive():
            self._io.put(None)
            self._thread.join()

    def _serve(self) -> None:
        """The I/O thread: runs requests in the order they were sent."""
        while (job := self._io.get()) is not None:
            job()

    def _statement(
        self, query: str | Prepared, parameters: Sequence[Any] | None
    ) -> tuple[Statement, str | None]:
        if isinstance(query, Prepared):
            return query.statement, query.keyspace
        if parameters:
            raise InvalidRequest(
                "a plain string takes %s placeholders in the driver; the sink prepares statements"
            )
        statement = parse(query)
        return statement, statement.keyspace or self.keyspace

    # --- test controls ---------------------------------------------------------------------------

    def hold(self) -> None:
        """Queue requests instead of running them, until ``release``."""
        self._held = []

    def release(self) -> int:
        """Run the queued requests (on the I/O thread) and stop queueing; returns how many."""
        held, self._held = self._held or [], None
        for run in held:
            self._io.put(run)
        return len(held)

    @property
    def in_flight(self) -> int:
        return self._in_flight


@dataclass
class Executed:
    cql: str
    values: tuple


class FakeCluster:
    """The schema, the data and the log; ``connect()`` gives a session (any number share them)."""

    def __init__(self, schema: str, clock: Callable[[], float] = time.time) -> None:
        self.schema = parse_schema(schema)
        self.clock = clock
        self.keyspaces: dict[str, dict[str, Any]] = {}
        self.tables: dict[tuple[str, str], Table] = {}
        self.data: dict[tuple[str, str], dict[tuple, dict[tuple, StoredRow]]] = {}
        self.log: list[Executed] = []
        self._failures: list[BaseException] = []
        self._lock = threading.RLock()
        self.sessions: list[FakeSession] = []

    def connect(self, keyspace: str | None = None) -> FakeSession:
        session = FakeSession(self)
        self.sessions.append(session)
        if keyspace:
            session.set_keyspace(keyspace)
        return session

    def shutdown(self) -> None:
        for session in self.sessions:
            session.shutdown()

    def fail_next(
        self, count: int = 1, error: Callable[[], BaseException] = lambda: OperationTimedOut()
    ) -> None:
        """The next ``count`` requests fail with ``error()`` (delivered to their errbacks)."""
        with self._lock:
            self._failures += [error() for _ in range(count)]

    # --- checking --------------------------------------------------------------------------------

    def table(self, keyspace: str | None, name: str) -> Table:
        if keyspace is None:
            raise InvalidRequest("No keyspace has been specified.")
        if keyspace not in self.keyspaces:
            raise InvalidRequest(f"Keyspace '{keyspace}' does not exist")
        table = self.tables.get((keyspace, name))
        if table is None:
            raise InvalidRequest(f"unconfigured table {name}")
        return table

    def check(self, s: Statement, keyspace: str | None) -> Table:
        """What Cassandra checks when preparing ``s``."""
        t = self.table(keyspace, s.table)
        named = [c for c, _ in s.assignments] + [c.column for c in s.where]
        named += [c for f, c in s.selectors if c != "*"]
        for column in named:
            if column not in t.columns:
                raise InvalidRequest(f"Undefined column name {column} in table {t.name}")
        restricted = {c.column: c for c in s.where}
        if len(restricted) != len(s.where) and s.kind != "select":
            raise InvalidRequest("a column is restricted more than once")
        if s.kind == "insert":
            missing = [c for c in t.key if c not in dict(s.assignments)]
            if missing:
                raise InvalidRequest(f"Some primary key parts are missing: {', '.join(missing)}")
        if s.kind == "update":
            keys = [c for c, _ in s.assignments if c in t.key]
            if keys:
                raise InvalidRequest(f"PRIMARY KEY part {keys[0]} found in SET part")
            if any(c not in restricted or restricted[c].op != "=" for c in t.key) or set(restricted) - set(
                t.key
            ):
                raise InvalidRequest("UPDATE must restrict every primary key column with = and nothing else")
        if s.kind == "delete":
            if any(c not in restricted or restricted[c].op != "=" for c in t.partition):
                raise InvalidRequest("DELETE must restrict the whole partition key with =")
            prefix = [c for c in t.clustering if c in restricted]
            if prefix != list(t.clustering[: len(prefix)]) or any(restricted[c].op != "=" for c in prefix):
                raise InvalidRequest("DELETE restricts a clustering prefix with = only")
            if set(restricted) - set(t.key):
                raise InvalidRequest("Non PRIMARY KEY columns found in where clause")
        if s.kind == "select" and s.where:
            if any(c not in restricted or restricted[c].op not in ("=", "IN") for c in t.partition):
                raise InvalidRequest(
                    "Cannot execute this query as it might involve data filtering (partition key)"
                )
            if set(restricted) - set(t.key):
                raise InvalidRequest(
                    "Cannot execute this query as it might involve data filtering (regular column)"
                )
            equal = True
            for column in t.clustering:
                ops = [c.op for c in s.where if c.column == column]
                if ops and not equal:
                    raise InvalidRequest(
                        f"Clustering column {column} cannot be restricted (preceding column is not)"
                    )
                if not ops or any(op != "=" for op in ops):
                    equal = False
        if s.ttl is not None and s.kind not in ("insert", "update"):
            raise InvalidRequest("USING TTL only on INSERT and UPDATE")
        return t

    def _bind(self, s: Statement, t: Table, values: tuple) -> None:
        if len(values) != s.placeholders:
            raise InvalidRequest(
                f"Invalid amount of bind variables: expected {s.placeholders}, got {len(values)}"
            )
        for column, slot in s.assignments:
            value = slot.value(values)
            if column in t.key and value is None:
                raise InvalidRequest(f"Invalid null value for primary key part {column}")
            if not plausible(t.columns[column], value):
                raise InvalidRequest(
                    f"Invalid value {value!r} for {t.name}.{column} of type {t.columns[column]}"
                )
        for condition in s.where:
            value = condition.slot.value(values)
            kind = t.columns[condition.column]
            candidates = value if condition.op == "IN" else [value]
            if condition.op == "IN" and not isinstance(value, list | tuple):
                raise InvalidRequest(f"IN on {condition.column} needs a list")
            for v in candidates:
                if v is None or not plausible(kind, v):
                    raise InvalidRequest(
                        f"Invalid value {v!r} for {t.name}.{condition.column} of type {kind}"
                    )
        for slot in (s.ttl, s.limit):
            if slot is not None:
                value = slot.value(values)
                if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 630_720_000:
                    raise InvalidRequest(f"Invalid TTL/LIMIT value {value!r}")

    # --- running ---------------------------------------------------------------------------------

    def run(self, session: FakeSession, s: Statement, keyspace: str | None, values: tuple) -> list[Any]:
        with self._lock:
            if self._failures:
                raise self._failures.pop(0)
            rows = self._run(session, s, keyspace, values)
            self.log.append(Executed(s.text, values))
            return rows

    def _run(self, session: FakeSession, s: Statement, keyspace: str | None, values: tuple) -> list[Any]:
        if s.kind == "use":
            if s.keyspace not in self.keyspaces:
                raise InvalidRequest(f"Keyspace '{s.keyspace}' does not exist")
            session.keyspace = s.keyspace
            return []
        if s.kind == "create_keyspace":
            self.keyspaces.setdefault(s.keyspace, s.ddl)
            return []
        if s.kind == "create_table":
            if keyspace not in self.keyspaces:
                raise InvalidRequest("No keyspace has been specified.")
            given = self.schema.get(s.table)
            if given is None or given.shape() != s.ddl.shape():
                raise InvalidRequest(f"table {s.table} differs from the schema the fake was given")
            self.tables.setdefault((keyspace, s.table), s.ddl)
            self.data.setdefault((keyspace, s.table), {})
            return []
        t = self.check(s, keyspace)
        data = self.data[(keyspace, t.name)]
        if s.kind == "truncate":
            data.clear()
            return []
        self._bind(s, t, values)
        if s.kind in ("insert", "update"):
            self._write(t, data, s, values)
            return []
        if s.kind == "delete":
            self._delete(t, data, s, values)
            return []
        return self._select(t, data, s, values)

    def _write(self, t: Table, data: dict, s: Statement, values: tuple) -> None:
        assigned = {c: slot.value(values) for c, slot in s.assignments}
        assigned |= {c.column: c.slot.value(values) for c in s.where}
        ttl = s.ttl.value(values) if s.ttl is not None else t.default_ttl
        stored = {c: _stored(t.columns[c], v) for c, v in assigned.items()}
        partition = data.setdefault(tuple(stored[c] for c in t.partition), {})
        key = tuple(stored[c] for c in t.clustering)
        row = partition.get(key)
        if row is None or self._expired(row):
            row = partition[key] = StoredRow({c: stored[c] for c in t.key})
        row.values.update(stored)
        row.ttl = ttl or None
        row.expires = self.clock() + ttl if ttl else None

    def _delete(self, t: Table, data: dict, s: Statement, values: tuple) -> None:
        bound = {c.column: _stored(t.columns[c.column], c.slot.value(values)) for c in s.where}
        pk = tuple(bound[c] for c in t.partition)
        partition = data.get(pk)
        if partition is None:
            return
        prefix = tuple(bound[c] for c in t.clustering if c in bound)
        for key in [k for k in partition if k[: len(prefix)] == prefix]:
            del partition[key]
        if not partition:
            del data[pk]

    def _expired(self, row: StoredRow) -> bool:
        return row.expires is not None and row.expires <= self.clock()

    def _select(self, t: Table, data: dict, s: Statement, values: tuple) -> list[Any]:
        conditions = [(c.column, c.op, c.slot.value(values)) for c in s.where]
        partitions: Iterator[tuple[tuple, dict]]
        if conditions:
            choices = []
            for column in t.partition:
                op, value = next((op, v) for c, op, v in conditions if c == column)
                kind = t.columns[column]
                choices.append([_stored(kind, v) for v in value] if op == "IN" else [_stored(kind, value)])
            keys = [()]
            for options in choices:
                keys = [k + (o,) for k in keys for o in options]
            partitions = ((k, data[k]) for k in keys if k in data)
        else:
            partitions = iter(list(data.items()))
        found: list[StoredRow] = []
        for _, partition in partitions:
            rows = [r for r in partition.values() if not self._expired(r) and self._matches(t, r, conditions)]
            found += sorted(rows, key=functools.cmp_to_key(lambda a, b: self._order(t, a, b)))
        if s.limit is not None:
            found = found[: s.limit.value(values)]
        if any(f == "count" for f, _ in s.selectors):
            return [_row_type(("count",))(len(found))]
        columns: list[tuple[str, str]] = []
        for function, column in s.selectors:
            columns += [("", c) for c in t.star()] if column == "*" else [(function, column)]
        names = [f"ttl_{c}" if f == "ttl" else c for f, c in columns]
        row_type = _row_type(tuple(names))
        now = self.clock()
        return [
            row_type(*[
                (None if r.expires is None else int(r.expires - now)) if f == "ttl"
                else _read(t.columns[c], r.values.get(c))
                for f, c in columns
            ])
            for r in found
        ]  # fmt: skip

    @staticmethod
    def _matches(t: Table, row: StoredRow, conditions: list[tuple[str, str, Any]]) -> bool:
        for column, op, value in conditions:
            if column in t.partition:
                continue
            have, want = row.values.get(column), _stored(t.columns[column], value)
            if have is None:
                return False
            ok = {
                "=": have == want,
                "<": have < want,
                "<=": have <= want,
                ">": have > want,
                ">=": have >= want,
            }
            if op == "IN":
                if have not in [_stored(t.columns[column], v) for v in value]:
                    return False
            elif not ok[op]:
                return False
        return True

    @staticmethod
    def _order(t: Table, a: StoredRow, b: StoredRow) -> int:
        for column in t.clustering:
            x, y = a.values[column], b.values[column]
            if x != y:
                result = -1 if x < y else 1
                return -result if column in t.descending else result
        return 0

    # --- inspection ------------------------------------------------------------------------------

    def rows(self, keyspace: str, table: str) -> list[StoredRow]:
        """Every row of a table, expired ones included (tests inspect TTLs with it)."""
        return [r for partition in self.data.get((keyspace, table), {}).values() for r in partition.values()]


def real_cluster_hosts() -> str | None:
    """Contact points of a real cluster for the tests (LRS_TEST_CASSANDRA_HOSTS), if set."""
    return os.environ.get("LRS_TEST_CASSANDRA_HOSTS") or None


def schema_text() -> str:
    return ";\n".join(schema_statements())


class _Disposable(CassandraSink):
    """A sink on a real cluster that drops its test keyspace when closed."""

    async def close(self) -> None:
        if self.session is not None:
            await self._blocking(
                self.session.execute, f"DROP KEYSPACE IF EXISTS {self.settings.cassandra_keyspace}"
            )
        await super().close()


def cassandra_sink(partitions: int = 1, cluster: FakeCluster | None = None, **settings: Any) -> CassandraSink:
    """A Cassandra sink for a test, in a keyspace of its own: on ``cluster`` (a fake) when given,
    else on the cluster at LRS_TEST_CASSANDRA_HOSTS (the keyspace is dropped on close), else on a
    new fake. ``settings``: ``CassandraSettings`` fields (concurrency, retries…)."""
    hosts = real_cluster_hosts()
    config = CassandraSettings(cassandra_keyspace=f"test_{uuid.uuid4().hex[:12]}", **settings)
    if hosts and cluster is None:
        config = config.model_copy(update={"cassandra_hosts": hosts})
        return _Disposable(lambda: connect(config), config, partitions, backoff=0.01)
    fake = cluster or FakeCluster(schema_text())
    return CassandraSink(fake.connect, config, partitions, backoff=0.001)
