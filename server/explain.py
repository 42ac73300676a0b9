"""Say in one line why a result ranks where it does, for `kenning search --explain`."""

from __future__ import annotations

from .search import Explanation, SearchOutcome


def describe(e: Explanation) -> str:
    """`model #2 (0.51) · words #1 (bm25 14.2) · fused 0.93 · test x0.3 · definition +2.0 = 1.03`"""
    parts = [
        f"model #{e.dense_rank} ({e.dense_score:.2f})" if e.dense_rank else "model: not found",
        f"words #{e.lexical_rank} (bm25 {e.lexical_score:.1f})"
        if e.lexical_rank
        else "words: not found",
        f"fused {e.fused:.2f}",
    ]
    parts += [f"{name} x{factor:g}" for name, factor in e.factors.items()]
    parts += [f"{name} +{share:.2f}" for name, share in e.boosts.items()]
    if e.decay != 1.0:
        parts.append(f"same file x{e.decay:.2f}")
    return " · ".join(parts) + f" = {e.final:.3f}"


def describe_weights(outcome: SearchOutcome) -> str:
    """How the two sides were weighed, or which one answered alone."""
    w = outcome.weights
    if w is None:
        return "one side answered alone (no fusion)"
    why = f" ({w.why})" if w.why else ""
    return f"fusion: model x{w.dense:g}, words x{w.lexical:.2f}{why}"
