"""Erasing a learner from the Cassandra sink (on the recording fake, tests/cassandra_fake.py):
after a realistic cohort (tests/reference/cohorts.py) went in, with voidings, no row of any table
names the learner or one of the erased statements, and every aggregate equals that of a sink fed
only the statements that remain."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from lrs.xapi.agents import ifi_key
from sinks.cassandra import user_uuid
from sinks.catalog import Catalog, CatalogDocument
from sinks.ports import ErasureTask, Retraction
from sinks.positions import encode

from .cassandra_fake import FakeCluster, cassandra_sink, schema_text
from .reference.cohorts import SeededChoices, build
from .sink_events import batch, events
from .test_cassandra_sink import snapshot

TEACHER = {"objectType": "Agent", "mbox": "mailto:teacher.b62@school.example"}


def stored(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**s, "stored": s.get("timestamp", "2026-03-01T00:00:00Z").replace("Z", "+00:00")} for s in statements
    ]


def fed(
    fake: FakeCluster, statements: list[dict], voids: list[dict], catalog: Catalog, erase: ErasureTask | None
):
    sink = cassandra_sink(4, cluster=fake)

    async def go() -> dict[str, Any]:
        await sink.start()
        try:
            made = events(stored(statements), catalog)
            for start in range(0, len(made), 25):
                await sink.apply([batch(start // 25 % 4, made[start : start + 25])])
            retractions = [
                Retraction(v["object"]["id"], encode(datetime.fromisoformat("2026-06-01T00:00:00+00:00"), i + 1))
                for i, v in enumerate(voids)
            ]  # fmt: skip
            if retractions:
                await sink.apply([batch(0, retractions)])
            if erase is not None:
                assert (await sink.erase(erase))["statements"] > 0
                assert (await sink.erase(erase))["statements"] == 0  # a rerun finds nothing left
            return await snapshot(sink)
        finally:
            await sink.close()

    return asyncio.run(go())


def rows(fake: FakeCluster) -> list[tuple[str, dict[str, Any]]]:
    return [
        (table, row.values)
        for (_, table), partitions in fake.data.items()
        for clustered in partitions.values()
        for row in clustered.values()
    ]


def test_an_erased_learner_leaves_no_row_and_aggregates_are_recomputed_without_them():
    cohort = build(SeededChoices(20261217), 62)
    catalog = Catalog.of(CatalogDocument.model_validate(cohort.catalog))
    student = cohort.catalog["students"][0]
    mbox = student["identities"][0]["mbox"]
    agent = {"objectType": "Agent", "mbox": mbox}
    about = {
        "id": str(uuid.uuid4()), "actor": TEACHER, "verb": {"id": "http://id.tincanapi.com/verb/mentored"},
        "object": agent, "timestamp": "2026-03-02T10:00:00Z",
    }  # fmt: skip
    everything = cohort.statements + [about]
    gone = {s["id"] for s in everything if s["actor"].get("mbox") == mbox or s["object"] == agent}
    remaining = [s for s in everything if s["id"] not in gone]
    voids = [v for v in cohort.voids if v["object"]["id"] not in gone]
    assert len(voids) < len(cohort.voids), "the cohort voids some of the learner's statements"
    key = ifi_key(agent)
    task = ErasureTask(str(uuid.uuid4()), [key], [student["id"]], sorted(gone), {}, ["cassandra"])

    erased_fake = FakeCluster(schema_text())
    after = fed(erased_fake, everything, cohort.voids, catalog, task)
    expected = fed(FakeCluster(schema_text()), remaining, voids, catalog, None)
    assert after == expected
    assert after["engagement"] and after["views"]

    learner = user_uuid(key)
    gone_ids = {uuid.UUID(i) for i in gone}
    found = [
        (table, values) for table, values in rows(erased_fake)
        if learner in values.values() or gone_ids & set(values.values())
        or any(mbox.removeprefix("mailto:") in str(v) for v in values.values())
    ]  # fmt: skip
    assert found == []
    assert any(table == "statement_facts" for table, _ in rows(erased_fake))
