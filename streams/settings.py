"""Pipeline configuration (``LRS_*`` variables, one class per component)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ENV = {"env_prefix": "LRS_", "extra": "ignore"}
CONSISTENCY_LEVELS = frozenset({
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "SERIAL", "LOCAL_SERIAL",
    "LOCAL_ONE",
})  # fmt: skip
"""``cassandra.ConsistencyLevel`` names (not imported: the driver is loaded only with its sink)."""


class StreamSettings(BaseSettings):
    """Kafka and the Faust worker."""

    model_config = SettingsConfigDict(**_ENV)

    kafka_bootstrap: str | None = None
    """An external Kafka (``host:9092,…``); unset = the embedded tansu broker."""
    kafka_port: int = 9092
    """Port of the embedded broker (127.0.0.1)."""
    stream_partitions: int = Field(default=4, ge=1)
    """Partitions of ``xapi.statements`` and ``lms.events``: the most workers that share the work."""
    stream_batch: int = Field(default=200, ge=1)
    """Statements per Kafka message at most (1 = one statement per message, keyed by learner)."""
    relay_interval: float = 0.05
    """Seconds between relay polls of the statement store when it is idle."""
    worker_web_port: int = 6066
    """Port of the worker's web server (metrics, analytics queries) on 127.0.0.1."""
    worker_web_host: str = "127.0.0.1"
    """Interface of the worker's web server (``0.0.0.0`` in containers, for Prometheus and the LRS)."""
    stream_sinks: str = "clickhouse,progress"
    """Sinks the worker feeds, comma-separated (clickhouse, progress, mongodb, cassandra)."""
    kafka_session_timeout: float = Field(default=6.0, gt=0)
    """Seconds without a heartbeat before Kafka drops the worker from its consumer group (Kafka
    accepts 6 at least). ``lrs up`` runs its worker on the embedded broker with 2: tansu answers a
    new group's first join only after half this time, and each broker restart begins a new group."""
    worker_stop_timeout: float = Field(default=10.0, gt=0)
    """Seconds a stopping worker may take (finishing sink writes, committing offsets) before it
    exits at once; what it had not acknowledged is consumed again and the sinks skip it."""

    def sinks(self) -> list[str]:
        return [s.strip() for s in self.stream_sinks.split(",") if s.strip()]


class ClickHouseSettings(BaseSettings):
    """The ClickHouse sink."""

    model_config = SettingsConfigDict(**_ENV)

    clickhouse_url: str | None = None
    """A ClickHouse server (``http://user:pass@host:8123/db``); unset = chdb in DATA/clickhouse."""


class MongoSettings(BaseSettings):
    """The MongoDB sink (raw collections)."""

    model_config = SettingsConfigDict(**_ENV)

    mongo_url: str | None = None
    """The platform's MongoDB (``mongodb://user:pass@host:27017/db``), used when the sink has none."""
    sink_mongo_url: str | None = None
    """The MongoDB the sink writes to; unset = ``LRS_MONGO_URL``, else ``mongodb://127.0.0.1:27017``."""
    sink_mongo_database: str | None = None
    """Database of the sink's collections; unset = the URL's database, else ``lrs_analytics``."""

    def url(self) -> str:
        return self.sink_mongo_url or self.mongo_url or "mongodb://127.0.0.1:27017"


class CassandraSettings(BaseSettings):
    """The Cassandra sink (time series)."""

    model_config = SettingsConfigDict(**_ENV)

    cassandra_hosts: str = "127.0.0.1"
    """Contact points, comma-separated."""
    cassandra_port: int = 9042
    cassandra_keyspace: str = "analytics"
    """Keyspace of the sink's tables (created when missing)."""
    cassandra_replication: str = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    """Replication of the keyspace when the sink creates it, as a CQL map
    (``{'class': 'NetworkTopologyStrategy', 'dc1': 3}``)."""
    cassandra_local_dc: str | None = None
    """Datacenter whose nodes coordinate the sink's requests (unset = the driver's default policy)."""
    cassandra_username: str | None = None
    cassandra_password: SecretStr | None = None
    cassandra_consistency: str = "LOCAL_QUORUM"
    """Consistency level of every read and write (a ``cassandra.ConsistencyLevel`` name)."""
    cassandra_concurrency: int = Field(default=64, ge=1)
    """Requests in flight at once at most."""
    cassandra_retries: int = Field(default=3, ge=0)
    """Retries of a request that timed out or found too few replicas, with backoff, before the
    batch fails (the worker then retries the whole batch: every write is idempotent)."""

    def hosts(self) -> list[str]:
        return [h.strip() for h in self.cassandra_hosts.split(",") if h.strip()]

    @field_validator("cassandra_keyspace")
    @classmethod
    def _keyspace(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", value):
            raise ValueError("a keyspace name is a letter, then up to 47 letters, digits or _")
        return value

    @field_validator("cassandra_replication")
    @classmethod
    def _replication(cls, value: str) -> str:
        if not re.fullmatch(r"\s*\{[^;{}]*\}\s*", value) or "class" not in value:
            raise ValueError("replication is a CQL map with a 'class', e.g. {'class': 'SimpleStrategy', …}")
        return value.strip()

    @field_validator("cassandra_consistency")
    @classmethod
    def _consistency(cls, value: str) -> str:
        if value.upper() not in CONSISTENCY_LEVELS:
            raise ValueError(
                f"unknown consistency level {value!r}; one of {', '.join(sorted(CONSISTENCY_LEVELS))}"
            )
        return value.upper()


class CatalogSettings(BaseSettings):
    """How activity IRIs and agents map to LMS ids."""

    model_config = SettingsConfigDict(**_ENV)

    iri_templates: str = (
        "https://lms.example/courses/{course}/modules/{module}/lessons/{lesson};"
        "https://lms.example/courses/{course}/lessons/{lesson};"
        "https://lms.example/courses/{course}/quizzes/{quiz};"
        "https://lms.example/courses/{course}/modules/{module};"
        "https://lms.example/courses/{course}"
    )
    """Activity IRI patterns, ``;``-separated; ``{course}``, ``{module}``, ``{lesson}``, ``{quiz}``
    capture numeric ids. Tried after the catalog tables, most specific first."""
    student_homepage: str | None = "https://lms.example"
    """Agents with an ``account`` on this homePage whose name is a number are that student id."""
