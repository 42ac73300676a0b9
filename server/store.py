"""The index's contents: files, chunks, their lexical entries, generations and
vectors, in one SQLite database.

SQLite is the one source of truth. Every batch the indexer writes is one
transaction, so after a crash the store either has a batch or it does not.
Vectors live in SQLite as float16 blobs, one row per distinct chunk text and
model generation; searches read them from an in-memory matrix that a snapshot
file fills fast at start.

A generation is one model's set of vectors. Re-embedding for a new model fills
a new generation while the active one keeps answering; activation is a single
row update.

The store is several modules, one job each; only they run SQL:

- `database`: the SQLite file: schema, opening, corruption, per-thread connections
  (`Store` extends its `Database`); `markers`: which processes have the index open.
- `store` (here): files, chunks, generations and vectors, and their consistency.
- `fts`: the lexical entries, bm25 search over them and rebuilding them when
  their format changes; words come from `lexical`.
- `vectors`: the in-memory matrix and its snapshot file; the blobs it replays
  are read here.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from . import fts
from .database import DB_NAME, Database, StoreError
from .ranking import PROSE_LANGUAGES
from .vector_index import VectorFiles
from .vectors import VectorIndex, replay

log = logging.getLogger(__name__)


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
class ChunkVectorKey:
    """A chunk with what finds its vector: the hash of its text, and whether it gets one."""

    chunk: StoredChunk
    hash: str
    embeddable: bool


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


@dataclass(frozen=True)
class IndexTotals:
    """How much the index holds."""

    files: int
    chunks: int
    pending: int
    """Distinct chunk texts still waiting for a vector in the generation asked
    about; 0 when none was."""


class Store(Database):
    """One workspace's index. Safe for one writer thread plus readers.

    Each thread gets its own SQLite connection (WAL lets readers run while the
    writer commits); the vector matrix has its own lock.
    """

    @classmethod
    def open(cls, index_dir: Path) -> Self:
        """Open or create the index (see `Database.open`), its lexical rows
        rebuilt first when an earlier version wrote them in another format."""
        store = super().open(index_dir)
        store._bring_lexical_up_to_date()
        return store

    def _bring_lexical_up_to_date(self) -> None:
        conn = self.conn
        if self.read_only:
            if fts.format_of(conn) != fts.LEXICAL_FORMAT:
                self.warnings.append(
                    "the lexical index was written by an older Kenning and this folder is "
                    "read-only, so it cannot be rebuilt: lexical results are weaker until "
                    "Kenning can write here"
                )
            return
        with self._write_lock, conn:
            fts.stamp_new_index(conn)
        try:
            rewritten = fts.rebuild_if_stale(conn, self._write_lock)
        except sqlite3.OperationalError as exc:  # a full disk, say: the old rows still answer
            self.warnings.append(
                f"could not rebuild the lexical index in the current format ({exc}); "
                "lexical results are weaker until it is rebuilt on the next open"
            )
            return
        if rewritten:
            log.info("rebuilt the lexical rows of %d chunks", rewritten)

    def __init__(self, index_dir: Path):
        super().__init__(index_dir)
        self._matrix: VectorIndex | None = None
        self._matrix_gen: int | None = None
        self._retired: tuple[int, VectorIndex] | None = None
        """The matrix of the generation the last switch retired, until it is dropped."""
        self._snapshots = VectorFiles(index_dir, self.warnings)
        self._caught_up: tuple[int, int, int] | None = None
        """The (count, max id, id sum) of the active vectors `catch_up` last saw."""

    def use_vector_index(self, setting: str) -> None:
        """`vector_index`: "auto", "exact" or "hnsw" (see `vector_index.py`)."""
        self._snapshots.setting = setting

    @property
    def vector_index(self) -> str:
        return self._snapshots.setting

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
                    fts.remove_entries(conn, [cid for cid, _ in chunk_rows])
                    conn.execute("DELETE FROM chunks WHERE file_id = ?", (row[0],))
                    if path in removed:
                        conn.execute("DELETE FROM files WHERE id = ?", (row[0],))
                for u in updates:
                    conn.execute(
                        "INSERT INTO files(path, size, mtime_ns, content_hash, language) "
                        "VALUES (?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET size=excluded.size, "
                        "mtime_ns=excluded.mtime_ns, content_hash=excluded.content_hash, "
                        "language=excluded.language",
                        (u.path, u.size, u.mtime_ns, u.content_hash, u.language),
                    )
                    if u.chunks is None:
                        continue  # touched but unchanged: metadata only
                    file_id = conn.execute(
                        "SELECT id FROM files WHERE path = ?", (u.path,)
                    ).fetchone()[0]
                    for c in u.chunks:
                        cur = conn.execute(
                            "INSERT INTO chunks(file_id, start_line, end_line, symbol, kind, "
                            "language, hash, embeddable, text) VALUES (?,?,?,?,?,?,?,?,?)",
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
                        chunk_id = cur.lastrowid
                        assert chunk_id is not None  # every INSERT sets it
                        fts.add_entry(conn, chunk_id, u.path, c.symbol or "", c.text)
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

    def counts(self, gen: int | None = None) -> IndexTotals:
        """Files, chunks, and chunk texts waiting for a vector in `gen` (0 without one)."""
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
        return IndexTotals(files, chunks, pending)

    def embeddable_texts(self) -> int:
        """Distinct chunk texts that get a vector: all a first generation has to embed."""
        return self.conn.execute(
            "SELECT COUNT(DISTINCT hash) FROM chunks WHERE embeddable = 1"
        ).fetchone()[0]

    def pending_texts(
        self,
        gen: int,
        limit: int,
        paths: Sequence[str] | None = None,
        *,
        first: Sequence[str] = (),
        recent_since_ns: int = 0,
    ) -> list[tuple[str, str]]:
        """Up to `limit` (hash, text the model should read) still without a vector in `gen`,
        only from the files `paths` when given (a saved file goes first).

        The most useful first, so that a partial index covers what people look at: the
        files in `first` (open in the editor), then files modified since
        `recent_since_ns`, then definitions before line windows, code before prose, and
        newer files before older ones."""
        only = ""
        args: list = [gen]
        if paths is not None:
            only = f"AND f.path IN ({','.join('?' * len(paths))}) "
            args.extend(paths)
        opened = f"f.path IN ({','.join('?' * len(first))})" if first else "0"
        prose = ",".join(f"'{language}'" for language in sorted(PROSE_LANGUAGES))
        order = (
            f"MAX({opened}) DESC, MAX(f.mtime_ns >= ?) DESC, MIN(c.kind = 'window'), "
            f"MIN(c.language IN ({prose})), MAX(f.mtime_ns) DESC"
        )
        rows = self.conn.execute(
            "SELECT c.hash, f.path, c.symbol, c.text "
            "FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.embeddable = 1 AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.gen = ? AND e.hash = c.hash) "
            f"{only}GROUP BY c.hash ORDER BY {order} LIMIT ?",
            (*args, *first, recent_since_ns, limit),
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

    def file_chunks(self, path: str) -> list[ChunkVectorKey] | None:
        """The chunks of one file in line order; None when the file is not in the index."""
        row = self.conn.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            return None
        rows = self.conn.execute(
            "SELECT c.id, ?, c.start_line, c.end_line, c.symbol, c.kind, c.language, c.text, "
            "c.hash, c.embeddable FROM chunks c WHERE c.file_id = ? ORDER BY c.start_line",
            (path, row[0]),
        )
        return [ChunkVectorKey(StoredChunk(*r[:8]), r[8], bool(r[9])) for r in rows]

    def vector_of(self, gen: Generation, text_hash: str) -> np.ndarray | None:
        """The stored vector of a chunk text in `gen`; None when it has none yet."""
        row = self.conn.execute(
            "SELECT vec FROM embeddings WHERE gen = ? AND hash = ?", (gen.id, text_hash)
        ).fetchone()
        if row is None or len(row[0]) != gen.dim * 2:
            return None
        return np.frombuffer(row[0], dtype=np.float16)

    def chunks_for_embeddings(self, embedding_ids: Sequence[int]) -> dict[int, list[int]]:
        """Chunk ids sharing each embedding (identical text is embedded once)."""
        if not embedding_ids:
            return {}
        marks = ",".join("?" * len(embedding_ids))
        rows = self.conn.execute(
            "SELECT e.id, c.id FROM embeddings e JOIN chunks c ON c.hash = e.hash "
            f"WHERE e.id IN ({marks})",
            list(embedding_ids),
        )
        out: dict[int, list[int]] = {}
        for eid, cid in rows:
            out.setdefault(eid, []).append(cid)
        return out

    def lexical_search(
        self, terms: list[str], k: int, weights: tuple[float, float, float], budget: int
    ) -> list[tuple[int, float]]:
        """Top-k (chunk id, bm25 relevance) of chunks holding any of `terms`
        (`lexical.query_terms`), `weights` for the path, symbol and body; the
        commonest terms are left out past `budget` rows of posting lists."""
        return fts.search(self.conn, terms, k, weights, budget)

    def definition_search(self, terms: list[str], k: int) -> list[int]:
        """Up to k chunks whose symbol holds every one of `terms`."""
        return fts.symbol_search(self.conn, terms, k)

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
                "INSERT INTO generations(model, identity, location, dim, state, created_at, "
                "activated_at) VALUES (?,?,?,?,?,?,?)",
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
        assert gen_id is not None  # an INSERT always sets it
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
            self._snapshots.remove(gen_id)

    def remove_orphan_snapshots(self) -> None:
        """Delete vector files of generations that no longer exist."""
        self._snapshots.remove_except({g.id for g in self.generations()})

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

    def matrix(self, gen: Generation) -> VectorIndex:
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

    def catch_up(self) -> int:
        """Take in the vectors another process wrote (or deleted) since the in-memory
        matrix was loaded: what a reader beside the index's writer calls before it
        searches. Cheap when nothing changed (one aggregate query); returns rows changed."""
        gen = self.active_generation()
        if gen is None or self._matrix is None or self._matrix_gen != gen.id:
            return 0  # the next search loads the active generation afresh
        seen = self.conn.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(id), 0) FROM embeddings "
            "WHERE gen = ?",
            (gen.id,),
        ).fetchone()
        if seen == self._caught_up:
            return 0
        with self._write_lock:
            matrix = self._matrix
            file_ids, _ = matrix.snapshot()
            drift = replay(self, gen.id, gen.dim, file_ids)
            if drift.gone.any():
                matrix.remove(int(i) for i in file_ids[drift.gone])
            if len(drift.new_ids):
                matrix.add([int(i) for i in drift.new_ids], drift.new_data)
        self._caught_up = seen
        return drift.changes

    def _load_matrix(self, gen: Generation) -> VectorIndex:
        return self._snapshots.load(gen.id, gen.dim, self, self.generation_counts(gen.id))

    def vector_ids(self, gen_id: int) -> np.ndarray:
        """Ids of every stored vector of `gen_id`."""
        rows = self.conn.execute("SELECT id FROM embeddings WHERE gen = ?", (gen_id,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def read_vectors(
        self, gen_id: int, dim: int, only: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float16 rows) of `gen_id`'s stored vectors, or of the ids `only`."""
        width = dim * 2
        ids: list[int] = []
        blobs: list[bytes] = []
        bad: list[int] = []
        rows: Iterable[tuple[int, bytes]]
        if only is None:
            rows = self.conn.execute("SELECT id, vec FROM embeddings WHERE gen = ?", (gen_id,))
        else:
            wanted = [int(i) for i in only]
            rows = (
                row
                for start in range(0, len(wanted), 500)
                for row in self.conn.execute(
                    "SELECT id, vec FROM embeddings "
                    f"WHERE id IN ({','.join('?' * len(wanted[start : start + 500]))})",
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
        data = np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(ids), dim)
        return np.asarray(ids, dtype=np.int64), data

    def save_snapshot(self, *, force: bool = False) -> bool:
        """Write the active generation's matrix to its snapshot file when it has
        drifted from the file by more than a few percent (always with `force`);
        returns whether it wrote."""
        gen = self.active_generation()
        if gen is None or self.read_only:
            return False
        matrix = self.matrix(gen)
        with self._write_lock:  # no batch lands between the copy and the swap
            refit = self._snapshots.refit(matrix)
            if refit is not None and self._matrix is matrix:
                # Searches keep the old kind until this assignment.
                self._matrix, matrix, force = refit, refit, True
        if not force and not self._snapshots.due(gen.id, matrix):
            return False
        self._snapshots.write(gen.id, matrix)
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
            "chunks of files that are not in the index": "SELECT COUNT(*) FROM chunks c "
            "WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.id = c.file_id)",
            "vectors of chunk texts that are not in the index": "SELECT COUNT(*) FROM embeddings e "
            "WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.hash = e.hash)",
            "vectors of generations that do not exist": "SELECT COUNT(*) FROM embeddings e "
            "WHERE NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = e.gen)",
            "duplicated chunks": "SELECT COUNT(*) FROM (SELECT 1 FROM chunks "
            "GROUP BY file_id, start_line, end_line, hash HAVING COUNT(*) > 1)",
            "lexical entries without a chunk": "SELECT COUNT(*) FROM chunks_fts t "
            "WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = t.rowid)",
            "chunks without a lexical entry": "SELECT COUNT(*) FROM chunks c "
            "WHERE NOT EXISTS (SELECT 1 FROM chunks_fts t WHERE t.rowid = c.id)",
            "active generations beyond one": "SELECT MAX(COUNT(*) - 1, 0) FROM generations "
            "WHERE state = 'active'",
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


def read_index_vectors(index_dir: Path, identity: str) -> dict[str, np.ndarray] | None:
    """Chunk-text hash -> float32 vector of the generation built for `identity` (the
    active one first), read through a read-only connection; None when the index has none.

    The trainer reads the index this way, from its own process, while the
    daemon may be writing it (WAL lets a reader run beside the writer).
    """
    path = Path(index_dir) / DB_NAME
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(
            "SELECT id, dim FROM generations WHERE identity = ? AND state != 'retired' "
            "ORDER BY state = 'active' DESC, id DESC LIMIT 1",
            (identity,),
        ).fetchone()
        if row is None:
            return None
        gen_id, dim = row
        out = {}
        for chunk_hash, blob in conn.execute(
            "SELECT hash, vec FROM embeddings WHERE gen = ?", (gen_id,)
        ):
            if len(blob) == dim * 2:
                out[chunk_hash] = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
        return out
    except sqlite3.Error:
        return None
    finally:
        conn.close()
