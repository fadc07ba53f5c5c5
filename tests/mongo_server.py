"""A MongoDB endpoint for tests: ``LRS_TEST_MONGO_URL`` when set, else the SecantusDB stand-in.

No MongoDB server can be installed on the CI machines. SecantusDB (PyPI ``secantusdb``) is a
Python server that speaks the MongoDB wire protocol (with transactions, unique and TTL indexes),
so the real drivers (pymongo/motor) talk to it exactly as to MongoDB. It is a stand-in, not
MongoDB: results against it say "the adapter drives the MongoDB protocol correctly", and the
same tests run against a real server whenever ``LRS_TEST_MONGO_URL`` is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lrs.runtime import stop_process

STAND_IN = "SecantusDB (MongoDB wire-protocol stand-in)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _executable() -> str:
    local = Path(sys.executable).with_name("secantusd-py")
    return str(local) if local.exists() else (shutil.which("secantusd-py") or "secantusd-py")


@contextmanager
def mongo_url(data_dir: Path) -> Iterator[str]:
    """Yield a MongoDB URL; starts (and stops) a SecantusDB server unless LRS_TEST_MONGO_URL is set."""
    if url := os.environ.get("LRS_TEST_MONGO_URL"):
        yield url
        return
    import pymongo

    port = _free_port()
    log = open(data_dir / "secantusd.log", "wb")
    process = subprocess.Popen(
        [_executable(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(data_dir / "db"),
         "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        deadline = time.monotonic() + 60
        while True:  # ready when it answers a ping, not after a guessed delay
            if process.poll() is not None:
                raise RuntimeError(f"secantusd-py exited with {process.returncode}; see {log.name}")
            try:
                with pymongo.MongoClient(url, serverSelectionTimeoutMS=200) as client:
                    client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    raise
        yield url
    finally:
        stop_process(process, 15)
        log.close()
