"""The store on its own: transactions, shared vectors and recovery from damaged
files (its lexical side is in test_lexical.py). Vectors here are random, not
from a model."""

from pathlib import Path

import numpy as np
import pytest
from kenning.server.chunking import chunk_file
from kenning.server.store import FileUpdate, IndexTotals, Store


def update(path: str, text: str) -> FileUpdate:
    return FileUpdate(path, len(text), 1, str(hash(text)), "python", chunk_file(path, text))


def fill(store: Store, dim: int = 8):
    store.apply_files(
        [
            update("a.py", "def alpha():\n    return compute_alpha_value(1)\n"),
            update("b.py", "def beta():\n    return compute_beta_value(2)\n"),
        ]
    )
    gen = store.create_generation("m@base", "m", "m", dim, active=True)
    pending = store.pending_texts(gen.id, 100)
    vectors = np.random.default_rng(0).normal(size=(len(pending), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.add_embeddings(gen.id, [h for h, _ in pending], vectors)
    return gen, pending, vectors


def test_dense_search_finds_the_stored_vector(tmp_path):
    store = Store.open(tmp_path)
    gen, pending, vectors = fill(store)
    (eid, sim), *_ = store.dense_search(gen, vectors[1], 1)
    owner = store.chunks_for_embeddings([eid])[eid]
    assert sim == pytest.approx(1.0, abs=1e-2)
    expected_path = pending[1][1].split()[0]  # the context line starts with the path
    assert store.chunks_by_ids(owner)[owner[0]].path == expected_path


def test_removing_a_file_removes_its_chunks_and_vectors(tmp_path):
    store = Store.open(tmp_path)
    gen, _, _ = fill(store)
    store.apply_files([], removed=["a.py"])
    assert store.counts(gen.id) == IndexTotals(files=1, chunks=1, pending=0)
    assert store.generation_counts(gen.id) == 1
    assert len(store.matrix(gen).snapshot()[0]) == 1


def test_finding_a_removed_chunks_vectors_does_not_read_every_vector(tmp_path):
    # Vectors are looked up by chunk hash across generations when a file goes away;
    # a full scan per chunk made deleting a 56-file folder take a minute at 130k chunks.
    store = Store.open(tmp_path)
    fill(store)
    plan = store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT gen, id FROM embeddings WHERE hash = ?", ("h",)
    ).fetchall()
    assert any("USING INDEX" in row[-1] or "USING COVERING INDEX" in row[-1] for row in plan), plan


def test_identical_text_shares_one_vector(tmp_path):
    store = Store.open(tmp_path)
    gen, _, _ = fill(store)
    text = "def alpha():\n    return compute_alpha_value(1)\n"
    store.apply_files([FileUpdate("a.py", 1, 2, "other", "python", chunk_file("a.py", text))])
    assert store.pending_texts(gen.id, 10) == []  # same path, same text: nothing to embed


def test_snapshot_round_trip_and_damage_is_rebuilt(tmp_path):
    store = Store.open(tmp_path)
    gen, _, vectors = fill(store)
    store.save_snapshot()
    store.close()
    reopened = Store.open(tmp_path)
    assert len(reopened.matrix(gen).snapshot()[0]) == 2 and not reopened.warnings
    reopened.close()
    snap = tmp_path / f"vectors-g{gen.id}.npy"
    snap.write_bytes(snap.read_bytes()[:100])  # truncated
    damaged = Store.open(tmp_path)
    hits = damaged.dense_search(gen, vectors[0], 2)
    assert len(hits) == 2
    assert any("damaged" in w for w in damaged.warnings)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path: Path, damage):
    store = Store.open(tmp_path)
    fill(store)
    store.close()
    db = tmp_path / "index.sqlite"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"not a database" * 100)
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (tmp_path / extra).unlink(missing_ok=True)
    fresh = Store.open(tmp_path)
    assert fresh.counts() == IndexTotals(files=0, chunks=0, pending=0)
    assert any("corrupt" in w for w in fresh.warnings)
    assert list(tmp_path.glob("corrupt-*/index.sqlite"))


def test_index_dir_is_private(tmp_path):
    target = tmp_path / "idx"
    Store.open(target).close()
    assert (target.stat().st_mode & 0o777) == 0o700
    assert ((target / "index.sqlite").stat().st_mode & 0o777) == 0o600


def test_snapshot_that_lags_behind_the_database_is_replayed_not_rewritten(tmp_path):
    store = Store.open(tmp_path)
    gen, _, _ = fill(store)
    assert store.save_snapshot()
    store.apply_files(
        [update("c.py", "def gamma():\n    return compute_gamma_value(3)\n")], removed=["a.py"]
    )
    ((h, _),) = store.pending_texts(gen.id, 10)
    store.add_embeddings(gen.id, [h], np.ones((1, 8), dtype=np.float32) / np.sqrt(8))
    assert not store.save_snapshot()  # two rows of drift: not worth a rewrite
    store.close()
    reopened = Store.open(tmp_path)
    ids, _ = reopened.matrix(gen).snapshot()
    expected = {r[0] for r in reopened.conn.execute("SELECT id FROM embeddings")}
    assert set(ids.tolist()) == expected and len(ids) == 2


def test_full_integrity_check_runs_only_after_an_unclean_shutdown(tmp_path):
    Store.open(tmp_path).close()
    clean = Store.open(tmp_path)
    assert not clean.checked_integrity
    clean.close()
    (tmp_path / "open-999999999").touch()  # a process that died holding the index
    after_crash = Store.open(tmp_path)
    assert after_crash.checked_integrity
    assert not list(tmp_path.glob("open-999999999"))


def test_a_switch_serves_the_new_generation_at_once_and_the_old_until_it_is_dropped(tmp_path):
    store = Store.open(tmp_path)
    old, pending, vectors = fill(store)
    store.save_snapshot(force=True)
    new = store.create_generation("m@v2", "m2", "m2", 8, active=False)
    store.add_embeddings(new.id, [h for h, _ in pending], -vectors)
    assert store.active_generation().id == old.id and store.dense_search(old, vectors[0], 1)

    store.activate_generation(new.id)

    assert store.active_generation().id == new.id
    (_, sim), *_ = store.dense_search(new, -vectors[0], 1)
    assert sim == pytest.approx(1.0, abs=1e-2)
    # A search that picked the old generation just before the switch still gets answers.
    assert store.dense_search(old, vectors[0], 1)
    store.drop_generation(old.id)
    assert [g.id for g in store.generations()] == [new.id]
    assert not list(tmp_path.glob(f"vectors-g{old.id}.*"))


def test_vector_marks_count_what_was_embedded_after_them(tmp_path):
    store = Store.open(tmp_path)
    gen, pending, _ = fill(store)
    mark = store.vector_mark()
    assert store.vectors_since(gen.id, 0) == len(pending) and store.vectors_since(gen.id, mark) == 0
    store.apply_files([update("c.py", "def gamma():\n    return compute_gamma_value(3)\n")])
    fresh = store.pending_texts(gen.id, 100)
    store.add_embeddings(gen.id, [h for h, _ in fresh], np.ones((len(fresh), 8), dtype=np.float32))
    assert store.vectors_since(gen.id, mark) == len(fresh) == 1


def test_a_lexical_search_never_pins_its_thread_to_an_old_view_of_the_index(tmp_path):
    store = Store.open(tmp_path)
    store.apply_files([update("a.py", "def alpha():\n    return compute_alpha_value(1)\n")])
    assert store.lexical_search(["compute", "alpha", "value"], 5, (1.0, 1.0, 1.0), 1000)
    assert not store.conn.in_transaction
    writer = Store.open(tmp_path)  # another connection writes meanwhile, as the index worker does
    writer.apply_files([update("b.py", "def beta():\n    return compute_beta_value(2)\n")])
    assert store.counts().files == 2


def test_opening_an_index_another_process_is_writing_is_not_mistaken_for_damage(tmp_path):
    live = Store.open(tmp_path)  # e.g. the server, with recent commits still in the write-ahead log
    fill(live)
    assert (tmp_path / "index.sqlite-wal").stat().st_size > 0

    second = Store.open(tmp_path)  # e.g. `kenning search` in a terminal meanwhile

    assert second.warnings == [] and not list(tmp_path.glob("corrupt-*"))
    assert second.counts().chunks == live.counts().chunks > 0
