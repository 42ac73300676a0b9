"""Giving memory back to the system after large embedding batches.

Each batch the model embeds allocates hundreds of MB of activations; glibc's
allocator keeps the freed pages in its arenas, so a daemon that indexed a large
workspace once stays at its peak for good. `malloc_trim(0)` returns the free
pages at the top of each arena. Elsewhere (musl, macOS, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from functools import cache

log = logging.getLogger(__name__)

TRIM_AFTER_TEXTS = 512
"""Chunk texts embedded since the last trim before the next one is worth its milliseconds."""


@cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def trim() -> bool:
    """Return freed heap memory to the system; whether anything was released."""
    fn = _malloc_trim()
    if fn is None:
        return False
    released = bool(fn(0))
    log.debug("malloc_trim released memory: %s", released)
    return released
