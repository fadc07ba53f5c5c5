"""The message format of ``xapi.statements``.

A message is a JSON object (``v`` is the format version)::

    {"v": 1, "through": "<position>", "epoch": "<relay epoch>",
     "items": [{"pos": "<position>", "learner": "<identity key>", "voided": false,
                "tenant": "<tenant>", "statement": {...}}, ...]}

``tenant`` is the tenant whose statement it is (left out for the default tenant); ``learner`` is
an identity key within that tenant.

``items`` are in store order. A voiding statement carries ``"target": "<statement id>"``; it is
sent to the partition of the learner whose statement it voids, so a void always follows what
it voids. ``voided`` says the statement was already voided when it was read: sinks must not
count it. ``through`` is the relay's position when it sent the message: every statement up to
it that belongs to this partition has been sent. A message may be a bare heartbeat (no items)
that only moves ``through`` on a quiet partition.

With ``LRS_STREAM_BATCH=1`` every message holds one statement and is keyed by its learner's
identity key; with larger batches a message holds a partition's statements of one relay round
(Faust then handles tens of statements per message instead of one).

``epoch`` is when the relay last (re)started reading: a sink that was reset for a replay ignores
the ``through`` of messages older than its reset, which were sent before it forgot. Either way a learner's
statements land in one partition, chosen as Kafka's default partitioner would for that key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import msgspec
import orjson
from aiokafka.partitioner import murmur2

from lrs.store.ports import DEFAULT_TENANT, tenant_problem

VERSION = 1


@lru_cache(maxsize=1 << 16)
def partition_of(learner: str, partitions: int) -> int:
    """Kafka's default partitioner: murmur2 of the key, positive, modulo the partition count.
    (aiokafka's murmur2 is pure Python; learners recur, so results are cached.)"""
    return (murmur2(learner.encode()) & 0x7FFFFFFF) % partitions


class Item:
    """One statement of an envelope. Read from the wire it keeps the statement's JSON (``raw``)
    and decodes it into dicts only if asked for ``statement``: the enrichment reads the JSON
    itself (``streams.enrich.statement_view``)."""

    __slots__ = ("position", "learner", "voided", "target", "tenant", "_raw", "_statement")

    def __init__(
        self, position: str, learner: str, statement: dict[str, Any] | None = None, voided: bool = False,
        target: str | None = None, *, raw: bytes | None = None, tenant: str = DEFAULT_TENANT,
    ) -> None:  # fmt: skip
        if (statement is None) == (raw is None):
            raise TypeError("an item has either a statement or its raw JSON")
        self.position, self.learner, self.voided, self.target = position, learner, voided, target
        self.tenant = tenant
        self._raw, self._statement = raw, statement

    @property
    def statement(self) -> dict[str, Any]:
        if self._statement is None:
            self._statement = orjson.loads(self._raw)
        return self._statement

    @property
    def raw(self) -> bytes:
        """The statement's JSON."""
        if self._raw is None:
            self._raw = orjson.dumps(self._statement)
        return self._raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Item):
            return NotImplemented
        return (self.position, self.learner, self.voided, self.target, self.tenant, self.statement) == (
            other.position, other.learner, other.voided, other.target, other.tenant, other.statement
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"Item({self.position!r}, {self.learner!r}, voided={self.voided}, target={self.target!r},"
            f" tenant={self.tenant!r})"
        )


@dataclass(slots=True)
class Envelope:
    through: str
    items: list[Item] = field(default_factory=list)
    epoch: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": VERSION,
                "through": self.through,
                "epoch": self.epoch,
                "items": [
                    {"pos": i.position, "learner": i.learner, "voided": i.voided, "statement": i.statement}
                    | ({"target": i.target} if i.target else {})
                    | ({"tenant": i.tenant} if i.tenant != DEFAULT_TENANT else {})
                    for i in self.items
                ],
            }
        )


class BadEnvelope(ValueError):
    """A message that is not a pipeline envelope (it goes to the dead-letter topic)."""


class _WireItem(msgspec.Struct):
    pos: str
    learner: str
    statement: msgspec.Raw
    voided: bool = False
    target: str | None = None
    tenant: str = DEFAULT_TENANT


class _Wire(msgspec.Struct):
    v: int
    through: str
    epoch: str = ""
    items: list[_WireItem] = []


_WIRE = msgspec.json.Decoder(_Wire)


def decode(raw: bytes) -> Envelope:
    """Read an envelope; ``BadEnvelope`` names what is wrong with anything else. The envelope is
    decoded without its statements, which stay JSON until something reads them."""
    try:
        wire = _WIRE.decode(raw)
    except (msgspec.MsgspecError, RecursionError):  # RecursionError: nested too deep to skip
        return _decode_checked(raw)  # not what the relay writes: find out what is wrong
    statements = [bytes(i.statement) for i in wire.items]
    if (
        wire.v != VERSION
        or any(s[:1] != b"{" for s in statements)
        or any(i.tenant != DEFAULT_TENANT and tenant_problem(i.tenant) for i in wire.items)
    ):
        return _decode_checked(raw)
    items = [
        Item(i.pos, i.learner, None, i.voided, i.target, raw=s, tenant=i.tenant)
        for i, s in zip(wire.items, statements, strict=True)
    ]
    return Envelope(through=wire.through, items=items, epoch=wire.epoch)


def _tenant(name: object) -> str:
    if not isinstance(name, str) or tenant_problem(name):
        raise TypeError(f"not a tenant name: {name!r}")
    return name


def _decode_checked(raw: bytes) -> Envelope:
    """The envelope read field by field: the reason for a refusal, or what the fast path's
    stricter types did not take."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadEnvelope(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise BadEnvelope(f"unknown envelope version {data.get('v') if isinstance(data, dict) else None!r}")
    if not isinstance(data.get("items", []), list):
        raise BadEnvelope(f"envelope items is a {type(data['items']).__name__}, not a list")
    if not isinstance(data.get("through"), str):
        raise BadEnvelope("envelope has no through position")
    try:
        items = [
            Item(
                position=str(i["pos"]),
                learner=str(i["learner"]),
                statement=i["statement"],
                voided=bool(i.get("voided", False)),
                target=i.get("target"),
                tenant=_tenant(i.get("tenant", DEFAULT_TENANT)),
            )
            for i in data.get("items", [])
        ]
    except (KeyError, TypeError) as exc:
        raise BadEnvelope(f"an envelope item is malformed: {exc!r}") from None
    if any(not isinstance(i.statement, dict) for i in items):
        raise BadEnvelope("an item's statement is not a JSON object")
    return Envelope(through=data["through"], items=items, epoch=str(data.get("epoch", "")))
