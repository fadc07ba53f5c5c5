"""The instructor engagement page, on a whole pipeline: simulated learners posted through the
LRS, reports read back through the page's API with the right credentials only, and the page
rendered in a real headless browser (Debian's chromium), with a screenshot kept as an artifact.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from lrs.auth.credentials import new_credential
from lrs.settings import AuthSettings
from lrs.simulate import cohort, post
from lrs.store.postgres import PostgresCredentialStore, create_pool

from .cohort import expected_funnel
from .conftest import ADMIN
from .pipeline_stack import PipelineStack

pytestmark = pytest.mark.timeout(900)
ARTIFACTS = Path(
    os.environ.get("LRS_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts")
)
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
START = TODAY - timedelta(days=21)


def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (the test setup needs root, as in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    assert shutil.which("apt-get") and os.geteuid() == 0, (
        "the page test needs chromium (apt-get install chromium)"
    )
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    return shutil.which("chromium") or "chromium"


@pytest.fixture(scope="module")
def stack(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory):
    built = PipelineStack(pg_dsn, Path(tmp_path_factory.mktemp("page")))
    document, statements = cohort(40, 2, 21, seed=9, start=START, first_student=7001, first_course=70)
    asyncio.run(post(built.base, ADMIN, document, statements))
    built.wait_synced()
    built.document, built.statements = document, statements
    yield built
    built.close()


def credential(stack: PipelineStack, scopes: list[str]) -> tuple[str, str]:
    made, secret = new_credential("page test", scopes, AuthSettings().authority_homepage)

    async def save() -> None:
        pool = await create_pool(stack.dsn, min_size=1, max_size=1)
        try:
            await PostgresCredentialStore(pool).save(made)
        finally:
            await pool.close()

    asyncio.run(save())
    return made.key, secret


def report(stack: PipelineStack, auth, course: int, **params) -> httpx.Response:
    return httpx.get(
        f"{stack.base}/analytics/api/courses/{course}/report", params=params, auth=auth, timeout=60
    )


def test_reports_match_the_statements_and_only_allowed_credentials_see_them(stack: PipelineStack):
    course = stack.document["courses"][0]["id"]
    since, until = START.date().isoformat(), TODAY.date().isoformat()
    answer = report(stack, ADMIN, course, since=since, until=until)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["funnel"] == expected_funnel(stack.document, stack.statements)[course]
    mine = [
        s for s in stack.statements if f"/courses/{course}" in str(s["object"]["id"]) + str(s.get("context"))
    ]
    per_day = Counter(s["timestamp"][:10] for s in mine)
    assert {r["bucket"]: 0 for r in body["engagement"]}.keys() <= per_day.keys()
    assert sum(r["events"] for r in body["engagement"]) == len(mine)
    assert body["video"] and all(r["views"] > 0 for r in body["video"])
    by_hour = report(stack, ADMIN, course, since=since, until=until, grain="hour").json()
    assert sum(r["events"] for r in by_hour["engagement"]) == len(mine)
    assert {int(r["bucket"]) for r in by_hour["engagement"]} <= set(range(24))

    learner = credential(stack, ["statements/write", "statements/read/mine"])
    for path in ("/analytics/", "/analytics/api/courses", f"/analytics/api/courses/{course}/report"):
        refused = httpx.get(stack.base + path, auth=learner, timeout=30)
        assert refused.status_code == 403 and "may not read" in refused.text, path
        assert httpx.get(stack.base + path, timeout=30).status_code == 401

    instructor = credential(stack, [f"analytics/course/{course}"])
    other = stack.document["courses"][1]["id"]
    assert [c["id"] for c in httpx.get(stack.base + "/analytics/api/courses", auth=instructor).json()] == [
        course
    ]
    assert report(stack, instructor, course).status_code == 200
    assert report(stack, instructor, other).status_code == 403

    for params, problem in (({"since": "yesterday"}, "since"), ({"grain": "minute"}, "grain"),
                            ({"since": until, "until": since}, "after")):  # fmt: skip
        bad = report(stack, ADMIN, course, **params)
        assert bad.status_code == 400 and problem in bad.json()["error"]["message"], bad.text


def test_the_page_renders_the_heatmap_in_a_headless_browser(stack: PipelineStack, tmp_path: Path):
    browser = chromium()
    course = stack.document["courses"][0]["id"]
    key, secret = credential(stack, [f"analytics/course/{course}"])
    url = (f"http://{key}:{secret}@127.0.0.1:{stack.server.port}/analytics/"
           f"?course={course}&since={START.date()}&until={TODAY.date()}")  # fmt: skip
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path}",
             "--virtual-time-budget=15000", "--window-size=1400,1100"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    shown = dom.stdout[dom.stdout.find('<p id="status"') : dom.stdout.find("<script>")]
    assert 'data-loaded="true"' in dom.stdout, shown[:3000]
    assert 'id="engagement-heatmap"' in dom.stdout
    assert dom.stdout.count("data-events=") > 10, "the heatmap has cells with events"
    assert '<p id="status" role="alert"></p>' in dom.stdout, shown[:3000]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "instructor-page.png"
    shot.unlink(missing_ok=True)
    taken = subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, taken.stderr[-2000:]
