"""Building the sinks a worker feeds (``LRS_STREAM_SINKS``): the one place that knows the adapters.

The pipeline asks for sinks by name and gets them as ports (``sinks.ports``). Drivers load only
with their sink (cassandra-driver and motor cost memory and start-up time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lrs.store.ports import DEFAULT_TENANT

from .catalog import Catalog
from .ports import AnalyticsViews, DomainEventOutbox, LearnerHistory, Sink
from .settings import CassandraSettings, ClickHouseSettings, ForwardSettings, MongoSettings

KNOWN = ("clickhouse", "progress", "mongodb", "cassandra", "forward")


@dataclass
class SinkSet:
    """The sinks of one worker, and which of them answer the worker's pages."""

    sinks: list[Sink] = field(default_factory=list)
    views: AnalyticsViews | None = None
    """ClickHouse: ``/analytics/{view}`` and the instructor reports."""
    history: LearnerHistory | None = None
    """Cassandra: ``/learners/{id}/history``."""
    events: DomainEventOutbox | None = None
    """The progress sink's domain events, to publish on ``lms.events``."""
    keeps_statements: bool = False
    """A sink needs statements whole (MongoDB stores them, forwarding sends them): events carry them."""


def build_sinks(
    names: list[str], *, partitions: int, data_dir: Path, lms_dsn: str,
    catalogs: Callable[[], Mapping[str, Catalog]],
    clickhouse: ClickHouseSettings | None = None, mongodb: MongoSettings | None = None,
    cassandra: CassandraSettings | None = None, forward: ForwardSettings | None = None, store_url: str | None = None,
) -> SinkSet:  # fmt: skip
    """``catalogs``: every tenant's catalog now; ``store_url``: the statement store, where
    forwarding reads attachment data."""
    unknown = sorted(set(names) - set(KNOWN))
    if unknown:
        raise ValueError(f"unknown sink {unknown[0]!r} in LRS_STREAM_SINKS; the sinks are {', '.join(KNOWN)}")
    found = SinkSet()
    if "progress" in names:
        from .progress import ProgressSink

        progress = ProgressSink(lms_dsn, lambda: catalogs()[DEFAULT_TENANT], partitions)
        found.sinks.append(progress)
        found.events = progress
    if "clickhouse" in names:
        from .clickhouse import ClickHouseSink, connect

        settings_ch = clickhouse or ClickHouseSettings()
        url, own = settings_ch.clickhouse_url, settings_ch.chdb_own_process
        views = ClickHouseSink(lambda: connect(url, data_dir, own_process=own), partitions, catalogs)
        found.sinks.append(views)
        found.views = views
    if "mongodb" in names:
        from .mongodb import MongoSink

        settings = mongodb or MongoSettings()
        found.sinks.append(MongoSink(settings.url(), settings.sink_mongo_database, partitions))
        found.keeps_statements = True
    if "cassandra" in names:
        from .cassandra import CassandraSink
        from .cassandra import connect as session

        settings_c = cassandra or CassandraSettings()
        history = CassandraSink(lambda: session(settings_c), settings_c, partitions)
        found.sinks.append(history)
        found.history = history
    if "forward" in names:
        import socket

        from .forward import ForwardSink

        owner = f"{socket.gethostname()}:{data_dir.resolve()}"  # a restarted worker resumes its deliveries
        found.sinks.append(
            ForwardSink(lms_dsn, partitions, store_url=store_url, owner=owner, settings=forward)
        )
        found.keeps_statements = True
    return found
