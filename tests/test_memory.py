"""A daemon gives memory back after large batches (glibc's malloc_trim)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from kenning.server.memory import trim


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_goes_back_to_the_system():
    trim()
    before = rss_kib()
    blocks, survivors = [], []
    for i in range(50_000):  # ~200 MB of heap, with a few long-lived blocks in between
        blocks.append(bytes(4000) + bytes([i % 256]))
        if i % 100 == 0:
            survivors.append(bytes(600) + bytes([i % 256]))
    del blocks
    # The survivors pin the heap: freeing alone keeps the pages (as after a batch of
    # embeddings, when the index and caches allocated meanwhile stay).
    assert rss_kib() > before + 150_000
    assert trim()
    assert rss_kib() < before + 50_000
    assert len(survivors) == 500
