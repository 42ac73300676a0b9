"""Changes to the workspace, as a debounced queue of workspace-relative paths.

Two producers feed one `ChangeQueue`: the editor (a save, or the client's own
file watcher) and a watchdog observer that catches what happens outside the
editor (git checkout, code generators, deletes, renames). The index worker is
the one consumer.

Events are coalesced per path: a burst (write, chmod, close, rename-over) for
one file becomes one entry that is handed out once the file has been quiet for
`debounce_s`, so a change is never indexed twice. A save in the editor is
urgent: handed out at once, ahead of everything else. Paths may name folders
(a renamed or deleted directory); the consumer expands them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from .discover import EXCLUDED_DIRS

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.3
"""Quiet time before a changed path is re-indexed: long enough to swallow an
editor's write-then-rename or a generator rewriting a file in pieces."""
MAX_DELAY_S = 3.0
"""A path that never goes quiet (a log being appended) is still handed out."""


@dataclass
class ChangeBatch:
    """What the consumer should re-index now."""

    urgent: list[str] = field(default_factory=list)
    """Saved in the editor: re-index before anything else."""
    paths: list[str] = field(default_factory=list)
    rescan: bool = False
    """Walk the whole workspace (a .gitignore changed, or a reindex was asked for)."""

    def all_paths(self) -> list[str]:
        return list(dict.fromkeys([*self.urgent, *self.paths]))


@dataclass
class _Entry:
    first: float
    last: float
    urgent: bool


class ChangeQueue:
    """Changed paths waiting to be re-indexed, coalesced per path and debounced.

    Thread-safe: any thread adds, one consumer takes. `busy()` stays true from
    the moment a path is added until the consumer calls `done()` for the batch
    that held it, so "nothing queued" really means the index has caught up.
    """

    def __init__(
        self,
        *,
        debounce_s: float = DEBOUNCE_S,
        max_delay_s: float = MAX_DELAY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._rescan = False
        self._in_flight = 0
        self._closed = False
        self._woken = False
        self._cond = threading.Condition()

    def add(self, rel: str, *, urgent: bool = False) -> None:
        self.add_many([rel], urgent=urgent)

    def add_many(self, rels: Iterable[str], *, urgent: bool = False) -> None:
        now = self._clock()
        with self._cond:
            for rel in rels:
                entry = self._entries.get(rel)
                if entry is None:
                    self._entries[rel] = _Entry(now, now, urgent)
                else:
                    entry.last = now
                    entry.urgent = entry.urgent or urgent
            self._cond.notify_all()

    def request_rescan(self) -> None:
        with self._cond:
            self._rescan = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Make the consumer's `take` return (an empty batch) so it re-checks its own work."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def has_urgent(self) -> bool:
        with self._cond:
            return any(e.urgent for e in self._entries.values())

    def waiting(self) -> int:
        """Paths queued or being re-indexed right now."""
        with self._cond:
            return len(self._entries) + self._in_flight + int(self._rescan)

    def take(self, timeout: float | None = None) -> ChangeBatch | None:
        """The paths that are due, waiting up to `timeout` seconds for some.

        Returns None on timeout or once the queue is closed. The caller must
        call `done()` when it has finished with the batch.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                batch, next_due = self._due(now)
                if batch is not None:
                    self._in_flight = len(batch.urgent) + len(batch.paths) + int(batch.rescan)
                    return batch
                if self._woken:
                    self._woken = False
                    return ChangeBatch()
                wake = next_due if deadline is None else min(next_due, deadline)
                if deadline is not None and now >= deadline:
                    return None
                self._cond.wait(None if wake == float("inf") else max(0.0, wake - now))
            return None

    def done(self) -> None:
        with self._cond:
            self._in_flight = 0
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _due(self, now: float) -> tuple[ChangeBatch | None, float]:
        batch = ChangeBatch(rescan=self._rescan)
        next_due = float("inf")
        for rel, e in list(self._entries.items()):
            due = e.first if e.urgent else min(e.last + self.debounce_s, e.first + self.max_delay_s)
            if due <= now:
                (batch.urgent if e.urgent else batch.paths).append(rel)
                del self._entries[rel]
            else:
                next_due = min(next_due, due)
        if not (batch.urgent or batch.paths or batch.rescan):
            return None, next_due
        self._rescan = False
        return batch, next_due


class _Forwarder(FileSystemEventHandler):
    """watchdog events -> relative paths in the queue."""

    # Reads (the indexer opening a file) must not look like changes.
    _IGNORED_TYPES = frozenset({"opened", "closed_no_write"})

    def __init__(self, root: Path, queue: ChangeQueue, skip: Callable[[str], bool]):
        self.root = root
        self.queue = queue
        self.skip = skip

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in self._IGNORED_TYPES:
            return
        if event.is_directory and event.event_type in ("modified", "closed"):
            return  # a folder's own metadata; its files send their own events
        paths = [event.src_path]
        if getattr(event, "dest_path", ""):
            paths.append(event.dest_path)
        rels = [rel for p in paths if (rel := self._relative(p)) is not None and not self.skip(rel)]
        if rels:
            self.queue.add_many(rels)

    def _relative(self, path: str | bytes) -> str | None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        try:
            rel = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return None
        return None if rel in ("", ".") else rel


class _RescanOnOverflow(logging.Handler):
    """When the kernel drops file events, walk the whole workspace instead.

    After an overflow (a checkout of tens of thousands of files) some changes were
    never reported; watchdog says so only in its log, so that is where we listen.
    """

    OVERFLOW = "Inotify queue overflowed"

    def __init__(self, queue: ChangeQueue):
        super().__init__(logging.WARNING)
        self.queue = queue

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.OVERFLOW):
            self.queue.request_rescan()


# The parent of watchdog's inotify modules: their records propagate to it.
WATCHDOG_LOGGER = "watchdog.observers"


class WorkspaceWatcher:
    """A recursive watchdog observer on the workspace feeding a ChangeQueue."""

    def __init__(self, root: Path, queue: ChangeQueue, *, ignore_dirs: Iterable[Path] = ()):
        self.root = root.resolve()
        self.queue = queue
        prefixes = []
        for d in ignore_dirs:
            try:
                prefixes.append(Path(d).resolve().relative_to(self.root).as_posix())
            except ValueError:
                continue  # outside the workspace: its events never reach us
        self._ignored_prefixes = tuple(prefixes)
        self._observer: BaseObserver | None = None
        self._overflow = _RescanOnOverflow(queue)

    def skip(self, rel: str) -> bool:
        """Paths whose events are noise: version control, caches, the index itself."""
        if any(p in EXCLUDED_DIRS for p in rel.split("/")[:-1]):
            return True
        return any(rel == p or rel.startswith(p + "/") for p in self._ignored_prefixes)

    # Only what changes content. Subscribing to opens and closes-without-write too
    # (watchdog's default) made walking a tree of a few thousand folders overflow the
    # kernel's inotify queue; watchdog recovers by walking the tree again, which
    # overflows it again, and no event ever arrived.
    EVENT_KINDS = [
        FileCreatedEvent,
        FileModifiedEvent,
        FileClosedEvent,
        FileDeletedEvent,
        FileMovedEvent,
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
    ]

    def start(self) -> None:
        observer = Observer()
        observer.daemon = True
        observer.schedule(
            _Forwarder(self.root, self.queue, self.skip),
            str(self.root),
            recursive=True,
            event_filter=self.EVENT_KINDS,
        )
        logging.getLogger(WATCHDOG_LOGGER).addHandler(self._overflow)
        observer.start()
        self._observer = observer
        log.info("watching %s for changes", self.root)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        logging.getLogger(WATCHDOG_LOGGER).removeHandler(self._overflow)
