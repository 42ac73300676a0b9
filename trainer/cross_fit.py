"""Choosing and measuring a query adapter by cross-fitting.

A single held-out split of a workspace's pairs is small (tens of queries from a
few files) and which files land in it decides the verdict: on the benchmark the
same package promoted an adapter with one seed and refused it with the next.
Instead, the files (and picked queries) are dealt into FOLDS folds; for each
fold the whole penalty path (`adapter.penalty_path`) is fitted on the other
folds and every query-like pair of the fold (`pairs.is_measured`: not
a test's own code) is ranked under each penalty. So every query-like pair is
measured once, by adapters that never saw its file.

- The penalty kept is the one whose pooled MRR@10 is best; the identity (no
  adapter) is a candidate and wins ties.
- The gate's figure for the new adapter is nested, so the choice does not
  flatter it: a fold's pairs are scored at the penalty chosen on the *other*
  folds.
- The adapter promoted is the same path, stopped at the chosen penalty, fitted
  on the rows the caller names (`final_rows`): the run's training side, so
  the held-out files stay unseen by what searches use, and `kenning eval` and
  the next fine-tune's gate still measure on pairs it never trained on.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import adapter
from .adapter import PENALTIES, FitData, candidate_negatives, penalty_path
from .evaluate import reciprocal_ranks
from .pairs import Pair, is_measured
from .pick_pairs import norm_query

FOLDS = 4
IDENTITY = math.inf
"""The penalty that stands for no adapter at all."""

Score = Callable[[Sequence[int], np.ndarray | None], np.ndarray]
"""(pair rows, matrix or None for the identity) -> 1-based rank of each row's positive."""


@dataclass
class CrossFit:
    penalty: float
    """The penalty kept (IDENTITY when nothing beat the model as it is)."""
    matrix: np.ndarray
    """(dim, dim) float32: the path on `final_rows` at `penalty`, or the identity."""
    scored: list[int]
    """Rows of the pairs that were measured (the query-like ones), in the order of `ranks`."""
    identity_ranks: np.ndarray
    """Each scored pair's rank under the model as it is."""
    ranks: np.ndarray
    """Each scored pair's rank under its fold's adapter, at the penalty chosen on the
    other folds (nested: what the gate compares)."""
    fold_rows: list[list[int]] = field(default_factory=list)
    """The scored rows of each fold."""
    scores: dict[str, float] = field(default_factory=dict)
    """Pooled MRR@10 per penalty (`identity` for none): how the penalty was chosen."""
    folds: int = 0
    steps: int = 0
    took_s: float = 0.0


GROUP_BY = "file"
"""What a fold keeps together: `file` (every mined pair of a file) or `chunk` (every pair
whose positive is one chunk: its docstring, comment, signature, test and name pairs)."""


CHOOSE_ON: tuple[str, ...] | None = None
"""Pair kinds whose ranks choose the penalty (None: every measured kind). The gate is
measured on every kind either way."""
MIN_CHOOSING = 20
"""Fewer pairs of the CHOOSE_ON kinds than this: every measured kind chooses."""


def group_of(pair: Pair) -> str:
    """What stays on one side of a fold: a file's (or a chunk's) mined pairs, a picked
    query's picks."""
    if pair.kind == "pick":
        return f"pick:{norm_query(pair.anchor)}"
    if GROUP_BY == "chunk" and pair.source_hash:
        return f"chunk:{pair.source_hash}"
    return f"file:{pair.path}"


def deal_folds(pairs: Sequence[Pair], folds: int, seed: int) -> np.ndarray:
    """(n,) fold of each pair: groups in a seeded order, each to the fold with the fewest
    query-like pairs so far, so every fold is measured on about as many queries."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(group_of(p), []).append(i)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    load = [0] * folds
    out = np.zeros(len(pairs), dtype=np.int64)
    for name in order:
        rows = groups[name]
        k = min(range(folds), key=lambda f: (load[f], f))
        out[rows] = k
        load[k] += sum(1 for i in rows if is_measured(pairs[i]))
    return out


def fold_count(pairs: Sequence[Pair]) -> int:
    """FOLDS, or fewer when fewer groups hold query-like pairs (0 or 1: cannot cross-fit)."""
    measured = {group_of(p) for p in pairs if is_measured(p)}
    return min(FOLDS, len(measured))


def cross_fit(
    pairs: Sequence[Pair],
    data: FitData,
    chunks: np.ndarray,
    chunk_files: np.ndarray,
    score: Score,
    *,
    final_rows: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
) -> CrossFit:
    """Fit the penalty path per fold, choose the penalty, measure it (nested), and fit the
    kept adapter on `final_rows` (every pair when None). `pairs[i]` is row i of `data`;
    needs `fold_count(pairs)` of at least 2."""
    start = time.perf_counter()
    folds = fold_count(pairs)
    if folds < 2:
        raise ValueError("cross-fitting needs query-like pairs from two files or picked queries")
    fold = deal_folds(pairs, folds, seed)
    negatives = candidate_negatives(data, chunks, chunk_files, seed=seed)
    scored = [i for i, p in enumerate(pairs) if is_measured(p)]
    position = {row: j for j, row in enumerate(scored)}
    candidates = (IDENTITY, *PENALTIES)
    ranks = {p: np.zeros(len(scored), dtype=np.int64) for p in candidates}
    steps = 0
    per_fold = [[i for i in scored if fold[i] == k] for k in range(folds)]
    for k, fold_rows in enumerate(per_fold):
        fit_rows = np.flatnonzero(fold != k)
        if not fold_rows:
            continue
        at = [position[i] for i in fold_rows]
        ranks[IDENTITY][at] = score(fold_rows, None)
        for p, matrix in penalty_path(data, chunks, negatives, fit_rows, seed=seed).items():
            ranks[p][at] = score(fold_rows, matrix)
        steps += adapter.WARM_STEPS * len(PENALTIES)
    folds_of_scored = fold[scored]
    # Which pairs choose the penalty (all the measured ones unless CHOOSE_ON narrows it).
    chooses = np.array(
        [CHOOSE_ON is None or pairs[i].kind in CHOOSE_ON for i in scored], dtype=bool
    )
    if chooses.sum() < MIN_CHOOSING:
        chooses[:] = True
    chosen = _best(ranks, candidates, chooses)
    nested = np.zeros(len(scored), dtype=np.int64)
    for k in range(folds):
        inside = folds_of_scored == k
        nested[inside] = ranks[_best(ranks, candidates, ~inside & chooses)][inside]
    dim = chunks.shape[1]
    if chosen == IDENTITY:
        matrix = np.eye(dim, dtype=np.float32)
    else:
        rows = np.arange(len(pairs)) if final_rows is None else np.asarray(final_rows)
        path = penalty_path(data, chunks, negatives, rows, seed=seed, until=chosen)
        matrix = path[chosen]
        steps += adapter.WARM_STEPS * len(path)
    return CrossFit(
        penalty=chosen,
        matrix=matrix,
        scored=scored,
        identity_ranks=ranks[IDENTITY],
        ranks=nested,
        fold_rows=per_fold,
        scores={_label(p): round(_mrr(ranks[p]), 4) for p in candidates},
        folds=folds,
        steps=steps,
        took_s=time.perf_counter() - start,
    )


def _mrr(ranks: np.ndarray) -> float:
    return float(reciprocal_ranks(ranks).mean()) if len(ranks) else 0.0


def _best(ranks: dict[float, np.ndarray], candidates: Sequence[float], rows: np.ndarray) -> float:
    """The candidate with the best MRR@10 on `rows`; earlier candidates win ties (the
    identity first, then the strongest penalty)."""
    best, best_mrr = candidates[0], _mrr(ranks[candidates[0]][rows])
    for p in candidates[1:]:
        value = _mrr(ranks[p][rows])
        if value > best_mrr:
            best, best_mrr = p, value
    return best


def _label(penalty: float) -> str:
    return "identity" if penalty == IDENTITY else f"{penalty:g}"
