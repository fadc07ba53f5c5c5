"""The message format of ``xapi.statements``.

A message is a JSON object (``v`` is the format version)::

    {"v": 1, "through": "<position>", "epoch": "<relay epoch>",
     "items": [{"pos": "<position>", "learner": "<identity key>", "voided": false,
                "statement": {...}}, ...]}

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

import orjson
from aiokafka.partitioner import murmur2

VERSION = 1


@lru_cache(maxsize=1 << 16)
def partition_of(learner: str, partitions: int) -> int:
    """Kafka's default partitioner: murmur2 of the key, positive, modulo the partition count.
    (aiokafka's murmur2 is pure Python; learners recur, so results are cached.)"""
    return (murmur2(learner.encode()) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class Item:
    position: str
    learner: str
    statement: dict[str, Any]
    voided: bool = False
    target: str | None = None


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
                    for i in self.items
                ],
            }
        )


class BadEnvelope(ValueError):
    """A message that is not a pipeline envelope (it goes to the dead-letter topic)."""


def decode(raw: bytes) -> Envelope:
    """Read an envelope; ``BadEnvelope`` names what is wrong with anything else."""
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
            )
            for i in data.get("items", [])
        ]
    except (KeyError, TypeError) as exc:
        raise BadEnvelope(f"an envelope item is malformed: {exc!r}") from None
    if any(not isinstance(i.statement, dict) for i in items):
        raise BadEnvelope("an item's statement is not a JSON object")
    return Envelope(through=data["through"], items=items, epoch=str(data.get("epoch", "")))
