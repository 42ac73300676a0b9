"""usearch, always loaded after ONNX Runtime.

usearch's extension carries its own copies of C++ runtime symbols. ONNX Runtime's
extension, loaded after it, binds some of its calls to those copies and crashes
while it loads (a segfault in `std::codecvt`, seen with usearch 2.26 and
onnxruntime 1.32). Loaded the other way round, both work. Any process that
searches vectors may later embed a query through the light path (a fresh
`kenning search`, a server that only reads an index), so whenever usearch is
needed ONNX Runtime is loaded first (about 0.1 s, once per process).
"""

from __future__ import annotations

from types import ModuleType


def usearch_index() -> ModuleType:
    """`usearch.index`, with ONNX Runtime (when installed) loaded before it."""
    try:
        import onnxruntime  # noqa: F401 - the load order is the point
    except ImportError:
        pass
    import usearch.index

    return usearch.index
