"""Which kind of vector index answers a generation, and where each kind's files go.

`vector_index = "exact"` searches every vector (the float16 matrix of
`vectors.py`); `"hnsw"` uses the approximate graph of `hnsw.py`; `"auto"`
(the default) is exact up to `HNSW_MIN_VECTORS` and HNSW from there, chosen
when a generation's vectors are loaded and checked again whenever the store
saves them, so an index that grows past the threshold switches at its next
save. Both kinds share the snapshot rules: temp and rename, drift replayed
from SQLite, rebuilt with a warning when damaged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .hnsw import HnswFiles, HnswVectors
from .vectors import Snapshots, StoredVectors, VectorIndex, VectorMatrix

log = logging.getLogger(__name__)

HNSW_MIN_VECTORS = 200_000
"""From here on `auto` uses HNSW. On a quiet day on this 2-core machine an exact
query over 10^5 vectors took about 10 ms (bench/results/search_latency.json),
so 2*10^5 costs about 20 ms, what a search's dense side may spend; HNSW
answers in about a millisecond there (bench/results/ann_scale.json) but needs
a build of minutes, twice the memory and gives up a little recall, which
only pays once the linear scan is the slow part."""


def wanted_kind(setting: str, count: int) -> str:
    """The kind of index a generation of `count` vectors gets under `setting`."""
    if setting == "auto":
        return "hnsw" if count >= HNSW_MIN_VECTORS else "exact"
    return setting


class VectorFiles:
    """The vector files of one index folder, of either kind, one set per generation."""

    def __init__(self, folder: Path, warnings: list[str], setting: str = "auto"):
        self.setting = setting
        self._exact = Snapshots(folder, warnings)
        self._hnsw = HnswFiles(folder, warnings)

    def _files(self, kind: str) -> Snapshots:
        return self._hnsw if kind == "hnsw" else self._exact

    def load(self, gen_id: int, dim: int, stored: StoredVectors, count: int) -> VectorIndex:
        """`gen_id`'s vectors as the kind its `count` calls for, from its file when current."""
        kind = wanted_kind(self.setting, count)
        return self._files(kind).load(gen_id, dim, stored)

    def refit(self, index: VectorIndex) -> VectorIndex | None:
        """`index` as the other kind when its size now calls for it (auto crossed the
        threshold, or the setting changed); None when it already fits."""
        kind = wanted_kind(self.setting, index.n)
        if kind == index.kind:
            return None
        log.info("vector index: %s -> %s at %d vectors", index.kind, kind, index.n)
        ids, data = index.snapshot()
        if kind == "hnsw":
            return HnswVectors.build(index.dim, ids, data, changes=len(ids))
        return VectorMatrix(index.dim, ids, data, changes=len(ids))

    def due(self, gen_id: int, index: VectorIndex) -> bool:
        return self._files(index.kind).due(gen_id, index)

    def write(self, gen_id: int, index: VectorIndex) -> None:
        """Save `index` as `gen_id`'s file and drop the other kind's, now stale."""
        self._files(index.kind).write(gen_id, index)  # type: ignore[arg-type]
        other = self._exact if index.kind == "hnsw" else self._hnsw
        for path in other.paths(gen_id):
            path.unlink(missing_ok=True)

    def remove(self, gen_id: int) -> None:
        self._exact.remove(gen_id)  # the glob covers both kinds' files

    def remove_except(self, live: set[int]) -> None:
        self._exact.remove_except(live)
