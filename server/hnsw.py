"""An approximate (HNSW) vector index for generations too large to search exactly.

Above a few hundred thousand vectors a brute-force scan costs tens of
milliseconds per query on two cores and grows linearly; usearch's HNSW graph
answers in about a millisecond, at the price of a build and of a recall just
under 1. `vector_index` picks it (see `vector_index.py`). Vectors are keyed by
the same embedding ids as the exact matrix, added and removed in place.

Its file `vectors-g<N>.usearch` with card `vectors-g<N>.usearch.json` follows
the snapshot's rules (`vectors.Snapshots`): written to a temporary name and
renamed, replayed from SQLite on load (drift dropped and added), rewritten
when it has drifted by more than a few percent, and rebuilt from SQLite with
a warning when it is missing, truncated or disagrees with its card.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .vectors import SNAPSHOT_PREFIX, Snapshots, StoredVectors, replay

log = logging.getLogger(__name__)

SCALAR = "f16"
"""Stored precision: f16 keeps recall@10 at exact search's level; i8 halves the
vectors again but lost recall on real code vectors (bench/RESULTS.md)."""
CONNECTIVITY = 16
"""Graph edges per node: usearch's default; more costs memory and build time."""
EXPANSION_ADD = 128
EXPANSION_SEARCH = 512
"""Candidates kept while searching. Measured recall@10 against exact search
(bench/ann_scale.py, real vectors with noise): at 10^5 vectors 0.945 with 128,
0.975 with 256, 0.992 with 512, and recall falls as the set grows; `auto`
uses HNSW only from 2*10^5 vectors on, so the wide setting."""


def empty_index(dim: int):
    """A usearch HNSW index with Kenning's parameters (cosine, `SCALAR` vectors)."""
    from usearch.index import Index

    return Index(
        ndim=dim,
        metric="cos",
        dtype=SCALAR,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


class HnswVectors:
    """A generation's vectors in a usearch HNSW graph, keyed by embedding id."""

    kind = "hnsw"

    def __init__(self, dim: int, index=None, *, changes: int = 0):
        self.dim = dim
        self._index = index or empty_index(dim)
        self.changes = changes
        self.lock = threading.Lock()

    @property
    def n(self) -> int:
        return len(self._index)

    @property
    def index(self):
        """The usearch index (for saving it)."""
        return self._index

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(ids, dtype=np.uint64)
        if not len(keys):
            return
        with self.lock:
            # A key already present gets its new vector: remove, then add.
            present = np.asarray(self._index.contains(keys), dtype=bool).reshape(-1)
            if present.any():
                self._index.remove(keys[present])
            self._index.add(keys, np.asarray(vectors, dtype=np.float16))
            self.changes += int((~present).sum())

    def remove(self, ids: Iterable[int]) -> None:
        keys = np.fromiter((int(i) for i in ids), dtype=np.uint64)
        if not len(keys):
            return
        with self.lock:
            self.changes += int(self._index.remove(keys))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (embedding id, cosine similarity), best first (approximate)."""
        with self.lock:
            if not len(self._index):
                return []
            q = np.asarray(query, dtype=np.float16).reshape(-1)
            matches = self._index.search(q, min(k, len(self._index)))
            keys = np.asarray(matches.keys).reshape(-1)
            dists = np.asarray(matches.distances).reshape(-1)
            return [(int(key), float(1.0 - d)) for key, d in zip(keys, dists, strict=True)]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            keys = np.asarray(self._index.keys, dtype=np.uint64)
            data = np.asarray(self._index.get(keys), dtype=np.float16).reshape(len(keys), self.dim)
            return keys.astype(np.int64), data

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, data: np.ndarray, *, changes: int) -> HnswVectors:
        """An index over `ids`/`data` (float16 rows), built on every core."""
        index = cls(dim, changes=changes)
        if len(ids):
            index.index.add(np.asarray(ids, dtype=np.uint64), np.asarray(data, dtype=np.float16))
        return index


class HnswFiles(Snapshots):
    """The HNSW files of one index folder, one pair per generation."""

    def paths(self, gen_id: int) -> tuple[Path, Path]:
        data = self.folder / f"{SNAPSHOT_PREFIX}g{gen_id}.usearch"
        return data, data.with_name(data.name + ".json")

    def load(self, gen_id: int, dim: int, stored: StoredVectors) -> HnswVectors:  # type: ignore[override]
        """The saved graph brought up to date with SQLite, or one built from SQLite."""
        loaded = self.read_index(gen_id, dim)
        if loaded is None:
            ids, data = stored.read_vectors(gen_id, dim)
            log.info("building the HNSW index of generation %d (%d vectors)", gen_id, len(ids))
            return HnswVectors.build(dim, ids, data, changes=len(ids))
        file_ids = np.asarray(loaded.keys, dtype=np.uint64).astype(np.int64)
        drift = replay(stored, gen_id, dim, file_ids)
        vectors = HnswVectors(dim, loaded)
        vectors.remove(file_ids[drift.gone])
        vectors.add(drift.new_ids, drift.new_data)
        vectors.changes = drift.changes
        return vectors

    def read_index(self, gen_id: int, dim: int):
        """The usearch index in `gen_id`'s file; None when there is none or it is damaged."""
        data_path, info_path = self.paths(gen_id)
        if not info_path.exists() or not data_path.exists():
            return None
        try:
            info = json.loads(info_path.read_text())
            if data_path.stat().st_size != info["bytes"]:
                raise ValueError(f"{data_path.stat().st_size} bytes, its card says {info['bytes']}")
            index = empty_index(dim)
            index.load(str(data_path))
            if len(index) != info["count"] or index.ndim != dim:
                raise ValueError(f"{len(index)} vectors of {index.ndim}, its card says otherwise")
            return index
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as exc:
            msg = f"vector file {data_path.name} is damaged ({exc}); rebuilt it from the database"
            self.warnings.append(msg)
            log.warning(msg)
            return None

    def write(self, gen_id: int, matrix) -> None:
        """Save `matrix` (an HnswVectors) as `gen_id`'s file (temp + rename, private)."""
        data_path, info_path = self.paths(gen_id)
        tmp = data_path.with_name(data_path.name + ".tmp")
        with matrix.lock:
            matrix.index.save(str(tmp))
            count = len(matrix.index)
            matrix.changes = 0
        os.chmod(tmp, 0o600)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        info_tmp = info_path.with_name(info_path.name + ".tmp")
        info_tmp.write_text(
            json.dumps({"count": count, "dim": matrix.dim, "bytes": tmp.stat().st_size})
        )
        os.chmod(info_tmp, 0o600)
        os.replace(tmp, data_path)
        os.replace(info_tmp, info_path)
