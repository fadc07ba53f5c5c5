"""The ASGI application: xAPI resources under ``/xapi``, plus health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn
from contextlib import asynccontextmanager


from lrs.runtime import tune_garbage_collection
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lrs import __version__
from lrs.auth.credentials import Authenticator, check_secret, new_credential
from lrs.databases import lms_url
from lrs.http.admin import admin_router
from lrs.http.analytics import WorkerReports, analytics_router
from lrs.http.catalog import catalog_router
from lrs.http.cmi5 import Cmi5Routes
from lrs.settings import (
    AnalyticsSettings,
    AuthSettings,
    Cmi5Settings,
    ServerSettings,
    StoreSettings,
    TenantSettings,
)
from lrs.store import cmi5_store, open_stores
from lrs.store.ports import DEFAULT_TENANT
from lrs.usecases.analytics import CourseAnalytics
from lrs.usecases.catalog import LoadCatalog
from lrs.usecases.cmi5 import Cmi5
from lrs.usecases.erasure import EraseLearner
from lrs.usecases.errors import LRSError
from lrs.usecases.stores import Stores
from lrs.usecases.tenants import DefaultLimits, Tenancy
from lrs.xapi.models import XapiVersion
from lrs.xapi.statements import StatementError
from sinks.erasures import LmsErasures
from sinks.lms import LmsDatabase
from sinks.settings import DataRightsSettings
from sinks.ports import CatalogStore

from . import documents, operations, resources, statements
from .last_resort import LastResort, internal_error_handler
from .metrics import MetricsMiddleware
from .middleware import XapiMiddleware, refusal_headers
from .responses import error_response

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(**handlers: Endpoint) -> tuple[Endpoint, list[str]]:
    """One endpoint dispatching on the HTTP method (HEAD is served by GET)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch, list(handlers)


async def ensure_admin(stores: Stores, auth: AuthSettings) -> None:
    """Make sure LRS_ADMIN_KEY / LRS_ADMIN_SECRET exist as a credential with scope ``all``."""
    if not (auth.admin_key and auth.admin_secret):
        return
    existing = await stores.credentials.find(auth.admin_key)
    if (
        existing is not None
        and existing.revoked is None
        and "all" in existing.scopes
        and existing.tenant == DEFAULT_TENANT  # the deployment's admin: never another tenant's
        and check_secret(auth.admin_secret, existing.secret_hash)
    ):
        return
    credential, _ = new_credential(
        "admin", ["all"], auth.authority_homepage, key=auth.admin_key, secret=auth.admin_secret
    )
    await stores.credentials.save(credential)
    log.info("admin credential %s is ready", auth.admin_key)


class NoLmsDatabase:
    """``CatalogStore`` where there is no LMS database (a MongoDB store and no
    ``LRS_LMS_DATABASE_URL``, outside ``lrs up``, which starts one)."""

    async def _missing(self, *args: object) -> NoReturn:
        raise NotImplementedLms("there is no LMS database for the catalog: set LRS_LMS_DATABASE_URL")

    read_catalog = save_catalog = courses = student_names = _missing

    async def close(self) -> None:
        return None


class NotImplementedLms(LRSError):
    status = 501


def create_app(
    dsn: str,
    server: ServerSettings | None = None,
    store: StoreSettings | None = None,
    auth: AuthSettings | None = None,
    *,
    base_path: str = "/xapi",
    analytics: AnalyticsSettings | None = None,
    lms_dsn: str | None = None,
    cmi5: Cmi5Settings | None = None,
    tenants: TenantSettings | None = None,
) -> FastAPI:
    """The application on the statement store at ``dsn``; the LMS database (catalog uploads,
    the instructor page's course list) is ``lms_dsn``, else where ``lrs.databases.lms_url``
    puts it for this store."""
    server = server or ServerSettings()
    cmi5 = cmi5 or Cmi5Settings()
    store = store or StoreSettings()
    auth = auth or AuthSettings()
    lms_dsn = lms_dsn or lms_url(store, dsn)
    lms: CatalogStore = (
        LmsDatabase(lms_dsn, max_size=4, application_name="lrs-lms") if lms_dsn else NoLmsDatabase()
    )

    ops = FastAPI(
        title="xAPI Learning Record Store: operations",
        version=__version__,
        lifespan=Lifespan(dsn, store, auth, lms, cmi5, tenants or TenantSettings()),
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    ops.state.settings = server
    ops.state.base_path = base_path
    ops.add_exception_handler(Exception, internal_error_handler)
    ops.include_router(operations.router)
    ops.include_router(catalog_router(LoadCatalog(lms), server.max_json_depth))
    ops.include_router(Cmi5Routes(cmi5).router())
    if isinstance(lms, LmsDatabase):
        ops.include_router(admin_router(erasure_use_case(lms, cmi5.student_homepage), server.max_json_depth))
    ops.include_router(
        analytics_router(CourseAnalytics(lms, WorkerReports(analytics or AnalyticsSettings())))
    )
    ops.add_middleware(MetricsMiddleware, base_path=base_path)
    return Application(base_path, _xapi_app(base_path, ops.state, server), ops)


def erasure_use_case(lms: LmsDatabase, student_homepage: str | None) -> EraseLearner:
    """Learner erasure on this LMS database (its stores are bound per request: ``with_stores``)."""
    rights = DataRightsSettings()
    secret = rights.data_rights_secret.get_secret_value() if rights.data_rights_secret else None
    return EraseLearner(
        None,
        LmsErasures(lms, secret),
        student_homepage=student_homepage,
        wait_seconds=rights.erasure_wait_seconds,
    )


class Lifespan:
    """Opens the stores when the server starts (into ``app.state``: ``stores``, ``authenticator``,
    ``backend``), watches credential changes, ensures the admin credential; closes all at the end."""

    def __init__(
        self, dsn: str, store: StoreSettings, auth: AuthSettings, lms: CatalogStore, cmi5: Cmi5Settings,
        tenants: TenantSettings,
    ) -> None:  # fmt: skip
        self.dsn, self.store, self.auth, self.lms, self.cmi5 = dsn, store, auth, lms, cmi5
        self.tenants = tenants

    @asynccontextmanager
    async def __call__(self, app: FastAPI) -> AsyncIterator[None]:
        backend = await open_stores(self.dsn, pool_min=self.store.pool_min, pool_max=self.store.pool_max)
        tenancy: Tenancy | None = None
        sweeper = None
        try:
            stores = Stores(backend.statements, backend.documents, backend.credentials)
            authenticator = Authenticator(stores.credentials, self.auth.credential_cache_seconds)
            await backend.watch_credentials(authenticator.clear)
            await ensure_admin(stores, self.auth)
            app.state.stores, app.state.authenticator, app.state.backend = stores, authenticator, backend
            app.state.tenancy = tenancy = Tenancy(
                stores,
                backend.tenants,
                OpenTenantStores(self.dsn, self.tenants),
                DefaultLimits(
                    self.tenants.statements_per_second,
                    self.tenants.storage_bytes,
                    self.tenants.refresh_seconds,
                ),
            )
            sweeper = self._cmi5(app, stores, authenticator)
            tune_garbage_collection()
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
            if tenancy is not None:
                await tenancy.close()
            await self.lms.close()
            await backend.close()

    def _cmi5(self, app: FastAPI, stores: Stores, authenticator: Authenticator) -> asyncio.Task | None:
        """cmi5 launch where there is an LMS database: the use cases, session tokens, and the
        task that abandons idle sessions."""
        if not isinstance(self.lms, LmsDatabase):
            return None
        settings = self.cmi5
        cmi5 = Cmi5(
            cmi5_store(self.lms), stores, student_homepage=settings.student_homepage,
            fetch_seconds=settings.fetch_seconds, session_timeout_seconds=settings.session_timeout_seconds,
            max_package_bytes=settings.max_package_bytes,
        )  # fmt: skip
        app.state.cmi5 = cmi5
        stores.cmi5 = cmi5.writes
        authenticator.sessions = cmi5.tokens
        return asyncio.create_task(AbandonIdleSessions(cmi5, settings.sweep_seconds).run())


class OpenTenantStores:
    """Opens a tenant's stores in its namespace on the deployment's store (``Tenancy`` calls it
    once per tenant and process)."""

    def __init__(self, url: str, settings: TenantSettings) -> None:
        self.url, self.settings = url, settings

    async def __call__(self, tenant: str):
        return await open_stores(self.url, pool_min=0, pool_max=self.settings.pool_max, tenant=tenant)


class AbandonIdleSessions:
    """Every ``every`` seconds, abandon the cmi5 sessions idle past the timeout."""

    def __init__(self, cmi5: Cmi5, every: float) -> None:
        self.cmi5, self.every = cmi5, every

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                ended = await self.cmi5.sessions.abandon.sweep(self.cmi5.timeout)
            except Exception as exc:  # noqa: BLE001  (the database is away: try again next round)
                log.warning("could not look for idle cmi5 sessions: %s", exc)
                continue
            if ended:
                log.info("abandoned %d idle cmi5 sessions", ended)


def app_from_environment() -> Application:
    """The application as configured by ``LRS_*`` variables (uvicorn worker processes use this)."""
    store = StoreSettings()
    location = store.store or store.database_url
    if not location:
        raise RuntimeError("LRS_STORE or LRS_DATABASE_URL must be set for worker processes")
    return create_app(location, ServerSettings(), store, AuthSettings())


class Application:
    """The ASGI entry point: xAPI requests go to a lean Starlette app, the rest to FastAPI.

    The xAPI resources are hot paths (thousands of requests a second); FastAPI's own middleware
    layers cost them about a tenth of their CPU, so they run on plain Starlette with only the
    layers they need. Operations endpoints (health, readiness, metrics, OpenAPI docs) and the
    lifespan (opening the stores) belong to the FastAPI app. Both run inside ``LastResort``.
    """

    def __init__(self, base_path: str, xapi: Starlette, ops: FastAPI) -> None:
        self.base = base_path.rstrip("/")
        self.xapi, self.ops = xapi, ops
        self._last_resort = LastResort(self._route)

    @property
    def state(self):
        return self.ops.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._last_resort(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.base or path.startswith(self.base + "/")):
            await self.xapi(scope, receive, send)
        else:
            await self.ops(scope, receive, send)


def _xapi_app(base_path: str, state: State, server: ServerSettings) -> Starlette:
    """The xAPI resources, sharing ``state`` (stores, settings) with the operations app."""

    async def lrs_error(request: Request, exc: LRSError) -> Response:
        return error_response(exc.status, exc.message, refusal_headers(exc))

    async def statement_error(request: Request, exc: StatementError) -> Response:
        return error_response(400, str(exc))

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def not_found(request: Request) -> Response:
        return error_response(404, f"no xAPI resource at {request.url.path}")

    resources_by_path = {
        "/statements": by_method(
            GET=statements.get_statements, PUT=statements.put_statement, POST=statements.post_statements
        ),
        "/activities/state": _document_routes(documents.STATE),
        "/activities/profile": _document_routes(documents.ACTIVITY_PROFILE),
        "/agents/profile": _document_routes(documents.AGENT_PROFILE),
        "/activities": by_method(GET=resources.get_activity),
        "/agents": by_method(GET=resources.get_agent),
        "/about": by_method(GET=resources.get_about),
    }
    routes = [
        Route(base_path + variant, endpoint, methods=methods)
        for path, (endpoint, methods) in resources_by_path.items()
        for variant in (path, path + "/")
    ]
    routes.append(
        Route(base_path + "/{rest:path}", not_found, methods=["GET", "HEAD", "PUT", "POST", "DELETE"])
    )
    app = Starlette(
        routes=routes,
        exception_handlers={
            LRSError: lrs_error,
            StatementError: statement_error,
            StarletteHTTPException: http_error,
            Exception: internal_error_handler,
        },
    )
    app.state = state  # one state: the lifespan of the operations app opens the stores for both
    app.add_middleware(XapiMiddleware, state=state, base_path=base_path, max_body_bytes=server.max_body_bytes,
                       versions=frozenset(XapiVersion(v) for v in server.versions()))  # fmt: skip
    app.add_middleware(MetricsMiddleware, base_path=base_path)
    return app


def _document_routes(resource: documents.Resource) -> tuple[Endpoint, list[str]]:
    endpoint = documents.endpoint(resource)
    return endpoint, ["GET", "PUT", "POST", "DELETE"]
