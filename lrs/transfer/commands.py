"""The ``lrs export`` and ``lrs import`` commands (registered on ``lrs.cli.main``)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import orjson

from lrs.databases import embedded_postgres, store_url
from lrs.settings import AuthSettings, ServerSettings, StoreSettings
from lrs.store.ports import DEFAULT_TENANT
from lrs.usecases.errors import LRSError
from lrs.usecases.transfer import ExportFilter, Importer, ImportReport, export_records, header
from lrs.usecases.transfer import import_principal
from lrs.xapi.agents import ifi_key
from lrs.xapi.formats import parse_timestamp

from .files import ExportWriter, FileSource, TransferError

_DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="data directory")


def _filter_options(command):
    for option in reversed([
        click.option("--since", default=None, help="statements stored after this ISO 8601 instant"),
        click.option("--until", default=None, help="statements stored at or before this ISO 8601 instant"),
        click.option("--agent", default=None, help="statements of this agent (xAPI agent JSON)"),
        click.option("--verb", default=None, help="statements with this verb IRI"),
        click.option("--activity", default=None, help="statements whose object is this activity IRI"),
        click.option("--registration", default=None, help="statements of this registration (UUID)"),
        click.option("--no-voided", is_flag=True, help="leave voided statements out (their voiding ones stay)"),
    ]):  # fmt: skip
        command = option(command)
    return command


def _filters(since, until, agent, verb, activity, registration, no_voided) -> ExportFilter:
    def instant(value: str | None, name: str) -> datetime | None:
        if value is None:
            return None
        moment = parse_timestamp(value)
        if moment is None:
            raise click.BadParameter(f"{value!r} is not an ISO 8601 timestamp", param_hint=name)
        return moment

    parsed_agent = None
    if agent is not None:
        try:
            parsed_agent = orjson.loads(agent)
        except orjson.JSONDecodeError:
            raise click.BadParameter("an agent is xAPI agent JSON", param_hint="--agent") from None
        if not isinstance(parsed_agent, dict):
            raise click.BadParameter("an agent is a JSON object", param_hint="--agent")
        if ifi_key(parsed_agent) is None:
            raise click.BadParameter(
                "an agent needs an identifier (mbox, mbox_sha1sum, openid or account)", param_hint="--agent"
            )
    return ExportFilter(parsed_agent, verb, activity, registration.lower() if registration else None,
                        instant(since, "--since"), instant(until, "--until"), voided=not no_voided)  # fmt: skip


class _Stores:
    """``async with _Stores(url, tenant) as (stores, backend)``: a tenant's stores (the default
    tenant's without one; docs/tenants.md), small pools. Credentials are always the deployment's."""

    def __init__(self, url: str, tenant: str = DEFAULT_TENANT) -> None:
        self.url, self.tenant = url, tenant
        self.backend: Any = None
        self.data: Any = None

    async def __aenter__(self):
        from lrs.store import open_stores
        from lrs.usecases.stores import Stores

        self.backend = self.data = await open_stores(self.url, pool_min=1, pool_max=4)
        if self.tenant != DEFAULT_TENANT:
            found = await self.backend.tenants.find(self.tenant)
            if found is None or found.disabled is not None:
                await self.backend.close()
                raise TransferError(f"no enabled tenant {self.tenant!r} (lrs tenants list)")
            self.data = await open_stores(self.url, pool_min=1, pool_max=4, tenant=self.tenant)
        return Stores(self.data.statements, self.data.documents, self.backend.credentials), self.data

    async def __aexit__(self, *exc: object) -> None:
        if self.data is not self.backend:
            await self.data.close()
        await self.backend.close()


async def credential_tenant(url: str, key: str) -> str:
    """The tenant of credential ``key`` (the default tenant's if there is no such credential:
    the import then refuses it by name)."""
    async with _Stores(url) as (stores, _):
        credential = await stores.credentials.find(key)
    return credential.tenant if credential is not None else DEFAULT_TENANT


@contextmanager
def _store_url(data_dir: Path | None) -> Iterator[str]:
    """The statement store (``LRS_STORE``, ``LRS_DATABASE_URL``, else the embedded PostgreSQL of
    the data directory, started for the command if ``lrs up`` is not running on it)."""
    given = store_url(StoreSettings())
    if given is not None:
        yield given
        return
    server = ServerSettings(**({"data_dir": data_dir} if data_dir else {}))
    with embedded_postgres(server.data_dir) as dsn:
        yield dsn


# --- export -------------------------------------------------------------------------------------------


@click.command("export")
@click.argument("output", type=click.Path(path_type=Path, dir_okay=False))
@_filter_options
@click.option(
    "--documents", is_flag=True, help="also every state, activity profile and agent profile document"
)
@click.option(
    "--gzip/--no-gzip", "compress", default=None, help="compress (default: when OUTPUT ends in .gz)"
)
@click.option(
    "--overwrite", is_flag=True, help="replace OUTPUT if it exists (and no export of it was interrupted)"
)
@click.option("--page-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--checkpoint-seconds", type=click.FloatRange(0), default=1.0, show_default=True,
              help="how often the position is made durable (a resumed export redoes at most this)")  # fmt: skip
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="the tenant whose data to export")
@_DATA_DIR
def export(output: Path, since, until, agent, verb, activity, registration, no_voided, documents: bool,
           compress: bool | None, overwrite: bool, page_size: int, checkpoint_seconds: float, tenant: str,
           data_dir) -> None:  # fmt: skip
    """Export statements (with their attachments) and optionally documents to NDJSON.

    Resumable: run the same command again after an interruption and it goes on where it stopped
    (OUTPUT.export-state records how far it got)."""
    filters = _filters(since, until, agent, verb, activity, registration, no_voided)
    compress = output.name.endswith(".gz") if compress is None else compress
    identity = {"filters": filters.describe(), "documents": documents}
    writer = ExportWriter(output, compress=compress, identity=identity, every=checkpoint_seconds)

    async def run(url: str) -> int:
        from tqdm import tqdm

        async with _Stores(url, tenant) as (stores, backend):
            position = writer.start(
                header(filters, documents, datetime.now(timezone.utc)), overwrite=overwrite
            )
            narrowed = any(
                v is not None for v in (filters.agent, verb, activity, registration, filters.until)
            )
            total = None if narrowed else await backend.outbox.count(filters.since, None)
            with tqdm(total=total, initial=writer.count, unit="stmt", desc="exporting", smoothing=0.1) as bar:
                async for lines, statements, after in export_records(
                    stores, filters, position, documents=documents, page_size=page_size
                ):
                    writer.write(lines)
                    writer.count += statements
                    bar.update(statements)
                    writer.checkpoint(after, force=after.phase == "done")
            writer.finish()
            return writer.count

    try:
        with _store_url(data_dir) as url:
            started = time.monotonic()
            count = asyncio.run(run(url))
    except TransferError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        writer.close()
    click.echo(f"exported {count:,} statements to {output} in {time.monotonic() - started:.1f} s")


# --- import -------------------------------------------------------------------------------------------


@click.command("import")
@click.argument("file", required=False, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--from", "source_url", default=None, help="another LRS's xAPI endpoint (https://host/xapi)")
@click.option("--auth", default=None, help="KEY:SECRET of a credential that may read the source's statements")
@click.option("--as", "as_key", default=None,
              help="this LRS's credential the statements are stored as (default LRS_ADMIN_KEY)")  # fmt: skip
@click.option("--keep-authority", is_flag=True, help="keep each statement's authority (needs scope import)")
@click.option("--state", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="where the position of a resumable import is kept")  # fmt: skip
@click.option("--batch", type=click.IntRange(1, 50_000), default=1000, show_default=True,
              help="statements stored together (and the most an interruption repeats)")  # fmt: skip
@click.option("--page-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="statements per page asked of the source (--from)")  # fmt: skip
@_filter_options
@_DATA_DIR
def import_(file: Path | None, source_url: str | None, auth: str | None, as_key: str | None, keep_authority: bool,
            state: Path | None, batch: int, page_size: int, since, until, agent, verb, activity, registration,
            no_voided, data_dir) -> None:  # fmt: skip
    """Import an export file (plain or gzip NDJSON) or another LRS's statements (--from) into
    the tenant of the --as credential.

    Idempotent: what is stored already with the same content is skipped, an id stored with other
    content is reported and never overwritten. Resumable: run it again after an interruption."""
    if (file is None) == (source_url is None):
        raise click.UsageError("give an export FILE or --from URL (one of them)")
    as_key = as_key or AuthSettings().admin_key
    if not as_key:
        raise click.UsageError("give --as KEY: the credential of this LRS to store the statements as")
    if source_url is not None:
        from .remote import RemoteSource

        if not auth or ":" not in auth:
            raise click.UsageError("--from needs --auth KEY:SECRET of the source LRS")
        key, _, secret = auth.partition(":")
        filters = _filters(since, until, agent, verb, activity, registration, no_voided)
        digest = hashlib.sha256(f"{source_url} {filters.describe()}".encode()).hexdigest()[:12]
        source: Any = RemoteSource(
            source_url, (key, secret), state or Path(f"lrs-import-{digest}.state"), filters, limit=page_size
        )
    else:
        if any(v is not None for v in (since, until, agent, verb, activity, registration)) or no_voided:
            raise click.UsageError("filters apply to --from; an export file is imported whole")
        source = FileSource(file, state)

    async def run(url: str) -> ImportReport:
        from tqdm import tqdm

        # statements go to the tenant of the credential they are stored as
        async with _Stores(url, await credential_tenant(url, as_key)) as (stores, _):
            principal = await import_principal(stores, as_key, keep_authority=keep_authority)
            with tqdm(unit="stmt", desc="importing", smoothing=0.1) as bar:
                importer = Importer(
                    stores,
                    principal,
                    max_depth=ServerSettings().max_json_depth,
                    batch=batch,
                    progress=bar.update,
                )
                report = await importer.run(source)
        source.done()
        return report

    started = time.monotonic()
    try:
        with _store_url(data_dir) as url:
            report = asyncio.run(run(url))
    except (TransferError, LRSError) as exc:
        raise click.ClickException(str(exc)) from None
    seconds = time.monotonic() - started
    for problem in report.problems:
        click.echo(problem, err=True)
    if report.more_problems:
        click.echo(f"… and {report.more_problems} more", err=True)
    click.echo(
        f"read {report.statements:,} statements in {seconds:.1f} s: {report.new:,} new, {report.present:,}"
        f" already here, {report.conflicts:,} conflicts (kept as they were), {report.refused:,} refused"
        + (
            f"; {report.documents:,} documents, {report.document_conflicts:,} conflicts"
            if report.documents
            else ""
        )
    )
    if report.conflicts or report.refused or report.document_conflicts:
        raise SystemExit(1)
