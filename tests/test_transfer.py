"""``lrs export`` and ``lrs import`` between two real LRSs (each its own database, served over
HTTP; the commands run as the ``lrs`` program), on both stores.

Export → import into a second LRS: every GET query answers the same (ids, order, content,
attachments, voided statements, documents), a re-import stores nothing, an id with other content
is reported and kept; an export interrupted by kill -9 resumes into one complete file; an import
from a running LRS over HTTP, killed midway, resumes and completes.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from .conftest import ADMIN, statement
from .transfer_data import IMPORTER, Dataset, Lrs, assert_same_answers


@pytest.fixture(scope="module")
def source(store_url: str, pg_dsn: str) -> Iterator[tuple[Lrs, Dataset]]:
    lrs = Lrs(store_url, pg_dsn, "src")
    data = Dataset(400)
    data.populate(lrs)
    yield lrs, data
    lrs.close()


@pytest.fixture()
def target(store_url: str, pg_dsn: str) -> Iterator[Lrs]:
    lrs = Lrs(store_url, pg_dsn, "dst")
    lrs.lrs("credentials", "create", "--name", "importer", "--scope", "import", "--scope", "define",
            "--key", IMPORTER[0], "--secret", IMPORTER[1])  # fmt: skip
    yield lrs
    lrs.close()


def lines_of(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return [orjson.loads(line) for line in f]


def summary(done) -> str:
    return done.stdout.strip().splitlines()[-1]


def test_export_then_import_answers_every_query_the_same_and_reimport_stores_nothing(
    source, target, tmp_path
):
    lrs, data = source
    out = tmp_path / "all.ndjson.gz"
    done = lrs.lrs("export", str(out), "--documents", "--page-size", "37")
    assert not (tmp_path / "all.ndjson.gz.export-state").exists()
    records = lines_of(out)
    assert records[0]["lrs-export"] == 1 and records[0]["documents"] is True
    statements = [r for r in records if "statement" in r]
    assert len(statements) == lrs.count() and f"exported {len(statements):,}" in done.stdout
    assert len({r["statement"]["id"] for r in statements}) == len(statements)
    assert {r["statement"]["id"] for r in statements if r.get("voided")} == set(data.voided)
    with_data = {r["statement"]["id"] for r in statements if r.get("attachments")}
    assert with_data == set(data.with_attachments)  # the fileUrl attachments carry no data
    assert len([r for r in records if "document" in r]) == len(data.documents)

    done = target.lrs("import", str(out), "--as", IMPORTER[0], "--keep-authority", "--batch", "50")
    assert f"read {len(statements):,} statements" in summary(done)
    assert f"{len(statements):,} new, 0 already here, 0 conflicts" in summary(done)
    assert target.count() == lrs.count()
    assert assert_same_answers(lrs, target, data) > 100

    again = target.lrs("import", str(out), "--as", IMPORTER[0], "--keep-authority")
    assert f"0 new, {len(statements):,} already here, 0 conflicts" in summary(again)
    assert target.count() == lrs.count()


def test_an_id_with_other_content_is_reported_and_never_overwritten(source, target, tmp_path):
    lrs, data = source
    out = tmp_path / "plain.ndjson"
    lrs.lrs("export", str(out), "--activity", data.activities[0]["id"])
    records = lines_of(out)
    changed = records[3]["statement"]
    target.xapi.store({**changed, "verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}})
    done = target.lrs("import", str(out), "--as", IMPORTER[0], "--keep-authority", check=False)
    assert done.returncode == 1
    assert f"conflict {changed['id']}" in done.stderr
    assert "1 conflicts (kept as they were)" in summary(done)
    kept = target.xapi.get("/statements", params={"statementId": changed["id"]}).json()
    assert kept["verb"]["id"] == "http://adlnet.gov/expapi/verbs/failed"
    assert target.count() == len(records) - 1  # every other statement was stored


def test_without_the_import_scope_statements_get_the_importing_credential_authority(source, target, tmp_path):
    lrs, data = source
    out = tmp_path / "agent.ndjson"
    lrs.lrs("export", str(out), "--agent", json.dumps(data.agents[1]), "--no-voided")
    refused = target.lrs("import", str(out), "--as", ADMIN[0], "--keep-authority", check=False)
    assert refused.returncode != 0 and "scope import" in refused.stderr
    assert target.count() == 0
    target.lrs("import", str(out), "--as", ADMIN[0])
    records = [r["statement"] for r in lines_of(out) if "statement" in r]
    assert records and not any(r.get("voided") for r in lines_of(out))
    for sent in records:
        got = target.xapi.get("/statements", params={"statementId": sent["id"]}).json()
        assert got["authority"]["account"]["name"] == ADMIN[0]
        assert {**got, "authority": None, "stored": None} == {**sent, "authority": None, "stored": None}


def test_a_file_of_bare_statements_is_imported(target, tmp_path):
    sent = [statement(id=str(uuid.uuid4())) for _ in range(30)]
    path = tmp_path / "bare.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(s) for s in sent) + b"\n")
    done = target.lrs("import", str(path), "--as", ADMIN[0])
    assert "30 new" in summary(done)
    assert target.xapi.get("/statements", params={"statementId": sent[7]["id"]}).status_code == 200


def _wait_for(condition, what: str, process=None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process ended first (status {process.returncode})")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_an_export_killed_midway_resumes_into_one_complete_file(store_url, pg_dsn, tmp_path):
    lrs = Lrs(store_url, pg_dsn, "big")
    try:
        for start in range(0, 3000, 500):
            lrs.xapi.store(*[statement(id=str(uuid.uuid4())) for _ in range(500)])
        out = tmp_path / "resumed.ndjson.gz"
        state = tmp_path / "resumed.ndjson.gz.export-state"
        args = ("export", str(out), "--page-size", "10", "--checkpoint-seconds", "0")

        def exported() -> int:
            try:
                return orjson.loads(state.read_bytes())["count"]
            except (FileNotFoundError, orjson.JSONDecodeError):
                return 0

        process = lrs.spawn(*args, log=tmp_path / "export.log")
        _wait_for(lambda: exported() >= 200, "a checkpoint past 200 statements", process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        interrupted_at = exported()
        assert 200 <= interrupted_at < 3000 and state.exists()
        done = lrs.lrs(*args)
        assert "exported 3,000 statements" in done.stdout
        ids = [r["statement"]["id"] for r in lines_of(out) if "statement" in r]
        assert len(ids) == len(set(ids)) == 3000
        assert not state.exists()
        with pytest.raises(AssertionError, match="exists"):
            lrs.lrs(*args)  # a finished export is not overwritten without --overwrite
    finally:
        lrs.close()


def test_an_import_from_a_running_lrs_killed_midway_resumes_and_completes(source, target, tmp_path):
    lrs, data = source
    state = tmp_path / "remote.state"
    args = ("import", "--from", lrs.endpoint, "--auth", ":".join(ADMIN), "--as", IMPORTER[0],
            "--keep-authority", "--state", str(state), "--batch", "10", "--page-size", "25")  # fmt: skip
    process = target.spawn(*args, log=tmp_path / "import.log")
    _wait_for(lambda: state.exists() and target.count() >= 40, "a first stored batches", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = target.count()
    assert 40 <= partial < lrs.count()
    done = target.lrs(*args)
    assert "0 conflicts" in summary(done) and not state.exists()
    assert target.count() == lrs.count()
    assert assert_same_answers(lrs, target, data, documents=False) > 100  # xAPI cannot list documents
    again = target.lrs(*args)
    assert " 0 new," in summary(again) and target.count() == lrs.count()


def test_a_file_import_killed_midway_resumes_where_it_stopped(source, target, tmp_path):
    """A gzip export (the resumed import seeks through its decompressed stream), imported in
    small batches, killed after a few, run again: it goes on from its state file."""
    lrs, data = source
    out = tmp_path / "resume.ndjson.gz"
    lrs.lrs("export", str(out))
    total = lrs.count()
    state = tmp_path / "resume.ndjson.gz.import-state"
    args = ("import", str(out), "--as", IMPORTER[0], "--keep-authority", "--batch", "10")
    process = target.spawn(*args, log=tmp_path / "file-import.log")
    _wait_for(lambda: state.exists() and target.count() >= 40, "a few stored batches", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = target.count()
    assert 40 <= partial < total
    done = target.lrs(*args)
    read = int(summary(done).split()[1].replace(",", ""))
    assert read < total  # it did not start over
    assert read >= total - partial  # and skipped nothing that was not stored
    assert target.count() == total and not state.exists()
    assert assert_same_answers(lrs, target, data, documents=False) > 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("export", "{out}", "--agent", '{"name": "no identifier"}'), "an agent needs an identifier"),
        (("export", "{out}", "--agent", "[1]"), "an agent is a JSON object"),
        (("export", "{out}", "--since", "yesterday"), "not an ISO 8601 timestamp"),
        (("import",), "give an export FILE or --from URL"),
        (("import", "{bare}"), "give --as KEY"),
        (("import", "--from", "http://127.0.0.1:9/xapi", "--as", "k"), "--from needs --auth KEY:SECRET"),
        (
            ("import", "{bare}", "--as", "k", "--verb", "http://adlnet.gov/expapi/verbs/completed"),
            "filters apply to --from",
        ),
        (("forward", "add", "x", "--webhook", "ftp://example.com/hook"), "http(s) URL"),
        (("forward", "add", "x"), "give a target"),
        (("forward", "add", "x", "--lrs", "http://127.0.0.1:9/xapi"), "--lrs needs --auth"),
    ],
)
def test_command_lines_that_cannot_work_are_refused_with_a_message(tmp_path, args, message):
    """Refused before any database is opened (no store is configured here)."""
    bare = tmp_path / "bare.ndjson"
    bare.write_bytes(orjson.dumps(statement()) + b"\n")
    args = tuple(
        str(tmp_path / "out.ndjson") if a == "{out}" else str(bare) if a == "{bare}" else a for a in args
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
    done = subprocess.run([sys.executable, "-m", "lrs", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.ndjson").exists() and not (tmp_path / ".lrs-data").exists()
