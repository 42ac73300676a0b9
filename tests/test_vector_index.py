"""The approximate (HNSW) vector index: it agrees with exact search, follows
edits in place, survives restarts through its file, and is rebuilt when the
file is damaged. Vectors are clustered random ones, like code embeddings
(many near neighbours), not from a model."""

from __future__ import annotations

import numpy as np
import pytest
from kenning.server import vector_index
from kenning.server.store import Store

DIM = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 50, DIM))
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def filled(folder, setting: str, n: int = 6000):
    store = Store.open(folder)
    store.use_vector_index(setting)
    gen = store.create_generation("m@base", "m", "m", DIM, active=True)
    vectors = clustered(n)
    hashes = [f"h{i}" for i in range(n)]
    for start in range(0, n, 1000):  # batches, as the indexer writes them
        store.add_embeddings(gen.id, hashes[start : start + 1000], vectors[start : start + 1000])
    return store, gen, vectors


def exact_top(store: Store, gen, query: np.ndarray, k: int) -> list[int]:
    ids, data = store.read_vectors(gen.id, DIM)
    sims = data.astype(np.float32) @ query
    return [int(ids[i]) for i in np.argsort(-sims)[:k]]


def recall_at_10(store: Store, gen, queries: np.ndarray) -> float:
    hits = 0
    for q in queries:
        approx = {eid for eid, _ in store.dense_search(gen, q, 10)}
        hits += len(approx & set(exact_top(store, gen, q, 10)))
    return hits / (10 * len(queries))


def test_hnsw_agrees_with_exact_search(tmp_path):
    store, gen, _ = filled(tmp_path, "hnsw")
    assert store.matrix(gen).kind == "hnsw"
    queries = clustered(200, seed=1)
    assert recall_at_10(store, gen, queries) >= 0.98


def test_hnsw_follows_additions_and_removals_in_place(tmp_path):
    store, gen, vectors = filled(tmp_path, "hnsw", n=2000)
    store.matrix(gen)  # loaded before the edits, as in the daemon
    gone = store.conn.execute("SELECT id FROM embeddings WHERE hash = 'h7'").fetchone()[0]
    store._forget_vectors([(gen.id, gone)])
    store.conn.execute("DELETE FROM embeddings WHERE id = ?", (gone,))
    store.add_embeddings(gen.id, ["fresh"], -vectors[7:8])
    found = store.dense_search(gen, -vectors[7], 3)
    fresh = store.conn.execute("SELECT id FROM embeddings WHERE hash = 'fresh'").fetchone()[0]
    assert found[0][0] == fresh and found[0][1] == pytest.approx(1.0, abs=1e-2)
    assert gone not in {eid for eid, _ in store.dense_search(gen, vectors[7], 10)}
    assert store.matrix(gen).n == store.generation_counts(gen.id) == 2000


def test_hnsw_file_is_replayed_from_the_database_after_a_restart(tmp_path):
    store, gen, vectors = filled(tmp_path, "hnsw", n=2000)
    store.save_snapshot(force=True)
    assert (tmp_path / f"vectors-g{gen.id}.usearch").exists()
    # Written after the file: the next start must replay it from SQLite.
    store.add_embeddings(gen.id, ["late"], -vectors[3:4])
    store.close()

    reopened = Store.open(tmp_path)
    reopened.use_vector_index("hnsw")
    index = reopened.matrix(gen)
    assert index.kind == "hnsw" and index.n == 2001 and not reopened.warnings
    assert index.changes == 1  # only the drift, not a rebuild
    late = reopened.conn.execute("SELECT id FROM embeddings WHERE hash = 'late'").fetchone()[0]
    assert reopened.dense_search(gen, -vectors[3], 1)[0][0] == late


def test_a_truncated_hnsw_file_is_rebuilt_with_a_warning(tmp_path):
    store, gen, vectors = filled(tmp_path, "hnsw", n=2000)
    store.save_snapshot(force=True)
    store.close()
    data = tmp_path / f"vectors-g{gen.id}.usearch"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])

    reopened = Store.open(tmp_path)
    reopened.use_vector_index("hnsw")
    assert reopened.matrix(gen).n == 2000
    assert any("damaged" in w and data.name in w for w in reopened.warnings)
    assert reopened.dense_search(gen, vectors[5], 1)[0][1] == pytest.approx(1.0, abs=1e-2)
    assert reopened.save_snapshot()  # the rebuilt index is due to be written again


def test_auto_switches_to_hnsw_when_the_index_grows_past_the_threshold(tmp_path, monkeypatch):
    monkeypatch.setattr(vector_index, "HNSW_MIN_VECTORS", 1500)
    store, gen, vectors = filled(tmp_path, "auto", n=1000)
    assert store.matrix(gen).kind == "exact"
    store.add_embeddings(gen.id, [f"more{i}" for i in range(1000)], clustered(1000, seed=2))
    assert store.save_snapshot()
    assert store.matrix(gen).kind == "hnsw" and store.matrix(gen).n == 2000
    assert (tmp_path / f"vectors-g{gen.id}.usearch").exists()
    assert not (tmp_path / f"vectors-g{gen.id}.npy").exists()  # the stale kind is gone
    assert store.dense_search(gen, vectors[9], 1)[0][1] == pytest.approx(1.0, abs=1e-2)


def test_search_through_the_command_line_with_hnsw_matches_exact(core_workspace, tmp_path):
    from kenning.server.engine import Engine

    results = {}
    for setting in ("exact", "hnsw"):
        overrides = {"index_dir": str(tmp_path / setting), "vector_index": setting}
        with Engine.open(core_workspace, overrides) as engine:
            engine.index()
            assert engine.store.matrix(engine.serving_generation()).kind == setting
            results[setting] = [
                (r.path, r.start_line)
                for r in engine.search("parse the configuration file", mode="semantic")
            ]
    assert results["hnsw"] == results["exact"]
