"""Fuse the model's ranking and the words' ranking into one score per chunk.

Hybrid mode uses weighted reciprocal rank fusion: each side adds
weight / (rrf_k + rank) for every candidate it found, which needs no calibration
between a cosine and a bm25 score. The weights are set per query (`weights_for`):
a query that is a name or a path leans on the words, and the words count for
more the surer they are of their first answers. One side alone (semantic or
lexical mode, or hybrid while the model cannot read) is scored the same way
with the other side's weight at 0, so priors and boosts mean the same in every
mode. Either way first place on every side that runs scores 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import attrs

from .query_shape import QueryShape
from .ranking import Ranking


@dataclass
class Candidate:
    """One chunk on its way to a rank, with everything that put it there."""

    chunk_id: int
    dense_rank: int | None = None
    """1-based place on the model's side, None when that side did not find it."""
    dense_score: float | None = None
    """Cosine similarity to the query."""
    lexical_rank: int | None = None
    lexical_score: float | None = None
    """bm25 relevance (higher is better)."""
    fused: float = 0.0
    """The two sides combined, before priors and boosts."""
    factors: dict[str, float] = field(default_factory=dict)
    """Multipliers applied for the result's kind of file (tests, docs, ...), by name."""
    boosts: dict[str, float] = field(default_factory=dict)
    """Shares of the top score added for a code-aware match (definition, path, ...)."""
    score: float = 0.0
    """The final score results are ordered by."""


@attrs.frozen
class Weights:
    """How much each side counts in the fusion of one query (sent as is with `explain`)."""

    dense: float
    lexical: float
    why: str = ""
    """The signal that set the weights."""

    def to_json(self) -> dict[str, float | str]:
        return attrs.asdict(self)


def weights_for(
    shape: QueryShape,
    dense: list[tuple[int, float]],
    lexical: list[tuple[int, float]],
    ranking: Ranking,
    *,
    trained: bool = False,
) -> Weights:
    """How much each side counts for this query.

    The words' side is as sure as its first answer stands out: bm25's top score
    far above its tenth means a few chunks share the query's rare words; a flat
    head means many chunks share its common ones, and then the model should
    decide. A query that is a name or a path is the identifier itself, which the
    words match and the model reads as prose. A model `trained` on this
    workspace weighs `trained_dense_weight`.
    """
    model = ranking.trained_dense_weight if trained else ranking.dense_weight
    if not ranking.adaptive:
        weights = Weights(model, ranking.lexical_weight)
    elif shape.looks_like_code:
        weights = Weights(model, ranking.name_lexical_weight, "the query is a name or a path")
    else:
        gap = lexical_gap(lexical)
        low, high = ranking.lexical_gap_range
        sure = min(1.0, max(0.0, (gap - low) / (high - low)))
        weight = ranking.lexical_weight_min + sure * (
            ranking.lexical_weight_max - ranking.lexical_weight_min
        )
        weights = Weights(
            model, weight, f"the words' first answer stands {gap:.0%} above their tenth"
        )
    if trained:
        why = "; ".join(filter(None, [weights.why, "the model was trained on this workspace"]))
        weights = attrs.evolve(weights, why=why)
    return weights


def lexical_gap(lexical: list[tuple[int, float]]) -> float:
    """How far bm25's first score stands above its tenth, as a share of the first
    (0 when there is no answer; 1 when fewer than ten chunks match)."""
    scores = [s for _, s in _dedupe(lexical)[:10]]
    if not scores or scores[0] <= 0:
        return 0.0
    tenth = scores[9] if len(scores) >= 10 else 0.0
    return (scores[0] - tenth) / scores[0]


def fuse(
    dense: list[tuple[int, float]],
    lexical: list[tuple[int, float]],
    mode: str,
    shape: QueryShape,
    ranking: Ranking,
    *,
    trained: bool = False,
) -> tuple[list[Candidate], Weights]:
    """Candidates of both sides, best fused first, and the weights that fused them.

    `dense` and `lexical` are (chunk id, score) best first; a chunk may repeat
    (one text embedded once, shared by several chunks), its first place counts.
    `trained`: the dense side comes from a model trained on this workspace.
    """
    by_id: dict[int, Candidate] = {}
    use_dense = mode != "lexical"
    use_lexical = mode != "semantic"
    for rank, (cid, sim) in enumerate(_dedupe(dense) if use_dense else [], start=1):
        by_id[cid] = Candidate(cid, dense_rank=rank, dense_score=sim)
    for rank, (cid, s) in enumerate(_dedupe(lexical) if use_lexical else [], start=1):
        cand = by_id.setdefault(cid, Candidate(cid))
        cand.lexical_rank, cand.lexical_score = rank, s
    dense_on = use_dense and bool(dense)
    lexical_on = use_lexical and bool(lexical)
    if dense_on and lexical_on:
        weights = weights_for(shape, dense, lexical, ranking, trained=trained)
    elif dense_on:
        weights = Weights(1.0, 0.0, "the model's side alone")
    else:
        weights = Weights(0.0, 1.0, "the words' side alone")
    best = (weights.dense + weights.lexical) / (ranking.rrf_k + 1)
    for cand in by_id.values():
        total = 0.0
        if cand.dense_rank is not None and weights.dense:
            total += weights.dense / (ranking.rrf_k + cand.dense_rank)
        if cand.lexical_rank is not None and weights.lexical:
            total += weights.lexical / (ranking.rrf_k + cand.lexical_rank)
        cand.fused = total / best
    ranked = sorted(by_id.values(), key=lambda c: -c.fused)
    return ranked, weights


def _dedupe(ranking: list[tuple[int, float]]) -> list[tuple[int, float]]:
    seen: set[int] = set()
    out = []
    for cid, s in ranking:
        if cid not in seen:
            seen.add(cid)
            out.append((cid, s))
    return out
