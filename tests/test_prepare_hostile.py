"""The worker's ``Pipeline.prepare`` on messages no LRS would have produced: each bad statement
goes to the dead-letter topic with its reason and the rest of its envelope goes on; nothing
raises out of ``prepare`` (an exception there would stop the agent, and the same message would
stop it again after every restart)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from sinks.ports import Retraction
from streams.pipeline import Pipeline
from streams.relay import envelope
from streams.settings import CatalogSettings, StreamSettings

GOOD = {
    "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
    "actor": {"mbox": "mailto:ada@example.org"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
    "object": {"id": "https://content.example/intro-video"},
    "stored": "2026-03-04T10:15:01Z",
}


def nested(depth: int) -> bytes:
    return b'{"id":"x","actor":{"mbox":"mailto:a@example.org"},"zz":' + b"[" * depth + b"]" * depth + b"}"


DEEP_1000 = nested(1000)  # msgspec gives up, orjson reads it but cannot write it again
DEEP_3000 = nested(3000)  # no parser reads it
HUGE_SCORE = orjson.dumps(GOOD)[:-1] + b',"result":{"score":{"raw":1' + b"0" * 400 + b"}}}"
HUGE_FLOAT = orjson.dumps(GOOD)[:-1] + b',"result":{"extensions":{"https://example.org/x":1e400}}}'


def item(statement: bytes, position: str, *, target: str | None = None) -> bytes:
    target_part = b'"target":"%s",' % target.encode() if target else b""
    return b'{"pos":"%s","learner":"mbox:mailto:ada@example.org","voided":false,%s"statement":%s}' % (
        position.encode(), target_part, statement,
    )  # fmt: skip


def prepare(pipeline: Pipeline, *items: bytes) -> tuple[list, list[str]]:
    dead: list[str] = []

    async def dead_letter(raw: bytes, reason: str, partition: int) -> None:
        dead.append(reason)

    batches = asyncio.run(pipeline.prepare([(0, envelope("p9", "e1", list(items)))], dead_letter))
    return [op for b in batches for op in b.operations], dead


@pytest.fixture
def pipeline() -> Pipeline:
    unreachable = "postgresql://127.0.0.1:1/none"  # prepare never connects
    return Pipeline(unreachable, unreachable, Path(tempfile.mkdtemp()), StreamSettings(), CatalogSettings())


BAD = [DEEP_1000, HUGE_SCORE, HUGE_FLOAT]
BAD_IDS = ["nested-1000", "integer-400-digits", "1e400"]


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
def test_a_bad_statement_is_dead_lettered_and_its_envelope_goes_on(pipeline: Pipeline, bad: bytes):
    operations, dead = prepare(pipeline, item(orjson.dumps(GOOD), "p1"), item(bad, "p2"))
    assert [op.position for op in operations] == ["p1"]
    assert len(dead) == 1 and "cannot flatten statement" in dead[0]


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
def test_with_an_erasure_recorded_a_statement_that_cannot_be_decoded_is_dead_lettered(pipeline, bad):
    """Screening decodes every statement: one that cannot be decoded is dead-lettered, not raised."""
    pipeline.erased.update(
        b"secret", {("default", "nobody-erased"): datetime(2026, 1, 1, tzinfo=timezone.utc)}
    )
    operations, dead = prepare(pipeline, item(orjson.dumps(GOOD), "p1"), item(bad, "p2"))
    assert [op.position for op in operations] == ["p1"]
    assert len(dead) == 1


def test_an_envelope_nested_beyond_any_parser_is_dead_lettered_whole(pipeline):
    operations, dead = prepare(pipeline, item(orjson.dumps(GOOD), "p1"), item(DEEP_3000, "p2"))
    assert operations == [] and len(dead) == 1 and "not JSON" in dead[0]


def test_a_voiding_whose_statement_cannot_be_decoded_is_dead_lettered_when_kept(pipeline):
    pipeline.found.keeps_statements = True  # a sink stores statements whole: the voiding is decoded
    voiding = item(HUGE_FLOAT, "p2", target="6690e6c9-3ef0-4ed3-8b37-7f3964730bee")
    fine = item(orjson.dumps(GOOD), "p3", target="6690e6c9-3ef0-4ed3-8b37-7f3964730bee")
    operations, dead = prepare(pipeline, voiding, fine)
    assert [(type(op), op.position) for op in operations] == [(Retraction, "p3")]
    assert len(dead) == 1
