"""Fitting a query adapter: a linear map on query vectors, against frozen chunk vectors.

The model stays as it is and so do the chunk vectors in the index; only a
query's vector is moved, by a square matrix W, before the vector search. W
starts at the identity (the model as it is) and is trained with InfoNCE: each
training query, mapped by W, should score its own code above a set of
negatives taken from the index itself:

- **hard negatives**: the chunks nearest the query under the model as it is
  (what it ranks too high today), minus the chunk the positive was cut from;
- **siblings**: other chunks of the positive's file, which share its words;
- a few random chunks, so the map does not forget the rest of the index.

A penalty `penalty * ||W - I||^2` pulls W back toward the identity: with a
few hundred pairs a free 384 x 384 map would memorise them. W is fitted
along a path of penalties, strongest first, each fit warm-started from the
previous one (`penalty_path`); which penalty to keep, and whether any beats
the identity, is decided by cross-fitting (`cross_fit`).

Everything here is numpy and a few hundred small torch steps on the CPU:
seconds for a few thousand pairs, whatever the size of the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCALE = 20.0
"""Similarity scale of the InfoNCE logits (1/temperature: 20 means 0.05), as in
sentence-transformers' MultipleNegativesRankingLoss."""
HARD_NEGATIVES = 64
SIBLINGS = 8
RANDOM_NEGATIVES = 32
PENALTIES = (1.0, 0.3, 0.1, 0.03, 0.01)
"""Tried strongest first; each fit starts from the previous one's matrix."""
STEPS = 150
"""Adam steps of a fit on its own; a fit takes seconds."""
WARM_STEPS = 60
"""Steps per penalty along the path, each warm-started from the previous fit."""
FULL_BATCH_FLOATS = 1 << 26
"""Every pair goes in every step while all their negatives' vectors fit in this many
floats (256 MB: 1,680 pairs of 104 negatives at 384 dimensions), gathered once per fit."""
BATCH = 512
"""Pairs per step above that, their negatives gathered again each step."""
LR = 3e-3


@dataclass(frozen=True)
class FitData:
    """Training or validation pairs, as vectors. Row i of each array is pair i."""

    queries: np.ndarray
    """(n, dim) unit-length query vectors from the model."""
    positives: np.ndarray
    """(n, dim) unit-length vectors of the code each query describes."""
    own_rows: np.ndarray
    """(n,) row of `chunks` the positive was cut from (never a negative), or -1."""
    files: np.ndarray
    """(n,) file code of the positive (see `chunk_files`), or -1."""
    weights: np.ndarray
    """(n,) loss weight per pair (picks count more)."""

    def __len__(self) -> int:
        return len(self.queries)

    def subset(self, rows: Sequence[int] | np.ndarray) -> FitData:
        idx = np.asarray(rows, dtype=np.int64)
        return FitData(
            self.queries[idx],
            self.positives[idx],
            self.own_rows[idx],
            self.files[idx],
            self.weights[idx],
        )


def candidate_negatives(
    data: FitData,
    chunks: np.ndarray,
    chunk_files: np.ndarray,
    *,
    seed: int,
    hard: int | None = None,
    siblings: int | None = None,
    random_n: int | None = None,
) -> np.ndarray:
    """(n, k) rows of `chunks` to use as each query's negatives (see the module docstring);
    the counts default to HARD_NEGATIVES, SIBLINGS and RANDOM_NEGATIVES.

    `chunks` is (N, dim), `chunk_files` (N,) the file code of each row. A query's
    own chunk may appear here; the loss masks it.
    """
    hard = HARD_NEGATIVES if hard is None else hard
    siblings = SIBLINGS if siblings is None else siblings
    random_n = RANDOM_NEGATIVES if random_n is None else random_n
    rng = np.random.default_rng(seed)
    n, total = len(data), len(chunks)
    hard = min(hard, max(total - 1, 0))
    out = np.empty((n, hard + siblings + random_n), dtype=np.int64)
    by_file: dict[int, np.ndarray] = {}
    for code in np.unique(chunk_files):
        by_file[int(code)] = np.flatnonzero(chunk_files == code)
    for start in range(0, n, 1024):
        stop = min(n, start + 1024)
        sims = data.queries[start:stop] @ chunks.T  # (b, N)
        rows = np.arange(stop - start)
        own = data.own_rows[start:stop]
        sims[rows[own >= 0], own[own >= 0]] = -np.inf
        if hard:
            top = np.argpartition(-sims, hard - 1, axis=1)[:, :hard]  # (b, hard), unordered
            out[start:stop, :hard] = top
    empty = np.empty(0, dtype=np.int64)
    for i in range(n):
        same_file = by_file.get(int(data.files[i]), empty)
        pool = same_file[same_file != data.own_rows[i]]
        picked = rng.choice(pool, siblings, replace=False) if len(pool) >= siblings else pool
        filler = rng.integers(0, total, size=siblings - len(picked) + random_n)
        out[i, hard:] = np.concatenate([picked.astype(np.int64), filler])
    return out


def fit(
    data: FitData,
    chunks: np.ndarray,
    negatives: np.ndarray,
    penalty: float,
    *,
    steps: int = STEPS,
    init: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Train W on `data` with `negatives` (rows of `chunks` per query); returns (dim, dim).

    Loss: weighted cross-entropy of SCALE * cos(W q, .) over [positive, negatives]
    (the query's own chunk masked out of the negatives), plus
    `penalty * ||W - I||_F^2`.
    """
    import torch

    torch.manual_seed(seed)
    dim = chunks.shape[1]
    table = torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32))  # (N, dim)
    queries = torch.from_numpy(np.ascontiguousarray(data.queries, dtype=np.float32))
    positives = torch.from_numpy(np.ascontiguousarray(data.positives, dtype=np.float32))
    cand = torch.from_numpy(negatives)  # (n, k)
    masked = cand == torch.from_numpy(data.own_rows)[:, None]  # (n, k)
    weights = torch.from_numpy(np.asarray(data.weights, dtype=np.float32))
    eye = torch.eye(dim)
    w = torch.nn.Parameter(
        torch.from_numpy(np.array(init, np.float32)) if init is not None else eye.clone()
    )
    opt = torch.optim.Adam([w], lr=LR)
    generator = torch.Generator().manual_seed(seed)
    n = len(data)
    # Gathering each query's negatives is most of a step's cost (memory, not arithmetic):
    # while they fit, every step takes every pair and they are gathered once. Gathering
    # 512 pairs' negatives each step made a 900-pair workspace's run take two minutes.
    one_batch = n * cand.shape[1] * dim <= FULL_BATCH_FLOATS
    full = table[cand] if one_batch else None  # (n, k, dim)
    for _ in range(steps):
        idx = torch.arange(n) if one_batch else torch.randperm(n, generator=generator)[:BATCH]
        q = torch.nn.functional.normalize(queries[idx] @ w.T, dim=1)  # (b, dim)
        pos = (q * positives[idx]).sum(dim=1, keepdim=True)  # (b, 1)
        negatives_b = full if full is not None else table[cand[idx]]  # (b, k, dim)
        neg = torch.einsum("bd,bkd->bk", q, negatives_b)  # (b, k)
        neg = neg.masked_fill(masked[idx], -1e4)
        logits = torch.cat([pos, neg], dim=1) * SCALE  # (b, 1 + k)
        target = torch.zeros(len(idx), dtype=torch.long)
        ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")  # (b,)
        loss = (ce * weights[idx]).sum() / weights[idx].sum() + penalty * ((w - eye) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().numpy().astype(np.float32)


def penalty_path(
    data: FitData,
    chunks: np.ndarray,
    negatives: np.ndarray,
    rows: Sequence[int] | np.ndarray,
    *,
    seed: int = 0,
    until: float | None = None,
) -> dict[float, np.ndarray]:
    """W fitted on `rows` of `data` at each penalty of PENALTIES, strongest first, each
    warm-started from the one before (WARM_STEPS each); stops after `until` when given.

    Cross-fitting (`cross_fit`) measures this whole path on every fold, and the
    adapter that is kept is the same path on the run's training side: what is
    promoted is trained as what was measured.
    """
    idx = np.asarray(rows, dtype=np.int64)
    subset, sub_negatives = data.subset(idx), negatives[idx]
    out: dict[float, np.ndarray] = {}
    current: np.ndarray | None = None
    for p in PENALTIES:
        current = fit(subset, chunks, sub_negatives, p, steps=WARM_STEPS, init=current, seed=seed)
        out[p] = current
        if until is not None and p == until:
            break
    return out
