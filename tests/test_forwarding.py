"""Statement forwarding (``sinks/forward.py``, ``lrs forward``) on a real pipeline: the LRS, a
tansu broker and ``lrs worker`` processes (``tests/pipeline_stack.py``), forwarding to a second
LRS over HTTP and to a webhook receiver run by the test.

Both receivers are taken down for a while and the worker is killed (kill -9) meanwhile: every
matching statement still arrives, nothing that does not match does, every webhook request's
HMAC verifies, a voiding statement follows what it voids, paused rules hold statements back
until resumed, failing deliveries end as dead letters that ``lrs forward retry`` sends again, a
replay forwards nothing twice, and the ``lrs_forward_*`` metrics count it all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from sinks.forward import ForwardFilter, agent_key, signature

from .conftest import free_port, statement, unique_agent, voiding
from .helpers import json_part, multipart, part, sha256
from .pipeline_stack import PipelineStack
from .transfer_data import IMPORTER, Lrs

SECRET = "webhook-secret-for-tests"
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
PREFIX = "https://lms.example/courses/7/"


# --- the rule filter and the signature, alone --------------------------------------------------------


def test_filters_match_every_given_kind_and_any_value_within_one():
    ada = {"mbox": "mailto:ada@example.com"}
    rule = ForwardFilter(verbs=(COMPLETED,), activity_prefixes=(PREFIX,), agents=(agent_key(ada),))
    st = statement(ada, "completed", {"id": PREFIX + "lessons/1"})
    assert rule.matches(st)
    assert not rule.matches({**st, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}})
    assert not rule.matches({**st, "object": {"id": "https://lms.example/courses/8/lessons/1"}})
    assert not rule.matches({**st, "actor": {"mbox": "mailto:bob@example.com"}})
    group = {"objectType": "Group", "member": [{"mbox": "mailto:bob@example.com"}, ada]}
    assert rule.matches({**st, "actor": group})
    registration = str(uuid.uuid4())
    by_registration = ForwardFilter(registrations=(registration,))
    assert by_registration.matches({**st, "context": {"registration": registration.upper()}})
    assert not by_registration.matches(st)
    assert ForwardFilter().matches(st)
    with pytest.raises(ValueError):
        agent_key({"objectType": "Group", "member": [ada]})


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"statements":[]}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, "1700000000", body) == "sha256=" + expected


# --- a webhook receiver ------------------------------------------------------------------------------


class Webhook:
    """An HTTP server recording signed JSON deliveries; ``down()`` closes its port, ``up()`` opens
    it again; ``refuse`` makes it answer 400."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.refuse = False
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers.get("X-LRS-Timestamp", "")
                sent = self.headers.get("X-LRS-Signature", "")
                ok = hmac.compare_digest(sent, signature(SECRET, timestamp, body))
                fresh = abs(time.time() - int(timestamp or 0)) < 300
                with hook.lock:
                    if not (ok and fresh):
                        hook.bad_signatures += 1
                    elif not hook.refuse:
                        hook.deliveries.append(json.loads(body))
                self.send_response(400 if hook.refuse else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def statements(self) -> dict[str, dict]:
        with self.lock:
            return {s["id"]: s for d in self.deliveries for s in d["statements"]}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


# --- the stack ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forwarding(
    pg_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PipelineStack, Lrs, Webhook]]:
    patch = pytest.MonkeyPatch()
    for name, value in {"LRS_FORWARD_BACKOFF": "0.2", "LRS_FORWARD_BACKOFF_MAX": "1", "LRS_FORWARD_TIMEOUT": "3",
                        "LRS_FORWARD_MAX_ATTEMPTS": "1000"}.items():  # fmt: skip
        patch.setenv(name, value)
    target = Lrs(pg_dsn, pg_dsn, "fwdtarget")
    target.lrs("credentials", "create", "--name", "importer", "--scope", "import", "--scope", "define",
               "--key", IMPORTER[0], "--secret", IMPORTER[1])  # fmt: skip
    hook = Webhook()
    stack = PipelineStack(pg_dsn, Path(tmp_path_factory.mktemp("forward")), sinks="progress,forward")
    yield stack, target, hook
    stack.close()
    target.close()
    hook.down()
    patch.undo()


def lrs_command(stack: PipelineStack, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
    env.update(LRS_DATABASE_URL=stack.dsn, LRS_LMS_DATABASE_URL=stack.dsn, LRS_LOG_LEVEL="warning")
    done = subprocess.run(
        [sys.executable, "-m", "lrs", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert done.returncode == 0, f"lrs {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def target_has(target: Lrs, ids: set[str]) -> bool:
    return ids <= _present(target, ids)


def _present(target: Lrs, ids: set[str]) -> set[str]:
    from .pipeline_stack import run

    async def existing() -> set[str]:
        from lrs.store import open_stores

        backend = await open_stores(target.store, pool_min=1, pool_max=1)
        try:
            return await backend.statements.existing(sorted(ids))
        finally:
            await backend.close()

    return run(existing())


def cohort(agents: list[dict], n: int) -> list[dict]:
    """Statements alternating what the two rules take: every third completes a course-7 lesson."""
    out = []
    for i in range(n):
        verb = "completed" if i % 3 == 0 else "attempted"
        course = 7 if i % 2 == 0 else 8
        out.append(statement(agents[i % len(agents)], verb, {"id": f"https://lms.example/courses/{course}/lessons/{i}"},
                             id=str(uuid.uuid4())))  # fmt: skip
    return out


def metric(stack: PipelineStack, name: str, rule: str) -> float:
    text = httpx.get(stack.worker_url("/metrics"), timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{rule="{rule}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_every_matching_statement_arrives_through_outages_and_a_killed_worker(forwarding):
    stack, target, hook = forwarding
    lrs_command(stack, "forward", "add", "copy", "--lrs", target.endpoint, "--auth", ":".join(IMPORTER),
                "--activity-prefix", PREFIX, "--batch", "7")  # fmt: skip
    lrs_command(stack, "forward", "add", "hook", "--webhook", hook.url, "--secret", SECRET, "--verb", COMPLETED,
                "--batch", "5")  # fmt: skip
    agents = [unique_agent() for _ in range(5)]

    def to_target(sts: list[dict]) -> set[str]:
        return {s["id"] for s in sts if s["object"]["id"].startswith(PREFIX)}

    def to_hook(sts: list[dict]) -> set[str]:
        return {s["id"] for s in sts if s["verb"]["id"] == COMPLETED}

    first = cohort(agents, 60)
    content = b"forwarded attachment \x00\xff" + uuid.uuid4().bytes
    with_file = statement(agents[0], "completed", {"id": PREFIX + "lessons/file"}, id=str(uuid.uuid4()),
                          attachments=[{"usageType": "http://example.com/usage", "display": {"en-US": "file"},
                                        "contentType": "application/octet-stream", "length": len(content),
                                        "sha2": sha256(content)}])  # fmt: skip
    body = multipart(json_part([with_file]), part(content))
    response = stack.xapi.post("/statements", content=body,
                               headers={"Content-Type": "multipart/mixed; boundary=xapi-test-boundary-7d1c"})  # fmt: skip
    assert response.status_code == 200, response.text
    stack.post(first, batch=20)
    first.append(with_file)
    wait_for(lambda: target_has(target, to_target(first)) and to_hook(first) <= set(hook.statements()),
             "the first statements at both targets")  # fmt: skip
    got = target.xapi.get("/statements", params={"statementId": with_file["id"], "attachments": "true"})
    assert content in got.content  # the attachment data went along

    # both receivers down; statements keep coming; the worker is killed meanwhile
    hook.down()
    target.stop()
    second = cohort(agents, 45)
    stack.post(second, batch=9)
    rules = "SELECT name, failures FROM lms.forward_rules"
    wait_for(lambda: all(r["failures"] >= 2 for r in stack.fetch(rules)), "failed deliveries to both")
    stack.stop_worker(signal.SIGKILL)
    third = cohort(agents, 30)
    stack.post(third, batch=10)
    stack.start_worker()
    wait_for(lambda: all(r["failures"] >= 3 for r in stack.fetch(rules)), "the new worker failing too")
    hook.up()
    target.start(target.server.port)
    everything = first + second + third
    wait_for(lambda: target_has(target, to_target(everything)) and to_hook(everything) <= set(hook.statements()),
             "every matching statement at both targets", timeout=180)  # fmt: skip

    # filters hold, signatures verify, and the statements arrived as stored here (authority too)
    assert set(hook.statements()) == to_hook(everything)
    assert hook.bad_signatures == 0
    assert _present(target, {s["id"] for s in everything}) == to_target(everything)
    sample = next(iter(to_target(everything)))
    here = stack.xapi.get("/statements", params={"statementId": sample}).json()
    there = target.xapi.get("/statements", params={"statementId": sample}).json()
    assert {**there, "stored": None} == {**here, "stored": None}
    assert metric(stack, "lrs_forward_delivered_total", "hook") >= 1
    assert metric(stack, "lrs_forward_failed_total", "hook") >= 1
    wait_for(lambda: metric(stack, "lrs_forward_queued", "copy") == 0, "an empty queue in the gauge")
    assert metric(stack, "lrs_forward_lag_seconds", "copy") == 0
    listing = lrs_command(stack, "forward", "list").stdout
    assert "copy\tlrs" in listing and "hook\twebhook" in listing and "dead 0" in listing

    # a voiding statement follows what it voids, to each target that got it, and only there
    # (the rules' filters would take neither voiding statement)
    only_lrs = sorted(to_target(first) - to_hook(first))[0]
    both = sorted(to_target(first) & to_hook(first))[0]
    (voider,) = stack.xapi.post("/statements", json=voiding(only_lrs, agents[1])).json()
    (voider_both,) = stack.xapi.post("/statements", json=voiding(both, agents[1])).json()
    for voided in (only_lrs, both):
        wait_for(lambda v=voided: target.xapi.get("/statements", params={"voidedStatementId": v}).status_code
                 == 200, "the voiding at the target")  # fmt: skip
    wait_for(lambda: voider_both in hook.statements(), "the voiding of a hook statement at the hook")
    assert voider not in hook.statements()


def test_a_replay_forwards_nothing_again_and_pause_holds_statements_back(forwarding):
    stack, target, hook = forwarding
    stack.wait_synced()
    before = hook.statements()
    sent = "SELECT count(*) AS n FROM lms.forward_queue WHERE state = 'sent'"
    delivered = stack.fetch(sent)[0]["n"]
    stack.replay()  # every statement through the relay again
    (marker,) = stack.xapi.post("/statements", json=statement(unique_agent(), "completed")).json()
    wait_for(lambda: marker in hook.statements(), "a statement stored after the replay")
    assert set(hook.statements()) == {*before, marker}  # delivered in store order: nothing old came again
    wait_for(lambda: stack.fetch(sent)[0]["n"] == delivered + 1, "the marker recorded as delivered")

    lrs_command(stack, "forward", "pause", "hook")
    agents = [unique_agent()]
    held = [statement(agents[0], "completed", id=str(uuid.uuid4())) for _ in range(4)]
    stack.post(held)
    stack.wait_synced()
    pending = "SELECT count(*) AS n FROM lms.forward_queue q JOIN lms.forward_rules r ON r.id = q.rule_id" \
              " WHERE r.name = 'hook' AND q.state = 'pending'"  # fmt: skip
    wait_for(lambda: stack.fetch(pending)[0]["n"] == 4, "the paused rule's queue")
    assert not {s["id"] for s in held} & set(hook.statements())
    lrs_command(stack, "forward", "resume", "hook")
    wait_for(lambda: {s["id"] for s in held} <= set(hook.statements()), "the held statements")


def test_refused_deliveries_become_dead_letters_that_retry_sends_again(forwarding, monkeypatch):
    stack, target, hook = forwarding
    monkeypatch.setenv("LRS_FORWARD_MAX_ATTEMPTS", "2")
    stack.stop_worker()
    stack.start_worker()
    hook.refuse = True
    agents = [unique_agent()]
    refused = [statement(agents[0], "completed", id=str(uuid.uuid4())) for _ in range(3)]
    stack.post(refused)
    dead = "SELECT count(*) AS n FROM lms.forward_queue q JOIN lms.forward_rules r ON r.id = q.rule_id" \
           " WHERE r.name = 'hook' AND q.state = 'dead'"  # fmt: skip
    wait_for(lambda: stack.fetch(dead)[0]["n"] == 3, "dead letters")
    assert metric(stack, "lrs_forward_dead_letters_total", "hook") == 3
    assert "dead 3" in lrs_command(stack, "forward", "list").stdout
    hook.refuse = False
    assert "3 dead letters of hook queued again" in lrs_command(stack, "forward", "retry", "hook").stdout
    wait_for(lambda: {s["id"] for s in refused} <= set(hook.statements()), "the retried statements")
    lrs_command(stack, "forward", "remove", "hook")
    assert "hook\t" not in lrs_command(stack, "forward", "list").stdout
