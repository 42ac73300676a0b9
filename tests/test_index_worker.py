"""The index worker stopped at an awkward moment: while its model is still loading,
stop() does not wait for the load (seconds), and the worker then touches the
closed index no more."""

from __future__ import annotations

import threading

from kenning.server.engine import Engine
from kenning.server.watcher import ChangeQueue
from kenning.server.worker import IndexWorker
from kenning.server.workspace_service import LogListener


class Recording(LogListener):
    """The log's listener, keeping the worker's last progress lines too."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: list[str] = []

    def progress_end(self, message: str) -> None:
        self.ended.append(message)


def test_a_worker_stopped_while_its_model_loads_touches_the_closed_index_no_more(
    core_workspace, monkeypatch
):
    engine = Engine.open(core_workspace)
    loading, release = threading.Event(), threading.Event()
    real_load = engine.embedder._load

    def slow_load():
        loading.set()
        release.wait(60)
        return real_load()

    monkeypatch.setattr(engine.embedder, "_load", slow_load)
    listener = Recording()
    worker = IndexWorker(engine, ChangeQueue(), listener)
    worker.start()
    assert loading.wait(120), "the worker never started loading its model"

    assert worker.stop() is True  # without waiting for the load
    engine.close()
    release.set()
    worker._thread.join(120)

    assert not worker._thread.is_alive()
    assert engine.store._conns == []  # no connection reopened on the closed index
    assert listener.ended == ["stopped; the index keeps every finished batch"]
