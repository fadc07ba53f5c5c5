"""Settings of the sinks (``LRS_*`` variables), one class per adapter; light to import (the
drivers load only with their sink)."""

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


class ClickHouseSettings(BaseSettings):
    """The ClickHouse sink."""

    model_config = SettingsConfigDict(**_ENV)

    clickhouse_url: str | None = None
    """A ClickHouse server (``http://user:pass@host:8123/db``); unset = chdb in DATA/clickhouse."""
    chdb_own_process: bool = True
    """Without a server, run chdb (the embedded engine) in a child process of the worker's, not
    inside it: the worker stays small and the engine's CPU and memory show on their own."""


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


class ForwardSettings(BaseSettings):
    """Statement forwarding (the forward sink; rules are managed with ``lrs forward``)."""

    model_config = SettingsConfigDict(**_ENV)

    forward_max_attempts: int = Field(default=20, ge=1)
    """Failed deliveries of a statement before it goes to the rule's dead letters (``lrs forward
    retry`` sends them again); with the default backoff, about an hour of a target's outage."""
    forward_backoff: float = Field(default=1.0, gt=0)
    """Seconds before the first retry of a failed delivery; doubled after each further failure."""
    forward_backoff_max: float = Field(default=300.0, gt=0)
    """The longest wait between retries."""
    forward_timeout: float = Field(default=10.0, gt=0)
    """Seconds a target may take to answer one delivery."""
    forward_keep_days: float = Field(default=30.0, ge=0)
    """How long the ids of delivered statements are kept: a voiding statement follows the
    statement it voids to a target if that was forwarded within this time."""


class DataRightsSettings(BaseSettings):
    """Erasure records and pseudonyms (docs/data-rights.md)."""

    model_config = SettingsConfigDict(**_ENV)

    data_rights_secret: SecretStr | None = None
    """The key of the keyed hashes (HMAC-SHA256) erasure records keep instead of identifiers;
    unset = a key generated once and kept in the LMS database (set it in production)."""
    analytics_pseudonyms: bool = False
    """The analytics sinks receive a keyed hash of each identity (HMAC with the secret above) in
    place of names and mailboxes; turning it on for an existing installation is ``lrs replay``."""
    erasure_wait_seconds: float = Field(default=60.0, ge=0, le=3600)
    """How long ``lrs erase`` and the admin endpoint wait for the workers' sinks before answering
    (the erasure completes anyway; the record says what is still pending)."""


class RetentionSettings(BaseSettings):
    """How long the analytics sinks keep data (docs/data-rights.md, "Retention"); unset = kept."""

    model_config = SettingsConfigDict(**_ENV)

    retention_days: int | None = Field(default=None, ge=1, le=36500)
    """Days the sinks keep per-statement (raw) data after the statement's timestamp: ClickHouse
    ``learning_events`` and ``video_segments`` (its views aggregate what is left), MongoDB
    ``xapi_statements`` and ``learning_progress``."""
    retention_aggregate_days: int | None = Field(default=None, ge=1, le=36500)
    """Days the MongoDB sink keeps ``course_engagement`` heatmaps after their day (at least
    ``LRS_RETENTION_DAYS``: a heatmap is recomputed from the raw rows)."""
