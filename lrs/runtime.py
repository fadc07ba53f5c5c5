"""Process-wide tuning shared by the LRS server and the pipeline worker, and stopping children."""

from __future__ import annotations

import gc
import subprocess


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
