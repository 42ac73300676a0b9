"""The index on disk: SQLite for files, chunks, vectors and lexical search, plus a
vector snapshot file for a fast start.

SQLite is the one source of truth. Every batch the indexer writes is one
transaction, so after a crash the store either has a batch or it does not.
Vectors live in SQLite as float16 blobs, one row per distinct chunk text and
model generation; searching uses an in-memory float16 matrix of the active
generation, brute-forced by usearch's SIMD kernels (about 10 ms for 10^5
vectors on two cores, 768 bytes a vector). The matrix is saved to
`vectors-g<N>.npy` (written to a temporary name, then renamed), so a restart
reads one file instead of every blob; rows SQLite gained or lost since the
file was written are replayed from SQLite on load, and a damaged file is
rebuilt from SQLite.

A generation is one model's set of vectors. Re-embedding for a new model fills
a new generation while the active one keeps answering; activation is a single
row update.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SNAPSHOT_SLACK = 1000
"""Vectors the snapshot may lag behind SQLite before it is rewritten."""
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
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    path, symbol, body, tokenize = 'porter unicode61'
);
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


@dataclass(frozen=True)
class StoredChunk:
    id: int
    path: str
    start_line: int
    end_line: int
    symbol: str | None
    kind: str
    language: str
    text: str


@dataclass(frozen=True)
class FileRecord:
    size: int
    mtime_ns: int
    content_hash: str


@dataclass(frozen=True)
class Generation:
    id: int
    model: str
    identity: str
    location: str
    dim: int
    state: str


@dataclass(frozen=True)
class FileUpdate:
    """The new state of one file: its metadata and all of its chunks."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    language: str
    chunks: Sequence | None
    """All chunks of the file (chunking.Chunk), or None when only its stat changed."""


class VectorMatrix:
    """The active generation's vectors in memory, searchable by brute force.

    Rows are appended and removed in place (swap with the last row), so a batch
    costs time proportional to its own size, not to the index.
    """

    def __init__(self, dim: int, ids: np.ndarray | None = None, data: np.ndarray | None = None):
        self.dim = dim
        n = 0 if ids is None else len(ids)
        capacity = max(1024, n)
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._data = np.zeros((capacity, dim), dtype=np.float16)
        if n:
            self._ids[:n] = ids
            self._data[:n] = data
        self._row = {int(i): r for r, i in enumerate(self._ids[:n])}
        self.n = n
        self.changes = 0
        """Rows added or removed since the last snapshot was written."""
        self.lock = threading.Lock()

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        with self.lock:
            for vid, vec in zip(ids, vectors, strict=True):
                vid = int(vid)
                row = self._row.get(vid)
                if row is None:
                    if self.n == len(self._ids):
                        self._grow()
                    row = self.n
                    self.n += 1
                    self._row[vid] = row
                    self._ids[row] = vid
                    self.changes += 1
                self._data[row] = vec

    def remove(self, ids: Iterable[int]) -> None:
        with self.lock:
            for vid in ids:
                row = self._row.pop(int(vid), None)
                if row is None:
                    continue
                last = self.n - 1
                if row != last:
                    moved = int(self._ids[last])
                    self._ids[row] = moved
                    self._data[row] = self._data[last]
                    self._row[moved] = row
                self.n -= 1
                self.changes += 1

    def _grow(self) -> None:
        capacity = len(self._ids) * 2
        ids = np.zeros(capacity, dtype=np.int64)
        data = np.zeros((capacity, self.dim), dtype=np.float16)
        ids[: self.n] = self._ids[: self.n]
        data[: self.n] = self._data[: self.n]
        self._ids, self._data = ids, data

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (embedding id, cosine similarity), best first."""
        from usearch.index import MetricKind, search

        with self.lock:
            if self.n == 0:
                return []
            k = min(k, self.n)
            q = np.asarray(query, dtype=np.float16).reshape(1, -1)
            matches = search(self._data[: self.n], q, k, MetricKind.Cos, exact=True)
            rows = np.asarray(matches.keys).reshape(-1)[:k]
            dists = np.asarray(matches.distances).reshape(-1)[:k]
            return [(int(self._ids[r]), float(1.0 - d)) for r, d in zip(rows, dists, strict=True)]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            return self._ids[: self.n].copy(), self._data[: self.n].copy()


class Store:
    """One workspace's index. Safe for one writer thread plus readers.

    Each thread gets its own SQLite connection (WAL lets readers run while the
    writer commits); the vector matrix has its own lock.
    """

    def __init__(self, index_dir: Path):
        self.dir = index_dir
        self.db_path = index_dir / DB_NAME
        self.warnings: list[str] = []
        self._local = threading.local()
        self._matrix: VectorMatrix | None = None
        self._matrix_gen: int | None = None
        self._retired: tuple[int, VectorMatrix] | None = None
        """The matrix of the generation the last switch retired, until it is dropped."""
        self._snapshot_delta = 0  # rows the loaded matrix differed from its file by
        self.checked_integrity = False
        """Whether opening ran the full integrity check (after an unclean shutdown)."""
        self._write_lock = threading.Lock()
        self.read_only = False

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, index_dir: Path) -> Store:
        """Open or create the index; a corrupt database is moved aside and rebuilt.

        An index in a folder that cannot be written (a read-only mount) opens
        read-only: search works from it, and every write says why it cannot.
        """
        _make_private_dir(index_dir)
        if not _writable(index_dir) and (index_dir / DB_NAME).exists():
            store = cls(index_dir)
            store.read_only = True
            store.warnings.append(
                f"the index at {index_dir} is read-only: search answers from it, but changes are not indexed"
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
                f"the index at {index_dir} was corrupt ({exc}); moved it to {moved.name} and starting afresh"
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
        self.checked_integrity = self._unclean_shutdown()
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
        self._marker.touch(mode=0o600)
        with conn:
            conn.executescript(_SCHEMA)
            version = self._meta("schema_version")
            if version is None:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
            elif int(version) != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is not {SCHEMA_VERSION}")
        os.chmod(self.db_path, 0o600)

    def _other_openers(self) -> Iterator[tuple[Path, bool]]:
        """(marker, whether its process is alive) for every other process that opened this index."""
        for marker in self.dir.glob("open-*"):
            pid = marker.name.removeprefix("open-")
            if pid.isdigit() and int(pid) != os.getpid():
                yield marker, _alive(int(pid))

    def open_elsewhere(self) -> bool:
        """Whether another live process has this index open (a server, a CLI run)."""
        return any(alive for _, alive in self._other_openers())

    def _wal_has_frames(self) -> bool:
        try:
            return self.db_path.with_name(self.db_path.name + "-wal").stat().st_size > 0
        except FileNotFoundError:
            return False

    @property
    def _marker(self) -> Path:
        return self.dir / f"open-{os.getpid()}"

    def _unclean_shutdown(self) -> bool:
        """Whether a process that opened this index died without closing it."""
        unclean = False
        for marker, alive in list(self._other_openers()):
            if not alive:
                marker.unlink(missing_ok=True)
                unclean = True
        return unclean

    def _quarantine(self, reason: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.dir / f"corrupt-{stamp}"
        target.mkdir(mode=0o700, exist_ok=True)
        for path in self.dir.iterdir():
            if path.name.startswith((DB_NAME, "vectors-")):
                path.replace(target / path.name)
        (target / "REASON.txt").write_text(reason + "\n")
        return target

    @property
    def conn(self) -> sqlite3.Connection:
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
        for conn in self._all_conns():
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._conns = []
        self._local = threading.local()
        if not self.read_only:
            self._marker.unlink(missing_ok=True)

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

    # -- what changed since a point in time ----------------------------------------

    def vector_mark(self) -> int:
        """A mark to count new chunks from: every chunk text embedded later gets a higher id."""
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM embeddings").fetchone()[0]

    def vectors_since(self, gen_id: int, mark: int) -> int:
        """Distinct chunk texts of `gen_id` embedded after `mark` (new or changed code)."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM embeddings WHERE gen = ? AND id > ?", (gen_id, mark)
        ).fetchone()[0]

    # -- files and chunks ------------------------------------------------------------

    def file_records(self) -> dict[str, FileRecord]:
        rows = self.conn.execute("SELECT path, size, mtime_ns, content_hash FROM files")
        return {p: FileRecord(s, m, h) for p, s, m, h in rows}

    def apply_files(self, updates: Sequence[FileUpdate], removed: Sequence[str] = ()) -> int:
        """Replace the chunks of `updates` and drop `removed` paths, in one transaction.

        Returns the number of chunks removed. Vectors no longer referenced by any
        chunk are deleted in the same transaction.
        """
        if not updates and not removed:
            return 0
        with self._write_lock:
            conn = self.conn
            with conn:
                old_hashes: set[str] = set()
                removed_chunks = 0
                rewritten = [u.path for u in updates if u.chunks is not None]
                for path in [*removed, *rewritten]:
                    row = conn.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
                    if row is None:
                        continue
                    chunk_rows = conn.execute(
                        "SELECT id, hash FROM chunks WHERE file_id = ?", (row[0],)
                    ).fetchall()
                    old_hashes.update(h for _, h in chunk_rows)
                    removed_chunks += len(chunk_rows)
                    conn.executemany(
                        "DELETE FROM chunks_fts WHERE rowid = ?", [(cid,) for cid, _ in chunk_rows]
                    )
                    conn.execute("DELETE FROM chunks WHERE file_id = ?", (row[0],))
                    if path in removed:
                        conn.execute("DELETE FROM files WHERE id = ?", (row[0],))
                for u in updates:
                    conn.execute(
                        "INSERT INTO files(path, size, mtime_ns, content_hash, language) VALUES (?,?,?,?,?) "
                        "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                        "content_hash=excluded.content_hash, language=excluded.language",
                        (u.path, u.size, u.mtime_ns, u.content_hash, u.language),
                    )
                    if u.chunks is None:
                        continue  # touched but unchanged: metadata only
                    file_id = conn.execute(
                        "SELECT id FROM files WHERE path = ?", (u.path,)
                    ).fetchone()[0]
                    for c in u.chunks:
                        cur = conn.execute(
                            "INSERT INTO chunks(file_id, start_line, end_line, symbol, kind, language, hash, "
                            "embeddable, text) VALUES (?,?,?,?,?,?,?,?,?)",
                            (
                                file_id,
                                c.start_line,
                                c.end_line,
                                c.symbol,
                                c.kind,
                                c.language,
                                c.hash,
                                int(c.embeddable),
                                c.text,
                            ),
                        )
                        conn.execute(
                            "INSERT INTO chunks_fts(rowid, path, symbol, body) VALUES (?,?,?,?)",
                            (
                                cur.lastrowid,
                                lexical_terms(u.path),
                                lexical_terms(c.symbol or ""),
                                lexical_terms(c.text),
                            ),
                        )
                        old_hashes.discard(c.hash)
                dropped = self._drop_unreferenced(old_hashes)
            self._forget_vectors(dropped)
            return removed_chunks

    def _drop_unreferenced(self, hashes: Iterable[str]) -> list[tuple[int, int]]:
        """Delete embeddings whose chunk text no longer exists; returns (gen, id)."""
        dropped: list[tuple[int, int]] = []
        conn = self.conn
        for h in hashes:
            if conn.execute("SELECT 1 FROM chunks WHERE hash = ? LIMIT 1", (h,)).fetchone():
                continue
            rows = conn.execute("SELECT gen, id FROM embeddings WHERE hash = ?", (h,)).fetchall()
            conn.execute("DELETE FROM embeddings WHERE hash = ?", (h,))
            dropped.extend(rows)
        return dropped

    def _forget_vectors(self, dropped: Sequence[tuple[int, int]]) -> None:
        if self._matrix is not None and dropped:
            self._matrix.remove(vid for gen, vid in dropped if gen == self._matrix_gen)

    def counts(self, gen: int | None = None) -> tuple[int, int, int]:
        """(files, chunks, chunks waiting for a vector in `gen`)."""
        conn = self.conn
        files = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        pending = 0
        if gen is not None:
            pending = conn.execute(
                "SELECT COUNT(DISTINCT c.hash) FROM chunks c WHERE c.embeddable = 1 AND NOT EXISTS "
                "(SELECT 1 FROM embeddings e WHERE e.gen = ? AND e.hash = c.hash)",
                (gen,),
            ).fetchone()[0]
        return files, chunks, pending

    def pending_texts(
        self, gen: int, limit: int, paths: Sequence[str] | None = None
    ) -> list[tuple[str, str]]:
        """Up to `limit` (hash, text the model should read) still without a vector in `gen`,
        only from the files `paths` when given (a saved file goes first)."""
        only = ""
        args: list = [gen]
        if paths is not None:
            only = f"AND f.path IN ({','.join('?' * len(paths))}) "
            args.extend(paths)
        rows = self.conn.execute(
            "SELECT c.hash, f.path, c.symbol, c.text FROM chunks c JOIN files f ON f.id = c.file_id "
            "WHERE c.embeddable = 1 AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.gen = ? AND e.hash = c.hash) "
            f"{only}GROUP BY c.hash LIMIT ?",
            (*args, limit),
        ).fetchall()
        from .chunking import embed_text_for

        return [(h, embed_text_for(p, s, t)) for h, p, s, t in rows]

    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT c.id, f.path, c.start_line, c.end_line, c.symbol, c.kind, c.language, c.text "
            f"FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id IN ({marks})",
            list(ids),
        )
        return {r[0]: StoredChunk(*r) for r in rows}

    def chunks_for_embeddings(self, embedding_ids: Sequence[int]) -> dict[int, list[int]]:
        """Chunk ids sharing each embedding (identical text is embedded once)."""
        if not embedding_ids:
            return {}
        marks = ",".join("?" * len(embedding_ids))
        rows = self.conn.execute(
            f"SELECT e.id, c.id FROM embeddings e JOIN chunks c ON c.hash = e.hash WHERE e.id IN ({marks})",
            list(embedding_ids),
        )
        out: dict[int, list[int]] = {}
        for eid, cid in rows:
            out.setdefault(eid, []).append(cid)
        return out

    def lexical_search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Top-k (chunk id, bm25 relevance) for a natural-language query.

        Words found in more than a tenth of all chunks are left out of the
        match (at most the MAX_LEXICAL_TERMS rarest are kept): their posting
        lists are the long ones that made bm25 slow on large indexes, and
        their idf is close to zero anyway.
        """
        words = self._informative_words(query_words(query))
        if not words:
            return []
        rows = self.conn.execute(
            # Weights: a word in the symbol or path says more than one in the body.
            "SELECT rowid, bm25(chunks_fts, 2.0, 4.0, 1.0) AS rank FROM chunks_fts "
            "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (" OR ".join(f'"{w}"' for w in words), k),
        ).fetchall()
        return [(int(r), -float(score)) for r, score in rows]

    def _informative_words(self, words: list[str]) -> list[str]:
        if len(words) <= 1:
            return words
        try:
            df = self._document_frequencies(words)
        except sqlite3.Error as exc:  # e.g. an SQLite without fts5vocab: match every word
            log.debug("no term statistics: %s", exc)
            return words
        total = self.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM chunks").fetchone()[0]
        by_rarity = sorted(words, key=lambda w: df[w])
        kept = [w for w in by_rarity if df[w] <= max(COMMON_TERM_SHARE * total, 1)]
        return (kept or by_rarity[:1])[:MAX_LEXICAL_TERMS]

    def _document_frequencies(self, words: list[str]) -> dict[str, int]:
        """Chunks containing each word, as FTS5 stems it (run through the same tokenizer)."""
        conn = self.conn
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_words USING fts5(w, tokenize = 'porter unicode61')"
        )
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_stems USING fts5vocab(temp, kenning_words, 'instance')"
        )
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_vocab USING fts5vocab(main, chunks_fts, 'row')"
        )
        # One transaction, committed (or rolled back) at once: left open, it
        # would pin this connection's view of the index to this moment.
        with conn:
            conn.executemany(
                "INSERT INTO temp.kenning_words(rowid, w) VALUES (?, ?)", list(enumerate(words))
            )
            stems = dict(conn.execute("SELECT doc, term FROM temp.kenning_stems").fetchall())
            conn.execute("DELETE FROM temp.kenning_words")
        df = {}
        for i, word in enumerate(words):
            row = conn.execute(
                "SELECT doc FROM temp.kenning_vocab WHERE term = ?", (stems.get(i, word),)
            ).fetchone()
            df[word] = row[0] if row else 0
        return df

    # -- generations and vectors ---------------------------------------------------------

    def active_generation(self) -> Generation | None:
        row = self.conn.execute(
            "SELECT id, model, identity, location, dim, state FROM generations "
            "WHERE state = 'active' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return Generation(*row) if row else None

    def generations(self) -> list[Generation]:
        rows = self.conn.execute(
            "SELECT id, model, identity, location, dim, state FROM generations ORDER BY id"
        )
        return [Generation(*r) for r in rows]

    def create_generation(
        self, model: str, identity: str, location: str, dim: int, *, active: bool
    ) -> Generation:
        state = "active" if active else "building"
        with self._write_lock, self.conn as conn:
            cur = conn.execute(
                "INSERT INTO generations(model, identity, location, dim, state, created_at, activated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (
                    model,
                    identity,
                    location,
                    dim,
                    state,
                    time.time(),
                    time.time() if active else None,
                ),
            )
            gen_id = cur.lastrowid
        return Generation(gen_id, model, identity, location, dim, state)

    def activate_generation(self, gen_id: int) -> None:
        """Make `gen_id` the one that answers, in one transaction; older ones retire.

        Its vectors are read into memory first, so the first search after the
        switch does not wait for them; the retired generation's matrix stays
        available to searches already under way until it is dropped.
        """
        gen = next((g for g in self.generations() if g.id == gen_id), None)
        if gen is None:
            raise StoreError(f"generation {gen_id} does not exist")
        with self._write_lock:
            # Under the lock: only the writer adds vectors, and it is the caller.
            matrix = self._load_matrix(gen)
            with self.conn as conn:
                conn.execute(
                    "UPDATE generations SET state = 'retired' WHERE state = 'active' AND id != ?",
                    (gen_id,),
                )
                conn.execute(
                    "UPDATE generations SET state = 'active', activated_at = ? WHERE id = ?",
                    (time.time(), gen_id),
                )
            if (
                self._matrix is not None
                and self._matrix_gen is not None
                and self._matrix_gen != gen_id
            ):
                self._retired = (self._matrix_gen, self._matrix)
            self._matrix = matrix
            self._matrix_gen = gen_id

    def drop_generation(self, gen_id: int) -> None:
        """Delete a generation's vectors and snapshot files."""
        with self._write_lock:
            with self.conn as conn:
                conn.execute("DELETE FROM embeddings WHERE gen = ?", (gen_id,))
                conn.execute("DELETE FROM generations WHERE id = ?", (gen_id,))
            if self._retired is not None and self._retired[0] == gen_id:
                self._retired = None
            if self._matrix_gen == gen_id:
                self._matrix = self._matrix_gen = None
            for path in self.dir.glob(f"vectors-g{gen_id}.*"):
                path.unlink(missing_ok=True)

    def remove_orphan_snapshots(self) -> None:
        """Delete vector files of generations that no longer exist."""
        live = {g.id for g in self.generations()}
        for path in self.dir.glob("vectors-g*.*"):
            num = path.name.removeprefix("vectors-g").split(".", 1)[0]
            if num.isdigit() and int(num) not in live:
                path.unlink(missing_ok=True)

    def add_embeddings(self, gen: int, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store one batch of vectors (one transaction), then make them searchable."""
        vectors16 = np.asarray(vectors, dtype=np.float16)
        with self._write_lock:
            conn = self.conn
            ids = []
            with conn:
                for h, v in zip(hashes, vectors16, strict=True):
                    cur = conn.execute(
                        "INSERT INTO embeddings(gen, hash, vec) VALUES (?,?,?) "
                        "ON CONFLICT(gen, hash) DO UPDATE SET vec = excluded.vec RETURNING id",
                        (gen, h, v.tobytes()),
                    )
                    ids.append(cur.fetchone()[0])
            if self._matrix is not None and self._matrix_gen == gen:
                self._matrix.add(ids, vectors16)

    def matrix(self, gen: Generation) -> VectorMatrix:
        """The in-memory vectors of `gen`, from the snapshot when it is current."""
        if self._matrix is not None and self._matrix_gen == gen.id:
            return self._matrix
        retired = self._retired
        if retired is not None and retired[0] == gen.id:
            return retired[1]  # a search that began just before the switch
        with self._write_lock:
            if self._matrix is None or self._matrix_gen != gen.id:
                self._matrix = self._load_matrix(gen)
                self._matrix_gen = gen.id
            return self._matrix

    def dense_search(self, gen: Generation, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self.matrix(gen).search(query, k)

    def _load_matrix(self, gen: Generation) -> VectorMatrix:
        """The snapshot, brought up to date with SQLite: rows deleted since it was
        written are dropped and rows added since are read from their blobs. A
        small edit therefore never forces a full rewrite of the vector file."""
        snap = self._read_snapshot(gen)
        if snap is None:
            ids, data = self._read_vectors(gen)
            self._snapshot_delta = len(ids)
            return VectorMatrix(gen.dim, ids, data)
        snap_ids, snap_data = snap
        current = np.fromiter(
            (r[0] for r in self.conn.execute("SELECT id FROM embeddings WHERE gen = ?", (gen.id,))),
            dtype=np.int64,
        )
        keep = np.isin(snap_ids, current)
        missing = np.setdiff1d(current, snap_ids[keep], assume_unique=True)
        new_ids, new_data = (
            self._read_vectors(gen, only=missing) if len(missing) else (missing, None)
        )
        ids = np.concatenate([snap_ids[keep], new_ids])
        data = snap_data[keep] if new_data is None else np.concatenate([snap_data[keep], new_data])
        self._snapshot_delta = int((~keep).sum()) + len(new_ids)
        return VectorMatrix(gen.dim, ids, data)

    def _read_vectors(
        self, gen: Generation, only: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        width = gen.dim * 2
        ids: list[int] = []
        blobs: list[bytes] = []
        bad: list[int] = []
        if only is None:
            rows = self.conn.execute("SELECT id, vec FROM embeddings WHERE gen = ?", (gen.id,))
        else:
            wanted = [int(i) for i in only]
            rows = (
                row
                for start in range(0, len(wanted), 500)
                for row in self.conn.execute(
                    f"SELECT id, vec FROM embeddings WHERE id IN ({','.join('?' * len(wanted[start : start + 500]))})",
                    wanted[start : start + 500],
                )
            )
        for eid, blob in rows:
            if len(blob) != width:
                bad.append(eid)
                continue
            ids.append(eid)
            blobs.append(blob)
        if bad:
            # A damaged vector is re-embedded on the next pass rather than served wrong.
            with self.conn as conn:
                conn.executemany("DELETE FROM embeddings WHERE id = ?", [(b,) for b in bad])
            self.warnings.append(f"dropped {len(bad)} damaged vectors; they will be re-embedded")
        data = np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(ids), gen.dim)
        return np.asarray(ids, dtype=np.int64), data

    def _snapshot_paths(self, gen_id: int) -> tuple[Path, Path]:
        return self.dir / f"vectors-g{gen_id}.npy", self.dir / f"vectors-g{gen_id}.json"

    def _read_snapshot(self, gen: Generation) -> tuple[np.ndarray, np.ndarray] | None:
        data_path, info_path = self._snapshot_paths(gen.id)
        if not info_path.exists() or not data_path.exists():
            return None
        try:
            info = json.loads(info_path.read_text())
            with open(data_path, "rb") as fh:
                ids = np.load(fh, allow_pickle=False)
                data = np.load(fh, allow_pickle=False)
            if ids.shape != (info["count"],) or data.shape != (info["count"], gen.dim):
                raise ValueError(f"shape {data.shape} does not match its card")
            return ids.astype(np.int64), data.astype(np.float16)
        except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError) as exc:
            msg = f"vector file {data_path.name} is damaged ({exc}); rebuilt it from the database"
            self.warnings.append(msg)
            log.warning(msg)
            return None

    def save_snapshot(self, *, force: bool = False) -> bool:
        """Write the active generation's matrix to disk (temp + rename) when it has
        drifted from the file by more than a few percent; returns whether it wrote.

        Small drifts are cheaper to replay from SQLite at the next start than to
        rewrite tens of megabytes after every edit.
        """
        gen = self.active_generation()
        if gen is None or self.read_only:
            return False
        matrix = self.matrix(gen)
        data_path, info_path = self._snapshot_paths(gen.id)
        drift = self._snapshot_delta + matrix.changes
        if not force and info_path.exists() and drift <= max(SNAPSHOT_SLACK, matrix.n // 20):
            return False
        ids, data = matrix.snapshot()
        tmp = data_path.with_suffix(".npy.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            np.save(fh, ids, allow_pickle=False)
            np.save(fh, data, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        info_tmp = info_path.with_suffix(".json.tmp")
        info_tmp.write_text(json.dumps({"count": len(ids), "dim": gen.dim}))
        os.chmod(info_tmp, 0o600)
        # Data first, then its card: a crash in between leaves a card whose count
        # disagrees with the data, which is detected and rebuilt from SQLite.
        os.replace(tmp, data_path)
        os.replace(info_tmp, info_path)
        self._snapshot_delta = 0
        matrix.changes = 0
        return True

    def consistency_problems(self) -> list[str]:
        """What is wrong with the index, as one line each; empty when it is consistent.

        Checked by the crash campaigns after every kill: rows that point at
        nothing, vectors of no chunk, duplicated chunks, a lexical index out
        of step with the chunks, more than one active generation, and an
        in-memory matrix that disagrees with the stored vectors.
        """
        conn = self.conn
        checks = {
            "chunks of files that are not in the index": "SELECT COUNT(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.id = c.file_id)",
            "vectors of chunk texts that are not in the index": "SELECT COUNT(*) FROM embeddings e WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.hash = e.hash)",
            "vectors of generations that do not exist": "SELECT COUNT(*) FROM embeddings e WHERE NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = e.gen)",
            "duplicated chunks": "SELECT COUNT(*) FROM (SELECT 1 FROM chunks GROUP BY file_id, start_line, end_line, hash "
            "HAVING COUNT(*) > 1)",
            "lexical entries without a chunk": "SELECT COUNT(*) FROM chunks_fts t WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = t.rowid)",
            "chunks without a lexical entry": "SELECT COUNT(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM chunks_fts t WHERE t.rowid = c.id)",
            "active generations beyond one": "SELECT MAX(COUNT(*) - 1, 0) FROM generations WHERE state = 'active'",
        }
        problems = []
        for what, sql in checks.items():
            n = conn.execute(sql).fetchone()[0]
            if n:
                problems.append(f"{n} {what}")
        gen = self.active_generation()
        if gen is not None:
            stored = self.generation_counts(gen.id)
            loaded = self.matrix(gen).n
            if stored != loaded:
                problems.append(
                    f"generation {gen.id} has {stored} stored vectors but {loaded} in memory"
                )
        return problems

    def cleanup_leftovers(self) -> None:
        """Remove temp files a crash may have left."""
        for path in self.dir.glob("*.tmp"):
            path.unlink(missing_ok=True)

    def generation_counts(self, gen_id: int) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM embeddings WHERE gen = ?", (gen_id,)
        ).fetchone()[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


COMMON_TERM_SHARE = 0.1
"""A word in more than this share of all chunks is too common to search by."""
MAX_LEXICAL_TERMS = 8

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9]*[a-z][A-Z][A-Za-z0-9]*")


def lexical_terms(text: str) -> str:
    """Text for FTS: the original, plus camelCase identifiers split into words
    (the tokenizer already splits snake_case at the underscore)."""
    extra = {" ".join(_CAMEL.split(m)) for m in _IDENT.findall(text)}
    return text + ("\n" + "\n".join(sorted(extra)) if extra else "")


_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = frozenset(
    "a an and are as at be by can do does for from how i if in into is it its of on or our "
    "that the their them then there these this to was we what when where which who why will "
    "with you your".split()
)


def query_words(query: str) -> list[str]:
    """The query's meaningful words, lower-cased, camelCase split, stop words dropped."""
    words: list[str] = []
    for raw in _WORD.findall(query):
        for word in _CAMEL.split(raw):
            w = word.lower()
            if w and w not in _STOP and w not in words:
                words.append(w)
    return words


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression ORing the query's meaningful words.

    Quoting each word keeps user text from being read as FTS syntax.
    """
    return " OR ".join(f'"{w}"' for w in query_words(query))
