"""How much should a trained model weigh in hybrid fusion? A sweep over the trained indexes.

`Ranking.trained_dense_weight` is the model's weight in the fusion once a query
adapter or a fine-tuned checkpoint answers. This measures hybrid MRR@10 with each
weight of WEIGHTS on the indexes `bench.learning` left trained (every system of
SYSTEMS, every seed that has a row in its summary), through the product's own
`search()` with only that field of the shipped `Ranking` changed. Nothing is
trained or re-embedded: a package takes seconds per index.

The result goes to ``bench/results/fusion_weight.json`` (the mean per package,
protocol, system and weight, with the seeds it covers); `bench.report` renders it
in the learning section.

Usage (from the repository root)::

    python -m bench.fusion_weight [--packages tqdm,flask] [--protocols partial]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import learning
from bench.quality import CUTOFF, RESULTS_DIR

WEIGHTS = (1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)
SYSTEMS = ("adapter", "model-s60", "both-s60")
OUT = RESULTS_DIR / "fusion_weight.json"


def trained_runs(
    summary: Sequence[dict[str, Any]], pkg: str, protocol: str, system: str
) -> list[tuple[int, Path]]:
    """(seed, index) of every finished run of `system`: one with a row in `summary`,
    `bench.learning`'s (a row is saved once its index is measured, so a run still
    training has none)."""
    seeds = sorted(
        {
            r["seed"]
            for r in summary
            if (r["package"], r["protocol"], r["system"]) == (pkg, protocol, system)
        }
    )
    found = [(s, learning.WORK / pkg / protocol / f"{system}-s{s}") for s in seeds]
    return [(s, index) for s, index in found if (index / "index.sqlite").is_file()]


def mrr_by_weight(index: Path, workspace: Path, queries: Sequence[Any]) -> dict[float, float]:
    """Hybrid MRR@10 of `queries` on `index` with each weight of WEIGHTS."""
    from kenning.server.engine import Engine
    from kenning.server.ranking import DEFAULT
    from kenning.server.search import search

    out: dict[float, float] = {}
    with Engine.open(workspace, {"index_dir": str(index)}) as engine:
        engine.index()
        gen = engine.serving_generation()
        if gen is None:
            raise SystemExit(f"{index}: nothing embedded; run bench.learning first")
        encoder, adapter = engine.query_encoder_for(gen), engine.adapter_for(gen)
        for weight in WEIGHTS:
            ranking = replace(DEFAULT, trained_dense_weight=weight)
            rr = []
            for q in queries:
                hits = search(
                    engine.store,
                    encoder,
                    gen,
                    q.query,
                    limit=CUTOFF,
                    mode="hybrid",
                    model_label=gen.model,
                    adapter=adapter,
                    ranking=ranking,
                ).results
                rr.append(learning.reciprocal_rank(q, hits))
            out[weight] = statistics.fmean(rr)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fusion_weight", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--packages", default="tqdm,marshmallow,flask,werkzeug,more-itertools")
    parser.add_argument("--protocols", default="partial,full")
    args = parser.parse_args(argv)
    packages, protocols = args.packages.split(","), args.protocols.split(",")
    rows = [r for r in load() if r["package"] not in packages or r["protocol"] not in protocols]
    summary = learning.load_summary()
    for pkg in packages:
        for protocol in protocols:
            workspace, queries = learning.workspace_and_queries(pkg, protocol)
            for system in SYSTEMS:
                runs = trained_runs(summary, pkg, protocol, system)
                if not runs:
                    continue
                per_seed = [mrr_by_weight(index, workspace, queries) for _, index in runs]
                row = {
                    "package": pkg,
                    "protocol": protocol,
                    "system": system,
                    "seeds": [s for s, _ in runs],
                    "mrr": {
                        str(w): round(statistics.fmean(m[w] for m in per_seed), 4) for w in WEIGHTS
                    },
                }
                print(f"{pkg}/{protocol}/{system}: {row['mrr']}", file=sys.stderr, flush=True)
                rows.append(row)
    OUT.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def load() -> list[dict[str, Any]]:
    return json.loads(OUT.read_text()) if OUT.is_file() else []


if __name__ == "__main__":
    raise SystemExit(main())
