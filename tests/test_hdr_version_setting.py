"""The supported xAPI versions as a setting (``LRS_XAPI_VERSIONS``; HDR-1, HDR-2, HDR-4, V2-1, ABT-2).

Each ADL conformance suite checks what a request without a version header is answered with: the
1.0.3 suite wants a 1.0.x version header, the 2.0.0 suite a 2.0.0 one. One LRS answering both
cannot pass both, so the versions an LRS speaks are a setting and each suite passes against the
LRS set to its version. These tests run real servers with each setting, on both stores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from lrs.http.app import create_app
from lrs.settings import AuthSettings, ServerSettings, StoreSettings
from lrs.store import is_mongodb

from .conftest import ADMIN, RunningServer, Xapi, free_port, statement
from .helpers import error_message

VERSION = "X-Experience-API-Version"


@pytest.fixture(scope="module", params=["1.0.3", "2.0.0", "1.0.3,2.0.0"])
def versioned(request: pytest.FixtureRequest, store_url: str) -> Iterator[tuple[str, str]]:
    """A server speaking the ``LRS_XAPI_VERSIONS`` of the parameter: (setting, base URL)."""
    lms = request.getfixturevalue("pg_dsn") if is_mongodb(store_url) else None
    app = create_app(
        store_url,
        ServerSettings(xapi_versions=request.param),
        StoreSettings(lms_database_url=lms),
        AuthSettings(admin_key=ADMIN[0], admin_secret=ADMIN[1]),
    )
    with RunningServer(app, free_port()) as running:
        yield request.param, f"http://127.0.0.1:{running.port}"


def client(base: str, version: str | None, auth: tuple[str, str] | None = ADMIN) -> Xapi:
    return Xapi(base, version, auth)


def test_about_lists_the_enabled_versions(versioned):
    setting, base = versioned
    enabled = setting.split(",")
    with client(base, None, None) as anonymous:
        response = anonymous.get("/about")
    assert response.status_code == 200
    assert response.json()["version"] == enabled
    assert response.headers[VERSION] == enabled[0]


@pytest.mark.parametrize("sent", ["1.0.3", "2.0.0", "0.9", "1.1.0"])
def test_about_never_refuses_a_version_header(versioned, sent):
    """xAPI §2.8: the About resource does not reject requests for their version header; it lists
    the enabled versions (only 1.0.3 to a 1.0.x client when 1.0.3 is enabled)."""
    setting, base = versioned
    enabled = setting.split(",")
    with client(base, sent, None) as about_client:
        response = about_client.get("/about")
    assert response.status_code == 200
    expected = ["1.0.3"] if sent == "1.0.3" and "1.0.3" in enabled else enabled
    assert response.json()["version"] == expected
    assert response.headers[VERSION] == (sent if sent in enabled else enabled[0])


@pytest.mark.parametrize(
    ("method", "params"),
    [("GET", {}), ("GET", {"statementId": str(uuid.uuid4())}), ("POST", None), ("PUT", "id")],
)
def test_a_request_without_version_header_is_400_answered_in_the_default_version(versioned, method, params):
    """The three 2.0.0 suite tests (and their 1.0.3 twins): no version header → 400, and the
    answer's version header is 1.0.3 when 1.0.3 is enabled (the 1.0.3 suite), else 2.0.0."""
    setting, base = versioned
    expected = "1.0.3" if "1.0.3" in setting else "2.0.0"
    if params == "id":
        params = {"statementId": str(uuid.uuid4())}
    with client(base, None) as no_version:
        body = statement() if method in ("POST", "PUT") else None
        response = no_version.request(method, "/statements", params=params, json=body)
    assert response.status_code == 400
    assert response.headers[VERSION] == expected
    assert VERSION in error_message(response)


@pytest.mark.parametrize("sent", ["1.0.3", "1.0.2", "1.0.0", "1.0", "2.0.0", "2.0", "2.0.1"])
def test_enabled_versions_are_served_and_disabled_ones_refused_naming_the_enabled(versioned, sent):
    setting, base = versioned
    major = "1.0.3" if sent.startswith("1.") else "2.0.0"
    st = statement(id=str(uuid.uuid4()))
    with client(base, sent) as sender:
        posted = sender.post_statements(st)
        if major in setting:
            assert posted.status_code == 200, posted.text
            got = sender.get("/statements", params={"statementId": st["id"]})
            assert got.status_code == 200
            assert got.headers[VERSION] == major  # the latest patch of the client's version
        else:
            message = error_message(posted, 400)
            assert sent in message and "not enabled" in message
            assert all(v in message for v in setting.split(","))
            assert posted.headers[VERSION] == setting.split(",")[0]
    if major not in setting:
        other = "2.0.0" if major == "1.0.3" else "1.0.3"
        with client(base, other) as reader:
            assert reader.get("/statements", params={"statementId": st["id"]}).status_code == 404


@pytest.mark.parametrize("sent", ["0.95", "1.1.0", "3.0.0", "banana"])
def test_unknown_versions_are_refused_whatever_the_setting(versioned, sent):
    setting, base = versioned
    with client(base, sent) as sender:
        response = sender.get("/statements", params={"limit": 1})
    message = error_message(response, 400)
    assert all(v in message for v in setting.split(","))
    assert response.headers[VERSION] == setting.split(",")[0]


def test_content_sending_1_0_2_works_end_to_end(versioned):
    """Older 1.0.x content (1.0.2 headers) stores, reads and queries like 1.0.3 content."""
    setting, base = versioned
    st = statement(id=str(uuid.uuid4()), version="1.0.2")
    with client(base, "1.0.2") as old:
        put = old.put("/statements", params={"statementId": st["id"]}, json=st)
        if "1.0.3" not in setting:  # 1.0.x disabled: refused, and nothing stored
            assert "not enabled" in error_message(put, 400)
            with client(base, "2.0.0") as reader:
                assert reader.get("/statements", params={"statementId": st["id"]}).status_code == 404
            return
        assert put.status_code == 204, put.text
        found = old.find(activity=st["object"]["id"])
    assert [s["id"] for s in found] == [st["id"]]
    assert found[0]["version"] == "1.0.2"


@pytest.mark.parametrize("value", ["", "1.1.0", "1.0.3,3.0", "latest"])
def test_the_setting_refuses_what_it_cannot_speak(value):
    with pytest.raises(ValidationError, match="LRS_XAPI_VERSIONS"):
        ServerSettings(xapi_versions=value)


def test_lrs_up_names_a_bad_setting_without_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
    env.update(LRS_XAPI_VERSIONS="1.0.3,1.1.0", LRS_PIPELINE="false")
    done = subprocess.run([sys.executable, "-m", "lrs", "up", "--port", str(free_port()), "--data-dir",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert "LRS_XAPI_VERSIONS: unknown xAPI version '1.1.0'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "postgres").exists()  # refused before anything started
