"""Find code similar to the definition at a line: the chunk there, its stored
vector, and the nearest other chunks of the same generation.

Nothing is embedded: the vector the index already holds for that chunk is the
query, so the answer costs one matrix search and works while the model is
still loading. The chunk itself (and anything overlapping it) is left out.
When no answer is possible the error says why and what to do: the file is
not in the workspace, is binary or excluded, is not indexed yet, the line is
past its end, or its code has no vector yet.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .discover import FileFilter, SourceFile, check_file, read_text
from .search import SearchResult, distinct_places, paths_filter, result_of
from .store import ChunkVectorKey, Generation, Store

POOL = 50
"""Nearest vectors read before overlaps and filters are dropped (times 4 with a filter)."""

_SKIPPED = {
    "binary": "is a binary file, so it has no code to compare; give a source file",
    "too_large": "is larger than max_file_bytes, so it is not indexed",
    "ignored": "is left out of the index (.gitignore, `exclude` or a built-in folder)",
    "secret": "looks like a secret, so it is not indexed (`include` can bring it back)",
    "generated": "is of a kind left out of the index (generated, lock, media, archive or data "
    "files); `include` can bring it back",
    "special": "is not a regular file",
    "unreadable": "cannot be read",
    "bad_name": "has a name Kenning cannot index (a newline or undecodable bytes)",
    "outside_workspace": "is a link to a file outside the workspace, so it is not indexed",
}


class RelatedError(ValueError):
    """No similar code can be found for that place; the message says what to do."""

    def __init__(self, message: str, *, retry: bool = False):
        super().__init__(message)
        self.retry = retry
        """True when the request was fine and asking again later may work
        (the file is not indexed yet, its code waits for a vector)."""


@dataclass
class RelatedOutcome:
    source: SearchResult
    """The chunk at the line asked about, whose vector was the query (score 1.0)."""
    results: list[SearchResult]
    took_ms: float
    model: str
    generation: int
    notes: list[str] = field(default_factory=list)


def find_related(
    store: Store,
    gen: Generation | None,
    where: FileContext,
    line: int,
    *,
    limit: int = 10,
    paths: Sequence[str] = (),
) -> RelatedOutcome:
    """The `limit` chunks most similar to the one at 1-based `line` of `where.rel`."""
    start = time.perf_counter()
    if line < 1:
        raise RelatedError(f"line must be 1 or more (lines count from 1), got {line}")
    chunks = store.file_chunks(where.rel)
    if chunks is None:
        raise where.not_indexed()
    where.check_line(line, chunks)
    source = pick_chunk(chunks, line)
    if source is None:
        raise RelatedError(
            f"{where.rel} has no code long enough to compare (every chunk in it is too short "
            "to embed); pick a line inside a function or class"
        )
    if gen is None:
        raise RelatedError(
            "no vectors yet: the index is still being embedded; try again shortly", retry=True
        )
    vector = store.vector_of(gen, source.hash)
    if vector is None:
        raise RelatedError(
            f"the code at {where.rel}:{source.chunk.start_line} has no vector yet (it is "
            "waiting to be embedded); try again shortly",
            retry=True,
        )
    path_filter = paths_filter(paths)
    pool = max(POOL, limit * 5) * (4 if path_filter else 1)
    hits = store.dense_search(gen, vector, pool)
    owners = store.chunks_for_embeddings([eid for eid, _ in hits])
    ranked = [(cid, sim) for eid, sim in hits for cid in owners.get(eid, ())]
    found = store.chunks_by_ids([cid for cid, _ in ranked])
    itself = result_of(source.chunk, 1.0)
    results = distinct_places(ranked, found, limit, path_filter, exclude=[itself])
    notes = [] if results else ["nothing else in the index is close to this code"]
    return RelatedOutcome(
        source=itself,
        results=results,
        took_ms=(time.perf_counter() - start) * 1000,
        model=gen.model,
        generation=gen.id,
        notes=notes,
    )


def pick_chunk(chunks: Sequence[ChunkVectorKey], line: int) -> ChunkVectorKey | None:
    """The embedded chunk that stands for `line`: the narrowest one covering it (a method
    rather than its class's header window), else the nearest one in the file."""
    embedded = [c for c in chunks if c.embeddable]
    covering = [c for c in embedded if c.chunk.start_line <= line <= c.chunk.end_line]
    if covering:
        return min(covering, key=lambda c: (c.chunk.end_line - c.chunk.start_line, c.chunk.id))
    if not embedded:
        return None
    return min(
        embedded,
        key=lambda c: (
            min(abs(c.chunk.start_line - line), abs(c.chunk.end_line - line)),
            c.chunk.id,
        ),
    )


@dataclass(frozen=True)
class FileContext:
    """A workspace file asked about, with what explains why it cannot be used."""

    root: Path
    rel: str
    filter: FileFilter
    max_file_bytes: int

    def not_indexed(self) -> RelatedError:
        path = self.root / self.rel
        if not path.exists():
            return RelatedError(
                f"{self.rel} does not exist in the workspace {self.root}; give a path "
                "relative to it"
            )
        if path.is_dir():
            return RelatedError(f"{self.rel} is a folder; give a file and a line in it")
        entry = check_file(self.root, self.rel, self.filter, self.max_file_bytes)
        if isinstance(entry, SourceFile):
            return RelatedError(
                f"{self.rel} is not indexed yet; try again once indexing has caught up "
                "(the index status shows what is left)",
                retry=True,
            )
        return RelatedError(f"{self.rel} {_SKIPPED.get(entry, f'is not indexed ({entry})')}")

    def check_line(self, line: int, chunks: Sequence[ChunkVectorKey]) -> None:
        """Refuse a line past the end of the file (as it is on disk, else as indexed)."""
        text = read_text(self.root / self.rel, self.max_file_bytes)
        if text is not None:
            last = len(text.splitlines()) or 1
        else:
            last = max((c.chunk.end_line for c in chunks), default=1)
        if line > last:
            raise RelatedError(f"line {line} is past the end of {self.rel}, which has {last} lines")
