"""Search latency and memory on a 100,000-chunk index of real code (issue 2's targets).

The index holds the real chunks of several large sdists (Django, SymPy,
SQLAlchemy) — real files, real chunking, real full-text rows. Embedding 10^5
chunks with MiniLM takes well over an hour on a 2-core CPU, so the vectors of
this *latency* index are random unit vectors of the model's dimension: exact
search costs the same whatever the values are, and the query itself is
embedded by the real model on every search. Quality is measured elsewhere
(bench/quality.py) on fully embedded indexes.

Reports, in one run: p50/p95 of `Engine.search_outcome` per mode (query
embedding included, process start excluded), RSS after loading the model and
after loading the index (the difference per chunk is the index's memory cost),
index bytes per chunk on disk, and the start-up breakdown of a
`kenning search` process (imports, model load, index open, first query).

Run: `python -m bench.search_latency [--chunks 100000] [--queries 200]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).parent
WORK = BENCH / ".work" / "latency"
SOURCES = ["django==5.1.4", "sympy==1.13.3", "sqlalchemy==2.0.36"]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_workspace() -> Path:
    ws = WORK / "ws"
    if ws.exists() and any(ws.iterdir()):
        return ws
    dl = WORK / "sdists"
    dl.mkdir(parents=True, exist_ok=True)
    for spec in SOURCES:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                spec,
                "-d",
                str(dl),
            ],
            check=True,
        )
    ws.mkdir(parents=True, exist_ok=True)
    for archive in dl.glob("*.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(ws, filter="data")
    return ws


def build_index(ws: Path, index_dir: Path) -> dict:
    from kenning.server.engine import Engine

    engine = Engine.open(ws, {"index_dir": str(index_dir)})
    start = time.perf_counter()
    engine.indexer.scan()
    scan_s = time.perf_counter() - start
    gen = engine.target_generation()
    rng = np.random.default_rng(0)
    while True:
        batch = engine.store.pending_texts(gen.id, 5000)
        if not batch:
            break
        vectors = rng.normal(size=(len(batch), gen.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        engine.store.add_embeddings(gen.id, [h for h, _ in batch], vectors)
    engine.finish_generation(gen)
    engine.store.save_snapshot()
    totals = engine.store.counts(gen.id)
    vectors = engine.store.generation_counts(gen.id)
    engine.close()
    size = sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file())
    return {
        "files": totals.files,
        "chunks": totals.chunks,
        "vectors": vectors,
        "scan_s": round(scan_s, 1),
        "index_bytes": size,
        "bytes_per_chunk_on_disk": round(size / max(totals.chunks, 1)),
    }


def describe_index(ws: Path, index_dir: Path) -> dict:
    from kenning.server.engine import Engine

    engine = Engine.open(ws, {"index_dir": str(index_dir)})
    gen = engine.serving_generation()
    totals = engine.store.counts(gen.id)
    vectors = engine.store.generation_counts(gen.id)
    engine.close()
    size = sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file())
    return {
        "files": totals.files,
        "chunks": totals.chunks,
        "vectors": vectors,
        "index_bytes": size,
        "bytes_per_chunk_on_disk": round(size / max(totals.chunks, 1)),
    }


def queries(n: int) -> list[str]:
    out: list[str] = []
    for path in sorted((BENCH / ".corpus").glob("*/queries.jsonl")):
        out.extend(json.loads(line)["query"] for line in path.read_text().splitlines())
    if not out:
        out = ["parse a date string", "retry failed requests", "cache the compiled template"]
    return [out[i % len(out)] for i in range(n)]


def measure(index_dir: Path, ws: Path, n_queries: int) -> dict:
    from kenning.server.engine import Engine

    report: dict = {}
    rss0 = rss_mb()
    engine = Engine.open(ws, {"index_dir": str(index_dir)})
    engine.embedder.load()
    engine.embedder.encode_query("warm up")
    rss_model = rss_mb()
    t = time.perf_counter()
    gen = engine.serving_generation()
    matrix = engine.store.matrix(gen)
    report["index_load_s"] = round(time.perf_counter() - t, 3)
    engine.search_outcome("warm up the caches", mode="hybrid")
    rss_index = rss_mb()
    report["rss_mb"] = {
        "start": round(rss0),
        "model_loaded": round(rss_model),
        "index_loaded": round(rss_index),
    }
    report["index_memory_bytes_per_chunk"] = round(
        (rss_index - rss_model) * 1024 * 1024 / max(matrix.n, 1)
    )
    qs = queries(n_queries)
    for mode in ("hybrid", "semantic", "lexical"):
        times = []
        for q in qs:
            start = time.perf_counter()
            engine.search_outcome(q, mode=mode, limit=10)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        report[mode] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
            "n": len(times),
        }
    # The query embedding alone, for the breakdown.
    times = []
    for q in qs[:100]:
        start = time.perf_counter()
        engine.embedder.encode_query(q)
        times.append((time.perf_counter() - start) * 1000)
    report["query_embedding_p50_ms"] = round(statistics.median(times), 1)
    engine.close()
    return report


def startup_breakdown(index_dir: Path, ws: Path) -> dict:
    """A fresh process, as `kenning search` pays it."""
    code = f"""
import time, json
t0 = time.perf_counter()
from kenning.server.engine import Engine
t1 = time.perf_counter()
import sentence_transformers
t2 = time.perf_counter()
e = Engine.open({str(ws)!r}, {{"index_dir": {str(index_dir)!r}}})
e.store.matrix(e.serving_generation())
t3 = time.perf_counter()
e.embedder.load()
t4 = time.perf_counter()
e.search_outcome("parse a date string")
t5 = time.perf_counter()
print(json.dumps({{"import_kenning_s": t1 - t0, "import_sentence_transformers_s": t2 - t1,
                   "open_index_s": t3 - t2, "load_model_s": t4 - t3, "first_search_s": t5 - t4}}))
"""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    result = {k: round(v, 3) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
    result["process_total_s"] = round(time.perf_counter() - start, 3)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "search_latency.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ws = build_workspace()
    index_dir = WORK / "index"
    report: dict = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    if args.rebuild or not (index_dir / "index.sqlite").exists():
        if index_dir.exists():
            shutil.rmtree(index_dir)
        report["index"] = build_index(ws, index_dir)
        print("index:", json.dumps(report["index"]), flush=True)
    else:
        report["index"] = describe_index(ws, index_dir)
    report["search"] = measure(index_dir, ws, args.queries)
    print("search:", json.dumps(report["search"]), flush=True)
    report["startup"] = startup_breakdown(index_dir, ws)
    print("startup:", json.dumps(report["startup"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
