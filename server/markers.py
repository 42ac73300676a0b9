"""Which processes have an index open.

Every process that opens an index for writing leaves an `open-<pid>` file in
its folder and removes it on a clean close. A marker whose process is gone
means that process died holding the index (a kill, a crash, a power cut), so
the next opener checks the database in full before trusting it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def own_marker(folder: Path) -> Path:
    """This process's marker in `folder`."""
    return folder / f"open-{os.getpid()}"


def other_openers(folder: Path) -> Iterator[tuple[Path, bool]]:
    """(marker, whether its process is alive) for every other process that opened the index."""
    for marker in folder.glob("open-*"):
        pid = marker.name.removeprefix("open-")
        if pid.isdigit() and int(pid) != os.getpid():
            yield marker, _alive(int(pid))


def open_elsewhere(folder: Path) -> bool:
    """Whether another live process has the index open (a server, a CLI run)."""
    return any(alive for _, alive in other_openers(folder))


def clear_dead(folder: Path) -> bool:
    """Remove the markers of processes that died holding the index; returns
    whether there were any (the index was not closed cleanly)."""
    unclean = False
    for marker, alive in list(other_openers(folder)):
        if not alive:
            marker.unlink(missing_ok=True)
            unclean = True
    return unclean


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
