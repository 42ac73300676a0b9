"""Score code-search methods on the benchmark corpus, independently of any engine.

Every method (Kenning's lexical/semantic/hybrid modes, peers such as semble or
vectorcode) writes its answers to ``bench/results/<method>/<pkg>.jsonl``, one line
per query, best result first, lines 1-based and inclusive::

    {"id": "flask:12", "took_ms": 8.1,
     "results": [{"path": "src/flask/app.py", "start_line": 10, "end_line": 42}, ...]}

A result is a *hit* when it is in the query function's file and its line range
overlaps the function's span (see ``bench/corpus.py``). Per package we report
MRR@10, Recall@1, Recall@10, median and p95 ``took_ms`` and how many queries got an
answer line; a query without an answer line is a miss. The macro row is the
unweighted mean of the package rows, so sqlalchemy's ~2,300 queries do not drown
the smaller packages. Each score is also written to ``<pkg>.score.json`` beside the
answers: the answers are large and not committed, the scores are, so RESULTS.md can
be rendered again without rerunning every method.

There are two query sets: ``nl`` (the docstring sentences above) and ``symbols``
(names as people type them, ``Class.method``; see ``bench/symbol_queries.py``). The
second set's answers and scores live under ``bench/results/symbols/<method>/``.

Methods that write answers: ``bench/kenning_adapter.py`` (Kenning's three modes),
``bench/bm25_reference.py`` (``bm25-reference``, a textbook BM25 over Kenning's own
chunks, the bar the lexical side must clear) and the peers in ``bench/peers/``.

Usage (from the repository root)::

    python -m bench.quality [--methods kenning-hybrid,semble] [--packages flask,tqdm] [--plot]
        [--set nl|symbols]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.corpus import CORPUS_DIR, PACKAGES_BY_NAME, Query, queries_path, read_jsonl

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PLOT_PATH = BENCH_DIR / "quality.png"
CUTOFF = 10  # results beyond the tenth are ignored
MACRO = "macro"
QUERY_SETS = ("nl", "symbols")


class SpanLike(Protocol):
    """Anything with a workspace path and a 1-based inclusive line range."""

    path: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Span:
    """One result of a method: a line range in a workspace file."""

    path: str
    start_line: int
    end_line: int


@dataclass
class Answer:
    """A method's answer to one query, results best first."""

    id: str
    took_ms: float
    results: list[Span]


@dataclass
class Score:
    """Quality and latency of one method on one package (or the macro average)."""

    method: str
    package: str
    queries: int
    answered: int
    mrr10: float
    recall1: float
    recall10: float
    median_ms: float
    p95_ms: float


# -- reading and writing ----------------------------------------------------------------------


def load_queries(pkg: str, query_set: str = "nl") -> list[Query]:
    """The queries of `pkg` to run (``queries.jsonl``; a sample in quick mode), or
    its name queries for the ``symbols`` set."""
    if query_set == "symbols":
        from bench import symbol_queries

        return symbol_queries.load(pkg)
    path = queries_path(pkg)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; build the corpus with: python -m bench.corpus")
    return [Query.from_json(row) for row in read_jsonl(path)]


def results_root(query_set: str = "nl") -> Path:
    """Where a query set's answers and scores live, one folder per method."""
    if query_set not in QUERY_SETS:
        raise ValueError(f"query set must be one of {', '.join(QUERY_SETS)}, got {query_set!r}")
    return RESULTS_DIR if query_set == "nl" else RESULTS_DIR / query_set


def results_path(method: str, pkg: str, query_set: str = "nl") -> Path:
    return results_root(query_set) / method / f"{pkg}.jsonl"


def _span_from(item: SpanLike | dict[str, Any]) -> Span:
    if isinstance(item, dict):
        return Span(str(item["path"]), int(item["start_line"]), int(item["end_line"]))
    return Span(item.path, int(item.start_line), int(item.end_line))


def write_results(method: str, pkg: str, answers: Iterable[Answer], query_set: str = "nl") -> Path:
    """Write a method's answers for `pkg`, replacing any earlier run atomically.

    The results in each Answer may be Spans, dicts, or any object with ``path``,
    ``start_line`` and ``end_line`` (a Kenning SearchResult works as is).
    """
    path = results_path(method, pkg, query_set)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for answer in answers:
            row = {
                "id": answer.id,
                "took_ms": round(float(answer.took_ms), 3),
                "results": [_span_from(r).__dict__ for r in answer.results],
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def load_answers(method: str, pkg: str, query_set: str = "nl") -> dict[str, Answer]:
    """A method's answers by query id; the first line wins if an id repeats."""
    path = results_path(method, pkg, query_set)
    answers: dict[str, Answer] = {}
    if not path.exists():
        return answers
    for row in read_jsonl(path):
        if row["id"] not in answers:
            spans = [_span_from(r) for r in row.get("results", [])]
            answers[row["id"]] = Answer(row["id"], float(row.get("took_ms", math.nan)), spans)
    return answers


def score_path(method: str, pkg: str, query_set: str = "nl") -> Path:
    return results_root(query_set) / method / f"{pkg}.score.json"


def _scored(directory: Path) -> bool:
    return any(directory.glob("*.jsonl")) or any(directory.glob("*.score.json"))


def methods_with_results(query_set: str = "nl") -> list[str]:
    """Every method that has answers or a kept score for at least one package, sorted."""
    root = results_root(query_set)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _scored(p))


def corpus_packages() -> list[str]:
    """Packages with built queries (or, without a corpus, kept scores), in the pinned order."""

    def known(name: str) -> bool:
        return queries_path(name).exists() or any(RESULTS_DIR.glob(f"*/{name}.score.json"))

    return [name for name in PACKAGES_BY_NAME if known(name)]


# -- scoring ------------------------------------------------------------------------------------


def _normalise(path: str) -> str:
    path = path.replace("\\", "/")
    return path[2:] if path.startswith("./") else path


def is_hit(result: Span, query: Query) -> bool:
    """Same file, and the line ranges overlap."""
    return (
        _normalise(result.path) == query.path
        and result.start_line <= query.end_line
        and result.end_line >= query.start_line
    )


def first_hit_rank(answer: Answer | None, query: Query) -> int | None:
    """1-based rank of the first hit within the cutoff, or None."""
    if answer is None:
        return None
    for rank, result in enumerate(answer.results[:CUTOFF], start=1):
        if is_hit(result, query):
            return rank
    return None


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def score(method: str, pkg: str, query_set: str = "nl") -> Score:
    """Score `method`'s answers for `pkg`, and keep the score; without answers, the kept score.

    A package that the method never answered scores as all misses (answered 0/N).
    """
    kept = score_path(method, pkg, query_set)
    if not results_path(method, pkg, query_set).exists() and kept.exists():
        return Score(**json.loads(kept.read_text()))
    fresh = _score_answers(method, pkg, query_set)
    if fresh.answered:
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps(asdict(fresh), indent=1) + "\n")
    return fresh


def _score_answers(method: str, pkg: str, query_set: str = "nl") -> Score:
    # No corpus: nothing answered.
    queries = load_queries(pkg, query_set) if queries_path(pkg).exists() else []
    answers = load_answers(method, pkg, query_set)
    return score_ranks(method, pkg, queries, answers)


def score_ranks(
    method: str, pkg: str, queries: Sequence[Query], answers: dict[str, Answer]
) -> Score:
    """The score of `answers` (by query id) to `queries`."""
    ranks = [first_hit_rank(answers.get(q.id), q) for q in queries]
    timings = [
        answers[q.id].took_ms
        for q in queries
        if q.id in answers and not math.isnan(answers[q.id].took_ms)
    ]
    n = len(queries) or 1  # an empty package scores 0 rather than dividing by zero
    return Score(
        method=method,
        package=pkg,
        queries=len(queries),
        answered=sum(q.id in answers for q in queries),
        mrr10=sum(1 / r for r in ranks if r) / n,
        recall1=sum(r == 1 for r in ranks) / n,
        recall10=sum(r is not None for r in ranks) / n,
        median_ms=statistics.median(timings) if timings else math.nan,
        p95_ms=percentile(timings, 95),
    )


def macro_average(scores: Sequence[Score]) -> Score:
    """Unweighted mean over packages of one method's scores (counts are summed)."""

    def mean(name: str) -> float:
        values = [getattr(s, name) for s in scores if not math.isnan(getattr(s, name))]
        return statistics.fmean(values) if values else math.nan

    return Score(
        method=scores[0].method,
        package=MACRO,
        queries=sum(s.queries for s in scores),
        answered=sum(s.answered for s in scores),
        mrr10=mean("mrr10"),
        recall1=mean("recall1"),
        recall10=mean("recall10"),
        median_ms=mean("median_ms"),
        p95_ms=mean("p95_ms"),
    )


def score_all(
    methods: Sequence[str], packages: Sequence[str], query_set: str = "nl"
) -> list[Score]:
    """Per-package scores of every method, followed by each method's macro row."""
    out: list[Score] = []
    for method in methods:
        per_package = [score(method, pkg, query_set) for pkg in packages]
        out.extend(per_package)
        if per_package:
            out.append(macro_average(per_package))
    return out


# -- reporting -------------------------------------------------------------------------------------


def _fmt_ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def markdown_table(scores: Sequence[Score]) -> str:
    """A Markdown table with one row per package and method, macro rows last."""
    header = "| package | method | MRR@10 | R@1 | R@10 | median ms | p95 ms | answered |"
    rule = "|---|---|---:|---:|---:|---:|---:|---:|"
    # Group by package (first-seen order, macro last) so methods compare side by side.
    packages = list(dict.fromkeys(s.package for s in scores if s.package != MACRO)) + [MACRO]
    methods = list(dict.fromkeys(s.method for s in scores))
    ordered = sorted(scores, key=lambda s: (packages.index(s.package), methods.index(s.method)))
    rows = [
        f"| {s.package} | {s.method} | {s.mrr10:.3f} | {s.recall1:.3f} | {s.recall10:.3f} "
        f"| {_fmt_ms(s.median_ms)} | {_fmt_ms(s.p95_ms)} | {s.answered}/{s.queries} |"
        for s in ordered
    ]
    return "\n".join([header, rule, *rows])


def plot_quality(scores: Sequence[Score], path: Path = PLOT_PATH) -> Path:
    """Grouped bars of MRR@10: one group per package (and macro), one bar per method."""
    import matplotlib

    matplotlib.use("Agg")  # no display on benchmark machines
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(s.method for s in scores))
    packages = list(dict.fromkeys(s.package for s in scores if s.package != MACRO))
    if any(s.package == MACRO for s in scores):
        packages.append(MACRO)
    value = {(s.method, s.package): s.mrr10 for s in scores}
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(
        figsize=(max(6.0, 1.3 * len(packages) + 0.3 * len(methods) * len(packages)), 4.5)
    )
    for i, method in enumerate(methods):
        xs = [p + (i - (len(methods) - 1) / 2) * width for p in range(len(packages))]
        ys = [value.get((method, pkg), 0.0) for pkg in packages]
        ax.bar(xs, ys, width, label=method)
    ax.set_xticks(range(len(packages)), packages)
    ax.set_ylabel("MRR@10")
    ax.set_ylim(0, 1)
    ax.set_title("Code search quality (CodeSearchNet-style queries)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", ncols=min(len(methods), 3))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--methods", help="comma-separated methods (default: all with results)")
    parser.add_argument("--packages", help="comma-separated packages (default: all in the corpus)")
    parser.add_argument(
        "--plot",
        nargs="?",
        const=str(PLOT_PATH),
        metavar="PNG",
        help=f"also draw the MRR@10 chart (default {PLOT_PATH.relative_to(BENCH_DIR.parent)})",
    )
    parser.add_argument(
        "--set", dest="query_set", choices=QUERY_SETS, default="nl", help="which query set"
    )
    args = parser.parse_args(argv)

    methods = _split(args.methods) or methods_with_results(args.query_set)
    packages = _split(args.packages) or corpus_packages()
    if not packages:
        print(f"no corpus in {CORPUS_DIR}; run: python -m bench.corpus", file=sys.stderr)
        return 1
    if not methods:
        print(f"no results in {RESULTS_DIR}", file=sys.stderr)
        return 1
    scores = score_all(methods, packages, args.query_set)
    print(markdown_table(scores))
    if args.plot:
        print(f"wrote {plot_quality(scores, Path(args.plot))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
