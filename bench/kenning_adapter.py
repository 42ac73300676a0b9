"""Run Kenning itself over the benchmark corpus and write its results files.

For each package the stripped workspace (``bench/.corpus/<pkg>/workspace``) is indexed
once into ``bench/.work/index/<pkg>/`` (reused and brought up to date on later runs),
then every query is searched in each mode and the answers are written for the
methods ``kenning-lexical``, ``kenning-semantic`` and ``kenning-hybrid`` with
``bench.quality.write_results``. Score them with ``python -m bench.quality``. A summary
of each run (index counts and times) goes to ``bench/results/kenning-index/<pkg>.json``.

``took_ms`` is the wall time of one ``Engine.search`` call. One untimed search per
mode runs first, so loading the model and warming caches is not charged to the
first query.

Usage (from the repository root)::

    python -m bench.kenning_adapter [--packages flask,tqdm] [--modes hybrid,lexical]
        [--model DIR --tag NAME] [--sets nl,symbols]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from bench.corpus import PACKAGES_BY_NAME, Query, workspace_dir
from bench.quality import (
    CUTOFF,
    QUERY_SETS,
    RESULTS_DIR,
    Answer,
    Span,
    corpus_packages,
    load_queries,
    write_results,
)

BENCH_DIR = Path(__file__).resolve().parent
INDEX_ROOT = BENCH_DIR / ".work" / "index"
MODES = ("lexical", "semantic", "hybrid")


def method_name(mode: str, tag: str | None = None) -> str:
    """``kenning-<mode>``, or ``kenning-<mode>@<tag>`` for a variant such as a trained model."""
    return f"kenning-{mode}" + (f"@{tag}" if tag else "")


def index_dir_for(pkg: str, tag: str | None = None) -> Path:
    # A tagged variant (another model) gets its own index so runs do not re-embed each other's.
    return INDEX_ROOT / (f"{pkg}@{tag}" if tag else pkg)


def summary_path_for(pkg: str, tag: str | None = None) -> Path:
    return RESULTS_DIR / "kenning-index" / f"{index_dir_for(pkg, tag).name}.json"


def full_index_s(record: dict[str, Any]) -> float | None:
    """Wall time of an index run that embedded (nearly) every chunk, else None.

    Duplicate chunk texts are embedded once, hence "nearly".
    """
    index = record.get("index", {})
    if index.get("chunks") and index.get("embedded", 0) >= 0.9 * index["chunks"]:
        return round(index["took_s"], 1)
    return None


def run_queries(engine: Any, queries: Sequence[Query], mode: str, limit: int) -> list[Answer]:
    """Search every query in `mode`, timing each call."""
    if queries:
        engine.search(queries[0].query, limit=limit, mode=mode)  # warm-up, not timed
    answers = []
    for query in queries:
        started = time.perf_counter()
        hits = engine.search(query.query, limit=limit, mode=mode)
        took_ms = (time.perf_counter() - started) * 1000
        spans = [Span(h.path, h.start_line, h.end_line) for h in hits]
        answers.append(Answer(query.id, took_ms, spans))
    return answers


def run_package(
    pkg: str,
    modes: Sequence[str],
    *,
    limit: int,
    model: str | None,
    tag: str | None,
    index_dir: Path | None = None,
    query_sets: Sequence[str] = ("nl",),
) -> dict[str, Any]:
    """Index one package's workspace, run its queries in every mode, write the results.

    `index_dir` overrides the usual folder, e.g. the index `kenning train` promoted a
    model into (an index serves its promoted model, so no `model` is needed then).
    """
    from kenning.server.engine import Engine  # imported late so `--help` works without the engine

    queries = {query_set: load_queries(pkg, query_set) for query_set in query_sets}
    index_dir = index_dir or index_dir_for(pkg, tag)
    summary_path = summary_path_for(pkg, tag)
    index_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"index_dir": str(index_dir)}
    if model:
        overrides["model"] = model
    engine = Engine.open(workspace_dir(pkg), overrides=overrides)
    try:
        summary = engine.index()
        summary_json = asdict(summary) if is_dataclass(summary) else dict(vars(summary))
        print(
            f"{pkg}: indexed {summary_json.get('files')} files, {summary_json.get('chunks')} "
            f"chunks, embedded {summary_json.get('embedded')} in "
            f"{summary_json.get('took_s', 0):.1f}s",
            file=sys.stderr,
        )
        timings = {}
        for query_set, asked in queries.items():
            for mode in modes:
                started = time.perf_counter()
                answers = run_queries(engine, asked, mode, limit)
                write_results(method_name(mode, tag), pkg, answers, query_set)
                key = mode if query_set == "nl" else f"{mode}:{query_set}"
                timings[key] = round(time.perf_counter() - started, 2)
                print(
                    f"{pkg}: {len(answers)} {mode} searches ({query_set}) in {timings[key]:.1f}s",
                    file=sys.stderr,
                )
    finally:
        engine.close()
    record = {
        "package": pkg,
        "queries": len(queries.get("nl", ())),
        "model": engine.model_ref.label,
        "index": summary_json,
        "search_s": timings,
    }
    # The time of a run that embedded the whole workspace is what compares with a peer's
    # index time; a later run that reuses the index only brings it up to date, so it
    # keeps the earlier figure.
    previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    record["full_index_s"] = full_index_s(record) or previous.get("full_index_s")
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kenning_adapter", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--packages", default="", help="comma-separated packages (default: all in the corpus)"
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated subset of: " + ", ".join(MODES)
    )
    parser.add_argument("--limit", type=int, default=CUTOFF, help="results per query")
    parser.add_argument(
        "--model", help="override the `model` setting (e.g. a trained checkpoint directory)"
    )
    parser.add_argument(
        "--tag", help="suffix for method names and index dirs, e.g. the model's name"
    )
    parser.add_argument(
        "--sets", default="nl", help="comma-separated query sets: " + ", ".join(QUERY_SETS)
    )
    args = parser.parse_args(argv)

    packages = _split(args.packages) or corpus_packages()
    modes = _split(args.modes)
    if bad := [m for m in modes if m not in MODES]:
        parser.error(f"unknown mode(s): {', '.join(bad)}")
    query_sets = _split(args.sets)
    if bad := [s for s in query_sets if s not in QUERY_SETS]:
        parser.error(f"unknown query set(s): {', '.join(bad)}")
    if bad := [p for p in packages if p not in PACKAGES_BY_NAME]:
        parser.error(f"unknown package(s): {', '.join(bad)}")
    if not packages:
        parser.error("no corpus built; run: python -m bench.corpus")
    if args.model and not args.tag:
        parser.error("--model needs --tag, so its results do not overwrite the default model's")
    for pkg in packages:
        run_package(
            pkg, modes, limit=args.limit, model=args.model, tag=args.tag, query_sets=query_sets
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
