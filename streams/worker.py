"""Running the pipeline worker (``lrs worker``), and the processes ``lrs up`` supervises."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from lrs.runtime import stop_process

from .broker import EmbeddedBroker, _die_with_parent
from .settings import CassandraSettings, CatalogSettings, ClickHouseSettings, MongoSettings, StreamSettings

log = logging.getLogger(__name__)


def run_worker(store_dsn: str, lms_dsn: str, data_dir: Path, bootstrap: str) -> None:
    """Run the Faust worker in this process until SIGINT / SIGTERM."""
    import faust

    from .app import Pipeline, create_app

    pipeline = Pipeline(
        store_dsn, lms_dsn, data_dir, StreamSettings(), ClickHouseSettings(), CatalogSettings(),
        MongoSettings(), CassandraSettings(),
    )  # fmt: skip
    app = create_app(pipeline, bootstrap)
    worker = faust.Worker(app, loglevel=logging.getLevelName(logging.getLogger().level), quiet=True,
                          redirect_stdouts=False, override_logging=False)  # fmt: skip
    worker.execute_from_commandline()


class Supervisor:
    """Keeps the embedded broker and the worker running next to ``lrs up``.

    When the broker has to be restarted it has lost every message, so the worker is restarted
    with it and replays from the sinks' positions. A worker that exits is restarted after a
    growing pause. Both children die with this process (parent-death signal).
    """

    def __init__(self, data_dir: Path, store_dsn: str, stream: StreamSettings) -> None:
        self.data_dir = data_dir
        self.store_dsn = store_dsn
        self.stream = stream
        self.broker = (
            None if stream.kafka_bootstrap else EmbeddedBroker(stream.kafka_port, data_dir / "broker.log")
        )
        self.worker: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self.restarts = {"broker": 0, "worker": 0}

    @property
    def bootstrap(self) -> str:
        return self.stream.kafka_bootstrap or self.broker.bootstrap

    def start(self) -> None:
        if self.broker is not None:
            self.broker.start()
        self._start_worker()
        self._thread.start()

    def _start_worker(self) -> None:
        env = {**os.environ, "LRS_DATABASE_URL": self.store_dsn, "LRS_KAFKA_BOOTSTRAP": self.bootstrap}
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "lrs", "worker", "--data-dir", str(self.data_dir)],
            env=env, preexec_fn=_die_with_parent,
        )  # fmt: skip
        log.info("pipeline worker started (pid %d)", self.worker.pid)

    def _stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            stop_process(worker, 30)

    def _watch(self) -> None:
        pause = 1.0
        while not self._stop.wait(0.5):
            if self.broker is not None and not self.broker.running():
                log.warning("embedded broker stopped; restarting it and the worker (which will catch up)")
                self._stop_worker()
                self.broker.start()
                self.restarts["broker"] += 1
                self._start_worker()
                continue
            if self.worker is not None and self.worker.poll() is not None:
                log.warning(
                    "pipeline worker exited with %s; restarting in %.0f s", self.worker.returncode, pause
                )
                if self._stop.wait(pause):
                    return
                pause = min(pause * 2, 30.0)
                self.restarts["worker"] += 1
                self._start_worker()
            else:
                pause = 1.0

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._stop_worker()
        if self.broker is not None:
            self.broker.stop()


def wait_ready(port: int, timeout: float = 60.0) -> None:
    """Block until the worker's web server answers (it starts after the sinks are ready)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/watermarks", timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("the pipeline worker did not become ready") from None
            time.sleep(0.1)
