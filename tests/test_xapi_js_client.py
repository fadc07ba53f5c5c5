"""A content session driven by a widely used JavaScript xAPI client: ``@xapi/xapi`` 3.x, the npm
package, under Node.js (``tests/xapi_js/session.cjs``).

Under Node.js that library sends statements with attachments as a correct multipart/mixed body
declared ``application/octet-stream`` (axios types the body Blob; the boundary is only in the
body's first line), and an attachment given as a "binary" string arrives UTF-8 encoded. Both are
leniencies of this LRS (README, "Leniencies"); this test shows the real library's requests stored
byte for byte, and the library reading what the LRS answers (About, ids, state, queries, voiding).

The library is installed by the test run (``npm install``, pinned) into a cache directory
(``LRS_TEST_CACHE``, default ``~/.cache/lrs-tests``) and reused; Node.js 20 is the machine's.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import ADMIN
from .node import npm_packages
from .helpers import sha256
from .test_attm_mp_attachments import get_with_attachments, raw_parts

PACKAGE = "@xapi/xapi@3.0.3"
SCRIPT = Path(__file__).parent / "xapi_js" / "session.cjs"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The pinned library in the cache directory (installed on first use)."""
    return npm_packages(PACKAGE)


def run_session(node_modules: Path, base_url: str, version: str, **extra: str) -> dict:
    env = {
        **os.environ, "NODE_PATH": str(node_modules), "XAPI_ENDPOINT": base_url + "/xapi/",
        "XAPI_KEY": ADMIN[0], "XAPI_SECRET": ADMIN[1], "XAPI_VERSION": version, **extra,
    }  # fmt: skip
    done = subprocess.run(["node", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the @xapi/xapi session failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_a_content_session_with_attachments_from_the_xapi_js_library(node_modules, base_url, xapi, version):
    run_id = uuid.uuid4().hex
    registration = str(uuid.uuid4())
    certificate = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + uuid.uuid4().bytes
    notes = bytes(range(255, -1, -1)) + uuid.uuid4().bytes
    out = run_session(
        node_modules, base_url, version, RUN_ID=run_id, REGISTRATION=registration,
        ATTACHMENT_HEX=certificate.hex(), NOTES_HEX=notes.hex(), TWO_ID=(two_id := str(uuid.uuid4())),
    )  # fmt: skip

    assert out["about"]["version"] == (["1.0.3"] if version == "1.0.3" else ["1.0.3", "2.0.0"])
    ids = out["ids"]
    assert all(uuid.UUID(i) for i in ids.values()) and len(set(ids.values())) == 6
    assert out["state"] == {"location": "page-3", "visited": [1, 2, 3]}
    # the library's query: the session in order, the voided statement left out, its voiding in
    session = [ids[k] for k in ("launched", "initialized", "completed", "terminated", "voiding")]
    assert out["query"] == session
    assert out["voided"] == ids["progressed"]
    assert out["completed"]["result"]["score"]["scaled"] == 0.9
    assert out["completed"]["attachments"][0]["sha2"] == sha256(certificate)

    # what the LRS stored, read over plain HTTP: both attachments byte for byte
    assert raw_parts(get_with_attachments(xapi, ids["completed"])) == {sha256(certificate): certificate}
    voided = xapi.get("/statements", params={"voidedStatementId": ids["progressed"], "attachments": "true"})
    assert voided.status_code == 200
    assert raw_parts(voided) == {sha256(notes): notes}
    stored = xapi.get("/statements", params={"statementId": ids["completed"]}).json()
    assert stored["context"]["registration"] == registration
    assert stored["actor"]["mbox"] == f"mailto:{run_id}@example.com"

    # two attachments in one request: the library's malformed body is refused, clearly, whole
    assert out["two"]["status"] == 400
    assert "X-Experience-API-Hash" in out["two"]["data"]["error"]["message"]
    assert xapi.get("/statements", params={"statementId": two_id}).status_code == 404
