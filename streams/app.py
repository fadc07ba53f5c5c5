"""The Faust application: agents that turn statement envelopes into sink writes.

``process`` takes envelopes in batches (one Faust message carries up to ``LRS_STREAM_BATCH``
statements, so Faust's per-message cost is shared), flattens each statement into a
``LearningEvent``, and hands each partition's events to every sink with the partition's
``through`` position. Anything that cannot be read or flattened goes to the dead-letter topic
with the reason; the agent keeps going. A sink that fails is retried with backoff and the batch
is not acknowledged until every sink has it, so nothing is skipped.

Tasks of the same app: the statement relay (``relay``), the domain-event outbox publisher, and
catalog reloads. The worker's web server serves ``/metrics`` and read-only analytics queries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import faust
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from lrs.runtime import tune_garbage_collection
from lrs.xapi.formats import parse_timestamp
from sinks.clickhouse import ClickHouseSink, connect
from sinks.ports import Batch, Retraction, Sink
from sinks.progress import ProgressSink
from sinks.reports import ReportQuery, course_report

from . import position as positions
from . import topics
from .catalog import NOTIFY_CHANNEL, Catalog
from .enrich import flatten
from .envelope import BadEnvelope, decode
from .lanes import Lanes
from .relay import REWIND_CHANNEL, StatementRelay
from .settings import CassandraSettings, CatalogSettings, ClickHouseSettings, MongoSettings, StreamSettings
from .stopping import unavailable_while_stopping
from .transport import Transport

if TYPE_CHECKING:  # imported when their sink is on: the drivers cost memory and start-up time
    from sinks.cassandra import CassandraSink
    from sinks.mongodb import MongoSink

log = logging.getLogger(__name__)

ANALYTICS_VIEWS = frozenset({
    "engagement_hourly", "active_learners_daily", "active_learners_weekly", "video_heatmap", "quiz_performance",
    "question_performance", "completion_funnel", "time_to_complete", "bi_course_overview", "bi_course_daily",
    "bi_lesson_engagement", "bi_video_segments", "bi_quiz_performance", "bi_quiz_items", "bi_learner_activity",
    "bi_at_risk_learners",
})  # fmt: skip

EVENTS = Counter("lrs_pipeline_events_total", "Statements (and retractions) applied, per sink", ["sink"])
DEAD_LETTERS = Counter(
    "lrs_pipeline_dead_letters_total", "Messages or statements sent to the dead-letter topic"
)
SINK_SECONDS = Histogram(
    "lrs_sink_batch_seconds", "Time to apply one batch to a sink", ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip
SINK_ERRORS = Counter("lrs_sink_errors_total", "Failed attempts to apply a batch", ["sink"])
RELAYED = Gauge("lrs_relay_published_total", "Statements published by this worker's relay")
LAG = Gauge("lrs_sink_lag_seconds", "How far a sink is behind the relay, in stored time", ["sink"])


class Pipeline:
    """Everything the agents share: catalog, sinks, relay, connections."""

    def __init__(
        self,
        store_dsn: str,
        lms_dsn: str,
        data_dir: Path,
        stream: StreamSettings,
        clickhouse: ClickHouseSettings,
        catalog: CatalogSettings,
        mongodb: MongoSettings | None = None,
        cassandra: CassandraSettings | None = None,
    ) -> None:
        self.store_dsn, self.lms_dsn, self.data_dir = store_dsn, lms_dsn, data_dir
        self.stream, self.clickhouse_settings, self.catalog_settings = stream, clickhouse, catalog
        self.mongodb_settings = mongodb or MongoSettings()
        self.cassandra_settings = cassandra or CassandraSettings()
        self.catalog = Catalog(catalog.iri_templates, catalog.student_homepage)
        self.sinks: list[Sink] = []
        self.progress: ProgressSink | None = None
        self.clickhouse: ClickHouseSink | None = None
        self.mongodb: MongoSink | None = None
        self.cassandra: CassandraSink | None = None
        self.relay: StatementRelay | None = None
        self.lanes: Lanes | None = None
        self._listener: asyncpg.Connection | None = None
        self.stopping = False
        """Set when the worker begins to stop: its web pages answer 503 from then on."""

    def begin_stopping(self) -> None:
        self.stopping = True

    async def start(self, send) -> None:
        names = self.stream.sinks()
        if "progress" in names:
            self.progress = ProgressSink(self.lms_dsn, lambda: self.catalog, self.stream.stream_partitions)
            self.sinks.append(self.progress)
        if "clickhouse" in names:
            url, data_dir = self.clickhouse_settings.clickhouse_url, self.data_dir
            self.clickhouse = ClickHouseSink(
                lambda: connect(url, data_dir), self.stream.stream_partitions, lambda: self.catalog
            )
            self.sinks.append(self.clickhouse)
        if "mongodb" in names:
            from sinks.mongodb import MongoSink

            mongo = self.mongodb_settings
            self.mongodb = MongoSink(mongo.url(), mongo.sink_mongo_database, self.stream.stream_partitions)
            self.sinks.append(self.mongodb)
        if "cassandra" in names:
            from sinks.cassandra import CassandraSink
            from sinks.cassandra import connect as cassandra_session

            cassandra = self.cassandra_settings
            self.cassandra = CassandraSink(
                lambda: cassandra_session(cassandra), cassandra, self.stream.stream_partitions
            )
            self.sinks.append(self.cassandra)
        for sink in self.sinks:
            await sink.start()
        self.lanes = Lanes(self.sinks, self._apply_with_retry, self._lane_failed)
        self.lanes.start()
        await self.reload_catalog()
        self._listener = await asyncpg.connect(
            self.lms_dsn, server_settings={"application_name": "lrs-catalog"}
        )
        await self._listener.add_listener(
            NOTIFY_CHANNEL, lambda *_: asyncio.ensure_future(self.reload_catalog())
        )
        self.relay = StatementRelay(
            self.store_dsn, send, self.stream.stream_partitions, self.start_position,
            batch=self.stream.stream_batch, interval=self.stream.relay_interval,
        )  # fmt: skip

    def _lane_failed(self, exc: BaseException) -> None:
        log.critical("a sink lane failed; stopping the worker", exc_info=exc)
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor (or the orchestrator) restarts it

    async def stop(self) -> None:
        if self.lanes is not None:
            await self.lanes.stop()
        if self._listener is not None:
            await self._listener.close()
        for sink in self.sinks:
            await sink.close()

    async def reload_catalog(self) -> None:
        conn = await asyncpg.connect(self.lms_dsn, server_settings={"application_name": "lrs-catalog"})
        try:
            await conn.execute("SELECT 1 FROM lms.courses LIMIT 1")
            self.catalog = await Catalog.read(
                conn, self.catalog_settings.iri_templates, self.catalog_settings.student_homepage
            )
        except asyncpg.UndefinedTableError:
            pass  # no progress sink, no catalog tables: resolve by IRI templates only
        finally:
            await conn.close()
        if self.clickhouse is not None:
            await self.clickhouse.sync_catalog(self.catalog)

    async def store_now(self) -> str:
        """The statement store's clock, as the relay writes epochs."""
        conn = await asyncpg.connect(self.store_dsn, server_settings={"application_name": "lrs-replay"})
        try:
            return positions.encode(await conn.fetchval("SELECT clock_timestamp()"), 0)
        finally:
            await conn.close()

    async def notify_rewind(self) -> None:
        """Tell the relay, in whichever worker leads, to start again from the sinks' positions."""
        conn = await asyncpg.connect(self.store_dsn, server_settings={"application_name": "lrs-replay"})
        try:
            await conn.execute(f"NOTIFY {REWIND_CHANNEL}")
        finally:
            await conn.close()

    async def start_position(self) -> str:
        """The lowest position any sink recorded for any partition: replay from there."""
        lowest = None
        for sink in self.sinks:
            marks = await sink.watermarks(self.stream.stream_partitions)
            low = min(marks)
            lowest = low if lowest is None else min(lowest, low)
        return lowest or positions.START

    async def prepare(self, messages: list[tuple[int, bytes]], dead_letter) -> list[Batch]:
        """Envelopes (partition, raw value) → one batch of operations per partition; what cannot
        be read or flattened goes to the dead-letter topic."""
        batches: dict[int, Batch] = {}
        keep = self.mongodb is not None  # the MongoDB sink stores statements whole
        for partition, raw in messages:
            batch = batches.setdefault(partition, Batch(partition))
            try:
                envelope = decode(raw)
            except BadEnvelope as exc:
                await dead_letter(raw, str(exc), partition)
                continue
            if envelope.epoch > batch.epoch:  # the relay rewound: positions start over
                batch.epoch, batch.through = envelope.epoch, envelope.through
            elif envelope.epoch == batch.epoch:
                batch.through = max(batch.through, envelope.through)
            for item in envelope.items:
                if item.target is not None:
                    batch.operations.append(Retraction(item.target, item.position))
                    continue
                if item.voided:
                    continue  # voided before it was read: it never counts
                try:
                    batch.operations.append(flatten(item.statement, item.position, self.catalog, keep))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    await dead_letter(
                        orjson.dumps(item.statement), f"cannot flatten statement: {exc!r}", partition
                    )
        return list(batches.values())

    async def _apply_with_retry(self, sink: Sink, batches: list[Batch]) -> None:
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                await sink.apply(batches)
            except Exception:  # noqa: BLE001 - any sink failure: retry, never skip the batch
                SINK_ERRORS.labels(sink.name).inc()
                log.exception("sink %s failed on a batch; retrying in %.1f s", sink.name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            SINK_SECONDS.labels(sink.name).observe(time.perf_counter() - started)
            EVENTS.labels(sink.name).inc(sum(len(b.operations) for b in batches))
            through = min((b.through for b in batches if b.through), default="")
            if through and self.relay and self.relay.position:
                lag = positions.stored_of(self.relay.position) - positions.stored_of(through)
                LAG.labels(sink.name).set(max(lag.total_seconds(), 0.0))
            return


class PipelineApp(faust.App):
    """A Faust app that opens its pipeline (sinks, catalog) before agents run and closes it last."""

    pipeline: Pipeline
    send: Any

    async def on_start(self) -> None:
        await super().on_start()
        await self.pipeline.start(self.send)
        tune_garbage_collection()

    async def on_stop(self) -> None:
        self.pipeline.begin_stopping()
        await self.pipeline.stop()
        await super().on_stop()

    def _new_transport(self):
        return Transport(self.conf.broker_consumer, self)


def create_app(pipeline: Pipeline, broker: str) -> faust.App:
    settings = pipeline.stream
    app = PipelineApp(
        "lrs-pipeline",
        broker=f"kafka://{broker}",
        store="memory://",
        topic_partitions=settings.stream_partitions,
        topic_replication_factor=1,
        broker_session_timeout=settings.kafka_session_timeout,
        broker_heartbeat_interval=settings.kafka_session_timeout / 3,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,  # a stop does not wait for takes in flight: they are consumed again
        producer_max_batch_size=1 << 20,
        broker_max_poll_records=1000,
        web_enabled=True,
        web_bind=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_transport="tcp://",
        web_application_options={"middlewares": [unavailable_while_stopping(lambda: pipeline.stopping)]},
        datadir=str(pipeline.data_dir / "faust"),
        loghandlers=[],
    )
    statements = app.topic(topics.STATEMENTS, value_serializer="raw", key_serializer="raw",
                           partitions=settings.stream_partitions)  # fmt: skip
    dead_letters = app.topic(topics.DEAD_LETTERS, value_serializer="raw", key_serializer="raw", partitions=1)
    domain_events = app.topic(topics.DOMAIN_EVENTS, value_serializer="raw", key_serializer="raw",
                              partitions=settings.stream_partitions)  # fmt: skip

    async def send(partition: int, value: bytes, key: bytes | None) -> None:
        await (await app.producer.send(statements.get_topic_name(), key, value, partition, None, None))

    async def dead_letter(raw: bytes, reason: str, partition: int) -> None:
        DEAD_LETTERS.inc()
        log.warning("dead letter from partition %d: %s", partition, reason)
        await dead_letters.send(value=orjson.dumps({"reason": reason, "partition": partition,
                                                    "value": raw.decode("utf-8", "replace")}))  # fmt: skip

    app.pipeline, app.send = pipeline, send

    @app.agent(statements)
    async def process(stream):
        """Envelopes in → batches handed to the sink lanes; the envelopes are acknowledged once
        every sink applied them."""
        async for events in stream.noack_take(50, within=0.05):
            batches = await pipeline.prepare([(e.message.partition, e.value) for e in events], dead_letter)

            async def acknowledge(events=events) -> None:
                for event in events:
                    await stream.ack(event)

            yield await pipeline.lanes.submit(batches, acknowledge)

    @app.task
    async def relay() -> None:
        """Publish stored statements (only the worker holding the relay lock does)."""
        while pipeline.relay is None:
            await asyncio.sleep(0.05)
        await pipeline.relay.run()

    @app.timer(interval=0.25)
    async def publish_domain_events() -> None:
        """Move domain events from the progress sink's outbox to ``lms.events``."""
        if pipeline.progress is None or not (pipeline.relay and pipeline.relay.leading):
            return
        pending = await pipeline.progress.unpublished_events()
        if pending:
            await asyncio.gather(
                *[domain_events.send(key=key.encode(), value=value) for _, value, key in pending]
            )
            await app.producer.flush()
            await pipeline.progress.mark_published([event_id for event_id, _, _ in pending])

    @app.timer(interval=1.0)
    async def export_relay_metrics() -> None:
        if pipeline.relay is not None:
            RELAYED.set(pipeline.relay.published)

    @app.page("/metrics")
    async def metrics(web_view, request):
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/watermarks")
    async def watermarks(web_view, request):
        """Each sink's position per partition, and the relay's (tests and `lrs replay` wait on these)."""
        body: dict[str, Any] = {"relay": pipeline.relay.position if pipeline.relay else None}
        for sink in pipeline.sinks:
            body[sink.name] = await sink.watermarks(settings.stream_partitions)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    @app.page("/catalog")
    async def catalog_page(web_view, request):
        """What the worker's catalog holds now (course ids, student count): it reloads the catalog
        when told, a moment after an upload."""
        body = {"courses": sorted(pipeline.catalog.courses), "students": len(set(pipeline.catalog.students.values()))}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    @app.page("/analytics/{view}")
    async def analytics(web_view, request, view: str):
        """Rows of one analytics view, optionally for one course: ``/analytics/video_heatmap?course_id=3``."""
        if pipeline.clickhouse is None or view not in ANALYTICS_VIEWS:
            return web.Response(
                status=404, text=f"no analytics view {view!r}; views: {sorted(ANALYTICS_VIEWS)}"
            )
        where, parameters = "", {}
        course = request.query.get("course_id")
        if course is not None:
            if not course.isdigit():
                return web.Response(status=400, text="course_id must be a number")
            where, parameters = " WHERE course_id = %(course)s", {"course": int(course)}
        rows = await pipeline.clickhouse.records(f"SELECT * FROM {view}{where}", parameters)
        return web.Response(body=orjson.dumps(rows, default=str), content_type="application/json")

    @app.page("/reports/course/{course_id}")
    async def course_report_page(web_view, request, course_id: str):
        """The instructor page's report of one course (see ``sinks.reports``)."""
        if pipeline.clickhouse is None:
            return web.Response(status=404, text="this worker has no ClickHouse sink")
        q = request.query
        try:
            query = ReportQuery.parse(course_id, q.get("since"), q.get("until"), q.get("grain"))
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        body = await course_report(pipeline.clickhouse.records, query)
        return web.Response(body=orjson.dumps(body, default=str), content_type="application/json")

    @app.page("/learners/{user_id}/history")
    async def learner_history(web_view, request, user_id: str):
        """A learner's daily engagement and weekly progress from the Cassandra sink:
        ``/learners/<user_id>/history?days=30&until=2026-05-31``; ``user_id`` is the UUID of the
        sink's tables or the learner's identity key, URL-encoded (``mbox:mailto:…``, ``account:…``)."""
        if pipeline.cassandra is None:
            return web.Response(status=404, text="this worker has no Cassandra sink")
        try:
            days = int(request.query.get("days", "30"))
            until = date.fromisoformat(request.query["until"]) if "until" in request.query else None
        except ValueError:
            return web.Response(status=400, text="days must be a number, until a date (YYYY-MM-DD)")
        if not 1 <= days <= 366:
            return web.Response(status=400, text="days must be between 1 and 366")
        try:
            learner: uuid.UUID | str = uuid.UUID(user_id)
        except ValueError:
            learner = user_id  # an identity key such as mbox:mailto:ada@example.org
        body = await pipeline.cassandra.learner_history(learner, days, until)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    @app.page("/replay")
    class Replay(faust.web.View):
        """POST {"since": ISO timestamp or null, "sinks": [names] or null}: those sinks start
        rebuilding what was stored from ``since`` (beside what they serve, swapped in once caught
        up) and the relay replays from their positions. GET: the replays in progress."""

        async def get(self, request):
            statuses = [s for sink in pipeline.sinks if (s := await sink.replay_status()) is not None]
            body = {
                "replaying": [
                    {"sink": s.sink, "since": s.since.isoformat() if s.since else None, "target": s.target,
                     "position": s.position}
                    for s in statuses
                ]
            }  # fmt: skip
            return web.Response(body=orjson.dumps(body), content_type="application/json")

        async def post(self, request):
            try:
                body = orjson.loads(await request.read() or b"{}")
            except orjson.JSONDecodeError:
                body = None
            if not isinstance(body, dict):
                return web.Response(status=400, text='expected {"since": …, "sinks": […]}')
            since = parse_timestamp(body["since"]) if body.get("since") else None
            if body.get("since") and since is None:
                return web.Response(status=400, text="since must be an ISO 8601 timestamp")
            chosen = [s for s in pipeline.sinks if not body.get("sinks") or s.name in body["sinks"]]
            epoch = await pipeline.store_now()
            await pipeline.lanes.drain()  # every batch after this goes to the rebuild too
            for sink in chosen:
                # done once every statement stored before now has been sent again
                await sink.begin_replay(since, epoch, target=epoch)
            await pipeline.notify_rewind()
            return web.Response(
                body=orjson.dumps({"reset": [s.name for s in chosen], "target": epoch}),
                content_type="application/json",
            )

    return app
