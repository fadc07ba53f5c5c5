"""Configuration: one pydantic-settings class per component, all read from ``LRS_*`` variables.

Command-line options of ``lrs up`` override the environment. The README's configuration table
lists every variable; keep the two in step.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lrs.xapi.jsontext import MAX_DEPTH_CEILING

_ENV = {"env_prefix": "LRS_", "extra": "ignore"}


class ServerSettings(BaseSettings):
    """HTTP server and xAPI endpoint."""

    model_config = SettingsConfigDict(**_ENV)

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".lrs-data")
    """Where the embedded PostgreSQL keeps its files (and later sinks their state)."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Requests larger than this are answered 413."""
    max_page_size: int = Field(default=500, ge=1)
    """The most statements one GET /statements page returns (``limit=0`` means this)."""
    max_json_depth: int = Field(default=100, ge=16, le=MAX_DEPTH_CEILING)
    """How deeply any JSON the LRS parses from a request may nest (statements, documents that
    are merged, JSON parameters); deeper is answered 400. A statement's own structure takes
    about 12 levels, extensions the rest."""
    max_statements_per_request: int = Field(default=5_000, ge=1)
    """The most statements one PUT/POST may carry; more is answered 413 (bounds a request's memory)."""
    log_level: str = "info"
    workers: int = Field(default=1, ge=1)
    """Server processes sharing the port (each with its own event loop and connection pool)."""
    xapi_versions: str = "1.0.3,2.0.0"
    """The xAPI versions the endpoint speaks, comma-separated (``1.0.3``, ``2.0.0``): About lists
    them, requests naming another version are answered 400, and answers to requests without a
    version header carry 1.0.3 when it is enabled, else 2.0.0."""

    @field_validator("xapi_versions")
    @classmethod
    def _known_versions(cls, value: str) -> str:
        parse_versions(value)
        return value

    def versions(self) -> tuple[str, ...]:
        """The enabled versions, oldest first: ``("1.0.3", "2.0.0")``, ``("2.0.0",)`` …"""
        return parse_versions(self.xapi_versions)


def parse_versions(value: str) -> tuple[str, ...]:
    """``LRS_XAPI_VERSIONS``: ``1.0.3`` and/or ``2.0.0`` (``1.0``/``2.0`` and other patches of them
    name the same versions)."""
    found = set()
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        if re.fullmatch(r"1\.0(\.\d+)?", item):
            found.add("1.0.3")
        elif re.fullmatch(r"2\.0(\.\d+)?", item):
            found.add("2.0.0")
        else:
            raise ValueError(f"unknown xAPI version {item!r}: LRS_XAPI_VERSIONS takes 1.0.3 and/or 2.0.0")
    if not found:
        raise ValueError("LRS_XAPI_VERSIONS names no version: give 1.0.3, 2.0.0 or both")
    return tuple(sorted(found))


class StoreSettings(BaseSettings):
    """Statement and document storage."""

    model_config = SettingsConfigDict(**_ENV)

    store: str | None = None
    """A MongoDB URL (``mongodb://host/db?replicaSet=rs0``) to keep statements, documents and
    credentials in MongoDB; unset = PostgreSQL (``database_url`` or the embedded server)."""
    database_url: str | None = None
    """An external PostgreSQL (``postgresql://user:pass@host/db``); unset = embedded server."""
    pool_min: int = 2
    pool_max: int = 10
    lms_database_url: str | None = None
    """The LMS's PostgreSQL for catalog and progress rollups (schema ``lms``); unset = the store's."""
    pipeline: bool = True
    """Whether ``lrs up`` also runs the stream pipeline (broker and worker)."""

    @field_validator("store")
    @classmethod
    def _mongodb_url(cls, value: str | None) -> str | None:
        from lrs.store import is_mongodb

        if not value:
            return None
        if not is_mongodb(value):
            raise ValueError("LRS_STORE takes a mongodb:// URL; for PostgreSQL set LRS_DATABASE_URL")
        return value


class AuthSettings(BaseSettings):
    """Credentials."""

    model_config = SettingsConfigDict(**_ENV)

    admin_key: str | None = None
    admin_secret: str | None = None
    """When both are set, ``lrs up`` makes sure this Basic credential exists with scope ``all``."""
    authority_homepage: str = "urn:lrs:credentials"
    """``account.homePage`` of the authority Agent the LRS puts on statements for a credential."""
    credential_cache_seconds: float = 60.0
    """How long a verified secret is trusted without hashing it again (revocation clears it)."""


class WorkerWebSettings(BaseSettings):
    """Where a pipeline worker's web server listens (the worker serves it; the LRS asks it for
    reports and replays)."""

    model_config = SettingsConfigDict(**_ENV)

    worker_web_port: int = 6066
    """Port of the worker's web server (metrics, analytics queries) on 127.0.0.1."""
    worker_web_host: str = "127.0.0.1"
    """Interface of the worker's web server (``0.0.0.0`` in containers, for Prometheus and the LRS)."""


class AnalyticsSettings(BaseSettings):
    """The instructor page's source of reports: the pipeline worker's web server."""

    model_config = SettingsConfigDict(**_ENV)

    analytics_url: str | None = None
    """Base URL of a worker web server; unset = ``http://127.0.0.1:LRS_WORKER_WEB_PORT``."""
    analytics_timeout: float = 10.0
    """Seconds a report may take."""

    def url(self) -> str:
        if self.analytics_url:
            return self.analytics_url.rstrip("/")
        return f"http://127.0.0.1:{WorkerWebSettings().worker_web_port}"


class Cmi5Settings(BaseSettings):
    """cmi5 launch (``/cmi5/…``): course import, launch, fetch and session tokens."""

    model_config = SettingsConfigDict(env_prefix="LRS_CMI5_", extra="ignore")

    public_url: str | None = None
    """The service's address as launched AUs reach it (the launch URL's ``endpoint`` and
    ``fetch``, AU content of zip packages); unset: the address the launch request came to."""
    student_homepage: str = Field(default="https://lms.example", validation_alias="LRS_STUDENT_HOMEPAGE")
    """``account.homePage`` of the learner Agents launches use (``account.name`` is the student
    id): the pipeline's ``LRS_STUDENT_HOMEPAGE``, one setting for both."""
    fetch_seconds: float = Field(default=600.0, gt=0)
    """How long after a launch its fetch URL hands out the session token."""
    session_timeout_seconds: float = Field(default=3600.0, gt=0)
    """A session with no statement for this long is abandoned (the LMS records ``abandoned``)."""
    sweep_seconds: float = Field(default=60.0, gt=0)
    """How often the server looks for sessions to abandon."""
    max_package_bytes: int = Field(default=100 * 2**20, gt=0)
    """The largest course package (zip, uncompressed) an import accepts."""


class TenantSettings(BaseSettings):
    """Tenants (docs/tenants.md): default limits and the connections each tenant's stores hold."""

    model_config = SettingsConfigDict(env_prefix="LRS_TENANT_", extra="ignore")

    statements_per_second: int | None = Field(default=None, gt=0)
    """Statements a tenant's credentials may store per second, for tenants without their own
    limit (``lrs tenants create|limit --statements-per-second``); unset: unlimited."""
    storage_mb: int | None = Field(default=None, gt=0)
    """Megabytes a tenant's namespace may take before writes are refused with 429, for tenants
    without their own limit; unset: unlimited."""
    pool_max: int = Field(default=4, ge=2)
    """Most database connections a server process holds for one tenant (other than the default
    tenant, which uses LRS_POOL_MAX); idle ones close after 30 s."""
    refresh_seconds: float = Field(default=5.0, ge=0)
    """How long a server reuses what it read of a tenant (disabled, limits) and of its storage use."""

    @property
    def storage_bytes(self) -> int | None:
        return self.storage_mb * 2**20 if self.storage_mb is not None else None
