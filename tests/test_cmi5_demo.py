"""The demo course (``examples/cmi5``): imported as ``lrs cmi5 import`` packages a directory,
each AU launched and opened in headless Chromium (Debian's), which runs the page's own small cmi5
client to the end of its session; the LRS then holds the session and the LMS's satisfied
statements for the block and the course."""

from __future__ import annotations

import io
import subprocess
import uuid
import zipfile
from pathlib import Path

from .test_cmi5_launch import ADL, SATISFIED, launch
from .test_instructor_page import chromium

DEMO = Path(__file__).parents[1] / "examples" / "cmi5"


def _package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("cmi5.xml", "au.html"):
            archive.write(DEMO / name, name)
    return buffer.getvalue()


def _open(url: str, profile: Path) -> str:
    browser = chromium()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
             "--virtual-time-budget=20000", "--dump-dom", url + "&demo=auto"]  # fmt: skip
    return subprocess.run(flags, capture_output=True, text=True, timeout=120).stdout


def test_the_demo_course_runs_to_completion_in_a_browser(lms, xapi, tmp_path):
    imported = lms.post("/cmi5/courses", content=_package(), headers={"Content-Type": "application/zip"})
    assert imported.status_code == 200, imported.text
    course = {"course_id": imported.json()["course_id"]}
    assert imported.json()["files"] == 1  # au.html (cmi5.xml is the structure)
    student = 5_000_000 + uuid.uuid4().int % 10**6
    for au in ("https://lrs.example/cmi5/demo/welcome", "https://lrs.example/cmi5/demo/check"):
        launched = launch(lms, course, au, student)
        assert "/cmi5/content/" in launched["url"]
        dom = _open(launched["url"], tmp_path / au.rsplit("/", 1)[1])
        assert '<p id="status">done</p>' in dom, dom[-2000:]
    verbs = [s["verb"]["id"] for s in xapi.find(registration=launched["registration"], ascending="true")]
    assert verbs == [
        ADL + "launched", ADL + "initialized", ADL + "completed", ADL + "terminated",
        ADL + "launched", ADL + "initialized", ADL + "passed", ADL + "completed", SATISFIED, SATISFIED,
        ADL + "terminated",
    ]  # fmt: skip
