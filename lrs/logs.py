"""Logging that stays readable when something fails over and over.

While a broker or database is unreachable, clients log the same error many times a second
(aiokafka logged ~5,000 lines in a 30 s broker outage). ``RepeatFilter`` lets the first of a
run of identical records through (same logger, level and message, such as ``Unable connect to
node with id 0: [Errno 111] Connect call failed``) and counts the others; once per window it
writes one line saying how many there were. Only WARNING and above from libraries are
collapsed (this project's own messages are rate-limited where they are logged, and each one
matters), and records that differ in any way are never taken for repeats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Key = tuple[str, int, str]
OWN_LOGGERS = frozenset({"lrs", "streams", "sinks", "benchmarks"})


@dataclass(slots=True)
class _Run:
    since: float
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """A handler filter collapsing identical records to one line (and a count) per ``window`` seconds."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._runs: dict[Key, _Run] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno < logging.WARNING
            or record.name.partition(".")[0] in OWN_LOGGERS
            or getattr(record, "repeat_summary", False)
        ):
            return True
        message = _message(record)
        key = (record.name, record.levelno, message)
        now = self._clock()
        with self._lock:
            run = self._runs.get(key)
            if run is not None and now - run.since < self.window:
                run.suppressed += 1
                self._schedule_flush()
                return False
            self._runs[key] = _Run(now)
            self._schedule_flush()  # which also forgets it once its window has passed
        if run is not None and run.suppressed:  # the previous window's count, before this record
            self._summarize(key, run, now)
        return True

    def flush(self) -> None:
        """Write the count of every run whose window has passed, and forget those runs (the timer
        calls this)."""
        now = self._clock()
        with self._lock:
            self._timer = None
            done = {k: r for k, r in self._runs.items() if now - r.since >= self.window}
            for key in done:
                del self._runs[key]
            if self._runs:
                self._schedule_flush()
        for key, run in done.items():
            if run.suppressed:
                self._summarize(key, run, now)

    def _schedule_flush(self) -> None:  # holding the lock
        if self._timer is None:
            self._timer = threading.Timer(self.window, self.flush)
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _summarize(key: Key, run: _Run, now: float) -> None:
        name, level, message = key
        logging.getLogger(name).log(
            level, "%s [repeated %d more times in %.0f s]", message, run.suppressed, now - run.since,
            extra={"repeat_summary": True},
        )  # fmt: skip


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # arguments that do not fit the template: logging reports it
        return str(record.msg)


def collapse_repeats(window: float = 10.0) -> None:
    """Install a ``RepeatFilter`` on every handler of the root logger."""
    repeats = RepeatFilter(window)
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeats)
