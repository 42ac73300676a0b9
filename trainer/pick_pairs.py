"""Picks as training pairs: what someone typed -> the result they opened.

A pick (`kenning.server.picks`) names a query and a span of a file. The pair's
positive is the chunk of that file the span covers best, as the index holds
it (so the adapter finds its vector in the index instead of embedding it). A
pick whose file changed so much that no chunk overlaps it any more is
skipped and counted.

Picks are split by query for the gate, not by file: the same query picked
twice (for the same or another result) lands on one side only, so the gate
never measures a query the training has already seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kenning.server.chunking import Chunk
from kenning.server.picks import Pick

from .evaluate import Split, split_by_file
from .options import DEFAULT_HELDOUT_FRACTION, DEFAULT_SEED
from .pairs import Pair

PICK_WEIGHT = 2.0
"""A pick counts this many mined pairs in the adapter's loss: someone chose it."""


@dataclass
class PickPairs:
    pairs: list[Pair]
    stale: int
    """Picks whose code is no longer in the workspace (file gone, span rewritten)."""


def pick_pairs(picks: Sequence[Pick], chunks: Sequence[Chunk]) -> PickPairs:
    """One pair per distinct (query, chunk): repeated picks of one result count once."""
    by_path: dict[str, list[Chunk]] = {}
    for c in chunks:
        if c.embeddable:
            by_path.setdefault(c.path, []).append(c)
    pairs: dict[tuple[str, str], Pair] = {}
    stale = 0
    for pick in picks:
        chunk = _covering(by_path.get(pick.path, []), pick.start_line, pick.end_line)
        if chunk is None:
            stale += 1
            continue
        key = (norm_query(pick.query), chunk.hash)
        pairs[key] = Pair(pick.query, chunk.embed_text, "pick", pick.path, chunk.hash)
    return PickPairs(list(pairs.values()), stale)


def split_by_query(
    pairs: Sequence[Pair],
    *,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    seed: int = DEFAULT_SEED,
) -> Split:
    """Whole queries on one side, a seeded `heldout_fraction` of the pairs held out."""
    return split_by_file(pairs, heldout_fraction=heldout_fraction, seed=seed, key=_anchor_key)


def _anchor_key(pair: Pair) -> str:
    return norm_query(pair.anchor)


def _covering(chunks: list[Chunk], start: int, end: int) -> Chunk | None:
    """The chunk sharing the most lines with start..end (the smaller one on a tie)."""
    best: tuple[int, int, Chunk] | None = None
    for c in chunks:
        shared = min(end, c.end_line) - max(start, c.start_line) + 1
        if shared <= 0:
            continue
        size = c.end_line - c.start_line + 1
        if best is None or (shared, -size) > (best[0], -best[1]):
            best = (shared, size, c)
    return best[2] if best else None


def norm_query(text: str) -> str:
    """A query as picks are grouped by it: case and spacing do not matter."""
    return " ".join(text.lower().split())
