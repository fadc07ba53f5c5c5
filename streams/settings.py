"""Pipeline configuration (``LRS_*`` variables, one class per component)."""

from __future__ import annotations


from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lrs.settings import WorkerWebSettings

_ENV = {"env_prefix": "LRS_", "extra": "ignore"}


class StreamSettings(WorkerWebSettings):
    """Kafka and the Faust worker (and where its web server listens)."""

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
    stream_sinks: str = "clickhouse,progress,forward"
    """Sinks the worker feeds, comma-separated (clickhouse, progress, mongodb, cassandra, forward)."""
    kafka_session_timeout: float = Field(default=6.0, gt=0)
    """Seconds without a heartbeat before Kafka drops the worker from its consumer group (Kafka
    accepts 6 at least). ``lrs up`` runs its worker on the embedded broker with 2: tansu answers a
    new group's first join only after half this time, and each broker restart begins a new group."""
    worker_stop_timeout: float = Field(default=10.0, gt=0)
    """Seconds a stopping worker may take (finishing sink writes, committing offsets) before it
    exits at once; what it had not acknowledged is consumed again and the sinks skip it."""

    def sinks(self) -> list[str]:
        return [s.strip() for s in self.stream_sinks.split(",") if s.strip()]


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
