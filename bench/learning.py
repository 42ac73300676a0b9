"""Does learning pay? Base model, full fine-tune, query adapter and both, on the benchmark queries.

For each package and protocol the benchmark's queries are searched (semantic and
hybrid, `Engine.search`, as users get them) with:

- ``base``: the bundled model, nothing trained;
- ``adapter``: `kenning train --parts adapter` (a query adapter, seconds);
- ``model``: `kenning train --parts model` (a full fine-tune, minutes), then the
  index re-embedded with whatever the gate left in place;
- ``both``: the ``model`` run's index, then `--parts adapter` on top (what
  `--parts both` does, without paying for the fine-tune twice);
- ``model-e3``, ``both-e3``: the same with three passes over the training pairs
  (`train.epochs` 3) instead of the default; ``model-lr1e4``, ``both-lr1e4``: with a
  learning rate of 1e-4 (`train.lr`) instead of the default; ``model-s60``,
  ``both-s60``: with at least 60 optimizer steps (`--min-steps`) instead of 20;
- ``adapter-nohard``, ``adapter-noid``, ``adapter-bychunk``, ``adapter-docchoice``:
  ablations of the adapter, without hard negatives (random chunks instead, as
  many), without identifier pairs, with cross-fitting folds that keep a chunk's
  pairs together instead of a file's, with the penalty chosen on docstring
  and pick pairs only, with half as many steps per penalty along the path
  (``adapter-halfsteps``), and without the pairs whose positive is a test's own
  code (``adapter-notests``: a test's docstring describes the test), and
  measured on those pairs too (``adapter-testsmeasured``: as it was before they
  only trained); ``adapter-allfit`` keeps the adapter fitted on every pair, the
  run's held-out files too, instead of its training side alone;
- ``adapter-weak25``, ``adapter-noweak``: the adapter with signature and identifier
  pairs at most a quarter of its training pairs, or none (`TrainOptions.max_signature_share`
  0.25 and 0 instead of 0.5);
- ``adapter-split`` (not run any more): rows kept from the adapter before
  cross-fitting (one validation split, one held-out split), for the ablation;
- ``adapter-minibatch`` (not run any more): werkzeug's adapter rows from before
  every pair went into every step (`adapter.FULL_BATCH_FLOATS`), when steps above
  512 pairs took minibatches of 512; the only package with that many;
- ``adapter-w1.5``, ``model-w1.5``, ``both-w1.5`` (not run any more): the rows of
  ``adapter``, ``model`` and ``both`` as measured before a model trained on the
  workspace weighed `Ranking.trained_dense_weight` in hybrid fusion, when it
  weighed 1.5 like the bundled one (same indexes, copied with their ranks);
- ``adapter-splitall``, ``model-s60-splitall``, ``both-s60-splitall`` (not run any
  more): the rows of ``adapter``, ``model-s60`` and ``both-s60`` on the partly
  documented protocol as measured before the trainer's held-out files were chosen
  and counted by the pairs that measure (`pairs.is_measured`), when every pair
  counted (copied with their ranks);
- ``picks``: half of the queries played as picks (`kenning/feedback`, through the
  same store the server writes), up to ``--picks`` of them, then `--parts adapter`;
  only the other half is measured, next to ``base`` and ``adapter`` on that half;
- ``picks-heavy``: the same with each pick weighing HEAVY_PICK_WEIGHT in the
  adapter's loss instead of `pick_pairs.PICK_WEIGHT` (an ablation).

Protocols: ``full`` is the classic one (every query function loses its
docstring: `bench.corpus`); ``partial`` keeps the docstrings of a stable half of
them as training signal and asks the other half (`bench.corpus_partial`).

Training never sees a query's docstring. Each trained system runs once per
seed (the seed picks the trainer's held-out split, samples and initialisation),
in its own copy of the package's index, so runs never disturb each other. Per
system: MRR@10 per seed, their mean, and a paired Wilcoxon test of the
per-query reciprocal ranks (averaged over seeds) against ``base``.

Per-query ranks go to ``bench/results/learning/*.jsonl`` (not committed); the
summary to ``bench/results/learning.json``. Rows already there are kept, so a
long campaign can be run package by package.

Usage (from the repository root)::

    python -m bench.learning [--packages tqdm,flask] [--protocols full,partial]
        [--systems base,adapter,model,both,picks] [--seeds 42,43,44] [--model-seeds 42]
        [--picks 50] [--remeasure]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from bench import corpus, corpus_partial
from bench.corpus import Query
from bench.quality import CUTOFF, RESULTS_DIR, Answer, Span, first_hit_rank

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work" / "learning"
INDEX_ROOT = BENCH_DIR / ".work" / "index"
SUMMARY = RESULTS_DIR / "learning.json"
RANKS_DIR = RESULTS_DIR / "learning"
MODES = ("semantic", "hybrid")
PROTOCOLS = ("full", "partial")
SYSTEMS = ("base", "adapter", "model", "both", "picks")
ABLATIONS = (
    "adapter-nohard",
    "adapter-noid",
    "adapter-bychunk",
    "adapter-docchoice",
    "adapter-halfsteps",
    "adapter-notests",
    "adapter-testsmeasured",
    "adapter-allfit",
)
ADAPTER_SETTINGS: dict[str, dict[str, Any]] = {
    "adapter-weak25": {"max_signature_share": 0.25},
    "adapter-noweak": {"max_signature_share": 0.0},
}
"""Adapter ablations that change a `train.*` setting rather than the trainer's code."""
MODEL_SYSTEMS: dict[str, dict[str, Any]] = {
    "model": {},
    "model-e3": {"epochs": 3},
    "model-lr1e4": {"lr": 1e-4},
    "model-s60": {"min_steps": 60},
}
"""The fine-tune systems and the `train.*` settings each changes. Each has a ``both``
counterpart that stacks an adapter on its index (``both``, ``both-e3``, ...)."""
BOTH_OF = {"both" if m == "model" else "both-" + m.split("-", 1)[1]: m for m in MODEL_SYSTEMS}
PICKS_SYSTEMS = {"picks": None, "picks-heavy": "heavypicks"}
"""The picks system and its ablation, with the variant of the trainer each runs."""
HEAVY_PICK_WEIGHT = 5.0


def workspace_and_queries(pkg: str, protocol: str) -> tuple[Path, list[Query]]:
    if protocol == "full":
        from bench.quality import load_queries

        return corpus.workspace_dir(pkg), load_queries(pkg)
    return corpus_partial.workspace_dir(pkg), corpus_partial.load_queries(pkg)


def base_index(pkg: str, protocol: str) -> Path:
    """The package's index with the base model, copied from `bench/.work/index/<pkg>`
    (built by `bench.kenning_adapter`); the partial workspace then only re-embeds the
    chunks whose docstrings it kept."""
    target = WORK / pkg / protocol / "base"
    if not target.is_dir():
        source = INDEX_ROOT / pkg
        if not (source / "index.sqlite").is_file():
            raise SystemExit(
                f"no index for {pkg}: run `python -m bench.kenning_adapter --packages {pkg}`"
            )
        shutil.copytree(source, target)
        from kenning.server.engine import Engine

        workspace, _ = workspace_and_queries(pkg, protocol)
        with Engine.open(workspace, {"index_dir": str(target)}) as engine:
            engine.index()  # the partial workspace: only the chunks that kept a docstring
    return target


def fresh_copy(source: Path, name: str) -> Path:
    target = source.parent / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target


def reciprocal_rank(query: Query, hits: Sequence[Any]) -> float:
    """1 / the place of the first of `hits` (search results) that answers `query`; 0 when
    none of them does."""
    answer = Answer(query.id, 0.0, [Span(h.path, h.start_line, h.end_line) for h in hits])
    rank = first_hit_rank(answer, query)
    return 1.0 / rank if rank else 0.0


def measure(index_dir: Path, workspace: Path, queries: Sequence[Query]) -> dict[str, Any]:
    """Reciprocal ranks of every query per mode, after bringing the index up to date
    (which re-embeds it when training promoted a new model)."""
    from kenning.server.engine import Engine

    start = time.perf_counter()
    with Engine.open(workspace, {"index_dir": str(index_dir)}) as engine:
        summary = engine.index()
        rr: dict[str, list[float]] = {}
        for mode in MODES:
            rr[mode] = []
            for q in queries:
                rr[mode].append(reciprocal_rank(q, engine.search(q.query, CUTOFF, mode)))
        status = engine.status()
    return {
        "rr": rr,
        "model": status.model,
        "adapter": status.adapter,
        "chunks": status.chunks,
        "reembedded": summary.embedded,
        "measure_s": round(time.perf_counter() - start, 1),
    }


@contextlib.contextmanager
def ablated(variant: str | None) -> Iterator[None]:
    """The trainer with one ingredient taken out, for an ablation row."""
    with contextlib.ExitStack() as stack:
        for module, name, value in _ablation_patches(variant):
            stack.enter_context(mock.patch.object(module, name, value))
        yield


def _ablation_patches(variant: str | None) -> list[tuple[Any, str, Any]]:
    """(module, attribute, value while the variant trains) for `variant`."""
    from kenning.trainer import adapter, adapter_step, cross_fit, pairs, run
    from kenning.trainer.pairs import KINDS

    total = adapter.HARD_NEGATIVES + adapter.SIBLINGS + adapter.RANDOM_NEGATIVES
    kinds = tuple(k for k in KINDS if k != "identifier")
    patches: dict[str, list[tuple[Any, str, Any]]] = {
        # Hard negatives and file siblings replaced by as many random chunks.
        "nohard": [
            (adapter, "HARD_NEGATIVES", 0),
            (adapter, "SIBLINGS", 0),
            (adapter, "RANDOM_NEGATIVES", total),
        ],
        "noid": [(run, "mine_pairs", functools.partial(run.mine_pairs, kinds=kinds))],
        "testsmeasured": [(pairs, "MEASURE_TESTS_OWN_CODE", True)],
        "notests": [(run, "mine_pairs", _without_test_code(run.mine_pairs))],
        "bychunk": [(cross_fit, "GROUP_BY", "chunk")],
        "docchoice": [(cross_fit, "CHOOSE_ON", ("docstring", "pick"))],
        "halfsteps": [(adapter, "WARM_STEPS", adapter.WARM_STEPS // 2)],
        "allfit": [(adapter_step, "KEEP_HELDOUT_UNSEEN", False)],
        "heavypicks": [(adapter_step, "PICK_WEIGHT", HEAVY_PICK_WEIGHT)],
    }
    if variant is None:
        return []
    if variant not in patches:
        raise ValueError(f"unknown trainer variant {variant!r}: one of {', '.join(patches)}")
    return patches[variant]


def _without_test_code(mine: Any) -> Any:
    """`mine_pairs` keeping no pair whose positive is a test's code (a test's docstring,
    comment or signature describes the test, not the code it exercises)."""
    from collections import Counter
    from dataclasses import replace

    from kenning.trainer.pairs import KINDS, _is_test_path

    def mined(*args: Any, **kwargs: Any) -> Any:
        found = mine(*args, **kwargs)
        pairs = [p for p in found.pairs if p.kind == "pick" or not _is_test_path(p.path)]
        counts = Counter(p.kind for p in pairs)
        return replace(found, pairs=pairs, counts={k: counts.get(k, 0) for k in KINDS})

    return mined


def train(
    index_dir: Path,
    workspace: Path,
    parts: str,
    seed: int,
    variant: str | None = None,
    settings_changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from kenning.server.settings import load_settings
    from kenning.trainer.options import TrainOptions
    from kenning.trainer.run import train_workspace

    overrides = {"index_dir": str(index_dir)}
    settings = load_settings(workspace, cli=overrides)
    changes = {**(settings_changes or {}), "parts": parts, "seed": seed, "resume": False}
    options = TrainOptions.from_settings(settings.train, **changes)
    start, cpu = time.perf_counter(), time.process_time()
    with ablated(variant):
        result = train_workspace(workspace, overrides, options)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    data = result.to_json()
    adapter = data.get("adapter") or {}
    return {
        "status": data["status"],
        "reason": data["reason"],
        "model_status": data["model_status"],
        "pairs": data["pairs"],
        "train_s": round(wall, 1),
        "train_cpu_s": round(cpu, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "adapter_s": adapter.get("took_s"),
        "adapter_fit_s": adapter.get("fit_s"),
        "adapter_status": adapter.get("status"),
        "adapter_train_pairs": adapter.get("train_pairs"),
        "adapter_heldout": [
            (adapter.get("before") or {}).get("mrr_at_10"),
            (adapter.get("after") or {}).get("mrr_at_10"),
        ],
        "adapter_penalty": adapter.get("penalty"),
        "model_heldout": [
            (data.get("before") or {}).get("mrr_at_10"),
            (data.get("after") or {}).get("mrr_at_10"),
        ],
        "model_train_s": (data.get("training") or {}).get("took_s"),
        "model_steps": (data.get("training") or {}).get("steps"),
    }


def pick_halves(pkg: str, queries: Sequence[Query]) -> tuple[list[int], list[int]]:
    """(played, measured) query positions: a stable half each, by a hash of the query id."""
    played, measured = [], []
    for i, q in enumerate(queries):
        digest = hashlib.sha256(f"picks:{pkg}:{q.id}".encode()).digest()
        (played if digest[0] % 2 == 0 else measured).append(i)
    return played, measured


def play_picks(index_dir: Path, workspace: Path, queries: Sequence[Query], n: int) -> int:
    """Write `n` picks as the server would on `kenning/feedback`: query -> the function's span."""
    from kenning.server.picks import PickStore, make_pick

    store = PickStore(index_dir)
    store.clear()
    written = 0
    for q in queries[:n]:
        pick, why = make_pick(workspace, q.path, q.start_line, q.end_line, q.query, 1 << 20)
        if pick is None:
            raise SystemExit(f"could not play {q.id} as a pick: {why}")
        store.add(pick)
        written += 1
    return written


def ranks_path(pkg: str, protocol: str, system: str, seed: int | None) -> Path:
    suffix = f"-s{seed}" if seed is not None else ""
    return RANKS_DIR / f"{pkg}-{protocol}-{system}{suffix}.jsonl"


def save_ranks(path: Path, queries: Sequence[Query], rr: dict[str, list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i, q in enumerate(queries):
            fh.write(json.dumps({"id": q.id, **{m: rr[m][i] for m in rr}}) + "\n")


def load_ranks(path: Path) -> dict[str, dict[str, float]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {m: {r["id"]: r[m] for r in rows} for m in MODES}


def load_summary() -> list[dict[str, Any]]:
    return json.loads(SUMMARY.read_text()) if SUMMARY.exists() else []


def save_row(row: dict[str, Any]) -> None:
    from bench.report import _commit

    # Ranking changes move every system's figures: a row says which code measured it.
    row = {**row, "commit": _commit()}
    rows = [
        r
        for r in load_summary()
        if (r["package"], r["protocol"], r["system"], r.get("seed"))
        != (row["package"], row["protocol"], row["system"], row.get("seed"))
    ]
    rows.append(row)
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(rows, indent=1) + "\n")


def run_one(
    pkg: str, protocol: str, system: str, seed: int | None, args: argparse.Namespace
) -> None:
    workspace, queries = workspace_and_queries(pkg, protocol)
    base = base_index(pkg, protocol)
    label = f"{pkg}/{protocol}/{system}" + (f"/seed {seed}" if seed is not None else "")
    print(f"{label} ...", file=sys.stderr, flush=True)
    row: dict[str, Any] = {"package": pkg, "protocol": protocol, "system": system, "seed": seed}
    measured_ids = [q.id for q in queries]
    if args.remeasure and system != "base":
        found = remeasured(pkg, protocol, system, seed, row, queries)
        if found is None:
            print(f"  {label}: nothing trained to remeasure, skipped", file=sys.stderr)
            return
        index, queries = found
        measured_ids = [q.id for q in queries]
    elif system == "base":
        index = base
    elif system == "adapter":
        index = fresh_copy(base, f"{system}-s{seed}")
        row["train"] = train(index, workspace, system, seed or 0)
    elif system in MODEL_SYSTEMS:
        index = fresh_copy(base, f"{system}-s{seed}")
        row["train"] = train(
            index, workspace, "model", seed or 0, settings_changes=MODEL_SYSTEMS[system]
        )
    elif system in ABLATIONS:
        index = fresh_copy(base, f"{system}-s{seed}")
        row["train"] = train(index, workspace, "adapter", seed or 0, system.split("-", 1)[1])
    elif system in ADAPTER_SETTINGS:
        index = fresh_copy(base, f"{system}-s{seed}")
        row["train"] = train(
            index, workspace, "adapter", seed or 0, settings_changes=ADAPTER_SETTINGS[system]
        )
    elif system in BOTH_OF:
        source = base.parent / f"{BOTH_OF[system]}-s{seed}"
        if not (source / "index.sqlite").is_file():
            raise SystemExit(f"{label}: run the {BOTH_OF[system]} system with seed {seed} first")
        index = fresh_copy(source, f"{system}-s{seed}")
        row["train"] = train(index, workspace, "adapter", seed or 0)
    else:  # picks, picks-heavy
        played, measured = pick_halves(pkg, queries)
        index = fresh_copy(base, f"{system}-s{seed}")
        row["picks"] = play_picks(index, workspace, [queries[i] for i in played], args.picks)
        row["train"] = train(index, workspace, "adapter", seed or 0, PICKS_SYSTEMS[system])
        queries = [queries[i] for i in measured]
        measured_ids = [q.id for q in queries]
    result = measure(index, workspace, queries)
    save_ranks(ranks_path(pkg, protocol, system, seed), queries, result.pop("rr"))
    ranks = load_ranks(ranks_path(pkg, protocol, system, seed))
    row.update(result)
    row["queries"] = len(measured_ids)
    row["mrr"] = {m: round(statistics.fmean(ranks[m].values()), 4) for m in MODES}
    print(f"  {label}: {row['mrr']} {row.get('train', {}).get('reason', '')}", file=sys.stderr)
    save_row(row)


def remeasured(
    pkg: str,
    protocol: str,
    system: str,
    seed: int | None,
    row: dict[str, Any],
    queries: list[Query],
) -> tuple[Path, list[Query]] | None:
    """For `--remeasure`: the index a past run left trained, its row's training record
    copied into `row`, and the queries it is measured on (the unplayed half for picks);
    None when no past run left both."""
    index = WORK / pkg / protocol / f"{system}-s{seed}"
    past = [
        r
        for r in load_summary()
        if (r["package"], r["protocol"], r["system"], r.get("seed"))
        == (pkg, protocol, system, seed)
    ]
    if not (index / "index.sqlite").is_file() or not past:
        return None
    row.update({k: past[0][k] for k in ("train", "picks") if k in past[0]})
    if system in PICKS_SYSTEMS:
        _, measured = pick_halves(pkg, queries)
        queries = [queries[i] for i in measured]
    return index, queries


def paired(
    pkg: str,
    protocol: str,
    system: str,
    seeds: Sequence[int],
    mode: str,
    against: str = "base",
) -> dict[str, Any] | None:
    """Per-query reciprocal ranks of `system`, averaged over `seeds`, against base (or
    `against`, averaged over the same seeds) on the same queries: mean difference,
    queries better/worse, Wilcoxon p."""
    from scipy.stats import wilcoxon

    if against == "base":
        base_paths = [ranks_path(pkg, protocol, "base", None)]
    else:
        base_paths = [ranks_path(pkg, protocol, against, s) for s in seeds]
    paths = [ranks_path(pkg, protocol, system, s) for s in seeds]
    # A test over the seeds whose ranks happen to be here would pass for one over all.
    if not paths or not all(p.exists() for p in [*base_paths, *paths]):
        return None
    bases = [load_ranks(p)[mode] for p in base_paths]
    runs = [load_ranks(p)[mode] for p in paths]
    ids = sorted(set.intersection(*(set(r) for r in runs + bases)))
    base = {i: statistics.fmean(b[i] for b in bases) for i in ids}
    diff = np.array([statistics.fmean(r[i] for r in runs) - base[i] for i in ids])
    nonzero = diff[diff != 0]
    p = float(wilcoxon(nonzero).pvalue) if len(nonzero) else 1.0
    return {
        "queries": len(ids),
        "seeds": len(runs),
        "base": round(statistics.fmean(base[i] for i in ids), 4),
        "mean": round(statistics.fmean(statistics.fmean(r[i] for r in runs) for i in ids), 4),
        "delta": round(float(diff.mean()), 4),
        "better": int((diff > 0).sum()),
        "worse": int((diff < 0).sum()),
        "wilcoxon_p": round(p, 5),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.learning", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--packages", default="tqdm,marshmallow,flask,werkzeug,more-itertools")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--seeds", default="42,43,44", help="seeds of the adapter and picks runs")
    parser.add_argument(
        "--model-seeds", default="42", help="seeds of the fine-tune runs (minutes each)"
    )
    parser.add_argument("--picks", type=int, default=50, help="picks played per package")
    parser.add_argument(
        "--remeasure",
        action="store_true",
        help="measure the indexes earlier runs trained again, without training (after a "
        "ranking change); their training records are kept",
    )
    args = parser.parse_args(argv)

    def split(value: str) -> list[str]:
        return [v.strip() for v in value.split(",") if v.strip()]

    seeds = [int(s) for s in split(args.seeds)]
    model_seeds = [int(s) for s in split(args.model_seeds)]
    for pkg in split(args.packages):
        for protocol in split(args.protocols):
            for system in split(args.systems):
                if system == "base":
                    run_one(pkg, protocol, system, None, args)
                    continue
                fine_tuned = system in MODEL_SYSTEMS or system in BOTH_OF
                for seed in model_seeds if fine_tuned else seeds:
                    run_one(pkg, protocol, system, seed, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
