"""The SQLite file under an index: its schema, how it is opened, what happens
when it is damaged, and one connection per thread.

Opening checks the file cheaply (header, length) when every earlier process
closed it cleanly, and in full (`PRAGMA quick_check`) after one died holding
it (see `markers`). A database that fails either is moved aside into a
`corrupt-<time>` folder with its vector files and a new one is started. A
folder that cannot be written (a read-only mount) opens read-only.

`Database` is the base of `store.Store`, which adds the index's contents.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

from . import fts, markers
from .vectors import SNAPSHOT_PREFIX

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_NAME = "index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    language TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    symbol TEXT,
    kind TEXT NOT NULL,
    language TEXT NOT NULL,
    hash TEXT NOT NULL,
    embeddable INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id);
CREATE INDEX IF NOT EXISTS chunks_by_hash ON chunks(hash);
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,            -- label shown to users: name@version
    identity TEXT NOT NULL,         -- everything the vectors depend on
    location TEXT NOT NULL,
    dim INTEGER NOT NULL,
    state TEXT NOT NULL,            -- building | active | retired
    created_at REAL NOT NULL,
    activated_at REAL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    gen INTEGER NOT NULL,
    hash TEXT NOT NULL,
    vec BLOB NOT NULL,
    UNIQUE (gen, hash)
);
-- Dropping a deleted chunk's vectors looks them up by hash in every generation;
-- without this, each lookup read the whole table (a minute per 1,000 chunks at 130k).
CREATE INDEX IF NOT EXISTS embeddings_by_hash ON embeddings(hash);
"""


class StoreError(RuntimeError):
    """The index cannot be opened or written; the message says what to do."""


class StoreClosed(StoreError):
    """The index was closed (its folder removed, the server stopping) while in use."""


class Database:
    """An index folder's SQLite file. Safe for one writer thread plus readers.

    Each thread gets its own connection (WAL lets readers run while the
    writer commits); writers take `_write_lock`.
    """

    def __init__(self, index_dir: Path):
        self.dir = index_dir
        self.db_path = index_dir / DB_NAME
        self.warnings: list[str] = []
        self._local = threading.local()
        self.checked_integrity = False
        """Whether opening ran the full integrity check (after an unclean shutdown)."""
        self._write_lock = threading.Lock()
        self.read_only = False
        self._closed = False

    @classmethod
    def open(cls, index_dir: Path) -> Self:
        """Open or create the index; a corrupt database is moved aside and rebuilt.

        An index in a folder that cannot be written (a read-only mount) opens
        read-only: search works from it, and every write says why it cannot.
        """
        _make_private_dir(index_dir)
        if not _writable(index_dir) and (index_dir / DB_NAME).exists():
            store = cls(index_dir)
            store.read_only = True
            store.warnings.append(
                f"the index at {index_dir} is read-only: search answers from it, "
                "but changes are not indexed"
            )
            log.warning(store.warnings[-1])
            return store
        store = cls(index_dir)
        try:
            store._check_and_init()
        except sqlite3.DatabaseError as exc:
            store.close()
            moved = store._quarantine(str(exc))
            store.warnings.append(
                f"the index at {index_dir} was corrupt ({exc}); "
                f"moved it to {moved.name} and starting afresh"
            )
            log.warning(store.warnings[-1])
            store = cls(index_dir)
            store.warnings.append(f"index rebuilt: previous copy in {moved}")
            store._check_and_init()
        return store

    def _check_and_init(self) -> None:
        if self.db_path.exists() and self.db_path.stat().st_size:
            with open(self.db_path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise sqlite3.DatabaseError("file is not a database")
        conn = self.conn
        # A full check reads the whole file (3 s at 10^5 chunks), so it runs only
        # when some process did not close the index cleanly; otherwise the cheap
        # checks (the header above, the length here) catch garbage and truncation.
        self.checked_integrity = markers.clear_dead(self.dir)
        if self.checked_integrity:
            result = conn.execute("PRAGMA quick_check").fetchone()
            if not result or result[0] != "ok":
                raise sqlite3.DatabaseError(
                    f"integrity check failed: {result[0] if result else 'no answer'}"
                )
        elif not self._wal_has_frames():
            # With frames in the write-ahead log (another process has the index
            # open), pages live there until a checkpoint: the file is short by design.
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            if self.db_path.stat().st_size < pages * page_size:
                raise sqlite3.DatabaseError(
                    "the database file is shorter than its header says (truncated)"
                )
        markers.own_marker(self.dir).touch(mode=0o600)
        with conn:
            conn.executescript(_SCHEMA + fts.CREATE)
            version = self._meta("schema_version")
            if version is None:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
            elif int(version) != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is not {SCHEMA_VERSION}")
        os.chmod(self.db_path, 0o600)

    def open_elsewhere(self) -> bool:
        """Whether another live process has this index open (a server, a CLI run)."""
        return markers.open_elsewhere(self.dir)

    def _wal_has_frames(self) -> bool:
        try:
            return self.db_path.with_name(self.db_path.name + "-wal").stat().st_size > 0
        except FileNotFoundError:
            return False

    def _quarantine(self, reason: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.dir / f"corrupt-{stamp}"
        target.mkdir(mode=0o700, exist_ok=True)
        for path in self.dir.iterdir():
            if path.name.startswith((DB_NAME, SNAPSHOT_PREFIX)):
                path.replace(target / path.name)
        (target / "REASON.txt").write_text(reason + "\n")
        return target

    @property
    def conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosed(f"the index at {self.dir} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None and self.read_only:
            # immutable: nothing can change the file under us, and SQLite then
            # needs no -shm file, which a read-only folder could not hold.
            conn = sqlite3.connect(
                f"{self.db_path.as_uri()}?mode=ro&immutable=1",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            self._local.conn = conn
            self._all_conns().append(conn)
        if conn is None:
            conn = sqlite3.connect(
                self.db_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash; only an OS crash can
            # lose the last commits, never corrupt the file.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.isolation_level = "DEFERRED"
            self._local.conn = conn
            self._all_conns().append(conn)
        return conn

    def _all_conns(self) -> list[sqlite3.Connection]:
        if not hasattr(self, "_conns"):
            self._conns: list[sqlite3.Connection] = []
        return self._conns

    def close(self) -> None:
        """Close this thread's connection and refuse every later use (StoreClosed).

        Other threads' connections are never closed from here: CPython 3.11's
        sqlite3 crashes the process (SIGSEGV) when a connection is closed while
        another thread runs a statement on it, as a search still in flight on a
        workspace folder being removed did. Their references are dropped instead
        and the garbage collector closes every one that no statement holds (a
        connection is in a cycle with its statement cache); one in use closes
        at a later collection, once its statement is done.
        """
        self._closed = True
        mine = getattr(self._local, "conn", None)
        others = [c for c in self._all_conns() if c is not mine]
        if mine is not None:
            try:
                mine.close()
            except sqlite3.Error:
                pass
        self._conns = []
        self._local = threading.local()
        if others:
            del others
            gc.collect()
        if not self.read_only:
            markers.own_marker(self.dir).unlink(missing_ok=True)

    # -- meta ----------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def meta_value(self, key: str) -> str | None:
        return self._meta(key)

    def set_meta_value(self, key: str, value: str) -> None:
        with self._write_lock, self.conn:
            self._set_meta(key, value)


def _writable(folder: Path) -> bool:
    """Whether files can be created in `folder` (a read-only mount says no even to root)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _make_private_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.chmod(path, 0o700)
        except OSError:
            if not path.is_dir():
                raise  # an existing folder on a read-only mount keeps its mode
    except OSError as exc:
        raise StoreError(
            f"cannot create the index directory {path}: {exc.strerror}; set `index_dir`"
        ) from exc
