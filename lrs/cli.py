"""The ``lrs`` command: run the LRS and manage its credentials."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from pydantic import ValidationError

from lrs.databases import Places, databases
from lrs.logs import collapse_repeats
from lrs.runtime import MissingEngine
from lrs.settings import AuthSettings, ServerSettings, StoreSettings
from lrs.store import is_mongodb

log = logging.getLogger("lrs")
_DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="data directory")


class _Commands(click.Group):
    """Commands whose missing embedded engine is a one-line error, not a traceback. The commands
    that move data between LRSs load only when run (``LAZY``)."""

    LAZY = {
        "export": "lrs.transfer.commands:export",
        "import": "lrs.transfer.commands:import_",
        "forward": "lrs.transfer.forwarding:forward",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            import importlib

            module, _, attribute = self.LAZY[name].partition(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MissingEngine as exc:
            raise click.ClickException(str(exc)) from None
        except ValidationError as exc:  # a setting out of range: name it, no traceback
            raise click.ClickException(settings_problem(exc)) from None


def settings_problem(exc: ValidationError) -> str:
    """``LRS_NAME: what is wrong`` for each invalid setting of a pydantic-settings error."""
    lines = []
    for error in exc.errors():
        name = "LRS_" + "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines) or str(exc)


@click.group(cls=_Commands)
@click.option("--log-level", default=None, help="debug, info, warning (default: LRS_LOG_LEVEL or info)")
def main(log_level: str | None) -> None:
    """A conformant xAPI 1.0.3 / 2.0 Learning Record Store."""
    level = (log_level or ServerSettings().log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    collapse_repeats()  # a broker or database outage: each library error once per 10 s, with a count
    logging.getLogger("python_multipart").setLevel(logging.WARNING)
    if level != "DEBUG":  # Faust, aiokafka and mode narrate every rebalance at INFO
        for noisy in ("faust", "aiokafka", "mode"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@click.option("--host", default=None, help="interface to listen on (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default 8080)")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="data directory (default ./.lrs-data)"
)
@click.option("--workers", type=int, default=None, help="server processes (default LRS_WORKERS or 1)")
def up(host: str | None, port: int | None, data_dir: Path | None, workers: int | None) -> None:
    """Start the LRS (embedded PostgreSQL unless LRS_STORE or LRS_DATABASE_URL is set)."""
    import uvicorn

    from lrs.http.app import create_app

    given = {"host": host, "port": port, "data_dir": data_dir, "workers": workers}
    server = ServerSettings(**{k: v for k, v in given.items() if v is not None})
    store, auth = StoreSettings(), AuthSettings()
    server.data_dir.mkdir(parents=True, exist_ok=True)
    with databases(store, server.data_dir) as places:
        asyncio.run(_first_credential(places.store, auth))
        options = dict(
            host=server.host, port=server.port, loop="uvloop", http="httptools",
            log_level=server.log_level.lower(), access_log=False, server_header=False,
        )  # fmt: skip
        log.info("xAPI endpoint: http://%s:%d/xapi/", server.host, server.port)
        supervisor = _pipeline(server.data_dir, places) if store.pipeline else None
        try:
            with _stopped_by_signals():
                if server.workers == 1:
                    app = create_app(places.store, server, store, auth, lms_dsn=places.lms)
                    uvicorn.Server(uvicorn.Config(app, **options)).run()
                else:  # worker processes build the app from the environment; they share the port
                    os.environ.update(
                        LRS_HOST=server.host, LRS_PORT=str(server.port), LRS_LMS_DATABASE_URL=places.lms
                    )
                    os.environ["LRS_STORE" if is_mongodb(places.store) else "LRS_DATABASE_URL"] = places.store
                    uvicorn.run(
                        "lrs.http.app:app_from_environment", factory=True, workers=server.workers, **options
                    )
        finally:
            if supervisor is not None:
                supervisor.stop()
    log.info("stopped")


def _pipeline(data_dir: Path, places: Places):
    """Start the embedded broker (unless LRS_KAFKA_BOOTSTRAP) and the pipeline worker."""
    from streams.settings import StreamSettings
    from streams.worker import Supervisor

    supervisor = Supervisor(data_dir, places.store, places.lms, StreamSettings())
    try:
        supervisor.start()  # first stops what a killed `lrs up` on this data directory left running
    except (RuntimeError, TimeoutError) as exc:  # another stack's pipeline, or its broker port taken
        supervisor.stop()
        raise click.ClickException(str(exc)) from None
    log.info("pipeline: broker %s, worker supervised", supervisor.bootstrap)
    return supervisor


class _Stop(Exception):
    pass


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """A clean exit (status 0) after SIGINT / SIGTERM.

    uvicorn drains requests on those signals, then raises the signal again with the handler it
    found when it started; with this handler in place that ends the block instead of the
    process, so the embedded PostgreSQL is stopped by ``databases()`` on the way out.
    """

    def stop(signum: int, frame: object) -> None:
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stop:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _first_credential(dsn: str, auth: AuthSettings) -> None:
    """On a store without credentials (and no LRS_ADMIN_KEY), create one and show it once."""
    if auth.admin_key and auth.admin_secret:
        return
    async with _stores(dsn) as stores:
        if await stores.credentials.all():
            return
        from lrs.auth.credentials import new_credential

        credential, secret = new_credential("admin", ["all"], auth.authority_homepage)
        await stores.credentials.save(credential)
    click.echo(
        "\nNo credentials existed, so one was created with scope 'all' (the secret is shown only now):\n"
        f"  key:    {credential.key}\n  secret: {secret}\n"
        "Manage credentials with `lrs credentials create|list|revoke`.\n",
        err=True,
    )


@contextmanager
def _places(data_dir: Path | None) -> Iterator[Places]:
    """Where the stores are for a command (the embedded PostgreSQL started if needed)."""
    server = ServerSettings(**({"data_dir": data_dir} if data_dir else {}))
    with databases(StoreSettings(), server.data_dir) as places:
        yield places


class _stores:
    """``async with _stores(dsn) as stores``: a small, migrated connection for command-line work
    (``dsn`` may also be a MongoDB URL)."""

    def __init__(self, dsn: str, tenant: str | None = None) -> None:
        self.dsn, self.tenant = dsn, tenant

    async def __aenter__(self):
        from lrs.store import open_stores
        from lrs.usecases.stores import Stores

        self.backend = await open_stores(self.dsn, pool_min=1, pool_max=2, tenant=self.tenant)
        return Stores(self.backend.statements, self.backend.documents, self.backend.credentials)

    async def __aexit__(self, *exc: object) -> None:
        await self.backend.close()


class _tenants(_stores):
    """``async with _tenants(dsn) as admin``: the tenant registry's use cases (``TenantAdmin``)."""

    async def __aenter__(self):
        from lrs.store import open_stores
        from lrs.usecases.tenants import TenantAdmin

        await super().__aenter__()

        async def open_tenant(name: str):
            return await open_stores(self.dsn, pool_min=0, pool_max=2, tenant=name)

        return TenantAdmin(self.backend.tenants, open_tenant)


@main.command()
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="data directory (default ./.lrs-data)"
)
def worker(data_dir: Path | None) -> None:
    """Run a pipeline worker: relay, enrichment and sinks (several may share the partitions)."""
    from streams.settings import StreamSettings
    from streams.worker import run_worker

    server = ServerSettings(**({"data_dir": data_dir} if data_dir else {}))
    store, stream = StoreSettings(), StreamSettings()
    server.data_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = stream.kafka_bootstrap or f"127.0.0.1:{stream.kafka_port}"
    with databases(store, server.data_dir) as places, _stopped_by_signals():
        run_worker(places.store, places.lms, server.data_dir, bootstrap)


@main.group()
def catalog() -> None:
    """The LMS course catalog and learner identities the pipeline maps statements with."""


@catalog.command("load")
@click.argument("file", type=click.File("rb"))
@click.option("--tenant", default="default", show_default=True, help="the tenant whose catalog it is")
@_DATA_DIR
def catalog_load(file, tenant: str, data_dir) -> None:
    """Merge a catalog JSON document (courses, modules, lessons, quizzes, students) into a tenant's catalog."""
    import orjson

    from lrs.usecases.catalog import read_document
    from lrs.usecases.errors import LRSError
    from sinks.lms import LmsDatabase

    try:
        document = read_document(orjson.loads(file.read()))
    except (orjson.JSONDecodeError, LRSError) as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None

    async def run(store: str, dsn: str) -> dict[str, int]:
        await _require_tenant(store, tenant)
        lms = LmsDatabase(dsn, max_size=1, application_name="lrs-catalog")
        try:
            return await lms.save_catalog(document, tenant)
        finally:
            await lms.close()

    with _places(data_dir) as places:
        counts = asyncio.run(run(places.store, places.lms))
    click.echo(", ".join(f"{n} {kind}" for kind, n in counts.items()))


@main.command()
@click.option("--agent", "agent", default=None, help='the learner as an xAPI Agent: \'{"mbox": "mailto:…"}\'')
@click.option("--student", "student", type=int, default=None, help="the learner as a catalog student id")
@click.option("--dry-run", is_flag=True, help="count what would be removed, remove nothing")
@click.option("--wait", "wait", type=float, default=None, help="seconds to wait for the workers' sinks")
@click.option("--tenant", default="default", show_default=True, help="the tenant whose learner it is")
@_DATA_DIR
def erase(
    agent: str | None, student: int | None, dry_run: bool, wait: float | None, tenant: str, data_dir
) -> None:
    """Erase a learner from every store (docs/data-rights.md); prints the erasure record."""
    import getpass

    import orjson

    from lrs.usecases.erasure import EraseLearner, read_request
    from lrs.usecases.errors import LRSError
    from sinks.erasures import LmsErasures
    from sinks.lms import LmsDatabase
    from sinks.settings import DataRightsSettings
    from streams.settings import CatalogSettings

    try:
        raw = {"agent": orjson.loads(agent)} if agent is not None else {}
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"--agent is not JSON: {exc}") from None
    if student is not None:
        raw["student_id"] = student
    raw["dry_run"] = dry_run
    try:
        request = read_request(raw)
    except LRSError as exc:
        raise click.ClickException(exc.message) from None
    rights = DataRightsSettings()
    secret = rights.data_rights_secret.get_secret_value() if rights.data_rights_secret else None

    async def run(store: str, lms_dsn: str) -> dict:
        await _require_tenant(store, tenant)
        lms = LmsDatabase(lms_dsn, max_size=2, application_name="lrs-erase")
        try:
            async with _stores(store, tenant) as stores:
                use_case = EraseLearner(
                    stores, LmsErasures(lms, secret), student_homepage=CatalogSettings().student_homepage,
                    wait_seconds=rights.erasure_wait_seconds if wait is None else wait,
                )  # fmt: skip
                return await use_case({"admin"}, f"cli:{getpass.getuser()}", request, tenant)
        finally:
            await lms.close()

    with _places(data_dir) as places:
        try:
            report = asyncio.run(run(places.store, places.lms))
        except LRSError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    if report.get("pending_sinks"):
        click.echo(
            f"still pending in: {', '.join(report['pending_sinks'])} (the workers complete it)", err=True
        )


@main.group()
def cmi5() -> None:
    """cmi5 courses: import a course structure or package (then launch its AUs over HTTP)."""


@cmi5.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--course-id",
    type=click.IntRange(0, 2**31 - 1),
    default=None,
    help="the catalog course id for a new course (default: the next free one)",
)
@_DATA_DIR
def cmi5_import(path: Path, course_id: int | None, data_dir) -> None:
    """Import cmi5.xml, a zip package holding it, or a directory to package (re-import updates in place)."""
    from lrs.cmi5.structure import CourseStructureError, read_package
    from lrs.settings import Cmi5Settings
    from lrs.store.postgres.cmi5 import PgCmi5Store
    from sinks.lms import LmsDatabase

    data = _package_bytes(path)
    try:
        package = read_package(data, max_bytes=Cmi5Settings().max_package_bytes)
    except CourseStructureError as exc:
        raise click.ClickException(f"{path}: {exc}") from None

    async def run(dsn: str):
        lms = LmsDatabase(dsn, max_size=1, application_name="lrs-cmi5")
        try:
            return await PgCmi5Store(lms).save_course(package, course_id)
        finally:
            await lms.close()

    with _places(data_dir) as places:
        try:
            imported = asyncio.run(run(places.lms))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    verb = "imported" if imported.created else "updated"
    click.echo(
        f"{verb} course {imported.course_id}: {imported.aus} AUs, {imported.blocks} blocks, {imported.files} files"
    )


def _package_bytes(path: Path) -> bytes:
    """A file's bytes, or a directory packaged as a zip (``cmi5.xml`` at its root)."""
    if not path.is_dir():
        return path.read_bytes()
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(path).as_posix())
    return buffer.getvalue()


@main.command()
@click.option(
    "--since", default=None, help="replay statements stored from this ISO 8601 instant (default: all)"
)
@click.option("--sink", "sinks", multiple=True, help="sink to rebuild (clickhouse, progress); default: all")
@_DATA_DIR
def replay(since: str | None, sinks: tuple[str, ...], data_dir) -> None:
    """Rebuild sinks from the statement store (the running worker does the work; this follows it)."""
    from streams.replay import run_replay
    from streams.settings import StreamSettings

    with _places(data_dir) as places:
        run_replay(places.store, StreamSettings().worker_web_port, since, list(sinks))


@main.group()
def credentials() -> None:
    """Create, list and revoke HTTP Basic credentials."""


@credentials.command("create")
@click.option("--name", required=True, help="who the credential is for (becomes the authority's name)")
@click.option("--scope", "scopes", multiple=True, default=("statements/write", "statements/read/mine"),
              show_default=True, help="xAPI scope; repeat for several")  # fmt: skip
@click.option("--key", default=None, help="key to use (default: random)")
@click.option("--secret", default=None, help="secret to use (default: random)")
@click.option("--tenant", default="default", show_default=True, help="the tenant whose data it reaches")
@_DATA_DIR
def credentials_create(
    name: str, scopes: tuple[str, ...], key: str | None, secret: str | None, tenant: str, data_dir
) -> None:
    """Create a credential and print its key and secret (the secret is not stored in clear)."""
    from lrs.auth.credentials import new_credential

    try:
        credential, secret = new_credential(
            name, list(scopes), AuthSettings().authority_homepage, key=key, secret=secret, tenant=tenant
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None

    async def run(dsn: str) -> None:
        await _require_tenant(dsn, tenant)
        async with _stores(dsn) as stores:
            if await stores.credentials.find(credential.key) is not None:
                raise click.ClickException(f"a credential with key {credential.key!r} exists")
            await stores.credentials.save(credential)

    with _places(data_dir) as places:
        asyncio.run(run(places.store))
    click.echo(f"key:    {credential.key}\nsecret: {secret}\nscopes: {' '.join(sorted(credential.scopes))}"
               f"\ntenant: {credential.tenant}")  # fmt: skip


@credentials.command("list")
@_DATA_DIR
def credentials_list(data_dir) -> None:
    """List credentials (keys, names, scopes, state; never secrets)."""

    async def run(dsn: str):
        async with _stores(dsn) as stores:
            return await stores.credentials.all()

    with _places(data_dir) as places:
        found = asyncio.run(run(places.store))
    for c in found:
        state = f"revoked {c.revoked:%Y-%m-%d %H:%M}" if c.revoked else "active"
        click.echo(f"{c.key}\t{c.name}\t{' '.join(sorted(c.scopes))}\t{state}\ttenant {c.tenant}")


@credentials.command("revoke")
@click.argument("key")
@_DATA_DIR
def credentials_revoke(key: str, data_dir) -> None:
    """Revoke a credential: its requests are refused from now on (running servers are told)."""

    async def run(dsn: str) -> bool:
        async with _stores(dsn) as stores:
            return await stores.credentials.revoke(key)

    with _places(data_dir) as places:
        if not asyncio.run(run(places.store)):
            raise click.ClickException(f"no active credential with key {key!r}")
    click.echo(f"revoked {key}")


@main.group()
def tenants() -> None:
    """Create, list, limit, disable and enable tenants (docs/tenants.md)."""


_LIMITS = [
    click.option("--statements-per-second", type=click.IntRange(1), default=None,
                 help="most statements its credentials may store per second (default: LRS_TENANT_STATEMENTS_PER_SECOND)"),
    click.option("--storage-mb", type=click.IntRange(1), default=None,
                 help="megabytes its data may take before writes get 429 (default: LRS_TENANT_STORAGE_MB)"),
]  # fmt: skip


def _limit_options(command):
    for option in reversed(_LIMITS):
        command = option(command)
    return command


async def _require_tenant(store: str, tenant: str) -> None:
    """End the command unless the store has this tenant."""
    async with _tenants(store) as tenants:
        if not [t for t in await tenants.all() if t.name == tenant]:
            raise click.ClickException(f"no tenant {tenant!r} (lrs tenants create {tenant})")


def _run_tenants(data_dir: Path | None, action):
    """Run ``action(TenantAdmin)``; a refusal (bad name, unknown tenant) ends the command."""
    from lrs.usecases.errors import LRSError

    async def run(dsn: str):
        async with _tenants(dsn) as admin:
            return await action(admin)

    with _places(data_dir) as places:
        try:
            return asyncio.run(run(places.store))
        except LRSError as exc:
            raise click.ClickException(exc.message) from None


def _megabytes(storage_mb: int | None) -> int | None:
    return storage_mb * 2**20 if storage_mb is not None else None


@tenants.command("create")
@click.argument("name")
@_limit_options
@_DATA_DIR
def tenants_create(name: str, statements_per_second: int | None, storage_mb: int | None, data_dir) -> None:
    """Create a tenant (and its empty namespace in the store)."""
    _run_tenants(data_dir, lambda admin: admin.create(name, statements_per_second, _megabytes(storage_mb)))
    click.echo(f"created tenant {name}; give it credentials: lrs credentials create --tenant {name} --name …")


@tenants.command("list")
@_DATA_DIR
def tenants_list(data_dir) -> None:
    """List tenants: name, state, limits, bytes their data takes."""

    async def listing(admin):
        return [(t, await admin.usage(t.name)) for t in await admin.all()]

    for t, used in _run_tenants(data_dir, listing):
        state = f"disabled {t.disabled:%Y-%m-%d %H:%M}" if t.disabled else "active"
        rate = f"{t.statements_per_second}/s" if t.statements_per_second else "default rate"
        storage = f"{t.storage_bytes // 2**20} MB" if t.storage_bytes else "default storage"
        click.echo(f"{t.name}\t{state}\t{rate}\t{storage}\t{used:,} bytes used")


@tenants.command("limit")
@click.argument("name")
@_limit_options
@_DATA_DIR
def tenants_limit(name: str, statements_per_second: int | None, storage_mb: int | None, data_dir) -> None:
    """Set a tenant's limits (an option left out returns to the deployment's default)."""
    _run_tenants(
        data_dir, lambda admin: admin.set_limits(name, statements_per_second, _megabytes(storage_mb))
    )
    click.echo(f"limits of {name} set (running servers apply them within 5 s)")


@tenants.command("disable")
@click.argument("name")
@_DATA_DIR
def tenants_disable(name: str, data_dir) -> None:
    """Disable a tenant: its credentials are refused (403) within 5 s; its data stays."""
    _run_tenants(data_dir, lambda admin: admin.set_disabled(name, True))
    click.echo(f"disabled {name}")


@tenants.command("enable")
@click.argument("name")
@_DATA_DIR
def tenants_enable(name: str, data_dir) -> None:
    """Enable a disabled tenant again."""
    _run_tenants(data_dir, lambda admin: admin.set_disabled(name, False))
    click.echo(f"enabled {name}")


@main.command()
@click.option(
    "--learners", type=click.IntRange(1), default=200, show_default=True, help="learners to simulate"
)
@click.option(
    "--courses", type=click.IntRange(1), default=4, show_default=True, help="courses in the catalog"
)
@click.option(
    "--days", type=click.IntRange(1), default=30, show_default=True, help="days of activity, ending today"
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="same seed (and --start), same statements"
)
@click.option("--start", default=None, help="first day, ISO 8601 (default: --days before today, 00:00 UTC)")
@click.option("--url", default=None, help="LRS base URL (default http://LRS_HOST:LRS_PORT)")
@click.option(
    "--auth", default=None, help="KEY:SECRET with scope all (default LRS_ADMIN_KEY:LRS_ADMIN_SECRET)"
)
def simulate(learners: int, courses: int, days: int, seed: int, start: str | None, url: str | None,
             auth: str | None) -> None:  # fmt: skip
    """Post a realistic, deterministic cohort's activity through the LRS over HTTP."""
    from datetime import datetime, timedelta, timezone

    import httpx
    from tqdm import tqdm

    from lrs.simulate import cohort, post

    if start:
        try:
            first = datetime.fromisoformat(start)
        except ValueError:
            raise click.BadParameter(f"{start!r} is not an ISO 8601 date", param_hint="--start") from None
        first = first if first.tzinfo else first.replace(tzinfo=timezone.utc)
    else:
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        first = today - timedelta(days=days)
    auth = auth or (
        f"{AuthSettings().admin_key}:{AuthSettings().admin_secret}" if AuthSettings().admin_key else None
    )
    if not auth or ":" not in auth:
        raise click.UsageError("give --auth KEY:SECRET (or set LRS_ADMIN_KEY and LRS_ADMIN_SECRET)")
    server = ServerSettings()
    url = url or f"http://{server.host}:{server.port}"
    document, statements = cohort(learners, courses, days, seed, first)
    key, _, secret = auth.partition(":")
    with tqdm(total=len(statements), unit="stmt", desc="posting") as bar:
        try:
            asyncio.run(post(url, (key, secret), document, statements, progress=bar))
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            raise click.ClickException(f"{url}: {exc}") from None
    click.echo(f"posted {len(statements):,} statements of {learners} learners in {courses} courses "
               f"({first:%Y-%m-%d} + {days} days, seed {seed}) to {url}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
