"""Language-server search latency at 10k and 100k chunks, idle and while the server indexes.

`bench.lsp_latency` measures the editor's view on a small workspace (flask, ~1.5k
chunks); this measures the same `kenning/search` round trip on big ones:

* **100k**: the latency workspace of `bench.search_latency` (the Django, SymPy and
  SQLAlchemy sdists, ~139k chunks) and its prebuilt index;
* **10k**: a real subset of it (`django/db` and SQLAlchemy's `orm` and `sql`
  packages, ~10k chunks), indexed the same way.

Both indexes hold real files, real chunks and real full-text rows; their vectors
are random unit vectors (embedding 10^5 chunks takes about an hour on a 2-core CPU and
exact search costs the same whatever the values). Every query is embedded by the
real model, and the files added during the run are embedded for real.

For each size, a real `kenning serve` process is started over stdio on a scratch
copy of the index (the prebuilt one is left as it was) and the bench records:

* start-up: spawn -> first search answered with results, and -> index settled
  (the start-up scan finds every file unchanged);
* idle: hybrid, semantic and lexical round trips (p50/p95);
* during background indexing: the werkzeug package (~1.4k chunks, not part of
  the workspace) is copied into the workspace; the server's watcher picks it up
  and embeds it while hybrid searches run back to back until it settles;
* RSS of the server idle, and its peak while indexing.

The copied files are removed again (and the server drops them) before it stops.
Run: `python -m bench.lsp_scale [--sizes 10k,100k] [--queries 100]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.lsp_latency import Bench, summary
from bench.search_latency import WORK, build_index, build_workspace, queries

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "results" / "lsp_scale.json"
SUBSET_10K = [
    "Django-5.1.4/django/db",
    "sqlalchemy-2.0.36/lib/sqlalchemy/orm",
    "sqlalchemy-2.0.36/lib/sqlalchemy/sql",
]
BURST_SOURCE = BENCH / ".corpus" / "werkzeug" / "workspace" / "src" / "werkzeug"
BURST_DIR = "kenning_bench_burst"


def workspace_and_index(size: str) -> tuple[Path, Path]:
    """The workspace of `size` and its prebuilt index, built on first use."""
    full = build_workspace()
    if size == "100k":
        ws, index_dir = full, WORK / "index"
    elif size == "10k":
        ws, index_dir = WORK / "ws-10k", WORK / "index-10k"
        if not ws.exists():
            for rel in SUBSET_10K:
                shutil.copytree(full / rel, ws / rel)
    else:
        raise ValueError(f"unknown size {size!r}: use 10k or 100k")
    if not (index_dir / "index.sqlite").exists():
        print(f"{size}: building the index (random vectors) in {index_dir}", flush=True)
        build_index(ws, index_dir)
    return ws, index_dir


async def measure(size: str, n_queries: int) -> dict[str, Any]:
    ws, prebuilt = workspace_and_index(size)
    if not BURST_SOURCE.is_dir():
        raise SystemExit(
            f"{BURST_SOURCE} is missing; run: python -m bench.corpus --packages werkzeug"
        )
    tmp = Path(tempfile.mkdtemp(prefix=f"kenning-lsp-scale-{size}-"))
    burst = ws / BURST_DIR
    try:
        index_dir = tmp / "index"
        shutil.copytree(prebuilt, index_dir)
        bench = Bench(ws, index_dir)
        qs = queries(n_queries)
        out: dict[str, Any] = {"size": size, "workspace": str(ws)}

        t0 = time.perf_counter()
        server = await bench.start()

        async def has_results() -> bool:
            answer = await bench.request(
                "kenning/search", {"query": "queryset filter", "mode": "lexical"}
            )
            return bool(answer.results)

        await bench.wait(has_results, timeout=600)
        first_answer_s = time.perf_counter() - t0
        await bench.wait(bench.settled, timeout=1800, interval=0.5)
        out["startup_s"] = {
            "first_answer": round(first_answer_s, 2),
            "settled": round(time.perf_counter() - t0, 2),
        }
        status = await bench.request("kenning/status", {})
        out["index"] = {"files": status.files, "chunks": status.chunks}
        await bench.timed_search("warm up the query path")

        for mode in ("hybrid", "semantic", "lexical"):
            took = [(await bench.timed_search(q, mode=mode))[0] for q in qs]
            out[f"idle_{mode}"] = summary(took)
        out["idle_rss_mb"] = round(server.memory_info().rss / 2**20, 1)

        # Background indexing: a package the workspace does not have appears in it.
        shutil.copytree(BURST_SOURCE, burst)
        started = time.perf_counter()

        async def busy() -> bool:
            return not await bench.settled()

        await bench.wait(busy, timeout=60, interval=0.1)
        during: list[float] = []
        peak_rss = server.memory_info().rss
        i = 0
        while not await bench.settled():
            took, _ = await bench.timed_search(qs[i % len(qs)])
            during.append(took)
            peak_rss = max(peak_rss, server.memory_info().rss)
            i += 1
        after = await bench.request("kenning/status", {})
        out["during_indexing_hybrid"] = summary(during)
        out["burst"] = {
            "files": sum(1 for p in burst.rglob("*") if p.is_file()),
            "chunks_added": after.chunks - status.chunks,
            "settled_s": round(time.perf_counter() - started, 1),
        }
        out["peak_rss_mb"] = round(peak_rss / 2**20, 1)

        shutil.rmtree(burst)
        await bench.wait(lambda: _back_to(bench, status.chunks), timeout=300, interval=0.5)
        await bench.stop()
        return out
    finally:
        shutil.rmtree(burst, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


async def _back_to(bench: Bench, chunks: int) -> bool:
    status = await bench.request("kenning/status", {})
    return status.chunks == chunks and await bench.settled()


def _without_samples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_samples(v) for k, v in value.items() if k != "samples_ms"}
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k", help="comma-separated: 10k, 100k")
    parser.add_argument("--queries", type=int, default=100, help="idle searches per mode")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # A size measured earlier and not asked for now keeps its figures; each size is
    # saved as soon as it is measured, so a failure at 100k keeps the 10k run.
    earlier = json.loads(args.out.read_text()) if args.out.exists() else {}
    report: dict[str, Any] = {"sizes": earlier.get("sizes", {})}
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        report["sizes"][size] = asyncio.run(measure(size, args.queries))
        print(size, json.dumps(_without_samples(report["sizes"][size])), flush=True)
        report.update(
            date=time.strftime("%Y-%m-%d"),
            cpus=os.cpu_count(),
            load_avg_1m=round(os.getloadavg()[0], 2),
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
