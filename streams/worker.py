"""Running the pipeline worker (``lrs worker``), and the processes ``lrs up`` supervises."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from lrs.runtime import ChildPidFile, OrphanStillSupervised, stop_process
from lrs.store import is_mongodb

from .broker import EmbeddedBroker, _die_with_parent
from .settings import CatalogSettings, StreamSettings

log = logging.getLogger(__name__)


def run_worker(store_url: str, lms_dsn: str, data_dir: Path, bootstrap: str) -> None:
    """Run the Faust worker in this process until SIGINT / SIGTERM (then stop within
    LRS_WORKER_STOP_TIMEOUT seconds). ``store_url``: the statement store (PostgreSQL or MongoDB);
    ``lms_dsn``: the LMS database (see ``lrs.databases``)."""
    from .app import create_app
    from .pipeline import Pipeline
    from .stopping import BoundedWorker

    stream = StreamSettings()
    pipeline = Pipeline(store_url, lms_dsn, data_dir, stream, CatalogSettings())
    app = create_app(pipeline, bootstrap)
    worker = BoundedWorker(
        app, stop_timeout=stream.worker_stop_timeout, on_stopping=pipeline.begin_stopping,
        loglevel=logging.getLevelName(logging.getLogger().level), quiet=True, redirect_stdouts=False,
        override_logging=False,
    )  # fmt: skip
    worker.execute_from_commandline()


EMBEDDED_SESSION_TIMEOUT = 2.0
"""LRS_KAFKA_SESSION_TIMEOUT of the worker ``lrs up`` runs on the embedded broker: tansu completes a
new consumer group's first join after half the session timeout (measured: 3 s at Faust's usual 6,
1 s at 2), and a restarted broker means a new group, so this is time the pipeline stands still."""

ORPHAN_GRACE_SECONDS = 2.0
"""How long an orphan of a killed ``lrs up`` (already told to stop by the parent-death signal)
may take before it is killed: the broker is in-memory and the sinks are crash-safe."""


class Supervisor:
    """Keeps the embedded broker and the worker running next to ``lrs up``.

    When the broker dies it has lost every message and offset: the worker is killed at once (a
    graceful stop would wait for a broker that is gone, and it must not commit its old offsets
    to the new broker), a new broker is started, then a new worker, whose relay re-publishes
    from the sinks' positions. A worker that exits is restarted after a growing pause. Both
    children die with this process (parent-death signal); their PIDs are noted in the data
    directory, so that after a kill -9 of ``lrs up`` the next start-up stops whatever of them
    still runs before it starts new ones.
    """

    def __init__(self, data_dir: Path, store_url: str, lms_dsn: str, stream: StreamSettings) -> None:
        self.data_dir = data_dir
        self.store_url, self.lms_dsn = store_url, lms_dsn
        self.stream = stream
        self.broker = (
            None if stream.kafka_bootstrap else EmbeddedBroker(stream.kafka_port, data_dir / "broker.log")
        )
        self.worker: subprocess.Popen | None = None
        self._pid_files = {name: ChildPidFile(data_dir / f"{name}.pid") for name in ("worker", "broker")}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self.restarts = {"broker": 0, "worker": 0}

    @property
    def bootstrap(self) -> str:
        return self.stream.kafka_bootstrap or self.broker.bootstrap

    def start(self) -> None:
        self._stop_orphans()
        if self.broker is not None:
            self._start_broker()
        self._start_worker()
        self._thread.start()

    def _stop_orphans(self) -> None:
        """Stop the worker and broker a killed ``lrs up`` left running on this data directory
        (they hold the worker's web port and the broker's port until they are gone). Children
        of an ``lrs up`` that is still running are not orphans: that is an error."""
        for name, pid_file in self._pid_files.items():
            try:
                pid = pid_file.stop_orphan(ORPHAN_GRACE_SECONDS)
            except OrphanStillSupervised as exc:
                raise RuntimeError(f"another lrs up runs the pipeline on {self.data_dir}: {exc}") from None
            if pid is not None:
                log.warning("stopped the %s (pid %d) a previous lrs up left running", name, pid)

    def _start_broker(self) -> None:
        self.broker.start()
        self._pid_files["broker"].record(self.broker.process)

    def _start_worker(self) -> None:
        env = {**os.environ, "LRS_LMS_DATABASE_URL": self.lms_dsn, "LRS_KAFKA_BOOTSTRAP": self.bootstrap}
        env["LRS_STORE" if is_mongodb(self.store_url) else "LRS_DATABASE_URL"] = self.store_url
        if self.broker is not None:  # a short session: the new group's first join is quicker on tansu
            env.setdefault("LRS_KAFKA_SESSION_TIMEOUT", str(EMBEDDED_SESSION_TIMEOUT))
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "lrs", "worker", "--data-dir", str(self.data_dir)],
            env=env, preexec_fn=_die_with_parent,
        )  # fmt: skip
        self._pid_files["worker"].record(self.worker)
        log.info("pipeline worker started (pid %d)", self.worker.pid)

    def _stop_worker(self, *, kill: bool = False) -> None:
        """SIGTERM the worker and wait (it bounds its own stop: LRS_WORKER_STOP_TIMEOUT), or
        SIGKILL it when ``kill``."""
        worker, self.worker = self.worker, None
        if worker is None:
            return
        if kill:
            worker.kill()
            worker.wait()
        else:
            stop_process(worker, self.stream.worker_stop_timeout + 5)
        self._pid_files["worker"].forget()

    def _restart_broker(self) -> None:
        log.warning(
            "embedded broker exited with %s; starting a new one and a new worker, which replays"
            " from the sinks' positions",
            self.broker.process.returncode if self.broker.process else None,
        )
        self._stop_worker(kill=True)
        self._start_broker()
        self.restarts["broker"] += 1
        self._start_worker()

    def _watch(self) -> None:
        pause = 1.0
        while not self._stop.wait(0.1):
            if self.broker is not None and not self.broker.running():
                try:
                    self._restart_broker()
                except (OSError, RuntimeError, TimeoutError) as exc:
                    log.error(
                        "could not restart the embedded broker (%s); trying again in %.0f s", exc, pause
                    )
                    if self._stop.wait(pause):
                        return
                    pause = min(pause * 2, 30.0)
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
        if self.broker is not None and self.broker.process is not None:  # ours, not another stack's
            self.broker.stop()
            self._pid_files["broker"].forget()


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
