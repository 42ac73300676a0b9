"""Exact against HNSW vector search from 10^4 to 10^6 vectors (issue 19).

Embedding 10^6 chunks would take about seven hours on this 2-core CPU, so the
vectors are real ones with noise: every stored vector of the six bench
indexes (bench/.work/index/<pkg>, built with the bundled model), sampled with
replacement, each plus Gaussian noise and renormalised, so the set keeps the
clusters and near-duplicates of real code. The queries are the bench's own
queries, embedded by the real model. For each size, in-process and one query
at a time, as the server's dense side runs:

- exact search (usearch's brute-force SIMD kernel over the float16 matrix, the
  `exact` kind): p50/p95 per query;
- HNSW (`server/hnsw.py`, the `hnsw` kind, f16): build time, p50/p95, recall@10
  against exact, bytes per vector in memory and in its file;
- at the largest size also HNSW over i8 scalars, to decide whether i8 holds recall.

Run: `nice -n 10 python -m bench.ann_scale [--sizes 10000,...,1000000] [--queries 300]`.
Writes bench/results/ann_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).parent
INDEXES = BENCH / ".work" / "index"
OUT = BENCH / "results" / "ann_scale.json"
PACKAGES = ["flask", "werkzeug", "marshmallow", "more-itertools", "tqdm", "sqlalchemy"]
NOISE = 0.02
"""Per-dimension noise (384 dims: a noise vector of norm ~0.4, cosine ~0.93 to its source)."""


def real_vectors() -> np.ndarray:
    rows = []
    for pkg in PACKAGES:
        db = INDEXES / pkg / "index.sqlite"
        if not db.exists():
            continue
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        blobs = [b for (b,) in conn.execute("SELECT vec FROM embeddings")]
        conn.close()
        rows.append(np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(blobs), -1))
    if not rows:
        raise SystemExit("no bench indexes in bench/.work/index: copy them from a main checkout")
    return np.concatenate(rows).astype(np.float32)


def synthetic(base: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float16)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = base[rng.integers(0, len(base), m)] + NOISE * rng.standard_normal(
            (m, base.shape[1]), dtype=np.float32
        )
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x
    return out


def queries(limit: int) -> np.ndarray:
    from kenning.server.embedder import Embedder
    from kenning.server.models import resolve_model

    from bench.corpus import queries_path, read_jsonl

    texts = []
    for pkg in PACKAGES:
        path = queries_path(pkg)
        if path.exists():
            texts += [q["query"] for q in read_jsonl(path)]
    rng = np.random.default_rng(1)
    picked = [texts[i] for i in rng.choice(len(texts), min(limit, len(texts)), replace=False)]
    return Embedder(resolve_model("all-MiniLM-L6-v2")).encode(picked)


EXPANSIONS = (64, 128, 256, 512, 1024)
"""expansion_search values tried on each built graph, to choose the default."""


def recall_at_10(got: list[list[int]], truth: list[list[int]]) -> float:
    return statistics.mean(len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_queries(search, qs: np.ndarray) -> tuple[list[list[int]], list[float]]:
    found, took = [], []
    for q in qs:
        t = time.perf_counter()
        hits = search(q)
        took.append((time.perf_counter() - t) * 1000)
        found.append(hits)
    return found, took


def measure(n: int, base: np.ndarray, qs: np.ndarray, scalars: list[str]) -> dict:
    from kenning.server import hnsw
    from kenning.server.vectors import VectorMatrix

    data = synthetic(base, n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    exact = VectorMatrix(data.shape[1], ids, data)
    truth, exact_ms = time_queries(lambda q, m=exact: [i for i, _ in m.search(q, 10)], qs)
    row: dict = {
        "vectors": n,
        "exact_p50_ms": round(pct(exact_ms, 50), 2),
        "exact_p95_ms": round(pct(exact_ms, 95), 2),
        "exact_bytes_per_vector": data.shape[1] * 2 + 8,
    }
    del exact
    for scalar in scalars:
        hnsw.SCALAR = scalar
        t = time.perf_counter()
        index = hnsw.HnswVectors.build(data.shape[1], ids, data, changes=0)
        build_s = time.perf_counter() - t
        got, ms = time_queries(lambda q, index=index: [i for i, _ in index.search(q, 10)], qs)
        recall = recall_at_10(got, truth)
        by_expansion = {}
        for ef in EXPANSIONS:
            index.index.expansion_search = ef
            got_ef, ms_ef = time_queries(
                lambda q, index=index: [i for i, _ in index.search(q, 10)], qs
            )
            by_expansion[ef] = {
                "recall_at_10": round(recall_at_10(got_ef, truth), 4),
                "p95_ms": round(pct(ms_ef, 95), 3),
            }
        with tempfile.TemporaryDirectory(dir=BENCH / ".work") as tmp:
            path = os.path.join(tmp, "x.usearch")
            index.index.save(path)
            file_bytes = os.path.getsize(path)
        row[scalar] = {
            "build_s": round(build_s, 1),
            "p50_ms": round(pct(ms, 50), 3),
            "p95_ms": round(pct(ms, 95), 3),
            "recall_at_10": round(recall, 4),
            "memory_bytes_per_vector": round(index.index.memory_usage / n, 1),
            "file_bytes_per_vector": round(file_bytes / n, 1),
            "by_expansion_search": by_expansion,
        }
        print(n, scalar, row[scalar], flush=True)
        del index
    print(n, "exact", row["exact_p50_ms"], row["exact_p95_ms"], flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,30000,100000,200000,300000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--i8-at", type=int, default=100_000, help="size at which i8 is tried")
    parser.add_argument(
        "--append", action="store_true", help="keep the rows of an earlier run (other sizes)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = real_vectors()
    qs = queries(args.queries)
    rows = json.loads(OUT.read_text())["rows"] if args.append and OUT.exists() else []
    for n in sizes:
        rows.append(measure(n, base, qs, ["f16", "i8"] if n == args.i8_at else ["f16"]))
        OUT.write_text(json.dumps(result(rows, base, qs), indent=2) + "\n")
    return 0


def result(rows: list[dict], base: np.ndarray, qs: np.ndarray) -> dict:
    import usearch
    from kenning.server import hnsw

    return {
        "date": time.strftime("%Y-%m-%d"),
        "load_average": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "usearch": usearch.__version__,
        "real_vectors": len(base),
        "noise_per_dim": NOISE,
        "queries": len(qs),
        "hnsw": {
            "connectivity": hnsw.CONNECTIVITY,
            "expansion_add": hnsw.EXPANSION_ADD,
            "expansion_search": hnsw.EXPANSION_SEARCH,
        },
        "rows": rows,
    }


if __name__ == "__main__":
    raise SystemExit(main())
