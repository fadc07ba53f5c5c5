"""The `lrs` command as an operator uses it: `lrs up` on the embedded PostgreSQL, credentials, and
a clean shutdown. Each test runs the real command in a subprocess on its own data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from lrs.xapi.formats import parse_timestamp
from sinks import positions

from .cohort import Cohort, catalog, expected_funnel
from .conftest import free_port, statement
from .mongo_server import mongo_url

LRS = [sys.executable, "-m", "lrs"]


def run_lrs(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LRS, *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


class Up:
    """`lrs up` in a subprocess, ready once /ready answers (polled with a deadline, not slept)."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        # the embedded broker and the worker's web server get free ports too
        self.env = {"LRS_KAFKA_PORT": str(free_port()), "LRS_WORKER_WEB_PORT": str(free_port()), **env}
        self.process = subprocess.Popen(
            [*LRS, "up", "--port", str(self.port), "--data-dir", str(data_dir)],
            env={**os.environ, "LRS_LOG_LEVEL": "warning", **self.env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"lrs up exited: {self.process.stderr.read()}")
            try:
                if httpx.get(self.base + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "lrs up did not become ready"
            time.sleep(0.1)

    def family(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "lrs-data"


ADMIN_ENV = {"LRS_ADMIN_KEY": "ops", "LRS_ADMIN_SECRET": "ops-secret"}


def test_up_serves_persists_and_shuts_down_cleanly(data_dir: Path):
    """`lrs up` starts the embedded PostgreSQL, serves xAPI with the LRS_ADMIN_* credential, keeps
    data across a restart, and SIGTERM stops everything it started (no orphan postgres)."""
    server = Up(data_dir, **ADMIN_ENV)
    children = server.family()
    assert any("postgres" in p.name() for p in children)
    with httpx.Client(base_url=server.base + "/xapi", auth=("ops", "ops-secret"),
                      headers={"X-Experience-API-Version": "1.0.3"}) as client:  # fmt: skip
        sent = statement()
        response = client.post("/statements", json=sent)
        assert response.status_code == 200, response.text
        (statement_id,) = response.json()
    assert server.stop() == 0
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], f"left running: {[p.name() for p in alive]}"

    again = Up(data_dir, **ADMIN_ENV)  # same data directory: the statement is still there
    try:
        with httpx.Client(base_url=again.base + "/xapi", auth=("ops", "ops-secret"),
                          headers={"X-Experience-API-Version": "1.0.3"}) as client:  # fmt: skip
            found = client.get("/statements", params={"statementId": statement_id})
            assert found.status_code == 200
            assert found.json()["actor"] == sent["actor"]
        # `lrs cmi5 import` packages the demo directory; a second run updates the same course
        demo = str(Path(__file__).parents[1] / "examples" / "cmi5")
        imported = run_lrs("cmi5", "import", demo, data_dir=data_dir, env=again.env)
        assert imported.returncode == 0, imported.stderr
        assert (
            imported.stdout.startswith("imported course ") and "2 AUs, 1 blocks, 1 files" in imported.stdout
        )
        course_id = int(imported.stdout.split()[2].rstrip(":"))
        updated = run_lrs("cmi5", "import", demo, data_dir=data_dir, env=again.env)
        assert updated.stdout.startswith(f"updated course {course_id}:"), updated.stdout + updated.stderr
        bad = data_dir.parent / "bad-cmi5.xml"
        bad.write_text((Path(demo) / "cmi5.xml").read_text().replace('moveOn="Completed"', 'moveOn="Done"'))
        refused = run_lrs("cmi5", "import", str(bad), data_dir=data_dir, env=again.env)
        assert refused.returncode != 0 and "moveOn" in refused.stderr, refused.stderr
        shown = httpx.get(f"{again.base}/cmi5/courses/{course_id}", auth=("ops", "ops-secret")).json()
        assert [a["id"] for a in shown["aus"]] == ["https://lrs.example/cmi5/demo/welcome",
                                                   "https://lrs.example/cmi5/demo/check"]  # fmt: skip
    finally:
        assert again.stop() == 0


def test_first_start_without_admin_env_prints_a_credential_that_works(data_dir: Path):
    """With no credential at all and no LRS_ADMIN_*, `lrs up` creates one with scope `all` and shows
    its secret once; a second start creates no other."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_ADMIN")}
    port = free_port()
    env |= {"LRS_KAFKA_PORT": str(free_port()), "LRS_WORKER_WEB_PORT": str(free_port())}
    process = subprocess.Popen(
        [*LRS, "up", "--port", str(port), "--data-dir", str(data_dir)],
        env={**env, "LRS_LOG_LEVEL": "warning"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = []
    while not any(line.startswith("  secret:") for line in lines):
        line = process.stderr.readline()
        assert line, f"no credential printed: {lines}"
        lines.append(line)
    key = next(line.split()[-1] for line in lines if line.startswith("  key:"))
    secret = next(line.split()[-1] for line in lines if line.startswith("  secret:"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)
    response = httpx.get(
        base + "/xapi/statements", auth=(key, secret), headers={"X-Experience-API-Version": "2.0.0"}
    )
    assert response.status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    listed = run_lrs("credentials", "list", data_dir=data_dir, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == [key]


def test_credentials_create_list_revoke(data_dir: Path):
    """`lrs credentials` creates scoped credentials (secret shown once, stored hashed), lists them and
    revokes them; a revoked credential is refused by a running server."""
    created = run_lrs("credentials", "create", "--name", "Course player", "--scope", "statements/write",
                      "--scope", "state", data_dir=data_dir)  # fmt: skip
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(":", 1) for line in created.stdout.splitlines())
    key, secret = fields["key"].strip(), fields["secret"].strip()
    assert fields["scopes"].split() == ["state", "statements/write"]

    listed = run_lrs("credentials", "list", data_dir=data_dir)
    row = next(line.split("\t") for line in listed.stdout.splitlines() if line.startswith(key))
    assert row[1:] == ["Course player", "state statements/write", "active", "tenant default"]
    assert secret not in listed.stdout

    bad = run_lrs("credentials", "create", "--name", "x", "--scope", "everything", data_dir=data_dir)
    assert bad.returncode != 0 and "unknown scope" in bad.stderr

    server = Up(data_dir, **ADMIN_ENV)
    try:
        headers = {"X-Experience-API-Version": "1.0.3"}
        url = server.base + "/xapi/statements"
        assert httpx.post(url, json=statement(), auth=(key, secret), headers=headers).status_code == 200
        assert httpx.get(url, auth=(key, secret), headers=headers).status_code == 403  # write-only scopes
        revoked = run_lrs(
            "credentials", "revoke", key, data_dir=data_dir
        )  # uses the running server's database
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + 10
        while httpx.post(url, json=statement(), auth=(key, secret), headers=headers).status_code != 401:
            assert time.monotonic() < deadline, "revoked credential still accepted"
            time.sleep(0.05)
    finally:
        assert server.stop() == 0
    again = run_lrs("credentials", "revoke", key, data_dir=data_dir)
    assert again.returncode != 0 and "no active credential" in again.stderr


def test_tenants_create_list_limit_disable_and_their_credentials(data_dir: Path):
    """`lrs tenants` and `lrs credentials create --tenant`: a tenant's credential stores and reads
    in its own namespace (the default tenant's admin does not see it), a disabled tenant is
    refused by the running server, and bad names or unknown tenants are refused by the command."""
    created = run_lrs("tenants", "create", "acme", "--statements-per-second", "500", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    again = run_lrs("tenants", "create", "acme", data_dir=data_dir)
    assert again.returncode != 0 and "exists" in again.stderr
    bad = run_lrs("tenants", "create", "Bad-Name", data_dir=data_dir)
    assert bad.returncode != 0 and "tenant name" in bad.stderr
    orphan = run_lrs("credentials", "create", "--name", "x", "--tenant", "nosuch", data_dir=data_dir)
    assert orphan.returncode != 0 and "no tenant 'nosuch'" in orphan.stderr
    made = run_lrs("credentials", "create", "--name", "Acme player", "--scope", "all", "--tenant", "acme",
                   data_dir=data_dir)  # fmt: skip
    assert made.returncode == 0, made.stderr
    fields = dict(line.split(":", 1) for line in made.stdout.splitlines())
    acme = (fields["key"].strip(), fields["secret"].strip())
    assert fields["tenant"].strip() == "acme"
    listed = run_lrs("tenants", "list", data_dir=data_dir).stdout.splitlines()
    rows = {line.split("\t")[0]: line.split("\t") for line in listed}
    assert set(rows) == {"default", "acme"}
    assert rows["acme"][1:3] == ["active", "500/s"]

    server = Up(data_dir, LRS_PIPELINE="false", LRS_TENANT_REFRESH_SECONDS="0", **ADMIN_ENV)
    try:
        headers = {"X-Experience-API-Version": "1.0.3"}
        url = server.base + "/xapi/statements"
        posted = httpx.post(url, json=statement(), auth=acme, headers=headers)
        assert posted.status_code == 200, posted.text
        (mine,) = posted.json()
        seen = httpx.get(url, params={"statementId": mine}, auth=acme, headers=headers)
        assert seen.status_code == 200 and seen.json()["id"] == mine
        admin = (ADMIN_ENV["LRS_ADMIN_KEY"], ADMIN_ENV["LRS_ADMIN_SECRET"])
        assert httpx.get(url, params={"statementId": mine}, auth=admin, headers=headers).status_code == 404
        assert run_lrs("tenants", "disable", "acme", data_dir=data_dir).returncode == 0
        refused = httpx.get(url, auth=acme, headers=headers)
        assert refused.status_code == 403 and "disabled" in refused.text
        assert run_lrs("tenants", "enable", "acme", data_dir=data_dir).returncode == 0
        assert httpx.get(url, auth=acme, headers=headers).status_code == 200
    finally:
        assert server.stop() == 0
    default = run_lrs("tenants", "disable", "default", data_dir=data_dir)
    assert default.returncode != 0 and "cannot be disabled" in default.stderr


def test_up_on_mongodb_runs_the_whole_pipeline_and_manages_credentials(data_dir: Path, tmp_path: Path):
    """With LRS_STORE=mongodb://… statements, documents and credentials live in MongoDB and `lrs up`
    runs the whole pipeline on that store: the LMS tables in an embedded PostgreSQL started for
    them, the broker, and the worker, whose relay reads the MongoDB store. A loaded catalog and a
    posted cohort reach ClickHouse and the rollups; `lrs credentials` works on the same store, and a
    revocation reaches the running server (change stream)."""
    document = catalog(45, 1, [911, 912])
    people = Cohort(document, seed=8)
    for student in (911, 912):
        people.learn(student)
    (tmp_path / "catalog.json").write_bytes(orjson.dumps(document))
    with mongo_url(tmp_path) as url:
        env = {"LRS_STORE": url, **ADMIN_ENV}
        server = Up(data_dir, **env)
        try:
            names = " ".join(" ".join(p.cmdline()) for p in server.family())
            assert "postgres" in names and "tansu" in names and "worker" in names, names
            loaded = run_lrs(
                "catalog", "load", str(tmp_path / "catalog.json"), data_dir=data_dir, env=server.env
            )
            assert loaded.returncode == 0, loaded.stderr
            with httpx.Client(base_url=server.base + "/xapi", auth=("ops", "ops-secret"), timeout=60,
                              headers={"X-Experience-API-Version": "1.0.3"}) as client:  # fmt: skip
                for start in range(0, len(people.statements), 25):
                    response = client.post("/statements", json=people.statements[start : start + 25])
                    assert response.status_code == 200, response.text
            worker = f"http://127.0.0.1:{server.env['LRS_WORKER_WEB_PORT']}"
            wait_for_sinks(worker, len(people.statements), course=45)
            want = expected_funnel(document, people.statements)[45]
            funnel = httpx.get(worker + "/analytics/completion_funnel", params={"course_id": 45}).json()
            assert [{k: r[k] for k in want} for r in funnel] == [want]

            created = run_lrs("credentials", "create", "--name", "player", "--scope", "statements/write",
                              "--scope", "statements/read/mine", data_dir=data_dir, env=env)  # fmt: skip
            assert created.returncode == 0, created.stderr
            fields = dict(line.split(":", 1) for line in created.stdout.splitlines())
            auth = (fields["key"].strip(), fields["secret"].strip())
            with httpx.Client(
                base_url=server.base + "/xapi", headers={"X-Experience-API-Version": "1.0.3"}
            ) as client:
                sent = statement()
                (statement_id,) = client.post("/statements", json=sent, auth=auth).json()
                found = client.get("/statements", params={"statementId": statement_id}, auth=auth)
                assert found.status_code == 200 and found.json()["actor"] == sent["actor"]
                assert run_lrs("credentials", "revoke", auth[0], data_dir=data_dir, env=env).returncode == 0
                deadline = time.monotonic() + 10
                while client.get("/statements", auth=auth).status_code != 401:
                    assert time.monotonic() < deadline, "revoked credential still accepted"
                    time.sleep(0.05)  # throttles the polling; the status above is what is waited for
        finally:
            assert server.stop() == 0


def wait_for_sinks(worker: str, statements: int, course: int) -> None:
    """Until the ClickHouse events of ``course`` count ``statements`` and every sink's position
    passed the relay's (polled with a deadline)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            overview = httpx.get(
                worker + "/analytics/bi_course_overview", params={"course_id": course}
            ).json()
            marks = httpx.get(worker + "/watermarks").json()
        except (httpx.TransportError, ValueError):
            overview, marks = [], {}
        counted = sum(r["events"] for r in overview)
        sinks = {k: v for k, v in marks.items() if k != "relay"}
        if counted >= statements and sinks and all(min(v) >= (marks["relay"] or "") for v in sinks.values()):
            assert counted == statements, f"{counted} events counted for {statements} statements"
            return
        assert time.monotonic() < deadline, f"the sinks did not catch up: {counted} of {statements}, {marks}"
        time.sleep(0.1)


def test_up_runs_the_pipeline_and_replay_rebuilds_it(data_dir: Path, tmp_path: Path):
    """`lrs up` alone also runs the broker and the worker: a loaded catalog and a posted cohort
    show up in the ClickHouse analytics and the enrollments; `lrs replay` rebuilds both to the
    same numbers; SIGTERM stops broker, worker and PostgreSQL."""
    document = catalog(40, 1, [901, 902])
    people = Cohort(document, seed=5)
    for student in (901, 902):
        people.learn(student)
    (tmp_path / "catalog.json").write_bytes(orjson.dumps(document))
    server = Up(data_dir, **ADMIN_ENV)
    try:
        children = server.family()
        names = " ".join(" ".join(p.cmdline()) for p in children)
        assert "tansu" in names and "worker" in names, names
        loaded = run_lrs("catalog", "load", str(tmp_path / "catalog.json"), data_dir=data_dir, env=server.env)
        assert loaded.returncode == 0, loaded.stderr
        with httpx.Client(base_url=server.base + "/xapi", auth=("ops", "ops-secret"), timeout=60,
                          headers={"X-Experience-API-Version": "1.0.3"}) as client:  # fmt: skip
            for start in range(0, len(people.statements), 25):
                response = client.post("/statements", json=people.statements[start : start + 25])
                assert response.status_code == 200, response.text
            last = client.get("/statements", params={"limit": 1}).json()["statements"][0]["stored"]
        worker = f"http://127.0.0.1:{server.env['LRS_WORKER_WEB_PORT']}"

        def synced() -> None:
            deadline = time.monotonic() + 120
            while True:
                try:
                    marks = httpx.get(worker + "/watermarks", timeout=5).json()
                except httpx.TransportError:
                    marks = {}
                sinks = {k: v for k, v in marks.items() if k != "relay"}
                if sinks and all(min(v) and positions.decode(min(v))[0] >= parse_timestamp(last)
                                 for v in sinks.values()):  # fmt: skip
                    return
                assert time.monotonic() < deadline, f"sinks did not catch up: {marks}"
                time.sleep(0.1)

        def numbers() -> tuple[list, list]:
            funnel = httpx.get(worker + "/analytics/completion_funnel", params={"course_id": 40}).json()
            quizzes = httpx.get(worker + "/analytics/quiz_performance", params={"course_id": 40}).json()
            return funnel, quizzes

        synced()
        first = numbers()
        want = expected_funnel(document, people.statements)[40]
        assert [{k: r[k] for k in want} for r in first[0]] == [want]
        replayed = run_lrs("replay", data_dir=data_dir, env=server.env)
        assert replayed.returncode == 0, replayed.stderr
        synced()
        assert numbers() == first
    finally:
        assert server.stop() == 0
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], f"left running: {[p.name() for p in alive]}"
