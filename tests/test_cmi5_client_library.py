"""AU sessions driven by a cmi5 client library from npm (``@xapi/cmi5``, ``tests/cmi5_js/session.cjs``)
through this LRS's launch and fetch URLs: every step the library takes is accepted, the LMS's
statements come in cmi5's order, and the library's own misuse is refused as the spec says.
Expected values are written by hand from ``tests/data/cmi5/two_blocks.xml``."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from .node import npm_packages
from .test_cmi5_launch import au_id, launch

SCRIPT = Path(__file__).parent / "cmi5_js" / "session.cjs"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    # the library is built for browsers (its bundled HTTP client speaks XMLHttpRequest): under
    # Node.js, xhr2 provides XMLHttpRequest
    return npm_packages("@xapi/cmi5@1.4.0", "xhr2@0.2.1")


def run_au(node_modules: Path, launch_url: str, steps: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "NODE_MODULES": str(node_modules),
        "LAUNCH_URL": launch_url,
        "STEPS": steps,
        **env,
    }
    return subprocess.run(["node", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=120)


def test_sessions_from_the_library_satisfy_blocks_and_course_in_cmi5_order(
    node_modules, base_url, lms, course, xapi
):
    student = 2_000_000 + uuid.uuid4().int % 10**6
    first = launch(lms, course, au_id(course, "a1"), student)
    done = run_au(node_modules, first["url"], "progress,pass,complete,terminate", SCORE="0.85")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["steps"] == ["initialize", "progress", "pass", "complete", "terminate"]
    assert seen["launchData"]["moveOn"] == "CompletedAndPassed" and seen["launchData"]["masteryScore"] == 0.8

    registration = first["registration"]
    second = launch(lms, course, au_id(course, "a2"), student)
    assert second["registration"] == registration
    done = run_au(node_modules, second["url"], "complete,terminate")
    assert done.returncode == 0, done.stderr

    ordered = xapi.find(registration=registration, ascending="true")
    verbs = [(s["verb"]["id"].rsplit("/", 1)[1], s["object"]["id"]) for s in ordered]
    a1, a2 = first["activityId"], second["activityId"]
    b1, b2 = course["blocks"][f"{course['id']}/blocks/b1"], course["blocks"][f"{course['id']}/blocks/b2"]
    assert verbs == [
        ("launched", a1), ("initialized", a1), ("progressed", a1), ("passed", a1), ("completed", a1), ("terminated", a1),
        ("launched", a2), ("initialized", a2), ("completed", a2),
        ("satisfied", b2), ("satisfied", b1), ("satisfied", course["activityId"]), ("terminated", a2),
    ]  # fmt: skip
    sessions = {
        s["context"]["extensions"]["https://w3id.org/xapi/cmi5/context/extensions/sessionid"] for s in ordered
    }
    assert sessions == {first["sessionId"], second["sessionId"]}


def test_a_launch_serves_one_library_session_and_a_second_run_gets_no_token(node_modules, lms, course, xapi):
    student = 3_000_000 + uuid.uuid4().int % 10**6
    launched = launch(lms, course, au_id(course, "a2"), student)
    first = run_au(node_modules, launched["url"], "progress")
    assert first.returncode == 0, first.stderr
    again = run_au(node_modules, launched["url"], "")  # the fetch URL was used: no token the second time
    assert again.returncode == 1
    # the fetch URL answered the error document, so the library had no token: the LRS refuses it
    assert json.loads(again.stderr.strip().splitlines()[-1])["answer"]["status"] == 401, again.stderr
    verbs = sorted(
        s["verb"]["id"].rsplit("/", 1)[1] for s in xapi.find(registration=launched["registration"])
    )
    assert verbs == ["initialized", "launched", "progressed"]
