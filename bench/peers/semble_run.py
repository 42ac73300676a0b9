"""Run semble (PyPI ``semble``) on the benchmark corpus through its Python API.

For each package: build a fresh ``SembleIndex.from_path(workspace)`` (semble's own chunking,
BM25 + static-embedding hybrid, default content=code), then ``index.search(query, top_k=10)``
for every query (semble's default hybrid ranking with its code reranker), and write
``bench/results/<method>/<pkg>.jsonl`` + ``<pkg>.timing.json``.

semble's default model (minishlab/potion-code-16M-v2) is hub-only; offline we point
SEMBLE_MODEL_NAME at a model2vec model distilled from all-MiniLM-L6-v2 (see setup.sh).

Run with the semble venv:
    bench/.venvs/semble/bin/python bench/peers/semble_run.py [pkg ...]
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402

pc.set_offline_env()
DEFAULT_MODEL = pc.WORK / "models" / "minilm-l6-m2v"


def main() -> None:
    ap = pc.base_args(__doc__.splitlines()[0], "semble-distilled-minilm")
    ap.add_argument("--model", default=os.environ.get("SEMBLE_MODEL_NAME", str(DEFAULT_MODEL)))
    args = ap.parse_args()

    model_dir = Path(args.model).resolve()
    if not (model_dir / "model.safetensors").exists():
        sys.exit(f"no model2vec model at {model_dir}; run bench/peers/setup.sh first")
    os.environ["SEMBLE_MODEL_NAME"] = str(model_dir)

    corpus, results_root = Path(args.corpus), Path(args.results)
    pkgs = pc.list_packages(corpus, args.packages)
    if not pkgs:
        sys.exit(f"no packages with queries.jsonl under {corpus}")

    t0 = time.perf_counter()
    from semble.index.dense import load_model

    load_model(
        str(model_dir)
    )  # import + model load, paid once per process (semble caches the model)
    load_s = time.perf_counter() - t0
    for pkg in pkgs:
        run_package(pkg, corpus, results_root, args.method, model_dir, args.limit, load_s)


def run_package(
    pkg: str,
    corpus: Path,
    results_root: Path,
    method: str,
    model_dir: Path,
    limit: int,
    load_s: float,
) -> None:
    workspace = (corpus / pkg / "workspace").resolve()
    queries = pc.load_queries(corpus, pkg, limit)

    # semble caches indexes (and search stats) under its cache folder; give each run an
    # empty one so index_s is a cold build, and keep it out of ~/.cache.
    cache_dir = (pc.WORK / "semble-cache" / pkg).resolve()
    shutil.rmtree(cache_dir, ignore_errors=True)
    cache_dir.mkdir(parents=True)
    os.environ["SEMBLE_CACHE_LOCATION"] = str(cache_dir)

    import semble
    from semble import SembleIndex

    t1 = time.perf_counter()
    index = SembleIndex.from_path(workspace, model_path=str(model_dir))
    index_s = time.perf_counter() - t1
    stats = index.stats
    print(
        f"[semble] {pkg}: indexed {stats.indexed_files} files / {stats.total_chunks} chunks "
        f"in {index_s:.2f}s (+{load_s:.2f}s import+model load)",
        flush=True,
    )

    index.search("warm up query", top_k=pc.TOP_K)  # first call pays one-off lazy costs; not scored

    rows = []
    for q in queries:
        s = time.perf_counter()
        hits = index.search(q["query"], top_k=pc.TOP_K)
        took_ms = (time.perf_counter() - s) * 1000.0
        res = pc.dedupe(
            {
                "path": pc.norm_path(h.chunk.file_path, workspace),
                "start_line": h.chunk.start_line,
                "end_line": h.chunk.end_line,
            }
            for h in hits
        )
        rows.append({"id": q["id"], "took_ms": round(took_ms, 3), "results": res})

    took = [r["took_ms"] for r in rows]
    notes = (
        f"semble {semble.__version__} via SembleIndex.from_path + search(top_k=10), default "
        "hybrid (BM25 + dense) with code reranking, content=code. Model: model2vec distilled from "
        "all-MiniLM-L6-v2 (256d), NOT semble's default minishlab/potion-code-16M-v2 (hub-only, "
        f"unavailable offline). {stats.indexed_files} files, {stats.total_chunks} chunks. index_s "
        f"= cold in-process build with the model already loaded (import+model load {load_s:.2f}s "
        "extra); single process (SEMBLE_INDEX_WORKERS unset; the CLI defaults to 4). took_ms = "
        "in-process search() wall time after one warm-up query; 2-core CPU."
    )
    out = pc.write_results(results_root, method, pkg, rows, index_s, notes)
    print(
        f"[semble] {pkg}: {len(rows)} queries, p50 {pc.percentile(took, 50):.2f} ms, "
        f"p95 {pc.percentile(took, 95):.2f} ms -> {out}",
        flush=True,
    )


if __name__ == "__main__":
    main()
