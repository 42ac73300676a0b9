"""Closing an index while other threads still search it (a workspace folder removed
with a search in flight, a server shutting down mid-request).

CPython 3.11's sqlite3 crashes the whole process when a connection is closed while
another thread runs a statement on it: CI lost a language server to SIGSEGV that
way. Closing now leaves other threads' connections to them; their statement in
flight finishes, and their next use is refused with one clear error.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from kenning.server.database import StoreClosed
from kenning.server.store import Store

SEARCH = (["alpha", "beta", "gamma"], 50, (2.0, 4.0, 1.0), 20_000)

# Runs in its own process, since the crash this guards against kills the process.
RACE = """
import random, sys, threading, time
from pathlib import Path
from kenning.server import fts
from kenning.server.database import StoreClosed
from kenning.server.store import Store

index = Path(sys.argv[1])
store = Store.open(index)
words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
rng = random.Random(3)
with store.conn:
    for i in range(20_000):
        text = " ".join(rng.choice(words) for _ in range(40))
        fts.add_entry(store.conn, i, f"pkg/mod{i}.py", f"handler_{i}", text)
store.close()
refused = answered = 0
for trial in range(200):
    store = Store.open(index)
    seen = []
    def searching():
        try:
            for _ in range(100):
                seen.append(len(store.lexical_search(*SEARCH)))
        except StoreClosed:
            seen.append(-1)
    thread = threading.Thread(target=searching)
    thread.start()
    time.sleep(rng.uniform(0, 0.03))
    store.close()
    thread.join()
    refused += seen[-1] == -1
    answered += any(n > 0 for n in seen)
print(refused, answered)
"""


def test_closing_an_index_while_another_thread_searches_it_never_crashes_the_process(
    tmp_path,
):
    race = f"SEARCH = {SEARCH!r}\n" + RACE
    done = subprocess.run(
        [sys.executable, "-c", race, str(tmp_path / "index")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    refused, answered = map(int, done.stdout.split())
    assert refused > 0 and answered > 0  # the race was run: closes landed mid-search


def test_a_closed_index_refuses_every_thread_and_leaves_no_connection_open(tmp_path):
    index = tmp_path / "index"
    store = Store.open(index)
    got: list[object] = []

    def count():
        try:
            got.append(store.counts(None).files)
        except BaseException as exc:  # noqa: BLE001 - the test reports what it got
            got.append(exc)

    def in_a_thread():
        thread = threading.Thread(target=count)
        thread.start()
        thread.join()

    count()
    in_a_thread()  # another thread's connection, idle now
    store.close()
    # Every connection closed: the write-ahead log is folded back and removed.
    assert sorted(p.name for p in index.iterdir()) == ["index.sqlite"]

    in_a_thread()
    with pytest.raises(StoreClosed, match="is closed"):
        store.counts(None)
    assert got[:2] == [0, 0] and [type(e) for e in got[2:]] == [StoreClosed]
    store.close()  # twice is fine
