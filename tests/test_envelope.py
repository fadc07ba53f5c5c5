"""The ``xapi.statements`` message format: what the relay writes is what the agent reads, and
anything else is refused with a reason (that reason goes to the dead-letter topic)."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.envelope import BadEnvelope, Envelope, Item, decode, partition_of
from streams.relay import envelope


def test_the_relays_bytes_decode_like_an_encoded_envelope():
    statement = {"id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee", "actor": {"mbox": "mailto:a@example.org"}}
    item = b'{"pos":"p1","learner":"mbox:mailto:a@example.org","voided":false,"statement":%s}' % orjson.dumps(
        statement
    )
    written = decode(envelope("p2", "e1", [item]))
    expected = Envelope("p2", [Item("p1", "mbox:mailto:a@example.org", statement)], "e1")
    assert written == expected == decode(expected.encode())


def test_heartbeats_and_voids_round_trip():
    heartbeat = Envelope(through="p9", epoch="e2")
    assert decode(heartbeat.encode()) == heartbeat
    void = Envelope("p3", [Item("p3", "k", {"id": "x"}, target="6690e6c9-3ef0-4ed3-8b37-7f3964730bee")])
    assert decode(void.encode()).items[0].target == "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\x00", "not JSON"),
        (b"[1, 2]", "unknown envelope version None"),
        (b'{"v": 2, "through": "", "items": []}', "unknown envelope version 2"),
        (b'{"v": 1, "through": "", "items": 5}', "items is a int, not a list"),
        (b'{"v": 1, "items": []}', "no through position"),
        (b'{"v": 1, "through": "", "items": [{"pos": "p"}]}', "item is malformed"),
        (
            b'{"v": 1, "through": "", "items": [{"pos": "p", "learner": "k", "statement": 3}]}',
            "not a JSON object",
        ),
    ],
)
def test_anything_else_is_refused_with_its_reason(raw: bytes, reason: str):
    with pytest.raises(BadEnvelope, match=reason):
        decode(raw)


@pytest.mark.parametrize("key", ["mbox:mailto:a@example.org", "account:https://lms.example|1234", "group:"])
def test_partitions_match_kafkas_default_partitioner(key: str):
    """A learner's messages land where a keyed Kafka producer would put them."""
    partitions = list(range(6))
    assert partition_of(key, 6) == DefaultPartitioner()(key.encode(), partitions, partitions)
