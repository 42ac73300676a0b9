"""Shared helpers for the peer runners (stdlib only: each runner lives in its own venv).

Reads the benchmark corpus (``<corpus>/<pkg>/workspace/`` + ``queries.jsonl``) and writes
the shared results format (``<results>/<method>/<pkg>.jsonl`` + ``<pkg>.timing.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "bench"
WORK = BENCH / ".work" / "peers"
TOP_K = 10

# Everything that could phone home is switched off before any third-party import.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",  # chromadb's posthog telemetry
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_env() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


def base_args(description: str, default_method: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "packages", nargs="*", help="packages to run (default: all in the corpus manifest)"
    )
    p.add_argument(
        "--corpus", default=str(BENCH / ".corpus"), help="corpus root (default bench/.corpus)"
    )
    p.add_argument(
        "--results", default=str(BENCH / "results"), help="results root (default bench/results)"
    )
    p.add_argument(
        "--method", default=default_method, help=f"method name (default {default_method})"
    )
    p.add_argument("--limit", type=int, default=0, help="only the first N queries (debugging)")
    return p


def list_packages(corpus: Path, wanted: list[str]) -> list[str]:
    if wanted:
        return wanted
    manifest = corpus / "manifest.json"
    names: list[str] = []
    if manifest.exists():
        data = json.loads(manifest.read_text())
        pkgs = data.get("packages", data) if isinstance(data, dict) else data
        if isinstance(pkgs, dict):
            names = list(pkgs)
        else:
            names = [p if isinstance(p, str) else p.get("name") for p in pkgs]
    if not names:
        names = sorted(d.name for d in corpus.iterdir() if (d / "queries.jsonl").exists())
    return [n for n in names if n and (corpus / n / "queries.jsonl").exists()]


def load_queries(corpus: Path, pkg: str, limit: int = 0) -> list[dict[str, Any]]:
    lines = (corpus / pkg / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line) for line in lines if line.strip()]
    return queries[:limit] if limit else queries


def norm_path(path: str, workspace: Path) -> str:
    """Workspace-relative path with '/' separators."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(workspace.resolve())
        except ValueError:
            p = Path(os.path.relpath(p, workspace))
    return p.as_posix().removeprefix("./")


def dedupe(results: Iterable[dict[str, Any]], k: int = TOP_K) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, int, int]] = set()
    for r in results:
        key = (r["path"], int(r["start_line"]), int(r["end_line"]))
        if key in seen:
            continue
        seen.add(key)
        out.append({"path": key[0], "start_line": key[1], "end_line": key[2]})
        if len(out) == k:
            break
    return out


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def write_results(
    results_root: Path,
    method: str,
    pkg: str,
    rows: list[dict[str, Any]],
    index_s: float,
    notes: str,
) -> Path:
    out_dir = results_root / method
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{pkg}.jsonl"
    tmp = out.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(out)
    took = [r["took_ms"] for r in rows]
    load1, load5, _ = os.getloadavg()
    notes = (
        f"{notes} Machine load average when written: {load1:.1f} (1 min) / {load5:.1f} (5 min) "
        f"on {os.cpu_count()} CPUs."
    )
    timing = {
        "index_s": round(index_s, 3),
        "query_ms_p50": round(percentile(took, 50), 3),
        "query_ms_p95": round(percentile(took, 95), 3),
        "notes": notes,
    }
    (out_dir / f"{pkg}.timing.json").write_text(
        json.dumps(timing, indent=2) + "\n", encoding="utf-8"
    )
    return out
