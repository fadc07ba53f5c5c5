"""Tenants (docs/tenants.md): isolation of every xAPI resource, limits, the registry.

Two tenants, ``alpha`` and ``beta``, and the default tenant get the *same* statement ids,
agents, activity ids, registrations, document ids and attachments, each marked with its own
tenant (a result extension, a document body, an activity name). Every resource, every query
filter and `more` paging is then read with each tenant's credential: every answer must hold
only the caller's marks and all of them. Runs on both stores; the LRS under test runs with
``LRS_TENANT_REFRESH_SECONDS=0`` so a disabled tenant or a new limit applies at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from lrs.auth.credentials import new_credential
from lrs.http.app import create_app
from lrs.settings import AuthSettings, ServerSettings, StoreSettings, TenantSettings
from lrs.store import is_mongodb, open_stores
from lrs.usecases.tenants import TenantAdmin

from .conftest import ADMIN, RunningServer, Xapi, free_port

MARK = "https://example.org/extensions/tenant"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
TENANTS = ("default", "alpha", "beta")


def run(coroutine):
    return asyncio.run(coroutine)


async def _admin(url: str, work):
    backend = await open_stores(url, pool_min=1, pool_max=2)

    async def open_tenant(name: str):
        return await open_stores(url, pool_min=0, pool_max=2, tenant=name)

    try:
        return await work(TenantAdmin(backend.tenants, open_tenant), backend)
    finally:
        await backend.close()


def make_tenant(url: str, name: str, **limits: Any) -> tuple[str, str]:
    """Create tenant ``name`` (if new) and a credential of it with scope ``all``."""

    async def work(admin: TenantAdmin, backend) -> tuple[str, str]:
        if name not in {t.name for t in await admin.all()}:
            await admin.create(name, limits.get("statements_per_second"), limits.get("storage_bytes"))
        credential, secret = new_credential(f"{name} client", ["all"], "urn:test", tenant=name)
        await backend.credentials.save(credential)
        return credential.key, secret

    return run(_admin(url, work))


@pytest.fixture(scope="module")
def tenant_server(store_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    lms = request.getfixturevalue("pg_dsn") if is_mongodb(store_url) else None
    app = create_app(
        store_url, ServerSettings(max_page_size=50), StoreSettings(lms_database_url=lms),
        AuthSettings(admin_key=ADMIN[0], admin_secret=ADMIN[1]), tenants=TenantSettings(refresh_seconds=0),
    )  # fmt: skip
    with RunningServer(app, free_port()) as running:
        yield f"http://127.0.0.1:{running.port}"


@pytest.fixture(scope="module")
def clients(store_url: str, tenant_server: str) -> Iterator[dict[str, Xapi]]:
    auth = {
        "default": ADMIN,
        "alpha": make_tenant(store_url, "alpha"),
        "beta": make_tenant(store_url, "beta"),
    }
    made = {name: Xapi(tenant_server, auth=credential) for name, credential in auth.items()}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(scope="module")
def shared() -> dict[str, Any]:
    """Identifiers every tenant uses for its own data."""
    return {
        "ids": [str(uuid.uuid4()) for _ in range(7)],
        "agent": {"objectType": "Agent", "mbox": f"mailto:shared-{uuid.uuid4().hex[:8]}@example.org"},
        "other": {"objectType": "Agent", "mbox": f"mailto:other-{uuid.uuid4().hex[:8]}@example.org"},
        "activity": f"https://example.org/shared/{uuid.uuid4()}",
        "parent": f"https://example.org/shared-parent/{uuid.uuid4()}",
        "verb": f"https://example.org/verbs/{uuid.uuid4().hex[:8]}",
        "registration": str(uuid.uuid4()),
        "since": datetime.now(timezone.utc) - timedelta(seconds=1),
    }


def tenant_statement(tenant: str, shared: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "id": shared["ids"][i],
        "actor": shared["agent"],
        "verb": {"id": shared["verb"], "display": {"en-US": f"did ({tenant})"}},
        "object": {
            "id": shared["activity"],
            "definition": {"name": {"en-US": f"activity of {tenant}"}},
        },
        "context": {
            "registration": shared["registration"],
            "instructor": shared["other"],
            "contextActivities": {"parent": [{"id": shared["parent"]}]},
        },
        "result": {"extensions": {MARK: tenant}},
    }


@pytest.fixture(scope="module")
def stored(clients: dict[str, Xapi], shared: dict[str, Any]) -> dict[str, list[str]]:
    """Each tenant stores the same seven statement ids (PUT one, POST the rest); alpha voids its
    last one (the other tenants' statements with that id stay live)."""
    for tenant, client in clients.items():
        first = tenant_statement(tenant, shared, 0)
        response = client.put("/statements", params={"statementId": first["id"]}, json=first)
        assert response.status_code == 204, response.text
        client.store(*[tenant_statement(tenant, shared, i) for i in range(1, 7)])
    voiding = {
        "actor": shared["agent"], "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": shared["ids"][6]},
    }  # fmt: skip
    clients["alpha"].store(voiding)
    return {tenant: list(shared["ids"]) for tenant in clients}


def marks(statements: list[dict[str, Any]]) -> set[str]:
    return {s.get("result", {}).get("extensions", {}).get(MARK, "none") for s in statements}


def test_the_same_statement_id_is_independent_in_each_tenant(clients, shared, stored) -> None:
    for tenant, client in clients.items():
        for statement_id in shared["ids"][:6]:
            response = client.get("/statements", params={"statementId": statement_id})
            assert response.status_code == 200, response.text
            assert marks([response.json()]) == {tenant}


def test_voiding_in_one_tenant_leaves_the_others_statement_alone(clients, shared, stored) -> None:
    voided = shared["ids"][6]
    alpha = clients["alpha"]
    assert alpha.get("/statements", params={"statementId": voided}).status_code == 404
    assert marks([alpha.get("/statements", params={"voidedStatementId": voided}).json()]) == {"alpha"}
    for tenant in ("default", "beta"):
        client = clients[tenant]
        response = client.get("/statements", params={"statementId": voided})
        assert response.status_code == 200 and marks([response.json()]) == {tenant}
        assert client.get("/statements", params={"voidedStatementId": voided}).status_code == 404


QUERIES = {
    "agent": lambda s: {"agent": s["agent"]},
    "verb": lambda s: {"verb": s["verb"]},
    "activity": lambda s: {"activity": s["activity"]},
    "registration": lambda s: {"registration": s["registration"]},
    "related_agents": lambda s: {"agent": s["other"], "related_agents": "true"},
    "related_activities": lambda s: {"activity": s["parent"], "related_activities": "true"},
    "since": lambda s: {"agent": s["agent"], "since": s["since"].isoformat()},
    "until ascending": lambda s: {"verb": s["verb"], "until": "2999-01-01T00:00:00Z", "ascending": "true"},
    "agent verb activity": lambda s: {"agent": s["agent"], "verb": s["verb"], "activity": s["activity"]},
}


@pytest.mark.parametrize("shape", sorted(QUERIES))
def test_every_query_filter_answers_the_callers_statements_only(clients, shared, stored, shape) -> None:
    """Each tenant finds its own live statements — all seven, but six in alpha, which voided
    the last (its voiding statement is left out here) — all marked with its name; `more` pages
    included."""
    params = QUERIES[shape](shared)
    for tenant, client in clients.items():
        found = client.find(**params, limit=2)  # three or four pages through `more`
        live = [s for s in found if s["verb"]["id"] != "http://adlnet.gov/expapi/verbs/voided"]
        assert marks(live) == {tenant}, (shape, tenant)
        expected = shared["ids"][:6] if tenant == "alpha" else shared["ids"]
        assert sorted(s["id"] for s in live) == sorted(expected), (shape, tenant)


def test_a_more_link_of_one_tenant_reads_the_callers_tenant(clients, shared, stored) -> None:
    first = clients["alpha"].get("/statements", params={"verb": shared["verb"], "limit": 1}).json()
    more = first["more"].removeprefix("/xapi")
    for tenant in ("beta", "default"):
        response = clients[tenant].get(more)
        if response.status_code == 200:
            assert marks(response.json()["statements"]) <= {tenant}
        else:
            assert response.status_code == 400, response.text


DOCUMENTS = {
    "/activities/state": lambda s: {"activityId": s["activity"], "agent": orjson.dumps(s["agent"]).decode(),
                                    "registration": s["registration"], "stateId": "bookmark"},
    "/activities/profile": lambda s: {"activityId": s["activity"], "profileId": "settings"},
    "/agents/profile": lambda s: {"agent": orjson.dumps(s["agent"]).decode(), "profileId": "preferences"},
}  # fmt: skip


@pytest.mark.parametrize("resource", sorted(DOCUMENTS))
def test_documents_with_the_same_ids_are_each_tenants_own(clients, shared, resource) -> None:
    params = DOCUMENTS[resource](shared)
    etags = {}
    for tenant, client in clients.items():
        response = client.put(resource, params=params, json={"owner": tenant}, headers={"If-None-Match": "*"})
        assert response.status_code == 204, (tenant, response.text)  # absent in every other tenant
        etags[tenant] = client.get(resource, params=params).headers["ETag"]
    listing = {k: v for k, v in params.items() if k not in ("stateId", "profileId")}
    for tenant, client in clients.items():
        response = client.get(resource, params=params)
        assert response.json() == {"owner": tenant}
        ids = client.get(resource, params=listing).json()
        assert ids == [params.get("stateId") or params["profileId"]]
        # another tenant's ETag is not this document's: a conditional write with it fails
        other = next(etags[t] for t in TENANTS if t != tenant and etags[t] != etags[tenant])
        conflict = client.put(resource, params=params, json={"owner": "x"}, headers={"If-Match": other})
        assert conflict.status_code == 412, conflict.text
    assert (
        clients["alpha"].delete(resource, params=params, headers={"If-Match": etags["alpha"]}).status_code
        == 204
    )
    assert clients["alpha"].get(resource, params=params).status_code == 404
    for tenant in ("beta", "default"):
        assert clients[tenant].get(resource, params=params).json() == {"owner": tenant}


def test_activities_and_agents_resources_are_per_tenant(clients, shared, stored) -> None:
    for tenant, client in clients.items():
        activity = client.get("/activities", params={"activityId": shared["activity"]}).json()
        assert activity["definition"]["name"] == {"en-US": f"activity of {tenant}"}


def test_an_agents_names_are_per_tenant(clients) -> None:
    mbox = f"mailto:named-{uuid.uuid4().hex[:8]}@example.org"
    for tenant, client in clients.items():
        client.store({"actor": {"mbox": mbox, "name": f"name in {tenant}"},
                      "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                      "object": {"id": f"https://example.org/{uuid.uuid4()}"}})  # fmt: skip
    for tenant, client in clients.items():
        person = client.get("/agents", params={"agent": orjson.dumps({"mbox": mbox}).decode()}).json()
        assert person["name"] == [f"name in {tenant}"]


def _multipart(statement: dict[str, Any], content: bytes | None) -> tuple[bytes, str]:
    boundary = "tenant-boundary"
    parts = [
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode() + orjson.dumps(statement) + b"\r\n"
    ]
    if content is not None:
        sha2 = hashlib.sha256(content).hexdigest()
        parts.append(
            f"--{boundary}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n"
            f"X-Experience-API-Hash: {sha2}\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/mixed; boundary={boundary}"


def test_attachments_do_not_cross_tenants(clients) -> None:
    """An attachment stored in alpha cannot be referenced (without its part) nor read from beta."""
    content = f"alpha's private notes {uuid.uuid4()}".encode()
    sha2 = hashlib.sha256(content).hexdigest()
    activity = f"https://example.org/{uuid.uuid4()}"
    statement = {
        "actor": {"mbox": "mailto:attach@example.org"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
        "object": {"id": activity},
        "attachments": [{"usageType": "https://example.org/notes", "display": {"en-US": "notes"},
                         "contentType": "text/plain", "length": len(content), "sha2": sha2}],
    }  # fmt: skip
    body, content_type = _multipart(statement, content)
    response = clients["alpha"].post("/statements", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    body, content_type = _multipart(statement, None)
    response = clients["beta"].post("/statements", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text  # beta has no attachment with that hash
    response = clients["beta"].get("/statements", params={"activity": activity, "attachments": "true"})
    assert content not in response.content
    assert (
        response.json()["statements"] == []
        if response.headers["content-type"].startswith("application/json")
        else True
    )
    mine = clients["alpha"].get("/statements", params={"activity": activity, "attachments": "true"})
    assert content in mine.content


def test_every_statement_answer_carries_the_consistent_through_header(clients) -> None:
    for client in clients.values():
        assert "X-Experience-API-Consistent-Through" in client.get("/statements", params={"limit": 1}).headers


def test_a_request_refused_before_its_tenant_is_known_tells_no_tenants_instant(tenant_server) -> None:
    """Bad credentials get 401 with a consistent-through header, as every statements answer
    does, but it is the server's clock: no tenant's store is consulted for a caller without one
    (the response headers are built with no stores at all)."""
    from lrs.http.middleware import ResponseHeaders
    from lrs.xapi.formats import parse_timestamp
    from lrs.xapi.models import XapiVersion

    before = datetime.now(timezone.utc)
    with httpx.Client(base_url=tenant_server, auth=("nobody", "wrong"), timeout=30) as http:
        refused = http.get("/xapi/statements", headers={"X-Experience-API-Version": "1.0.3"})
    assert refused.status_code == 401
    assert parse_timestamp(refused.headers["X-Experience-API-Consistent-Through"]) >= before

    sent: list[dict] = []

    async def send(message) -> None:
        sent.append(message)

    out = ResponseHeaders(send, version=XapiVersion.V1, cors=False, statements=True)  # no stores
    asyncio.run(out({"type": "http.response.start", "status": 401, "headers": []}))
    header = dict(sent[0]["headers"])[b"x-experience-api-consistent-through"]
    assert parse_timestamp(header.decode()) >= before


def test_catalogs_and_the_instructor_course_list_are_per_tenant(clients, tenant_server) -> None:
    """Each tenant uploads a catalog with the same course id and its own title: each credential
    lists its tenant's course only; cmi5 launch refuses another tenant's credential (403 naming
    why), never showing the default tenant's data."""
    course = 9401  # no other test module uses it
    for tenant in ("default", "alpha"):
        document = {
            "courses": [
                {"id": course, "title": f"course of {tenant}", "iri": f"https://example.org/c/{course}"}
            ]
        }
        with httpx.Client(base_url=tenant_server, auth=clients[tenant].auth, timeout=30) as http:
            assert http.post("/catalog", json=document).status_code == 200
    for tenant in ("default", "alpha", "beta"):
        with httpx.Client(base_url=tenant_server, auth=clients[tenant].auth, timeout=30) as http:
            listed = http.get("/analytics/api/courses")
        assert listed.status_code == 200, listed.text
        titles = {c["title"] for c in listed.json() if c["id"] == course}
        assert titles == ({f"course of {tenant}"} if tenant != "beta" else set()), tenant

    with httpx.Client(base_url=tenant_server, auth=clients["alpha"].auth, timeout=30) as http:
        answer = http.get("/cmi5/courses")
    assert answer.status_code == 403 and "default tenant only" in answer.text, answer.text


def test_a_disabled_tenant_is_refused_until_enabled(store_url, tenant_server) -> None:
    key, secret = make_tenant(store_url, "gamma")
    with Xapi(tenant_server, auth=(key, secret)) as client:
        assert client.get("/statements", params={"limit": 1}).status_code == 200
        run(_admin(store_url, lambda admin, _: admin.set_disabled("gamma", True)))
        refused = client.get("/statements", params={"limit": 1})
        assert refused.status_code == 403 and "disabled" in refused.text
        run(_admin(store_url, lambda admin, _: admin.set_disabled("gamma", False)))
        assert client.get("/statements", params={"limit": 1}).status_code == 200


def test_a_tenant_over_its_statement_rate_gets_429_and_nothing_is_stored(store_url, tenant_server) -> None:
    key, secret = make_tenant(store_url, "slow", statements_per_second=5)
    verb = f"https://example.org/verbs/{uuid.uuid4().hex[:8]}"

    def batch(n: int) -> list[dict[str, Any]]:
        return [{"actor": {"mbox": "mailto:slow@example.org"}, "verb": {"id": verb},
                 "object": {"id": f"https://example.org/{uuid.uuid4()}"}} for _ in range(n)]  # fmt: skip

    with Xapi(tenant_server, auth=(key, secret)) as client:
        assert client.post_statements(batch(5)).status_code == 200
        refused = client.post_statements(batch(5))
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert "5 statements per second" in refused.text
        assert len(client.find(verb=verb)) == 5


def test_a_tenant_over_its_storage_gets_429_on_writes_and_still_reads(store_url, tenant_server) -> None:
    key, secret = make_tenant(store_url, "full", storage_bytes=1)
    with Xapi(tenant_server, auth=(key, secret)) as client:
        refused = client.post_statements(
            {
                "actor": {"mbox": "mailto:full@example.org"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
                "object": {"id": "https://example.org/full"},
            }  # fmt: skip
        )
        assert refused.status_code == 429, refused.text
        assert "storage" in refused.text
        document = client.put("/activities/profile", params={"activityId": "https://example.org/a", "profileId": "p"},
                              json={"a": 1})  # fmt: skip
        assert document.status_code == 429
        assert client.get("/statements", params={"limit": 1}).json()["statements"] == []


def test_a_credential_of_an_unknown_tenant_is_refused(store_url, tenant_server) -> None:
    async def work(admin, backend):
        credential, secret = new_credential("orphan", ["all"], "urn:test", tenant="nosuchtenant")
        await backend.credentials.save(credential)
        return credential.key, secret

    with Xapi(tenant_server, auth=run(_admin(store_url, work))) as client:
        refused = client.get("/statements")
        assert refused.status_code == 403 and "does not exist" in refused.text


@pytest.mark.parametrize("name", ["", "Alpha", "1st", "a-b", "a" * 31, "x;drop", "ü"])
def test_tenant_names_are_checked(store_url, name) -> None:
    from lrs.usecases.errors import BadRequest

    with pytest.raises(BadRequest, match="tenant name"):
        run(_admin(store_url, lambda admin, _: admin.create(name)))


def test_the_registry_lists_tenants_with_their_usage(store_url, clients) -> None:
    async def work(admin, _):
        return {t.name: await admin.usage(t.name) for t in await admin.all()}

    usage = run(_admin(store_url, work))
    assert {"default", "alpha", "beta"} <= set(usage)
    assert usage["alpha"] > 0 and usage["default"] > 0


def lrs_command(store_url: str, lms_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
    env["LRS_STORE" if is_mongodb(store_url) else "LRS_DATABASE_URL"] = store_url
    env.update(LRS_LMS_DATABASE_URL=lms_url, LRS_LOG_LEVEL="warning")
    return subprocess.run([sys.executable, "-m", "lrs", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_export_of_one_tenant_imports_into_another(
    store_url, pg_dsn, clients, shared, stored, tmp_path
) -> None:
    """`lrs export --tenant alpha` holds alpha's statements only; `lrs import --as KEY` stores them
    in the tenant of KEY (delta), leaving alpha, beta and the default tenant as they were."""
    out = tmp_path / "alpha.ndjson"
    done = lrs_command(store_url, pg_dsn, "export", str(out), "--tenant", "alpha", "--agent",
                       orjson.dumps(shared["agent"]).decode())  # fmt: skip
    assert done.returncode == 0, done.stderr
    exported = [orjson.loads(line) for line in out.read_bytes().splitlines()[1:]]
    statements = [e["statement"] for e in exported if "statement" in e]
    assert marks([s for s in statements if s["verb"]["id"] != VOIDED]) == {"alpha"}
    assert len(statements) == 8  # the seven it stored (one of them voided) and its voiding statement

    missing = lrs_command(store_url, pg_dsn, "export", str(tmp_path / "x.ndjson"), "--tenant", "nosuch")
    assert missing.returncode != 0 and "no enabled tenant 'nosuch'" in missing.stderr

    key, secret = make_tenant(store_url, "delta")
    done = lrs_command(store_url, pg_dsn, "import", str(out), "--as", key)
    assert done.returncode == 0, done.stdout + done.stderr
    with Xapi(clients["alpha"].base_url.scheme + "://" + clients["alpha"].base_url.netloc.decode(),
              auth=(key, secret)) as delta:  # fmt: skip
        found = delta.find(agent=shared["agent"])
    live = [s for s in found if s["verb"]["id"] != "http://adlnet.gov/expapi/verbs/voided"]
    assert marks(live) == {"alpha"} and sorted(s["id"] for s in live) == sorted(shared["ids"][:6])
    for tenant in ("beta", "default"):
        assert marks(clients[tenant].find(agent=shared["agent"])) == {tenant}


TENANT_SUITE = ["tests/test_life_voiding.py", "tests/test_documents_state.py", "tests/test_spage_paging.py"]
"""Modules of the LRS suite run again as a tenant here; the whole xAPI suite passes that way too
(``LRS_TEST_TENANT=acme python -m pytest tests/test_*`` of the xAPI modules, docs/tenants.md)."""


def test_lrs_suite_modules_pass_as_a_tenant(tmp_path) -> None:
    """Voiding, state documents and paging, every test on both stores, with every test credential
    of tenant ``acme`` (conftest's ``LRS_TEST_TENANT``): the LRS behaves the same in a tenant."""
    root = Path(__file__).parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *TENANT_SUITE, "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'suite'}"],
        cwd=root, env={**os.environ, "LRS_TEST_TENANT": "acme"}, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_a_tenant_whose_stores_cannot_be_opened_gets_503_and_a_later_request_opens_them(
    store_url, clients, shared, stored
) -> None:
    """The database refusing a tenant's first connection (too many connections, away) is a 503
    to retry, not a 500, and is not remembered: the next request opens the stores."""
    from lrs.auth.credentials import Principal
    from lrs.usecases.errors import Busy
    from lrs.usecases.stores import Stores
    from lrs.usecases.tenants import Tenancy

    async def work():
        backend = await open_stores(store_url, pool_min=1, pool_max=2)
        attempts: list[str] = []

        async def flaky(name: str):
            attempts.append(name)
            if len(attempts) == 1:
                raise OSError("connection refused")
            return await open_stores(store_url, pool_min=0, pool_max=2, tenant=name)

        tenancy = Tenancy(
            Stores(backend.statements, backend.documents, backend.credentials), backend.tenants, flaky
        )
        principal = Principal("k", frozenset({"all"}), {}, tenant="alpha")
        try:
            with pytest.raises(Busy, match="cannot be opened now"):
                await tenancy.stores(principal)
            stores = await tenancy.stores(principal)
            found = await stores.statements.get(shared["ids"][0])
            return attempts, orjson.loads(found.document) if found is not None else None
        finally:
            await tenancy.close()
            await backend.close()

    attempts, statement = run(work())
    assert attempts == ["alpha", "alpha"]
    assert marks([statement]) == {"alpha"}


def test_a_namespace_left_behind_is_never_handed_to_a_new_tenant(store_url) -> None:
    """A schema / database of a tenant that is not in the registry (an earlier tenant's data) makes
    `create` refuse rather than give that data to whoever takes the name."""
    from lrs.usecases.errors import Conflict

    async def leave_namespace():
        backend = await open_stores(store_url, pool_min=0, pool_max=2, tenant="leftover")  # creates it
        await backend.close()

    run(leave_namespace())
    with pytest.raises(Conflict, match="namespace"):
        run(_admin(store_url, lambda admin, _: admin.create("leftover")))


def test_one_tenants_open_transaction_does_not_hold_back_anothers_consistent_instant(pg_dsn) -> None:
    """PostgreSQL: each tenant's writers announce their own name, so a transaction left open by
    one tenant's writer holds back that tenant's consistent-through only (and never the default
    tenant's, which the relay reads)."""
    import asyncpg

    async def work():
        async def create_both(admin, _):
            for name in ("holder", "other"):
                await admin.create(name)

        await _admin(pg_dsn, create_both)
        holder = await asyncpg.connect(pg_dsn, server_settings={"application_name": "lrs:holder"})
        transaction = holder.transaction()
        await transaction.start()
        started = await holder.fetchval("SELECT now()")  # the transaction's start
        stores = {t: await open_stores(pg_dsn, pool_min=1, pool_max=2, tenant=t) for t in ("holder", "other")}
        default = await open_stores(pg_dsn, pool_min=1, pool_max=2)
        try:
            held = await stores["holder"].statements.consistent_through()
            free = await stores["other"].statements.consistent_through()
            relay = (await default.outbox.read(None, 1)).consistent
        finally:
            await transaction.rollback()
            await holder.close()
            for backend in (*stores.values(), default):
                await backend.close()
        return started, held, free, relay

    started, held, free, relay = run(work())
    assert held == started
    assert free > started and relay > started


def test_an_installation_from_before_tenants_is_the_default_tenant_without_reingest(pg_dsn) -> None:
    """PostgreSQL store of the layout before 0004 with a credential and a statement: opening it
    applies 0004 only; the credential is the default tenant's and reaches the statement."""
    from .pipeline_stack import create_database
    from .test_pg_key_paths import layout_before

    statement_id = str(uuid.uuid4())

    async def work():
        dsn = await create_database(pg_dsn, "lrs_before_tenants")
        await layout_before(dsn, 4)
        credential, secret = new_credential("old client", ["all"], "urn:test")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO lrs_credentials (key, secret_hash, scopes, name, authority, created)"
                " VALUES ($1, $2, $3, $4, $5::jsonb, now())",
                credential.key, credential.secret_hash, ["all"], "old client", orjson.dumps(credential.authority).decode(),
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO lrs_statements (id, stored, document, keys) VALUES ($1, now(), $2::jsonb, '{}')",
                statement_id, orjson.dumps({"id": statement_id, "mark": "before"}).decode(),
            )  # fmt: skip
        finally:
            await conn.close()
        backend = await open_stores(dsn, pool_min=1, pool_max=2)
        try:
            found = await backend.credentials.find(credential.key)
            tenants = [t.name for t in await backend.tenants.all()]
            stored = await backend.statements.get(statement_id)
            applied = await backend.pool.fetch("SELECT name FROM lrs_schema_migrations ORDER BY version")
        finally:
            await backend.close()
        return found, tenants, stored, [r["name"] for r in applied]

    found, tenants, stored, applied = run(work())
    assert applied[-1] == "0004_tenants.sql"
    assert found is not None and found.tenant == "default"
    assert tenants == ["default"]
    assert stored is not None and orjson.loads(stored.document)["mark"] == "before"


# --- the pipeline's outbox: every tenant's statements in one store order --------------------------


def _read_all(store_url: str, limit: int) -> list:
    """Every entry the pipeline's outbox gives, page by page from the start (each page after the
    last entry)."""
    from lrs.store import open_outbox

    async def work():
        outbox = await open_outbox(store_url)
        entries, after = [], None
        try:
            while True:
                page = (await outbox.read(after, limit)).entries
                if not page:
                    return entries
                entries += page
                after = page[-1].position
        finally:
            await outbox.close()

    return run(work())


def _order(entry) -> tuple:
    return (entry.stored, entry.seq, "" if entry.tenant == "default" else entry.tenant)


def test_the_pipelines_outbox_reads_every_tenants_statements_once_in_one_order(
    store_url, shared, stored
) -> None:
    """The same seven ids in three tenants come out of the pipeline's outbox as 21 statements (22
    with alpha's voiding), each with its tenant, in (stored, seq, tenant) order with no repeat,
    also when read three at a time; a tenant's own outbox gives its statements only."""
    ids = set(shared["ids"])
    for limit in (3, 500):
        entries = _read_all(store_url, limit)
        assert [_order(e) for e in entries] == sorted(_order(e) for e in entries)
        assert len({e.position for e in entries}) == len(entries)
        mine = [
            (e.tenant, orjson.loads(e.document)["id"])
            for e in entries
            if e.tenant in TENANTS and orjson.loads(e.document)["id"] in ids
        ]
        assert sorted(mine) == sorted((t, i) for t in TENANTS for i in ids)
        voidings = [e for e in entries if e.tenant == "alpha" and e.target == shared["ids"][6]]
        assert len(voidings) == 1

    async def own(tenant: str) -> list:
        backend = await open_stores(store_url, pool_min=1, pool_max=1, tenant=tenant)
        try:
            return (await backend.outbox.read(None, 100_000)).entries
        finally:
            await backend.close()

    for tenant in ("alpha", "beta"):
        entries = run(own(tenant))
        assert {e.tenant for e in entries} == {tenant}
        assert {orjson.loads(e.document)["id"] for e in entries} >= ids


def test_a_position_of_one_tenant_orders_the_others_statements_of_the_same_instant(store_url, stored) -> None:
    """After (stored, seq) of a beta statement *as alpha's position*, beta's own statement at it
    comes next (beta sorts after alpha); as the position of a tenant sorting after beta, it does
    not; as beta's own, it does not either."""
    from lrs.store import open_outbox

    entries = _read_all(store_url, 500)
    beta = next(e for e in entries if e.tenant == "beta")

    async def first_after(tenant: str):
        outbox = await open_outbox(store_url)
        try:
            return (await outbox.read((beta.stored, beta.seq, tenant), 1)).entries[0].position
        finally:
            await outbox.close()

    assert run(first_after("alpha")) == beta.position
    assert run(first_after("default")) == beta.position
    assert run(first_after("gamma")) != beta.position
    assert run(first_after("beta")) != beta.position
