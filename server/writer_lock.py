"""One writer per index: an OS file lock in the index folder (docs/design.md, "One writer").

A long-running server (an editor's `kenning serve`, an agent's `kenning mcp`,
or a background daemon from `kenning serve --background`) holds `writer.lock`
for as long as it runs (server/workspace_service.py takes it for the first two);
the lock file says who holds it (pid, role, workspace). The kernel releases
the lock when its process dies, however it dies, so a killed server never
leaves an index locked. A one-shot command (`kenning index`, a search's
refresh) takes it only for the duration of its write.

On a system without `fcntl` (Windows) there is no lock and every opener may
write, as SQLite's own locking allows.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "writer.lock"

EDITOR = "editor"
"""An editor's language server: keeps the index until the editor closes it."""
BACKGROUND = "background"
"""A daemon started for the command line: steps aside when an editor's server starts."""
ONE_SHOT = "command"
"""A command-line process writing for the length of one command."""
MCP = "mcp"
"""An agent's MCP server (`kenning mcp`): keeps the index while its agent runs, like an editor's."""
LONG_LIVED = (EDITOR, MCP)
"""The servers a background daemon steps aside for."""
ROLE_NAMES = {
    EDITOR: "an editor's language server",
    MCP: "an MCP server",
    BACKGROUND: "the background daemon",
    ONE_SHOT: "a kenning command",
}


@dataclass(frozen=True)
class Holder:
    pid: int
    role: str
    workspace: str
    since: float

    def describe(self) -> str:
        """For messages: `an MCP server (pid 4242)`."""
        return f"{ROLE_NAMES.get(self.role, 'another Kenning process')} (pid {self.pid})"


class WriterLock:
    """The writer lock of one index folder, held by this process or not."""

    def __init__(self, index_dir: Path):
        self.path = Path(index_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, role: str, workspace: str) -> bool:
        """Take the lock without waiting; False when another writer holds it (or the
        folder cannot be written)."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
        record = {"pid": os.getpid(), "role": role, "workspace": workspace, "since": time.time()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except OSError:
            pass  # the lock holds without its note; holder() then says less
        self._fd = fd
        return True

    def wait_acquire(self, role: str, workspace: str, timeout: float) -> bool:
        """Try for up to `timeout` seconds (a daemon that was asked to step aside)."""
        deadline = time.monotonic() + timeout
        while not self.try_acquire(role, workspace):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor releases the flock

    def holder(self) -> Holder | None:
        """Who holds the lock now (this process included); None when nobody does."""
        if self._fd is None and not self._locked_elsewhere():
            return None
        try:
            data = json.loads(self.path.read_text("utf-8") or "{}")
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        return Holder(
            pid=int(data.get("pid", 0)),
            role=str(data.get("role", "unknown")),
            workspace=str(data.get("workspace", "")),
            since=float(data.get("since", 0.0)),
        )

    def _locked_elsewhere(self) -> bool:
        if fcntl is None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # also drops the shared lock just taken
        return False
