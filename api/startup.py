"""Process start-up shared by the server's workers and the long-running commands."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Keep what the process has built so far (~130,000-175,000 objects: modules, the app,
    SQLAlchemy's and pydantic's metadata, all alive for the process's life) out of every later
    garbage collection.

    A full collection walks every tracked object. A batch request or an import allocates enough
    to set one off now and then, and each walked the startup objects too: ~70 ms, in one of
    every eight 1,000-transfer batches and once per 4,000 imported rows (docs/benchmarks.md,
    items 17 and 21). Frozen, the same collections take ~3 ms. Objects frozen here are still
    freed by reference counting; only a reference cycle among them is never collected, and there
    is none to collect: the collection before the freeze leaves only what is alive.
    """
    gc.collect()
    gc.freeze()
