"""The change queue between file events and the index worker: bursts coalesce per
path, a quiet period (debounce) passes before a path is handed out, saves jump
the queue, and a path that never goes quiet is still handed out in time."""

from __future__ import annotations

import logging
import time

from kenning.server.watcher import ChangeQueue, WorkspaceWatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def queue(clock: Clock) -> ChangeQueue:
    return ChangeQueue(debounce_s=0.3, max_delay_s=2.0, clock=clock)


def test_a_burst_of_events_for_one_path_is_handed_out_once_after_it_goes_quiet():
    clock = Clock()
    changes = queue(clock)
    for _ in range(20):
        changes.add("gen/schema.py")
        clock.now += 0.01

    assert changes.take(timeout=0) is None  # still within the quiet period
    clock.now += 0.3
    batch = changes.take(timeout=0)

    assert batch is not None and batch.paths == ["gen/schema.py"]
    changes.done()
    assert changes.take(timeout=0) is None


def test_a_save_is_handed_out_at_once_ahead_of_debounced_paths():
    clock = Clock()
    changes = queue(clock)
    changes.add("a.py")
    clock.now += 0.5
    changes.add("b.py")
    changes.add("saved.py", urgent=True)

    batch = changes.take(timeout=0)

    assert batch is not None
    assert batch.urgent == ["saved.py"]
    assert batch.paths == ["a.py"]  # due; b.py is still settling
    assert batch.all_paths() == ["saved.py", "a.py"]


def test_an_event_after_a_save_keeps_the_path_urgent():
    clock = Clock()
    changes = queue(clock)
    changes.add("saved.py", urgent=True)
    changes.add("saved.py")  # the watcher sees the editor's write

    batch = changes.take(timeout=0)

    assert batch is not None and batch.urgent == ["saved.py"] and batch.paths == []


def test_a_path_that_never_goes_quiet_is_handed_out_after_the_maximum_delay():
    clock = Clock()
    changes = queue(clock)
    batch = None
    for _ in range(100):
        changes.add("app.log.py")
        clock.now += 0.1
        batch = changes.take(timeout=0)
        if batch:
            break

    assert batch is not None and batch.paths == ["app.log.py"]
    assert clock.now <= 100.0 + 2.0 + 0.1


def test_waiting_counts_queued_and_in_flight_paths_until_done():
    clock = Clock()
    changes = queue(clock)
    changes.add_many(["a.py", "b.py"], urgent=True)
    assert changes.waiting() == 2

    changes.take(timeout=0)
    assert changes.waiting() == 2  # being re-indexed now
    changes.done()
    assert changes.waiting() == 0


def test_a_rescan_request_is_handed_out_and_a_closed_queue_hands_out_nothing():
    changes = queue(Clock())
    changes.request_rescan()

    batch = changes.take(timeout=0)
    assert batch is not None and batch.rescan
    changes.done()

    changes.close()
    assert changes.take(timeout=None) is None


def test_the_watcher_sees_a_new_file_in_a_workspace_with_thousands_of_folders(tmp_path):
    # The Django + SymPy + SQLAlchemy benchmark workspace has ~3,600 folders. Watching every
    # event kind there, the opens and closes from walking the tree overflowed the
    # kernel's event queue, watchdog re-walked the tree to recover, and so on:
    # no change was ever reported.
    for i in range(8000):
        (tmp_path / f"pkg{i % 40}" / f"sub{i}").mkdir(parents=True)
    changes = ChangeQueue(debounce_s=0.0, max_delay_s=0.0)
    watcher = WorkspaceWatcher(tmp_path, changes)
    watcher.start()
    try:
        time.sleep(1.0)
        (tmp_path / "pkg7" / "sub7" / "new_module.py").write_text("x = 1\n")
        deadline = time.monotonic() + 10
        seen: list[str] = []
        while time.monotonic() < deadline and "pkg7/sub7/new_module.py" not in seen:
            batch = changes.take(timeout=0.2)
            if batch is not None:
                seen += batch.all_paths()
                changes.done()
    finally:
        watcher.stop()
    assert "pkg7/sub7/new_module.py" in seen


def test_when_the_kernel_drops_events_the_whole_workspace_is_walked_again(tmp_path):
    # A checkout of tens of thousands of files can outrun inotify's queue; watchdog
    # then reports, in its log only, that events were lost. Which files changed is
    # unknown, so the watcher asks for a full rescan. (A real overflow cannot be
    # forced reliably: watchdog's reader usually keeps up.)
    changes = ChangeQueue(debounce_s=0.0, max_delay_s=0.0)
    watcher = WorkspaceWatcher(tmp_path, changes)
    watcher.start()
    try:
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        batch = changes.take(timeout=2)
    finally:
        watcher.stop()
    assert batch is not None and batch.rescan

    changes.done()
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    assert changes.take(timeout=0.2) is None  # a stopped watcher no longer listens
