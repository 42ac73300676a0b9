"""Pick the places to show from scored candidates: each place once, in order,
with the chosen decay for further results from one file.

Chunks overlap (the windows of one long function), and one file can fill a
page; `select` lists each overlapping span once, at its best chunk, and can
make every further chunk of a file already listed count for less
(`Ranking.file_decay`).
"""

from __future__ import annotations

import pathspec

from .fusion import Candidate
from .store import StoredChunk


def select(
    candidates: list[Candidate],
    chunks: dict[int, StoredChunk],
    limit: int,
    path_filter: pathspec.GitIgnoreSpec | None,
    file_decay: float,
) -> list[tuple[Candidate, float]]:
    """The best `limit` places, each with the decay it took: one result per
    overlapping span, and each further chunk of a listed file worth
    `file_decay` times less than the one before it (1.0: no decay).

    Greedy with lazy re-scoring: a candidate whose file gained a result since
    it was scored goes back into the queue with its decayed score.
    """
    queue = sorted(
        (c for c in candidates if c.chunk_id in chunks),  # gone since read: dropped
        key=lambda c: -c.score,
    )
    picked: list[tuple[Candidate, float]] = []
    per_file: dict[str, int] = {}
    waiting: list[tuple[float, int, Candidate]] = []  # (decayed score, order, candidate)
    i = 0
    while len(picked) < limit and (i < len(queue) or waiting):
        if waiting and (i >= len(queue) or waiting[0][0] >= queue[i].score):
            _, _, cand = waiting.pop(0)
        else:
            cand = queue[i]
            i += 1
        chunk = chunks[cand.chunk_id]
        if path_filter is not None and not path_filter.match_file(chunk.path):
            continue
        if any(_overlaps(chunk, chunks[p.chunk_id]) for p, _ in picked):
            continue
        decay = file_decay ** per_file.get(chunk.path, 0)
        if decay < 1.0 and waiting_would_win(cand.score * decay, queue, i, waiting):
            waiting.append((cand.score * decay, len(waiting), cand))
            waiting.sort(key=lambda w: (-w[0], w[1]))
            continue
        picked.append((cand, decay))
        per_file[chunk.path] = per_file.get(chunk.path, 0) + 1
    return picked


def waiting_would_win(
    decayed: float, queue: list[Candidate], i: int, waiting: list[tuple[float, int, Candidate]]
) -> bool:
    """Whether something not yet placed beats `decayed`, so the candidate must wait."""
    return (i < len(queue) and queue[i].score > decayed) or bool(
        waiting and waiting[0][0] > decayed
    )


def _overlaps(a: StoredChunk, b: StoredChunk) -> bool:
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line
