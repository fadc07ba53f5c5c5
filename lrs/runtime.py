"""Process-wide tuning shared by the LRS server and the pipeline worker, and stopping children
(also those a crashed supervisor left behind)."""

from __future__ import annotations

import gc
import os
import subprocess
import time
from pathlib import Path

import orjson
import psutil


def tune_garbage_collection() -> None:
    """Collect cycles less often, and never walk what start-up created.

    Statements are acyclic JSON that reference counting frees, yet every batch allocates tens of
    thousands of objects; with CPython's default thresholds that triggers collections which walk
    the long-lived heap (caches, pools, modules, Faust's machinery) again and again. Profiling
    showed them costing a fifth of ingest time in the server and more in the worker. Call this
    once start-up is done: what is alive then is frozen out of collection altogether.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM a child we started and wait for it; SIGKILL it when it overstays ``timeout``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def live_process(pid: int) -> psutil.Process | None:
    """The process with this PID if it runs; ``None`` when there is none or only its zombie
    (a process killed but not yet reaped by its parent: ``kill(pid, 0)`` still succeeds on it)."""
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process
    except psutil.NoSuchProcess:
        return None


class OrphanStillSupervised(RuntimeError):
    """The recorded child runs, and the process that started it still does too."""


class ChildPidFile:
    """Where a supervisor notes a child it started (PID, command line, its own PID), so that the
    next start-up after a crash of the supervisor finds the child if it still runs and stops it.

    A PID names the orphan only while a live process with that PID has exactly the recorded
    command line (after a reboot or PID reuse the file is stale and simply replaced) and is no
    longer the child of the recorded supervisor (orphans are re-parented when it dies).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, process: subprocess.Popen) -> None:
        argv = process.args if isinstance(process.args, list) else [process.args]
        noted = {"pid": process.pid, "argv": [str(a) for a in argv], "parent": os.getpid()}
        self.path.write_bytes(orjson.dumps(noted))

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)

    def orphan(self) -> psutil.Process | None:
        """The recorded child, if it still runs with the command line it was started with and its
        supervisor is gone; raises ``OrphanStillSupervised`` when the supervisor is alive."""
        try:
            noted = orjson.loads(self.path.read_bytes())
            process = live_process(int(noted["pid"]))
            if process is None or process.cmdline() != noted["argv"]:
                return None
            if process.ppid() == noted["parent"]:
                raise OrphanStillSupervised(
                    f"pid {process.pid} ({self.path.stem}) is still supervised by pid {noted['parent']}"
                )
            return process
        except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def stop_orphan(self, grace: float) -> int | None:
        """Stop the recorded child if it is an orphan (SIGTERM, SIGKILL after ``grace`` seconds)
        and wait until it is gone; returns its PID, or ``None`` when there was none."""
        process = self.orphan()
        if process is not None:
            signal_process(process, "terminate")
            if not wait_gone(process.pid, grace):
                signal_process(process, "kill")
                wait_gone(process.pid, 10.0)
        self.forget()
        return process.pid if process is not None else None


def signal_process(process: psutil.Process, how: str) -> None:
    """``process.terminate()`` or ``.kill()``; a process that is already gone is fine."""
    try:
        getattr(process, how)()
    except psutil.NoSuchProcess:
        pass


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until no live process has this PID (a zombie counts as gone: psutil's own wait does
    not return for the zombie of a process that is not our child); whether it went in time."""
    deadline = time.monotonic() + timeout
    while live_process(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class MissingEngine(RuntimeError):
    """An embedded engine was needed but its package is not installed."""


def embedded_engine(module: str, what: str, instead: str, *, load: bool = True):
    """The package of an embedded engine (the ``embedded`` extra), imported (or, without ``load``,
    only found: importing chdb maps 250 MB of engine code); when it is not installed, an error
    that says what to do: install the extra, or set ``instead`` to use a server."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingEngine(
            f"{what} needs the embedded engines: pip install 'lrs-analytics[embedded]' (or set {instead})"
        )
    return importlib.import_module(module) if load else None
