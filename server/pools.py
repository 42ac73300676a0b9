"""Thread pools whose threads all exist from the start.

`ThreadPoolExecutor` starts a worker only when a task finds none idle, so a
daemon's thread count creeps up under its first bursts of load, which looks
exactly like a leak to anyone watching it (and to the load test that guards
against leaks). A pool made here starts every worker at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


def started_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A ThreadPoolExecutor of `workers` threads named `name-N`, all already running."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    # Each task holds its thread until all have arrived, so none finds another
    # idle and every submit starts a new worker.
    barrier = threading.Barrier(workers)
    for future in [pool.submit(barrier.wait) for _ in range(workers)]:
        future.result()
    return pool
