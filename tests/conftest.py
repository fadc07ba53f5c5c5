"""Test fixtures: real stores and the LRS served over HTTP.

The stores are a PostgreSQL (embedded, or LRS_TEST_DATABASE_URL) and a MongoDB (the SecantusDB
stand-in, or LRS_TEST_MONGO_URL; see mongo_server.py). The LRS runs in a background thread under
uvicorn on a free 127.0.0.1 port; tests talk to it with httpx like any client would. Every test
that uses the server runs once per store (ids ``[postgres]`` and ``[mongodb]``). Tests isolate
their data with unique agents and activities (``unique_agent``, ``unique_activity``) instead of
wiping the database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from lrs.http.app import create_app
from lrs.settings import AuthSettings, ServerSettings, StoreSettings
from lrs.store import Backend, is_mongodb, open_stores
from lrs.usecases.stores import Stores

from .mongo_server import mongo_url

ADMIN = ("test-admin", "test-admin-secret")
V1, V2 = "1.0.3", "2.0.0"
MAX_PAGE = 50
TENANT = os.environ.get("LRS_TEST_TENANT", "default")
"""The tenant the LRS suite runs as (docs/tenants.md): with ``LRS_TEST_TENANT=acme`` the test
credentials (``ADMIN`` included) belong to tenant ``acme``, created for the run, and ``on_store``
reads that tenant's namespace — the whole xAPI suite then checks one tenant's LRS."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("LRS_TEST_DATABASE_URL"):
        yield url
        return
    from lrs.store.postgres.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server.dsn
    server.stop()


@pytest.fixture(scope="session")
def mongo_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mongo_url(tmp_path_factory.mktemp("mongo")) as url:
        yield url


STORES = {"postgres": "pg_dsn", "mongodb": "mongo_dsn"}
"""Store name (the test id) → the fixture giving its URL."""


@pytest.fixture(scope="session", params=sorted(STORES, reverse=True))
def store_url(request: pytest.FixtureRequest) -> str:
    """The store the LRS under test runs on; every test using it runs once per store."""
    return request.getfixturevalue(STORES[request.param])


T = TypeVar("T")


@pytest.fixture(scope="session")
def on_store(store_url: str) -> Callable[[Callable[[Stores], Awaitable[T]]], T]:
    """Run ``work(stores)`` on the store the LRS under test uses, beside the server (which
    learns of credential changes as it would from another process): ``on_store(work)``."""

    def run(work: Callable[[Stores], Awaitable[T]]) -> T:
        async def main() -> T:
            backend: Backend = await open_stores(store_url, pool_min=1, pool_max=1)
            data = (
                await open_stores(store_url, pool_min=1, pool_max=1, tenant=TENANT)
                if TENANT != "default"
                else backend
            )
            try:
                return await work(Stores(data.statements, data.documents, backend.credentials))
            finally:
                if data is not backend:
                    await data.close()
                await backend.close()

        return asyncio.run(main())

    return run


class RunningServer:
    def __init__(self, app, port: int) -> None:
        self.port = port
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", loop="uvloop"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:  # a condition, not a guess: uvicorn sets it once listening
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("LRS test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="session")
def server(store_url: str, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    # The LMS tables (catalog) are PostgreSQL's whatever the store: on MongoDB they need their own URL.
    lms = request.getfixturevalue("pg_dsn") if is_mongodb(store_url) else None
    app = create_app(
        store_url,
        ServerSettings(max_page_size=MAX_PAGE, max_body_bytes=2 * 1024 * 1024),
        StoreSettings(lms_database_url=lms),
        AuthSettings(admin_key=ADMIN[0], admin_secret=ADMIN[1]),
    )
    with RunningServer(app, free_port()) as running:
        if TENANT != "default":
            asyncio.run(_admin_of_tenant(store_url, TENANT))
        yield running


async def _admin_of_tenant(store_url: str, tenant: str) -> None:
    """Create ``tenant`` (if new) and make the ``ADMIN`` credential one of its."""
    from lrs.auth.credentials import new_credential
    from lrs.usecases.tenants import TenantAdmin

    backend = await open_stores(store_url, pool_min=1, pool_max=1)

    async def open_tenant(name: str):
        return await open_stores(store_url, pool_min=0, pool_max=2, tenant=name)

    try:
        admin = TenantAdmin(backend.tenants, open_tenant)
        if tenant not in {t.name for t in await admin.all()}:
            await admin.create(tenant)
        credential, _ = new_credential(
            "test admin",
            ["all"],
            AuthSettings().authority_homepage,
            key=ADMIN[0],
            secret=ADMIN[1],
            tenant=tenant,
        )
        await backend.credentials.save(credential)
    finally:
        await backend.close()


@pytest.fixture(scope="session")
def base_url(server: RunningServer) -> str:
    return f"http://127.0.0.1:{server.port}"


class Xapi(httpx.Client):
    """An httpx client for the xAPI base, sending one xAPI version and credential by default."""

    def __init__(self, base_url: str, version: str | None = V1, auth: tuple[str, str] | None = ADMIN) -> None:
        headers = {"X-Experience-API-Version": version} if version else {}
        super().__init__(base_url=base_url + "/xapi", auth=auth, headers=headers, timeout=30)
        self.version = version

    def post_statements(self, statements: Any, **kwargs) -> httpx.Response:
        return self.post("/statements", json=statements, **kwargs)

    def store(self, *statements: dict[str, Any]) -> list[str]:
        """POST statements and insist on success; returns their ids."""
        response = self.post_statements(list(statements))
        assert response.status_code == 200, response.text
        return response.json()

    def find(self, **params: Any) -> list[dict[str, Any]]:
        """GET /statements with the given filters, following `more` to the end."""
        encoded = {k: (orjson_dumps(v) if isinstance(v, dict) else v) for k, v in params.items()}
        response = self.get("/statements", params=encoded)
        assert response.status_code == 200, response.text
        body = response.json()
        found = list(body["statements"])
        while body.get("more"):
            response = self.get(body["more"].removeprefix("/xapi"))
            assert response.status_code == 200, response.text
            body = response.json()
            found.extend(body["statements"])
        return found


def orjson_dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


@pytest.fixture(scope="session")
def xapi(base_url: str) -> Iterator[Xapi]:
    with Xapi(base_url, V1) as client:
        yield client


@pytest.fixture(scope="session")
def xapi2(base_url: str) -> Iterator[Xapi]:
    with Xapi(base_url, V2) as client:
        yield client


@pytest.fixture(params=[V1, V2])
def any_xapi(request: pytest.FixtureRequest, base_url: str) -> Iterator[Xapi]:
    """The same test once per xAPI version."""
    with Xapi(base_url, request.param) as client:
        yield client


@pytest.fixture()
def client_for(base_url: str):
    """Clients with other credentials or versions: ``client_for(auth=..., version=...)``."""
    made: list[Xapi] = []

    def make(auth: tuple[str, str] | None = ADMIN, version: str | None = V1) -> Xapi:
        client = Xapi(base_url, version, auth)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# --- data builders -------------------------------------------------------------------------------


def unique_agent(name: str = "Learner") -> dict[str, Any]:
    return {"objectType": "Agent", "name": name, "mbox": f"mailto:{uuid.uuid4().hex[:12]}@example.com"}


def unique_activity(**definition: Any) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "objectType": "Activity",
        "id": f"https://lms.example/activities/{uuid.uuid4()}",
    }
    if definition:
        activity["definition"] = definition
    return activity


VERBS = {
    "completed": "http://adlnet.gov/expapi/verbs/completed",
    "attempted": "http://adlnet.gov/expapi/verbs/attempted",
    "experienced": "http://adlnet.gov/expapi/verbs/experienced",
    "voided": "http://adlnet.gov/expapi/verbs/voided",
}


def statement(
    actor: dict | None = None, verb: str = "completed", obj: dict | None = None, **extra: Any
) -> dict:
    """A valid statement; every part can be overridden."""
    st: dict[str, Any] = {
        "actor": actor or unique_agent(),
        "verb": {"id": VERBS.get(verb, verb), "display": {"en-US": verb}},
        "object": obj or unique_activity(name={"en-US": "An activity"}),
    }
    st.update(extra)
    return st


def voiding(target_id: str, actor: dict | None = None) -> dict:
    return statement(actor, "voided", {"objectType": "StatementRef", "id": target_id})


@pytest.fixture(scope="session")
def make_credential(on_store, server: RunningServer):
    """Create a credential with the given scopes in the store: ``key, secret = make_credential([...])``."""
    from lrs.auth.credentials import new_credential

    def make(scopes: list[str], name: str = "test client") -> tuple[str, str]:
        credential, secret = new_credential(name, scopes, AuthSettings().authority_homepage, tenant=TENANT)
        on_store(lambda stores: stores.credentials.save(credential))
        return credential.key, secret

    return make


# --- cmi5 (tests/test_cmi5_*.py) ---------------------------------------------------------------------

CMI5_DATA = Path(__file__).parent / "data" / "cmi5"


def cmi5_course_xml(course_id: str) -> bytes:
    """``two_blocks.xml`` under another course id (each test module imports a course of its own)."""
    return (
        (CMI5_DATA / "two_blocks.xml")
        .read_bytes()
        .replace(b"https://example.com/courses/demo", course_id.encode())
    )


@pytest.fixture(scope="module")
def lms(base_url: str):
    with httpx.Client(base_url=base_url, auth=ADMIN, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def course(lms: httpx.Client) -> dict[str, Any]:
    course_id = f"https://example.com/courses/{uuid.uuid4()}"
    response = lms.post(
        "/cmi5/courses", content=cmi5_course_xml(course_id), headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 200, response.text
    imported = response.json()
    assert (imported["created"], imported["aus"], imported["blocks"], imported["files"]) == (True, 3, 2, 0)
    shown = lms.get(f"/cmi5/courses/{imported['course_id']}").json()
    return {"course_id": imported["course_id"], "id": course_id, "aus": {a["id"]: a for a in shown["aus"]},
            "blocks": shown["blocks"], "activityId": shown["activityId"]}  # fmt: skip
