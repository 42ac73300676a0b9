"""Score ranking variants on the stored benchmark indexes, without re-embedding.

Each variant is a `kenning.server.ranking.Ranking` (the product's own knobs) run
through the product's own `search()` over the package's index in
``bench/.work/index/<pkg>`` (built by ``bench.kenning_adapter``). Query vectors
are computed once per model and kept in ``bench/.work/lab/``, so a variant costs
only the searches: seconds per package. This is how every ranking lever and the
fusion were measured: one lever at a time against the baseline, the tuning
packages (tqdm, marshmallow, flask) apart from the untouched ones.

Usage (from the repository root)::

    python -m bench.ranking_lab [--packages flask,tqdm] [--sets nl,symbols]
        [--variants default,no-definition] [--json bench/results/ranking_ablation.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.corpus import Query, workspace_dir
from bench.kenning_adapter import index_dir_for
from bench.quality import QUERY_SETS, Answer, Span, corpus_packages, first_hit_rank, load_queries

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".work" / "lab"
TUNING = ("tqdm", "marshmallow", "flask")
"""Ranking is tuned on these; the others are reported apart, as untouched."""


def _variants() -> dict[str, Variant]:
    """name -> Variant: the ablation. `default` is what the product ships;
    `levers off` is its fusion and priors with every code-aware lever switched
    off, and each `+ lever` row switches one back on; `- lever` rows take one
    out of the default."""
    from kenning.server.ranking import DEFAULT

    levers: dict[str, dict[str, Any]] = {
        "definition": {
            "definition_boost": DEFAULT.definition_boost,
            "embedded_definition_boost": DEFAULT.embedded_definition_boost,
        },
        "name": {"name_boost": DEFAULT.name_boost},
        "path": {"path_boost": DEFAULT.path_boost},
        "coherence": {"coherence": DEFAULT.coherence},
        # Off in the default (it lost): measured at semble's strength.
        "file decay 0.5": {"file_decay": 0.5},
        "stub": {"stub_prior": DEFAULT.stub_prior},
        "example/compat/reexport": {
            "example_prior": DEFAULT.example_prior,
            "compat_prior": DEFAULT.compat_prior,
            "reexport_prior": DEFAULT.reexport_prior,
        },
    }
    off = replace(
        DEFAULT,
        definition_boost=0.0,
        embedded_definition_boost=0.0,
        name_boost=0.0,
        path_boost=0.0,
        coherence=0.0,
        file_decay=1.0,
        example_prior=1.0,
        compat_prior=1.0,
        reexport_prior=1.0,
        stub_prior=1.0,
    )
    before_priors = {
        "prose_prior": 0.5,
        "docs_question_prose_prior": 0.5,
        "test_prior": 0.6,
        "tests_asked_test_prior": 0.6,
    }
    out: dict[str, Variant] = {
        "semantic": Variant("semantic", DEFAULT),
        "lexical": Variant("lexical", DEFAULT),
        "lexical (bm25s engine)": Variant("lexical", DEFAULT, "bm25s"),
        "lexical (common words pruned)": Variant("lexical", DEFAULT, "pruned"),
        "fixed-rrf": Variant(
            "hybrid",
            replace(
                off, adaptive=False, rrf_k=60, dense_weight=3.0, lexical_weight=1.0, **before_priors
            ),
        ),
        "adaptive fusion": Variant("hybrid", replace(off, **before_priors)),
        "levers off": Variant("hybrid", off),
    }
    for name, knobs in levers.items():
        out[f"+ {name}"] = Variant("hybrid", replace(off, **knobs))
    out["default"] = Variant("hybrid", DEFAULT)
    out["default (bm25s engine)"] = Variant("hybrid", DEFAULT, "bm25s")
    out["default (common words pruned)"] = Variant("hybrid", DEFAULT, "pruned")
    for name, knobs in levers.items():
        if all(getattr(DEFAULT, k) == getattr(off, k) for k in knobs):
            continue  # not in the default: nothing to take out
        out[f"- {name}"] = Variant(
            "hybrid", replace(DEFAULT, **{k: getattr(off, k) for k in knobs})
        )
    return out


def parse_variant(spec: str) -> tuple[str, Variant]:
    """`label:field=value;field=value` -> a hybrid variant of the default ranking."""
    from kenning.server.ranking import DEFAULT

    label, _, body = spec.partition(":")
    knobs: dict[str, Any] = {}
    for item in filter(None, body.split(";")):
        key, _, value = item.partition("=")
        knobs[key.strip()] = json.loads(value)
        if isinstance(knobs[key.strip()], list):
            knobs[key.strip()] = tuple(knobs[key.strip()])
    return label, Variant("hybrid", replace(DEFAULT, **knobs))


@dataclass(frozen=True)
class Variant:
    mode: str
    ranking: Any
    engine: str | None = None
    """Another lexical engine in place of FTS5 (see bench/lexical_engines.py)."""


@dataclass
class Scored:
    variant: str
    package: str
    query_set: str
    queries: int
    mrr10: float
    recall1: float
    recall10: float
    median_ms: float


class CachedQueries:
    """An embedder stand-in that answers `encode_query` from vectors computed once."""

    def __init__(self, embedder: Any, identity: str, pkg: str, texts: Sequence[str]):
        key = hashlib.sha1(identity.encode()).hexdigest()[:12]
        self.path = CACHE_DIR / f"{pkg}.{key}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            data = np.load(self.path, allow_pickle=False)
            self.vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            print(f"{pkg}: embedding {len(missing)} queries", file=sys.stderr)
            for text in missing:
                self.vectors[text] = embedder.encode_query(text)
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            names = list(self.vectors)
            np.savez(
                self.path, texts=np.array(names), vectors=np.stack(list(self.vectors.values()))
            )

    def encode_query(self, query: str) -> np.ndarray:
        return self.vectors[query]


class Package:
    """One package's index opened for searching, with its queries' vectors cached."""

    def __init__(self, pkg: str, query_sets: Sequence[str], tag: str | None = None):
        from kenning.server.engine import Engine

        self.pkg = pkg
        self.queries = {s: load_queries(pkg, s) for s in query_sets}
        index_dir = index_dir_for(pkg, tag)
        if not (index_dir / "index.sqlite").exists():
            raise FileNotFoundError(
                f"{index_dir} has no index; run: python -m bench.kenning_adapter"
            )
        self.engine = Engine.open(workspace_dir(pkg), overrides={"index_dir": str(index_dir)})
        gen = self.engine.serving_generation()
        if gen is None:
            raise RuntimeError(f"{index_dir} has no vectors; run: python -m bench.kenning_adapter")
        self.gen = gen
        texts = [q.query for qs in self.queries.values() for q in qs]
        self.engines: dict[str, Any] = {}
        self.embedder = CachedQueries(self.engine.embedder_for(gen), gen.identity, pkg, texts)

    def run(self, variant: Variant, query_set: str) -> list[tuple[Query, Answer]]:
        store = self.engine.store
        if variant.engine is not None:
            from bench.lexical_engines import ENGINES

            if variant.engine not in self.engines:
                self.engines[variant.engine] = ENGINES[variant.engine](store)
            store.lexical_search = self.engines[variant.engine]  # type: ignore[method-assign]
        try:
            return self._run(variant, query_set)
        finally:
            if variant.engine is not None:
                del store.lexical_search  # back to the class's own method

    def _run(self, variant: Variant, query_set: str) -> list[tuple[Query, Answer]]:
        from kenning.server.search import search

        out = []
        for q in self.queries[query_set]:
            started = time.perf_counter()
            outcome = search(
                self.engine.store,
                self.embedder,  # type: ignore[arg-type]
                self.gen,
                q.query,
                mode=variant.mode,
                ranking=variant.ranking,
            )
            took = (time.perf_counter() - started) * 1000
            spans = [Span(r.path, r.start_line, r.end_line) for r in outcome.results]
            out.append((q, Answer(q.id, took, spans)))
        return out

    def close(self) -> None:
        self.engine.close()


def score(variant: str, pkg: str, query_set: str, answered: list[tuple[Query, Answer]]) -> Scored:
    ranks = [first_hit_rank(a, q) for q, a in answered]
    n = len(ranks) or 1
    return Scored(
        variant,
        pkg,
        query_set,
        len(ranks),
        sum(1 / r for r in ranks if r) / n,
        sum(r == 1 for r in ranks) / n,
        sum(r is not None for r in ranks) / n,
        statistics.median(a.took_ms for _, a in answered) if answered else float("nan"),
    )


def macro(rows: list[Scored], packages: Sequence[str], label: str) -> Scored | None:
    """The mean over `packages`, or None unless every one of them was run."""
    picked = [r for r in rows if r.package in packages]
    if not picked or {r.package for r in picked} != set(packages):
        return None
    first = picked[0]
    return Scored(
        first.variant,
        label,
        first.query_set,
        sum(r.queries for r in picked),
        statistics.fmean(r.mrr10 for r in picked),
        statistics.fmean(r.recall1 for r in picked),
        statistics.fmean(r.recall10 for r in picked),
        statistics.fmean(r.median_ms for r in picked),
    )


def table(rows: list[Scored], packages: Sequence[str]) -> str:
    """Variants as rows, packages (then the tuning and untouched macros) as columns."""
    tuning = [p for p in packages if p in TUNING]
    untouched = [p for p in packages if p not in TUNING]
    cols = [*tuning, *untouched, "tuning", "untouched", "all"]
    lines = []
    for query_set in dict.fromkeys(r.query_set for r in rows):
        lines.append(f"\nMRR@10, {query_set} queries")
        lines.append("| variant | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for variant in dict.fromkeys(r.variant for r in rows):
            mine = [r for r in rows if r.variant == variant and r.query_set == query_set]
            by_pkg = {r.package: r for r in mine}
            for label, group in (("tuning", tuning), ("untouched", untouched), ("all", packages)):
                m = macro(mine, group, label)
                if m is not None:
                    by_pkg[label] = m
            cells = [f"{by_pkg[c].mrr10:.3f}" if c in by_pkg else "–" for c in cols]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(
    packages: Sequence[str],
    query_sets: Sequence[str],
    variants: dict[str, Variant],
    progress: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    tag: str | None = None,
) -> list[Scored]:
    """Every variant on every package's index (``<pkg>@<tag>`` with a tag)."""
    rows: list[Scored] = []
    for pkg in packages:
        package = Package(pkg, query_sets, tag)
        try:
            for name, variant in variants.items():
                for query_set in query_sets:
                    rows.append(score(name, pkg, query_set, package.run(variant, query_set)))
                    progress(f"{pkg} {query_set} {name}: {rows[-1].mrr10:.3f}")
        finally:
            package.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ranking_lab", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--packages", default="", help="comma-separated (default: all)")
    parser.add_argument("--sets", default="nl", help="query sets: " + ", ".join(QUERY_SETS))
    parser.add_argument("--variants", default="", help="comma-separated (default: all)")
    parser.add_argument(
        "--try",
        dest="tries",
        action="append",
        default=[],
        metavar="LABEL:FIELD=VALUE;...",
        help="an extra hybrid variant of the default ranking, e.g. 'k20:rrf_k=20'",
    )
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument(
        "--append",
        action="store_true",
        help="with --json: keep the file's other rows, replacing those run again",
    )
    args = parser.parse_args(argv)
    packages = [p for p in args.packages.split(",") if p] or corpus_packages()
    every = _variants()
    tried = dict(parse_variant(spec) for spec in args.tries)
    every.update(tried)
    chosen = [v for v in args.variants.split(",") if v] or (list(tried) or list(every))
    if bad := [v for v in chosen if v not in every]:
        parser.error(f"unknown variant(s): {', '.join(bad)}; known: {', '.join(every)}")
    rows = run(packages, [s for s in args.sets.split(",") if s], {v: every[v] for v in chosen})
    print(table(rows, packages))
    if args.json:
        out = Path(args.json)
        kept = []
        if args.append and out.exists():
            again = {(r.variant, r.package, r.query_set) for r in rows}
            kept = [
                row
                for row in json.loads(out.read_text())
                if (row["variant"], row["package"], row["query_set"]) not in again
            ]
        out.write_text(json.dumps(kept + [asdict(r) for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
