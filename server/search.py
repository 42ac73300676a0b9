"""Answer a natural-language query: dense + lexical candidates, fused and ranked.

Hybrid mode takes the top candidates from the vector matrix (cosine) and from
FTS5 (bm25) and fuses them by reciprocal rank fusion, which needs no score
calibration between the two. Results that overlap in the same file (windows of
one long function) are collapsed to the best, so the top ten are ten places.

Every weight and prior that orders the results lives in `ranking`.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pathspec

from .lexical import is_test_path
from .pools import started_pool
from .ranking import (
    DENSE_WEIGHT,
    LEXICAL_WEIGHT,
    PROSE_LANGUAGES,
    PROSE_PRIOR,
    RRF_K,
    TEST_PRIOR,
)
from .store import Generation, Store, StoredChunk

MODES = ("hybrid", "semantic", "lexical")
SNIPPET_LINES = 6
SNIPPET_CHARS = 400


class QueryEncoder(Protocol):
    """What reads a query: the full model (embedder.Embedder) or the light path
    (light_encoder.LightEncoder)."""

    def encode_query(self, query: str) -> np.ndarray: ...


class SearchError(ValueError):
    """A bad query or mode; the message says what to change."""


class SemanticUnavailable(RuntimeError):
    """Semantic search was asked for, and no model can read the query."""


class Semantic(enum.Enum):
    """What stands in the way of the semantic side of a search, as far as the caller knows."""

    READY = "ready"
    """Nothing known: the model is loaded (or will load on demand) and vectors exist."""
    NO_VECTORS = "no vectors"
    """The first generation is still being embedded."""
    MODEL_LOADING = "model loading"
    """The model is still loading (seconds at start)."""
    MODEL_FAILED = "model failed"
    """The model could not be loaded at all."""


@dataclass(frozen=True)
class ModePlan:
    mode: str
    """The mode to run: hybrid narrows to lexical while the model cannot read queries."""
    dense: bool
    """Whether the semantic side runs."""
    note: str | None = None
    """Why the answer is narrower than asked, for the user."""
    until_loaded: bool = False
    """Narrowed only until the model has loaded: the answer is partial."""


def plan_mode(mode: str, semantic: Semantic) -> ModePlan:
    """What a search asked for in `mode` runs, given what stands in the semantic side's way.

    The one place that decides the lexical fallback: the LSP server asks
    while the model loads or after it failed, `search` asks when no vectors
    exist. Hybrid falls back to the words alone and says why; semantic with
    no vectors finds nothing and says why, waits for a loading model, and is
    refused (SemanticUnavailable) when the model failed.
    """
    if semantic is Semantic.READY or mode not in ("hybrid", "semantic"):
        return ModePlan(mode, dense=mode in ("hybrid", "semantic"))
    if semantic is Semantic.NO_VECTORS:
        return ModePlan(
            mode, dense=False, note="no vectors yet: the semantic side is still being built"
        )
    if mode == "semantic":
        if semantic is Semantic.MODEL_FAILED:
            raise SemanticUnavailable(
                "the model could not be loaded, so semantic search is unavailable; "
                "use mode 'lexical'"
            )
        return ModePlan(mode, dense=True)  # the query waits for the model to load
    if semantic is Semantic.MODEL_LOADING:
        # Loading the model takes seconds; answer with what needs no model meanwhile.
        return ModePlan(
            "lexical",
            dense=False,
            note="the model is still loading: these results are lexical only",
            until_loaded=True,
        )
    return ModePlan(
        "lexical", dense=False, note="the model could not be loaded: these results are lexical only"
    )


@dataclass(frozen=True)
class SearchResult:
    path: str
    start_line: int
    end_line: int
    score: float
    symbol: str | None
    language: str
    snippet: str
    kind: str = ""

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "score": round(self.score, 4),
            "symbol": self.symbol,
            "language": self.language,
            "snippet": self.snippet,
            "kind": self.kind or None,
        }


@dataclass
class SearchOutcome:
    query: str
    results: list[SearchResult]
    took_ms: float
    model: str
    generation: int | None
    partial: bool = False
    """True while the index is still being built: results come from what is indexed so far."""
    notes: list[str] = field(default_factory=list)
    load_ms: float = 0.0
    """Time spent loading the model that read the query, apart from `took_ms`."""


def search(
    store: Store,
    embedder: QueryEncoder | None,
    gen: Generation | None,
    query: str,
    *,
    limit: int = 10,
    mode: str = "hybrid",
    paths: Sequence[str] = (),
    model_label: str = "",
) -> SearchOutcome:
    """Search the index. `embedder`/`gen` may be None when no vectors exist yet;
    then hybrid falls back to lexical and says so in `notes`."""
    start = time.perf_counter()
    if mode not in MODES:
        raise SearchError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    # JSON can carry lone surrogates ("\ud800"), which no tokenizer accepts.
    query = query.encode("utf-8", "replace").decode("utf-8")
    if not query.strip():
        raise SearchError(
            "the query is empty; type what the code does, e.g. 'retry failed uploads'"
        )
    if limit < 1:
        raise SearchError("limit must be at least 1")
    notes: list[str] = []
    path_filter = paths_filter(paths)
    pool = max(50, limit * 5) * (4 if path_filter else 1)

    dense: list[tuple[int, float]] = []
    lexical: list[tuple[int, float]] = []
    vectors = gen is not None and embedder is not None
    plan = plan_mode(mode, Semantic.READY if vectors else Semantic.NO_VECTORS)
    if plan.note:
        notes.append(plan.note)
    mode, use_dense = plan.mode, plan.dense
    pending_lexical: Future[list[tuple[int, float]]] | None = None
    if mode == "hybrid" and use_dense:
        # The two sides share nothing until fusion, and both release the GIL
        # (SQLite, torch): the words are looked up while the query is embedded.
        pending_lexical = _lexical_pool().submit(store.lexical_search, query, pool)
    if use_dense:
        assert embedder is not None and gen is not None  # planned dense only with vectors
        qvec = embedder.encode_query(query)  # (dim,)
        hits = store.dense_search(gen, qvec, pool)
        owners = store.chunks_for_embeddings([eid for eid, _ in hits])
        for eid, sim in hits:
            dense.extend((cid, sim) for cid in owners.get(eid, ()))
    if pending_lexical is not None:
        lexical = pending_lexical.result()
    elif mode in ("hybrid", "lexical"):
        lexical = store.lexical_search(query, pool)

    ranked = _fuse(dense, lexical, mode)[: pool * 2]
    chunks = store.chunks_by_ids([cid for cid, _ in ranked])
    ranked = sorted(
        (
            (cid, score * prior(chunks[cid])) for cid, score in ranked if cid in chunks
        ),  # gone since read
        key=lambda x: -x[1],
    )
    results = distinct_places(ranked, chunks, limit, path_filter)
    return SearchOutcome(
        query=query,
        results=results,
        took_ms=(time.perf_counter() - start) * 1000,
        model=model_label,
        generation=gen.id if gen else None,
        notes=notes,
    )


_LEXICAL_POOL: ThreadPoolExecutor | None = None
_LEXICAL_POOL_LOCK = threading.Lock()


def _lexical_pool() -> ThreadPoolExecutor:
    global _LEXICAL_POOL
    with _LEXICAL_POOL_LOCK:
        if _LEXICAL_POOL is None:
            _LEXICAL_POOL = started_pool(2, "kenning-lexical")
        return _LEXICAL_POOL


def _fuse(
    dense: list[tuple[int, float]], lexical: list[tuple[int, float]], mode: str
) -> list[tuple[int, float]]:
    if mode == "semantic" or not lexical:
        return _dedupe(dense) if mode != "lexical" else []
    if mode == "lexical" or not dense:
        # bm25 has no upper bound; s / (1 + s) maps it into (0, 1) keeping order.
        return [(cid, s / (1.0 + s)) for cid, s in _dedupe(lexical)]
    scores: dict[int, float] = {}
    for weight, ranking in ((DENSE_WEIGHT, _dedupe(dense)), (LEXICAL_WEIGHT, _dedupe(lexical))):
        for rank, (cid, _) in enumerate(ranking):
            scores[cid] = scores.get(cid, 0.0) + weight / (RRF_K + rank + 1)
    best_possible = (DENSE_WEIGHT + LEXICAL_WEIGHT) / (RRF_K + 1)
    return sorted(((cid, s / best_possible) for cid, s in scores.items()), key=lambda x: -x[1])


def prior(chunk: StoredChunk) -> float:
    """How much a result's kind of file is worth before its text is compared."""
    weight = 1.0
    if chunk.language in PROSE_LANGUAGES:
        weight *= PROSE_PRIOR
    if is_test_path(chunk.path):
        weight *= TEST_PRIOR
    return weight


def _dedupe(ranking: list[tuple[int, float]]) -> list[tuple[int, float]]:
    seen: set[int] = set()
    out = []
    for cid, s in ranking:
        if cid not in seen:
            seen.add(cid)
            out.append((cid, s))
    return out


def paths_filter(paths: Sequence[str]) -> pathspec.GitIgnoreSpec | None:
    """The gitignore-style `paths` globs as one matcher; None when there are none."""
    return pathspec.GitIgnoreSpec.from_lines(list(paths)) if paths else None


def distinct_places(
    ranked: Sequence[tuple[int, float]],
    chunks: dict[int, StoredChunk],
    limit: int,
    path_filter: pathspec.GitIgnoreSpec | None = None,
    exclude: Sequence[SearchResult] = (),
) -> list[SearchResult]:
    """The best `limit` results of `ranked`, one per place: a chunk that overlaps a result
    already taken (windows of one long function) or one of `exclude` is dropped."""
    results: list[SearchResult] = []
    for cid, score in ranked:
        chunk = chunks.get(cid)
        if chunk is None or (path_filter is not None and not path_filter.match_file(chunk.path)):
            continue
        if any(_overlaps(chunk, r) for r in (*exclude, *results)):
            continue
        results.append(result_of(chunk, score))
        if len(results) >= limit:
            break
    return results


def _overlaps(chunk: StoredChunk, r: SearchResult) -> bool:
    return (
        chunk.path == r.path and chunk.start_line <= r.end_line and r.start_line <= chunk.end_line
    )


def result_of(chunk: StoredChunk, score: float) -> SearchResult:
    return SearchResult(
        path=chunk.path,
        start_line=chunk.start_line,
        end_line=chunk.end_line,
        score=score,
        symbol=chunk.symbol,
        language=chunk.language,
        snippet=snippet_of(chunk.text),
        kind=chunk.kind,
    )


def snippet_of(text: str) -> str:
    """The first few non-blank lines, dedented, for a results list."""
    lines = [ln for ln in text.splitlines() if ln.strip()][:SNIPPET_LINES]
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines), default=0)
    snippet = "\n".join(ln[indent:] for ln in lines)
    return snippet if len(snippet) <= SNIPPET_CHARS else snippet[: SNIPPET_CHARS - 1] + "…"
