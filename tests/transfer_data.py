"""Two LRSs for the data-movement tests (export/import, forwarding): a source and a target, each on
a new database of the test store, served over HTTP; a varied dataset to move between them; the
``lrs`` command run as a subprocess against either; and the comparison of what both answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from lrs.http.app import create_app
from lrs.settings import AuthSettings, ServerSettings, StoreSettings
from lrs.store import is_mongodb

from .conftest import ADMIN, RunningServer, Xapi, free_port, statement, unique_activity, unique_agent, voiding
from .helpers import json_part, multipart, part, sha256
from .pipeline_stack import create_database, mongo_database, run

IMPORTER = ("importer", "importer-secret")
"""A credential of the target with scope ``import``: statements keep the source's authority."""


class Lrs:
    """An LRS on its own new database (``kind``: a PostgreSQL DSN or a MongoDB URL to put it
    next to), served over HTTP until ``close``."""

    def __init__(self, store_url: str, pg_dsn: str, prefix: str, **settings: Any) -> None:
        if is_mongodb(store_url):
            self.store, self.lms = mongo_database(store_url, prefix), pg_dsn
        else:
            self.store = self.lms = run(create_database(pg_dsn, prefix))
        self.settings = settings
        self.start(free_port())
        self.base = f"http://127.0.0.1:{self.server.port}"
        self.endpoint = self.base + "/xapi"
        self.xapi = Xapi(self.base, "1.0.3")
        self.xapi2 = Xapi(self.base, "2.0.0")

    def start(self, port: int) -> None:
        """Serve (again) on ``port``."""
        app = create_app(
            self.store,
            ServerSettings(**self.settings),
            StoreSettings(lms_database_url=self.lms),
            AuthSettings(admin_key=ADMIN[0], admin_secret=ADMIN[1]),
        )
        self.server = RunningServer(app, port).__enter__()

    def stop(self) -> None:
        """Stop serving (the port refuses connections until ``start``)."""
        self.server.__exit__(None, None, None)

    def env(self) -> dict[str, str]:
        """The environment of an ``lrs`` command on this LRS's store."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
        env["LRS_STORE" if is_mongodb(self.store) else "LRS_DATABASE_URL"] = self.store
        env.update(LRS_LMS_DATABASE_URL=self.lms, LRS_LOG_LEVEL="warning", LRS_ADMIN_KEY=ADMIN[0])
        return env

    def lrs(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``lrs ARGS`` on this LRS's store and wait for it."""
        done = subprocess.run([sys.executable, "-m", "lrs", *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        if check:
            assert done.returncode == 0, (
                f"lrs {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def spawn(self, *args: str, log: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "lrs", *args], env=self.env(),
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # fmt: skip

    def close(self) -> None:
        self.xapi.close()
        self.xapi2.close()
        self.server.__exit__(None, None, None)

    def count(self) -> int:
        from lrs.store import open_outbox

        async def count() -> int:
            outbox = await open_outbox(self.store)
            try:
                return await outbox.count(None, None)
            finally:
                await outbox.close()

        return run(count())


# --- a varied dataset ----------------------------------------------------------------------------


class Dataset:
    """Statements of every shape the LRS stores (both versions, attachments, voiding, references,
    SubStatements, groups, definitions), and documents of the three kinds; with the queries
    whose answers must be the same wherever the data moves."""

    def __init__(self, size: int = 120) -> None:
        self.agents = [unique_agent(f"Learner {i}") for i in range(4)]
        self.group = {"objectType": "Group", "name": "Team", "member": self.agents[:2],
                      "account": {"homePage": "https://lms.example", "name": f"team-{uuid.uuid4().hex[:6]}"}}  # fmt: skip
        self.activities = [unique_activity(name={"en-US": f"Activity {i}"}) for i in range(3)]
        self.registrations = [str(uuid.uuid4()) for _ in range(2)]
        self.verbs = ["completed", "attempted", "experienced"]
        self.size = size
        self.voided: list[str] = []
        self.with_attachments: list[str] = []
        self.documents: list[tuple[str, dict[str, str], bytes, str]] = []

    def statements(self, n: int) -> dict[str, Any]:
        actor = self.group if n % 11 == 0 else self.agents[n % len(self.agents)]
        st = statement(
            actor, self.verbs[n % len(self.verbs)], self.activities[n % len(self.activities)], id=str(uuid.uuid4()),
            context={"registration": self.registrations[n % 2],
                     "contextActivities": {"parent": [self.activities[(n + 1) % 3]]}},
            result={"score": {"scaled": (n % 10) / 10}, "duration": f"PT{n}.5S"},
            timestamp=f"2026-03-{1 + n % 27:02d}T10:{n % 60:02d}:00.000+02:00",
        )  # fmt: skip
        if n % 13 == 5:
            st["object"] = {"objectType": "SubStatement", "actor": self.agents[0],
                            "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
                            "object": self.activities[2]}  # fmt: skip
        return st

    def populate(self, lrs: Lrs) -> None:
        """POST the dataset (in batches, some as 2.0.0, some with attachments) and put documents."""
        batch: list[dict[str, Any]] = []
        for n in range(self.size):
            batch.append(self.statements(n))
            if len(batch) == 20:
                client = lrs.xapi2 if n % 40 == 39 else lrs.xapi
                assert client.post_statements(batch).status_code == 200
                batch = []
        if batch:
            lrs.xapi.store(*batch)
        targets = lrs.xapi.find(verb="http://adlnet.gov/expapi/verbs/experienced")[:5]
        for target in targets:
            lrs.xapi.store(voiding(target["id"], self.agents[3]))
            self.voided.append(target["id"])
        ref = statement(self.agents[1], "attempted", {"objectType": "StatementRef", "id": targets[-1]["id"]})
        lrs.xapi.store(ref)
        lrs.xapi2.store(statement(self.agents[2], "completed", self.activities[0],
                                  context={"contextAgents": [{"objectType": "contextAgent", "agent": self.agents[0]}]}))  # fmt: skip
        for k in range(3):
            content = f"attachment {k} {uuid.uuid4()}".encode() + bytes(range(256))
            sid = str(uuid.uuid4())
            st = statement(self.agents[k], "completed", self.activities[k], id=sid, attachments=[{
                "usageType": "http://example.com/usage", "display": {"en-US": "file"},
                "contentType": "application/octet-stream", "length": len(content), "sha2": sha256(content),
            }, {
                "usageType": "http://example.com/usage", "display": {"en-US": "remote"},
                "contentType": "text/plain", "length": 4, "sha2": sha256(b"ref" + sid.encode()),
                "fileUrl": f"https://files.example/{sid}",
            }])  # fmt: skip
            body = multipart(json_part([st]), part(content))
            response = lrs.xapi.post("/statements", content=body,
                                     headers={"Content-Type": "multipart/mixed; boundary=xapi-test-boundary-7d1c"})  # fmt: skip
            assert response.status_code == 200, response.text
            self.with_attachments.append(sid)
        agent_json = json.dumps(self.agents[0])
        docs = [
            ("/activities/state", {"activityId": self.activities[0]["id"], "agent": agent_json,
                                   "stateId": "bookmark", "registration": self.registrations[0]}),
            ("/activities/state", {"activityId": self.activities[1]["id"], "agent": agent_json, "stateId": "s2"}),
            ("/activities/profile", {"activityId": self.activities[2]["id"], "profileId": "p1"}),
            ("/agents/profile", {"agent": agent_json, "profileId": "prefs"}),
        ]  # fmt: skip
        for i, (path, params) in enumerate(docs):
            content, ctype = (json.dumps({"n": i}).encode(), "application/json") if i % 2 else (
                b"\x00binary\xff" + str(i).encode(), "application/octet-stream")  # fmt: skip
            response = lrs.xapi.put(path, params=params, content=content,
                                    headers={"Content-Type": ctype, "If-None-Match": "*"})  # fmt: skip
            assert response.status_code == 204, response.text
            self.documents.append((path, params, content, ctype))

    def queries(self) -> list[dict[str, Any]]:
        """GET /statements parameters whose answers must match between source and target."""
        agent = lambda a: json.dumps(a)  # noqa: E731
        queries: list[dict[str, Any]] = [{}, {"ascending": "true"}, {"format": "ids"}, {"format": "canonical"},
                                         {"attachments": "true", "limit": "7"}]  # fmt: skip
        for a in [*self.agents, self.group]:
            queries += [{"agent": agent(a)}, {"agent": agent(a), "related_agents": "true"}]
        for activity in self.activities:
            queries += [
                {"activity": activity["id"]},
                {"activity": activity["id"], "related_activities": "true"},
            ]
        for verb in self.verbs:
            queries.append({"verb": f"http://adlnet.gov/expapi/verbs/{verb}", "ascending": "true"})
        for registration in self.registrations:
            queries.append({"registration": registration, "limit": "5"})
        queries.append({"agent": agent(self.agents[0]), "verb": "http://adlnet.gov/expapi/verbs/completed"})
        return queries


# --- comparing two LRSs ----------------------------------------------------------------------------


def _without(value: Any, names: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list | tuple):
        return [_without(v, names) for v in value]
    return value


def _all_pages(client: Xapi, params: dict[str, Any]) -> list[Any]:
    """Every page's statements of a query; multipart pages as (statements, attachment parts)."""
    from .test_attm_mp_attachments import parse_multipart_response

    pages = []
    response = client.get("/statements", params=params)
    while True:
        assert response.status_code == 200, response.text
        if params.get("attachments") == "true":
            first, *rest = parse_multipart_response(response)
            body = json.loads(first[1])
            pages.append((body["statements"], sorted((h["x-experience-api-hash"], c) for h, c in rest)))
        else:
            body = response.json()
            pages.append(body["statements"])
        if not body.get("more"):
            return pages
        response = client.get(body["more"].removeprefix("/xapi"))


def assert_same_answers(
    source: Lrs, target: Lrs, data: Dataset, *, authority: bool = True, documents: bool = True
) -> int:
    """Every query of ``data``, each statement by id (voided ones by voidedStatementId, with
    attachments), and (with ``documents``) every document answer the same on both (``stored``
    aside; ``authority`` too unless ``authority``); returns the number of statements compared."""

    def clean(value: Any) -> Any:
        return _without(value, ("stored",) if authority else ("stored", "authority"))

    compared = set()
    for client_pair in ((source.xapi, target.xapi), (source.xapi2, target.xapi2)):
        for params in data.queries():
            left, right = (_all_pages(c, params) for c in client_pair)
            assert clean(right) == clean(left), f"{params} answers differently"
            for page in left:
                for st in page[0] if isinstance(page, tuple) else page:
                    compared.add(st["id"])
    for sid in [*compared, *data.voided]:
        kind = "voidedStatementId" if sid in data.voided else "statementId"
        for params in ({kind: sid}, {kind: sid, "attachments": "true"}):
            left, right = (c.get("/statements", params=params) for c in (source.xapi, target.xapi))
            assert left.status_code == right.status_code == 200, (sid, left.text, right.text)
            if "attachments" in params:
                from .test_attm_mp_attachments import parse_multipart_response

                lp, rp = parse_multipart_response(left), parse_multipart_response(right)
                assert clean(json.loads(rp[0][1])) == clean(json.loads(lp[0][1]))
                assert sorted((h["x-experience-api-hash"], c) for h, c in rp[1:]) == sorted(
                    (h["x-experience-api-hash"], c) for h, c in lp[1:]
                )
            else:
                assert clean(right.json()) == clean(left.json())
    for path, params, content, ctype in data.documents if documents else ():
        left, right = (c.get(path, params=params) for c in (source.xapi, target.xapi))
        assert right.status_code == 200 and right.content == content == left.content
        assert right.headers["content-type"].split(";")[0] == ctype
        assert right.headers["etag"] == left.headers["etag"]
        listing = {k: v for k, v in params.items() if k not in ("stateId", "profileId")}
        ids = [c.get(path, params=listing).json() for c in (source.xapi, target.xapi)]
        assert ids[0] == ids[1]
    return len(compared)
