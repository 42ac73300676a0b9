"""usearch, loaded so that ONNX Runtime can still load after it.

usearch's extension carries its own static copy of the C++ runtime. Loaded
before the system's libstdc++ is, that copy's process-wide symbols win (most
likely GNU unique symbols), and ONNX Runtime's extension, loaded later against
the system's libstdc++, crashes while it loads (a segfault in `std::codecvt`,
seen with usearch 2.26 and onnxruntime 1.32). Loading the system's libstdc++
globally first makes its definitions the ones later libraries bind to, so
both load in either order, for a few kilobytes (importing ONNX Runtime first
would also work, for 20 MB in every server). Any process that searches
vectors may later embed a query through the light path (a fresh `kenning
search`, a server that only reads an index), so usearch is only ever
imported through here.
"""

from __future__ import annotations

import ctypes
import sys
from types import ModuleType

_LIBSTDCXX = "libstdc++.so.6"


def usearch_index() -> ModuleType:
    """`usearch.index`, with the system's C++ runtime loaded globally before it."""
    if "usearch.index" not in sys.modules and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(_LIBSTDCXX, mode=ctypes.RTLD_GLOBAL)
        except OSError:  # no system libstdc++ (a static or musl build): nothing to clash with
            pass
    import usearch.index

    return usearch.index
