"""Say in one line why a result ranks where it does, for `kenning search --explain`.

Both read the JSON answer (a result's `explain`, the answer's `weights`), which is
the same whether a daemon answered or the command worked in-process.
"""

from __future__ import annotations

from typing import Any

from .fusion import Weights
from .search import Explanation


def describe(explain: dict[str, Any]) -> str:
    """`model #2 (0.51) · words #1 (bm25 14.2) · fused 0.93 · test x0.3 · definition +2.0 = 1.03`"""
    e = Explanation(**explain)
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


def describe_weights(weights: dict[str, Any] | None) -> str:
    """How the two sides were weighed, or which one answered alone."""
    if weights is None:
        return "one side answered alone (no fusion)"
    w = Weights(**weights)
    why = f" ({w.why})" if w.why else ""
    return f"fusion: model x{w.dense:g}, words x{w.lexical:.2f}{why}"
