"""Process-wide tuning shared by the LRS server and the pipeline worker."""

from __future__ import annotations

import gc


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
