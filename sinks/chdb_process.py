"""The embedded ClickHouse engine (chdb) in a process of its own.

chdb maps about 250 MB of engine code and keeps its own allocations; run inside the worker they
made the worker's memory grow with the volume it processed. Here a child process holds the chdb
connection and the worker talks to it over a pipe, with the same few calls the ClickHouse sink
makes of a clickhouse-connect client (``query``, ``command``, ``raw_insert``, ``close``), so the
worker stays small and the engine's CPU and memory show as a process of their own. The child
dies with the worker (parent-death signal); if it dies alone, the next call starts a new one
(the sink retries the batch: every write is idempotent).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(slots=True)
class Result:
    """What the sink reads of a query's answer."""

    result_rows: list[tuple]
    column_names: tuple[str, ...]


class EngineGone(ConnectionError):
    """The ClickHouse process exited (it is restarted at the next call)."""


class ChdbProcess:
    """A clickhouse-connect-like client whose chdb runs in a child process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._process: subprocess.Popen | None = None
        self._pipe: Connection | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _start(self) -> None:
        mine, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sinks.chdb_process", str(self.path), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        self._pipe = Connection(mine.detach())
        ok, value = self._pipe.recv()  # the engine is open (or why not)
        if not ok:
            raise value

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if not self._alive():
            if self._process is not None:
                log.warning(
                    "the ClickHouse process exited with %s; starting a new one", self._process.returncode
                )
            self._start()
        try:
            self._pipe.send((method, args, kwargs))
            ok, value = self._pipe.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
            self._process = None
            raise EngineGone(f"the ClickHouse process exited during {method}: {exc!r}") from None
        if not ok:
            raise value
        return value

    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Result:
        return self._call("query", sql, parameters=parameters, settings=settings)

    def command(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        return self._call("command", sql, parameters=parameters, settings=settings)

    def raw_insert(self, table: str, column_names: list[str], insert_block: bytes, **kwargs: Any) -> Any:
        return self._call("raw_insert", table, column_names, insert_block, **kwargs)

    def close(self) -> None:
        if not self._alive():
            return
        try:
            self._call("close")
        except EngineGone:
            pass
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def serve(pipe: Connection, path: str) -> None:
    """The child: open chdb at ``path`` and answer calls until ``close`` or the parent is gone."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    import clickhouse_connect

    try:
        client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    except Exception as exc:  # noqa: BLE001 - told to the parent, which raises it
        pipe.send((False, RuntimeError(f"cannot open chdb at {path}: {exc}")))
        return
    pipe.send((True, None))
    while True:
        try:
            method, args, kwargs = pipe.recv()
        except EOFError:
            break
        try:
            if method == "query":
                answer = client.query(*args, **kwargs)
                value: Any = Result(answer.result_rows, tuple(answer.column_names))
            elif method == "close":
                client.close()
                pipe.send((True, None))
                break
            else:
                value = getattr(client, method)(*args, **kwargs)
            pipe.send((True, value))
        except Exception as exc:  # noqa: BLE001 - the parent raises it (as text: it may not pickle)
            pipe.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


if __name__ == "__main__":  # python -m sinks.chdb_process PATH FD
    from sinks.chdb_process import serve as serve_here  # pickles name sinks.chdb_process.Result

    serve_here(Connection(int(sys.argv[2])), sys.argv[1])
    os._exit(0)
