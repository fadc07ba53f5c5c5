"""The ASGI application: xAPI resources under ``/xapi``, plus health, readiness and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import orjson

from lrs.runtime import tune_garbage_collection
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lrs import __version__
from lrs.auth.credentials import AuthenticationError, Authenticator, check_secret, new_credential
from lrs.http.analytics import analytics_router
from lrs.settings import AnalyticsSettings, AuthSettings, ServerSettings, StoreSettings
from lrs.store import is_mongodb, open_stores
from lrs.store.postgres import create_pool, migrate
from lrs.usecases.errors import LRSError
from lrs.usecases.stores import Stores
from lrs.xapi.jsontext import JsonTextError, parse_bounded
from lrs.xapi.statements import StatementError

from . import documents, resources, statements
from .last_resort import LastResort, internal_error_handler
from .metrics import MetricsMiddleware
from .middleware import XapiMiddleware
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
        and check_secret(auth.admin_secret, existing.secret_hash)
    ):
        return
    credential, _ = new_credential(
        "admin", ["all"], auth.authority_homepage, key=auth.admin_key, secret=auth.admin_secret
    )
    await stores.credentials.save(credential)
    log.info("admin credential %s is ready", auth.admin_key)


def create_app(
    dsn: str,
    server: ServerSettings | None = None,
    store: StoreSettings | None = None,
    auth: AuthSettings | None = None,
    *,
    base_path: str = "/xapi",
    analytics: AnalyticsSettings | None = None,
) -> FastAPI:
    server = server or ServerSettings()
    store = store or StoreSettings()
    auth = auth or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = await open_stores(dsn, pool_min=store.pool_min, pool_max=store.pool_max)
        try:
            stores = Stores(backend.statements, backend.documents, backend.credentials)
            authenticator = Authenticator(stores.credentials, auth.credential_cache_seconds)
            await backend.watch_credentials(authenticator.clear)
            await ensure_admin(stores, auth)
            app.state.stores, app.state.authenticator, app.state.backend = stores, authenticator, backend
            tune_garbage_collection()
            yield
        finally:
            await backend.close()

    ops = FastAPI(
        title="xAPI Learning Record Store: operations",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    ops.state.settings = server
    ops.state.base_path = base_path
    ops.add_exception_handler(Exception, internal_error_handler)

    @ops.get("/health", tags=["operations"])
    async def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @ops.get("/ready", tags=["operations"])
    async def ready(request: Request) -> Response:
        """Readiness: the statement store answers."""
        try:
            await request.app.state.backend.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return error_response(503, f"statement store unavailable: {exc}")
        return Response(b'{"status":"ready"}', media_type="application/json")

    @ops.post("/catalog", tags=["pipeline"])
    async def load_catalog(request: Request) -> Response:
        """Merge a catalog document (courses, modules, lessons, quizzes, students) into the LMS
        tables the pipeline maps statements with; the same document as ``lrs catalog load``.
        Needs a credential with scope ``all``."""
        from pydantic import ValidationError

        from streams.catalog import CatalogFile, store_catalog

        try:
            principal = await request.app.state.authenticator.authenticate(
                request.headers.get("authorization")
            )
        except AuthenticationError as exc:
            return error_response(401, str(exc), {"WWW-Authenticate": 'Basic realm="xAPI"'})
        if "all" not in principal.scopes:
            return error_response(403, "loading the catalog needs a credential with scope all")
        try:
            raw = parse_bounded(await request.body(), server.max_json_depth, "the catalog document")
            document = CatalogFile.model_validate(raw)
        except JsonTextError as exc:
            return error_response(400, str(exc))
        except ValidationError as exc:
            return error_response(
                400, f"not a catalog document: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
            )
        lms_dsn = store.lms_database_url or (None if is_mongodb(dsn) else dsn)
        if lms_dsn is None:
            return error_response(
                501, "the catalog is kept in PostgreSQL: set LRS_LMS_DATABASE_URL (the LRS store is MongoDB)"
            )
        pool = await create_pool(lms_dsn, min_size=1, max_size=1, application_name="lrs-catalog")
        try:
            await migrate(pool, "sinks", "lms_schema_migrations")
            async with pool.acquire() as conn:
                counts = await store_catalog(conn, document)
        except (asyncpg.DataError, asyncpg.ProgramLimitExceededError) as exc:
            # a number beyond 64 bits, a U+0000, an IRI too long for an index: nothing was stored
            return error_response(400, f"the catalog holds a value the LMS database cannot store: {exc}")
        finally:
            await pool.close()
        return Response(orjson.dumps(counts), media_type="application/json")

    @ops.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    xapi = _xapi_app(base_path, ops.state, server.max_body_bytes)
    lms_dsn = store.lms_database_url or (None if is_mongodb(dsn) else dsn)
    ops.include_router(analytics_router(lms_dsn, analytics or AnalyticsSettings()))
    ops.add_middleware(MetricsMiddleware, base_path=base_path)
    return Application(base_path, xapi, ops)


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


def _xapi_app(base_path: str, state: State, max_body_bytes: int) -> Starlette:
    """The xAPI resources, sharing ``state`` (stores, settings) with the operations app."""

    async def lrs_error(request: Request, exc: LRSError) -> Response:
        return error_response(exc.status, exc.message)

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
    app.add_middleware(XapiMiddleware, state=state, base_path=base_path, max_body_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware, base_path=base_path)
    return app


def _document_routes(resource: documents.Resource) -> tuple[Endpoint, list[str]]:
    endpoint = documents.endpoint(resource)
    return endpoint, ["GET", "PUT", "POST", "DELETE"]
