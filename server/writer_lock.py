"""One writer per index: an OS file lock on `writer.lock` in the index folder.

A language server (`kenning serve`) and an MCP server (`kenning mcp`) may run
for the same workspace at once, and so share one index folder. Only the
process holding this lock runs the index worker, the file watcher and the
retraining scheduler; the others answer from the index as the writer leaves
it, and try the lock again now and then, so that one of them takes over when
the writer exits. The lock is `fcntl.flock` on an open file: the kernel
releases it when the holder exits or dies, so a crash never leaves it stuck.
The file records the holder's pid and command, for status messages only.

(Platforms without `fcntl` get no lock: every process writes, as before.)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "writer.lock"


class WriterLock:
    """The writer lock of one index folder, held by at most one process."""

    def __init__(self, index_dir: Path, label: str = "kenning"):
        self.path = index_dir / LOCK_NAME
        self.label = label
        """What this process is, for the others' messages (`kenning serve`, `kenning mcp`)."""
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it; True when this process holds it now."""
        if self._fd is not None:
            return True
        if fcntl is None:  # pragma: no cover - Windows
            self._fd = -1
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.label}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None or fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the file releases the flock

    def holder(self) -> str:
        """Who holds the lock, e.g. `pid 4242 (kenning serve)`, as far as the file says."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return "another process"
        pid, _, label = text.partition(" ")
        if not pid.isdigit():
            return "another process"
        return f"{label or 'process'} (pid {pid})"
