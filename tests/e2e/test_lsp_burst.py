"""A burst of file events, as a large checkout or a code generator makes them
(issue 9; a campaign: `pytest -m stress tests/e2e/test_lsp_burst.py -s`).

2,000 files are created and each rewritten four more times in quick
succession: 10,000 events for the watcher. Meanwhile a client searches back
to back. Afterwards every file's final version is in the index exactly once
(its last words are found, no earlier version is, no duplicate rows), the
server's memory stayed bounded, and the searches' p95 during the burst is
reported. Figures go to bench/results/burst.json.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest
from kenning.server.store import Store
from kenning_client import copy_workspace, kenning_server, rss_kib

pytestmark = [pytest.mark.asyncio, pytest.mark.stress]

FILES = 2000
VERSIONS = 5
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


def source(i: int, version: int) -> str:
    return (
        f"def generated_handler_{i}(event):\n"
        f'    """Route event kind {i} to queue q{i}v{version}."""\n'
        f'    return event.route("q{i}v{version}")\n'
    )


async def test_ten_thousand_file_events(tmp_path):
    workspace = copy_workspace(tmp_path / "workspace")
    index_dir = tmp_path / "index"
    async with kenning_server(workspace, index_dir) as kenning:
        await kenning.settled()
        pid = kenning.client._server.pid
        rss = [rss_mib(pid)]
        latencies: list[float] = []
        stop = asyncio.Event()

        async def search_loop() -> None:
            while not stop.is_set():
                start = time.perf_counter()
                await kenning.search("route an event to its queue", limit=5)
                latencies.append(time.perf_counter() - start)
                rss.append(rss_mib(pid))
                await asyncio.sleep(0.05)

        searcher = asyncio.get_running_loop().create_task(search_loop())
        out = workspace / "generated"
        out.mkdir()
        started = time.perf_counter()
        events = 0
        for version in range(VERSIONS):
            for i in range(FILES):
                (out / f"handler_{i:04d}.py").write_text(source(i, version))
                events += 1
            await asyncio.sleep(0)  # let the searcher run between passes
        written_s = time.perf_counter() - started
        status = await kenning.settled(timeout=1800)
        settled_s = time.perf_counter() - started
        stop.set()
        await searcher

    store = Store.open(index_dir)
    problems = store.consistency_problems()
    paths = [p for p in store.file_records() if p.startswith("generated/")]
    with sqlite3.connect(index_dir / "index.sqlite") as db:
        stale = db.execute(
            "SELECT COUNT(*) FROM chunks WHERE text LIKE '%v0\")%' OR text LIKE '%v3\")%'"
        ).fetchone()[0]
        final = db.execute(
            f"SELECT COUNT(*) FROM chunks WHERE text LIKE '%v{VERSIONS - 1}\")%'"
        ).fetchone()[0]
    store.close()
    ordered = sorted(latencies)
    figures = {
        "events": events,
        "files": FILES,
        "written_s": round(written_s, 1),
        "settled_s": round(settled_s, 1),
        "search_during_burst": {
            "n": len(ordered),
            "p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
            "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 1),
        },
        "rss_mib": {"before": round(rss[0]), "max": round(max(rss)), "after": round(rss[-1])},
        "embedded_since_start": status.embedded_since_start,
        "chunks": status.chunks,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "burst.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    assert problems == []
    assert len(paths) == FILES and final == FILES and stale == 0
    assert max(rss) - rss[0] < 500, "memory grew by more than 500 MiB during the burst"
