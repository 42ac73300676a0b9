"""Ray's overhead on one machine: `--ray` with N CPU replicas against the
single-process embedding pass, on the same ~2,000-file workspace (issue 19).

The workspace is the six bench packages side by side (flask, werkzeug,
marshmallow, more-itertools, tqdm, sqlalchemy: 1,907 files). Its lexical pass
runs once; both runs then embed the same first `--chunks` pending chunk
texts (the store hands them out in a fixed order) with the bundled model,
one after the other, from identical copies of the index:

- single process: `Indexer.embed_pending`, as `kenning index` runs it, torch
  on every core;
- Ray: `ray_embed.embed_with_ray` with a local runtime (`ray.init` on this
  machine), `--replicas` actors of one CPU each.

Reported: chunks per second for each, end to end (model loading, and for
Ray starting the runtime and its actors, included) and steady (from the
first stored batch to the last), and their ratios. The embedding pass is the
only part that differs: discovery, chunking and the diff stay on the driver.

Run: `nice -n 10 python -m bench.ray_overhead [--chunks 3000] [--replicas 2]`.
Writes bench/results/ray_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

BENCH = Path(__file__).parent
WORK = BENCH / ".work" / "ray_overhead"
OUT = BENCH / "results" / "ray_overhead.json"
PACKAGES = ["flask", "werkzeug", "marshmallow", "more-itertools", "tqdm", "sqlalchemy"]


def merged_workspace() -> Path:
    ws = WORK / "ws"
    if not ws.exists():
        for pkg in PACKAGES:
            shutil.copytree(BENCH / ".corpus" / pkg / "workspace", ws / pkg)
    return ws


def scanned_index(ws: Path) -> tuple[Path, dict]:
    """The lexical pass, once; returns the index folder and what it holds."""
    from kenning.server.engine import Engine

    index = WORK / "scanned"
    if not (index / "index.sqlite").exists():
        with Engine.open(ws, {"index_dir": str(index)}) as engine:
            engine.indexer.scan()
    with Engine.open(ws, {"index_dir": str(index)}) as engine:
        totals = engine.store.counts(None)
        return index, {
            "files": totals.files,
            "chunks": totals.chunks,
            "embeddable": engine.store.embeddable_texts(),
        }


class _Clock:
    """Times the stored batches of one run."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] = (self.start, 0)

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase == "embed" and done:
            now = (time.perf_counter(), done)
            self.first = self.first or now
            self.last = now

    def rates(self) -> dict:
        end, done = self.last
        first_t, first_n = self.first or self.last
        steady = (done - first_n) / (end - first_t) if end > first_t else 0.0
        return {
            "chunks": done,
            "wall_s": round(end - self.start, 1),
            "first_batch_s": round(first_t - self.start, 1),
            "chunks_per_s": round(done / (end - self.start), 2),
            "steady_chunks_per_s": round(steady, 2),
        }


class _FirstWindow:
    """The store as the Ray pass sees it, ending after one window of texts."""

    def __init__(self, store, limit: int):
        self._store, self._limit, self._given = store, limit, False

    def pending_texts(self, gen_id: int, limit: int, paths=None):
        if self._given:
            return []
        self._given = True
        return self._store.pending_texts(gen_id, self._limit)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def run_single(ws: Path, index: Path, chunks: int) -> dict:
    from kenning.server.engine import Engine

    with Engine.open(ws, {"index_dir": str(index)}) as engine:
        clock = _Clock()
        gen = engine.target_generation()  # loads the model (for its width)
        done = [0]

        def count(n: int) -> None:
            done[0] += n
            clock("embed", done[0], chunks)

        engine.indexer.embed_pending(
            gen, engine.embedder, on_batch=count, should_stop=lambda: done[0] >= chunks
        )
        return clock.rates()


def run_ray(ws: Path, index: Path, chunks: int, replicas: int) -> dict:
    from kenning.server.engine import Engine
    from kenning.server.ray_embed import RayOptions, embed_with_ray

    with Engine.open(ws, {"index_dir": str(index)}) as engine:
        clock = _Clock()
        gen = engine.target_generation()
        store = _FirstWindow(engine.store, chunks)
        options = RayOptions(replicas=replicas, batch_size=256)
        embed_with_ray(store, gen, engine.replica_spec(), options, clock)  # type: ignore[arg-type]
        return clock.rates()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=3000)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    ws = merged_workspace()
    scanned, sizes = scanned_index(ws)
    runs = {}
    loads = {}
    for name in ("single", "ray"):
        index = WORK / name
        shutil.rmtree(index, ignore_errors=True)
        shutil.copytree(scanned, index)
        loads[name] = round(os.getloadavg()[0], 2)
        if name == "single":
            runs[name] = run_single(ws, index, args.chunks)
        else:
            runs[name] = run_ray(ws, index, args.chunks, args.replicas)
        print(name, runs[name], flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "load_average_before": loads,
        "workspace": sizes,
        "replicas": args.replicas,
        **runs,
        "ratio": round(runs["ray"]["chunks_per_s"] / runs["single"]["chunks_per_s"], 3),
        "steady_ratio": round(
            runs["ray"]["steady_chunks_per_s"] / runs["single"]["steady_chunks_per_s"], 3
        ),
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
