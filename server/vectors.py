"""Vectors in memory, and the snapshot file that makes a restart fast.

Searching uses an in-memory float16 matrix of the active generation,
brute-forced by usearch's SIMD kernels (about 10 ms for 10^5 vectors on two
cores, 768 bytes a vector). The matrix is saved to `vectors-g<N>.npy` with a
card `vectors-g<N>.json` (each written to a temporary name, then renamed), so
a restart reads one file instead of every blob in SQLite. SQLite stays the
source of truth: rows it gained or lost since the file was written are
replayed from it on load, and a damaged file is rebuilt from it. Reading the
blobs is the store's job (`StoredVectors`); this module never runs SQL.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

SNAPSHOT_SLACK = 1000
"""Vectors the snapshot may lag behind SQLite before it is rewritten."""
SNAPSHOT_PREFIX = "vectors-"


class VectorIndex(Protocol):
    """What search and the store need of a generation's in-memory vectors, exact or
    approximate: keyed by embedding id, changed in place, searched by cosine."""

    kind: str
    dim: int
    changes: int
    """Rows the index differs from its file by (see `VectorMatrix.changes`)."""

    @property
    def n(self) -> int: ...

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None: ...

    def remove(self, ids: Iterable[int]) -> None: ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float16 rows), a copy."""
        ...


class VectorMatrix:
    """The active generation's vectors in memory, searchable by brute force.

    Rows are appended and removed in place (swap with the last row), so a batch
    costs time proportional to its own size, not to the index.
    """

    kind = "exact"

    def __init__(
        self,
        dim: int,
        ids: np.ndarray | None = None,
        data: np.ndarray | None = None,
        *,
        changes: int = 0,
    ):
        self.dim = dim
        n = 0 if ids is None else len(ids)
        capacity = max(1024, n)
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._data = np.zeros((capacity, dim), dtype=np.float16)
        if ids is not None and n:
            self._ids[:n] = ids
            self._data[:n] = data
        self._row = {int(i): r for r, i in enumerate(self._ids[:n])}
        self._n = n
        self.changes = changes
        """Rows this matrix differs from its snapshot file by: those it was loaded
        without (replayed from SQLite) plus those added or removed since."""
        self.lock = threading.Lock()

    @property
    def n(self) -> int:
        return self._n

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        with self.lock:
            for vid, vec in zip(ids, vectors, strict=True):
                vid = int(vid)
                row = self._row.get(vid)
                if row is None:
                    if self._n == len(self._ids):
                        self._grow()
                    row = self._n
                    self._n += 1
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
                last = self._n - 1
                if row != last:
                    moved = int(self._ids[last])
                    self._ids[row] = moved
                    self._data[row] = self._data[last]
                    self._row[moved] = row
                self._n -= 1
                self.changes += 1

    def _grow(self) -> None:
        capacity = len(self._ids) * 2
        ids = np.zeros(capacity, dtype=np.int64)
        data = np.zeros((capacity, self.dim), dtype=np.float16)
        ids[: self._n] = self._ids[: self._n]
        data[: self._n] = self._data[: self._n]
        self._ids, self._data = ids, data

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (embedding id, cosine similarity), best first."""
        from usearch.index import MetricKind, search

        with self.lock:
            if self._n == 0:
                return []
            k = min(k, self._n)
            q = np.asarray(query, dtype=np.float16).reshape(1, -1)
            matches = search(self._data[: self._n], q, k, MetricKind.Cos, exact=True)
            rows = np.asarray(matches.keys).reshape(-1)[:k]
            dists = np.asarray(matches.distances).reshape(-1)[:k]
            return [(int(self._ids[r]), float(1.0 - d)) for r, d in zip(rows, dists, strict=True)]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            return self._ids[: self._n].copy(), self._data[: self._n].copy()


class StoredVectors(Protocol):
    """Where a generation's vectors really live (the store's SQL side)."""

    def vector_ids(self, gen_id: int) -> np.ndarray:
        """Ids of every stored vector of `gen_id`."""
        ...

    def read_vectors(
        self, gen_id: int, dim: int, only: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float16 rows) of `gen_id`'s vectors, or of the ids `only`."""
        ...


@dataclass(frozen=True)
class Drift:
    """How SQLite moved on from a vector file: what to drop from it and what to add."""

    gone: np.ndarray
    """A mask over the file's ids: True where SQLite no longer has the vector."""
    new_ids: np.ndarray
    new_data: np.ndarray
    """float16 rows of `new_ids`, read from their blobs."""

    @property
    def changes(self) -> int:
        return int(self.gone.sum()) + len(self.new_ids)


def replay(stored: StoredVectors, gen_id: int, dim: int, file_ids: np.ndarray) -> Drift:
    """Compare a vector file's ids with SQLite's (the source of truth) and read what it lacks."""
    current = stored.vector_ids(gen_id)
    gone = ~np.isin(file_ids, current)
    missing = np.setdiff1d(current, file_ids[~gone], assume_unique=True)
    if len(missing):
        new_ids, new_data = stored.read_vectors(gen_id, dim, only=missing)
    else:
        new_ids, new_data = missing, np.zeros((0, dim), dtype=np.float16)
    return Drift(gone, new_ids, new_data)


class Snapshots:
    """The vector files of one index folder, one pair per generation."""

    def __init__(self, folder: Path, warnings: list[str]):
        self.folder = folder
        self.warnings = warnings
        """The store's warnings list: a damaged file is reported there."""

    def paths(self, gen_id: int) -> tuple[Path, Path]:
        """(data, card) of `gen_id`'s snapshot."""
        return (
            self.folder / f"{SNAPSHOT_PREFIX}g{gen_id}.npy",
            self.folder / f"{SNAPSHOT_PREFIX}g{gen_id}.json",
        )

    def load(self, gen_id: int, dim: int, stored: StoredVectors) -> VectorMatrix:
        """The snapshot, brought up to date with SQLite: rows deleted since it was
        written are dropped and rows added since are read from their blobs. A
        small edit therefore never forces a full rewrite of the vector file."""
        snap = self.read(gen_id, dim)
        if snap is None:
            ids, data = stored.read_vectors(gen_id, dim)
            return VectorMatrix(dim, ids, data, changes=len(ids))
        snap_ids, snap_data = snap
        drift = replay(stored, gen_id, dim, snap_ids)
        keep = ~drift.gone
        ids = np.concatenate([snap_ids[keep], drift.new_ids])
        data = np.concatenate([snap_data[keep], drift.new_data])
        return VectorMatrix(dim, ids, data, changes=drift.changes)

    def read(self, gen_id: int, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(ids, rows) from `gen_id`'s file; None when there is none or it is damaged."""
        data_path, info_path = self.paths(gen_id)
        if not info_path.exists() or not data_path.exists():
            return None
        try:
            info = json.loads(info_path.read_text())
            with open(data_path, "rb") as fh:
                ids = np.load(fh, allow_pickle=False)
                data = np.load(fh, allow_pickle=False)
            if ids.shape != (info["count"],) or data.shape != (info["count"], dim):
                raise ValueError(f"shape {data.shape} does not match its card")
            return ids.astype(np.int64), data.astype(np.float16)
        except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError) as exc:
            msg = f"vector file {data_path.name} is damaged ({exc}); rebuilt it from the database"
            self.warnings.append(msg)
            log.warning(msg)
            return None

    def due(self, gen_id: int, matrix: VectorIndex) -> bool:
        """Whether `matrix` has drifted from its file by more than a few percent.

        Small drifts are cheaper to replay from SQLite at the next start than to
        rewrite tens of megabytes after every edit.
        """
        _, info_path = self.paths(gen_id)
        return not info_path.exists() or matrix.changes > max(SNAPSHOT_SLACK, matrix.n // 20)

    def write(self, gen_id: int, matrix: VectorMatrix) -> None:
        """Write `matrix` as `gen_id`'s snapshot (temp + rename, private files)."""
        data_path, info_path = self.paths(gen_id)
        ids, data = matrix.snapshot()
        tmp = data_path.with_suffix(".npy.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            np.save(fh, ids, allow_pickle=False)
            np.save(fh, data, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        info_tmp = info_path.with_suffix(".json.tmp")
        info_tmp.write_text(json.dumps({"count": len(ids), "dim": matrix.dim}))
        os.chmod(info_tmp, 0o600)
        # Data first, then its card: a crash in between leaves a card whose count
        # disagrees with the data, which is detected and rebuilt from SQLite.
        os.replace(tmp, data_path)
        os.replace(info_tmp, info_path)
        matrix.changes = 0

    def remove(self, gen_id: int) -> None:
        for path in self.folder.glob(f"{SNAPSHOT_PREFIX}g{gen_id}.*"):
            path.unlink(missing_ok=True)

    def remove_except(self, live: set[int]) -> None:
        """Delete the files of every generation not in `live`."""
        for path in self.folder.glob(f"{SNAPSHOT_PREFIX}g*.*"):
            num = path.name.removeprefix(f"{SNAPSHOT_PREFIX}g").split(".", 1)[0]
            if num.isdigit() and int(num) not in live:
                path.unlink(missing_ok=True)
