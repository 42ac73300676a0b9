"""What opening an index does with the generations a crash can leave behind."""

from __future__ import annotations

import numpy as np
from kenning.server.engine import Engine
from kenning.server.store import Store


def test_opening_drops_what_an_interrupted_switch_left(core_workspace, tmp_path):
    index_dir = tmp_path / "index"
    with Engine.open(core_workspace) as engine:
        engine.refresh_lexical()
        identity = engine.identity
    store = Store.open(index_dir)
    hashes = [h for h, _ in store.pending_texts(0, 1000)]
    vectors = np.ones((len(hashes), 4), dtype=np.float32)
    # A switch that committed but crashed before dropping the old generation ...
    retired = store.create_generation("m@old", "old", "x", 4, active=True)
    store.add_embeddings(retired.id, hashes, vectors)
    current = store.create_generation("m@base", identity, "x", 4, active=False)
    store.add_embeddings(current.id, hashes, vectors)
    store.activate_generation(current.id)
    # ... one being built for a model that is no longer the target ...
    abandoned = store.create_generation("m@refused", "refused", "x", 4, active=False)
    # ... and a vector file whose generation is gone.
    (index_dir / "vectors-g99.npy").write_bytes(b"x")
    store.close()

    with Engine.open(core_workspace) as engine:
        gens = engine.store.generations()

    assert [(g.id, g.state) for g in gens] == [(current.id, "active")]
    assert abandoned.id not in {g.id for g in gens}
    assert not (index_dir / "vectors-g99.npy").exists()


def test_a_generation_being_built_by_another_process_is_left_alone(core_workspace, tmp_path):
    import subprocess
    import sys

    index_dir = tmp_path / "index"
    with Engine.open(core_workspace) as engine:
        engine.refresh_lexical()
    store = Store.open(index_dir)
    store.create_generation("m@base", "a server's model", "x", 4, active=True)
    building = store.create_generation("m@v2", "a server's new model", "x", 4, active=False)
    store.close()
    # A live process holding the index open, as a running server does.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (index_dir / f"open-{other.pid}").touch()
        with Engine.open(core_workspace) as engine:  # e.g. `kenning search --model other`
            assert building.id in {g.id for g in engine.store.generations()}
    finally:
        other.kill()
        other.wait()
