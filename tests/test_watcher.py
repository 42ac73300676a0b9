"""The change queue between file events and the index worker: bursts coalesce per
path, a quiet period (debounce) passes before a path is handed out, saves jump
the queue, and a path that never goes quiet is still handed out in time."""

from __future__ import annotations

from server.watcher import ChangeQueue


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
