"""Does `kenning train` help? Run it on benchmark packages and report what it measured.

For each package, `kenning train --json` runs on the stripped benchmark workspace
(``bench/.corpus/<pkg>/workspace``, built by ``python -m bench.corpus``) with a fresh
index directory under ``bench/.work/train/<pkg>/``, so every run starts from the
base model. The benchmark's query functions have their docstrings removed in that
workspace, so training cannot see the benchmark queries.

Reported per package: pairs mined per kind, training and held-out sizes, held-out
MRR@10 / Recall@1 / Recall@10 of the base model and of the new checkpoint on
Kenning's own held-out pairs (files the training never saw), the paired test over
per-query ranks, the gate's verdict, optimizer steps, steps per second and wall time.

With ``--bench-queries`` the benchmark's own queries are then searched (semantic and
hybrid) on the index the run left behind, with the model it ended with, and
written as the methods ``kenning-semantic@trained`` / ``kenning-hybrid@trained``
that ``python -m bench.quality`` scores next to the base model: this re-embeds the
workspace with the new model, which on a CPU takes minutes. ``--skip-training``
reuses the last run's index for that.

Usage (from the repository root)::

    python -m bench.train_quality [--packages tqdm,more-itertools] [--epochs 1]
        [--batch-size 32] [--max-pairs 2000] [--min-steps 20] [--device auto]
        [--seed 42] [--bench-queries] [--skip-training]

Results go to ``bench/results/train_quality.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.corpus import workspace_dir

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work" / "train"
RESULTS_PATH = BENCH_DIR / "results" / "train_quality.json"
DEFAULT_PACKAGES = ("flask", "werkzeug", "marshmallow", "more-itertools", "tqdm")
TRAINED_TAG = "trained"


def train_package(pkg: str, args: argparse.Namespace) -> dict[str, Any]:
    workspace = workspace_dir(pkg)
    if not workspace.is_dir():
        raise SystemExit(
            f"no workspace for {pkg}: run `python -m bench.corpus --packages {pkg}` first"
        )
    index_dir = WORK_DIR / pkg / "index"
    shutil.rmtree(WORK_DIR / pkg, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "kenning.server.cli",
        "train",
        str(workspace),
        "--json",
        "--index-dir",
        str(index_dir),
        "--device",
        args.device,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--max-pairs",
        str(args.max_pairs),
        "--min-steps",
        str(args.min_steps),
        "--seed",
        str(args.seed),
        "--no-resume",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SystemExit(f"kenning train failed on {pkg}:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)
    return {"package": pkg, "wall_s": round(wall, 1), **result}


def search_after_training(pkg: str) -> dict[str, Any]:
    """The benchmark's queries against the index `kenning train` left behind.

    That index serves whatever the run ended with (the promoted model, or the base
    model when the gate said no), exactly as the user's daemon would. The answers go
    to the methods `kenning-semantic@trained` and `kenning-hybrid@trained`, which
    `bench.quality` scores next to the base model's rows.
    """
    from bench.kenning_adapter import run_package
    from bench.quality import CUTOFF

    index_dir = WORK_DIR / pkg / "index"
    # `kenning train` mines the files itself and leaves only its trainer/ folder (and the
    # promoted pointer) in the index folder; the search index is built here, with that model.
    if not (index_dir / "trainer").is_dir():
        raise SystemExit(
            f"no training run for {pkg} in {index_dir}: run without --skip-training first"
        )
    record = run_package(
        pkg, ("semantic", "hybrid"), limit=CUTOFF, model=None, tag=TRAINED_TAG, index_dir=index_dir
    )
    return {"model": record["model"], "search_s": record["search_s"]}


def _merge(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier packages' rows stay; a package run again replaces its row."""
    old = json.loads(RESULTS_PATH.read_text("utf-8")) if RESULTS_PATH.exists() else []
    fresh = {r["package"]: r for r in rows}
    merged = [fresh.pop(r["package"], r) for r in old]
    return merged + list(fresh.values())


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| package | pairs mined (doc/comment/module/sig/test/docs/commit) | train | held-out | "
        "MRR@10 base -> new | R@1 | R@10 | better/worse (p) | verdict | steps | steps/s | wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        p = r["pairs"]
        mined = "/".join(
            str(p.get(k, 0))
            for k in ("docstring", "comment", "module", "signature", "test", "docs", "commit")
        )
        b, a, t = r.get("before"), r.get("after"), r.get("paired")
        training = r.get("training") or {}
        if b and a and t:
            mrr = f"{b['mrr_at_10']:.3f} -> {a['mrr_at_10']:.3f}"
            r1 = f"{b['recall_at_1']:.3f} -> {a['recall_at_1']:.3f}"
            r10 = f"{b['recall_at_10']:.3f} -> {a['recall_at_10']:.3f}"
            paired = f"{t['better']}/{t['worse']} (p={t['wilcoxon_p']:.2g})"
        else:
            mrr = r1 = r10 = paired = "-"
        lines.append(
            f"| {r['package']} | {mined} | {r['train_pairs']} | {r['heldout_pairs']} | {mrr} | "
            f"{r1} | {r10} | {paired} | {r['status']} | {training.get('steps', '-')} | "
            f"{training.get('steps_per_s', '-')} | {r['wall_s']:.0f}s |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", default=",".join(DEFAULT_PACKAGES))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-pairs", type=int, default=2000)
    parser.add_argument("--min-steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--bench-queries",
        action="store_true",
        help="also search the benchmark's queries with the model the run ended with "
        "(re-embeds the workspace; scored by `python -m bench.quality`)",
    )
    parser.add_argument(
        "--skip-training",
        action="store_true",
        help="reuse the last run's training index (with --bench-queries)",
    )
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for pkg in [p.strip() for p in args.packages.split(",") if p.strip()]:
        # Each package's row is saved as soon as it is measured: a later failure
        # must not throw away an hour of training.
        if not args.skip_training:
            print(f"training on {pkg} ...", file=sys.stderr, flush=True)
            row = train_package(pkg, args)
            print(f"  {row['status']}: {row['reason']} ({row['wall_s']:.0f}s)", file=sys.stderr)
        else:
            row = next((r for r in _merge([]) if r["package"] == pkg), None)
            if row is None:
                raise SystemExit(
                    f"no recorded training run for {pkg} in {RESULTS_PATH}: "
                    "run without --skip-training first"
                )
        if args.bench_queries:
            row["bench_queries"] = search_after_training(pkg)
            model = row["bench_queries"]["model"]
            print(f"  benchmark queries searched with {model}", file=sys.stderr)
        rows = _merge([row])
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
    print(markdown(rows))
    print(f"\nresults: {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
