"""Answer a query: dense + lexical candidates, fused, adjusted for code, selected.

Hybrid mode takes the top candidates from the vector matrix (cosine) and from
FTS5 (bm25); a query that names an identifier also brings the definitions of
that name (`query_shape`). `fusion` combines the two rankings with weights set
per query, `priors` weighs each result's kind of file and adds the code-aware
boosts, and the selection here lists each place once: results that overlap in
the same file (windows of one long function) collapse to the best, and further
chunks of a file already listed count for less.

Every weight and prior that orders the results lives in `ranking`; with
`explain`, each result carries what put it where it is.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import attrs
import numpy as np
import pathspec

from . import priors
from .adapters import QueryAdapter
from .fusion import Candidate, Weights, fuse
from .models import is_trained_label
from .pools import started_pool
from .query_shape import QueryShape, name_parts, shape_of, whole_term
from .ranking import DEFAULT, Ranking
from .selection import select
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


@attrs.frozen
class Explanation:
    """Why a result ranks where it does (`explain`); sent as is in `kenning/search`."""

    dense_rank: int | None
    """1-based place on the model's side; None when the model did not find it."""
    dense_score: float | None
    """Cosine similarity to the query."""
    lexical_rank: int | None
    """1-based place on the words' side; None when the words did not find it."""
    lexical_score: float | None
    """bm25 relevance."""
    fused: float
    """The two places combined (weighted reciprocal rank fusion); first on every side is 1."""
    factors: dict[str, float]
    """Multipliers for the kind of file: prose, test, example, compat, reexport, stub."""
    boosts: dict[str, float]
    """Shares of the best candidate's score added: definition, name, path, coherence."""
    decay: float
    """Multiplier for further results from a file already listed (1 when none)."""
    final: float
    """fused x factors + top x boosts, x decay: the score results are ordered by."""

    @classmethod
    def of(cls, cand: Candidate, decay: float, final: float) -> Explanation:
        """`cand`'s story, every number rounded to 4 places."""
        return cls(
            dense_rank=cand.dense_rank,
            dense_score=_round(cand.dense_score),
            lexical_rank=cand.lexical_rank,
            lexical_score=_round(cand.lexical_score),
            fused=round(cand.fused, 4),
            factors={k: round(v, 4) for k, v in cand.factors.items()},
            boosts={k: round(v, 4) for k, v in cand.boosts.items()},
            decay=round(decay, 4),
            final=round(final, 4),
        )

    def to_json(self) -> dict:
        return attrs.asdict(self)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


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
    explanation: Explanation | None = None

    def to_json(self) -> dict:
        out = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "score": round(self.score, 4),
            "symbol": self.symbol,
            "language": self.language,
            "snippet": self.snippet,
            "kind": self.kind or None,
        }
        if self.explanation is not None:
            out["explain"] = self.explanation.to_json()
        return out


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
    adapter: str | None = None
    """The query adapter that mapped the query's vector (its id), or None."""
    weights: Weights | None = None
    """How the two sides were weighed for this query (hybrid mode)."""
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
    adapter: QueryAdapter | None = None,
    ranking: Ranking = DEFAULT,
    explain: bool = False,
) -> SearchOutcome:
    """Search the index. `embedder`/`gen` may be None when no vectors exist yet;
    then hybrid falls back to lexical and says so in `notes`. `adapter` maps the
    query's vector before the vector search (trained for `gen`'s vectors). With
    `explain`, every result carries its `Explanation`."""
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
    shape = shape_of(query)
    path_filter = paths_filter(paths)
    pool = max(ranking.pool, limit * 5) * (4 if path_filter else 1)

    vectors = gen is not None and embedder is not None
    plan = plan_mode(mode, Semantic.READY if vectors else Semantic.NO_VECTORS)
    if plan.note:
        notes.append(plan.note)
    mode = plan.mode
    use_dense = plan.dense and shape.has_words
    if not shape.has_words:
        # Punctuation alone means nothing to either side: the model would still
        # return its nearest chunks, which would only look like an answer.
        notes.append("the query has no words to search for; type what the code does")
    elif mode != "semantic" and not shape.terms:
        notes.append("the query has only common words (the, of, ...): the words' side skipped them")
    dense, lexical = _sides(
        store,
        embedder if use_dense else None,
        gen,
        shape,
        lexical=mode != "semantic" and shape.has_words,
        pool=pool,
        ranking=ranking,
        adapter=adapter,
    )

    trained = bool(dense) and (adapter is not None or fine_tuned(gen))
    candidates, weights = fuse(dense, lexical, mode, shape, ranking, trained=trained)
    candidates = candidates[: pool * 2]
    if (ranking.definition_boost or ranking.embedded_definition_boost) and mode != "semantic":
        candidates.extend(_definitions(store, shape, {c.chunk_id for c in candidates}))
    chunks = store.chunks_by_ids([c.chunk_id for c in candidates])
    priors.apply(candidates, chunks, shape, ranking)
    results = [
        _result(chunks[cand.chunk_id], cand, decay, explain)
        for cand, decay in select(candidates, chunks, limit, path_filter, ranking.file_decay)
    ]
    return SearchOutcome(
        query=query,
        results=results,
        took_ms=(time.perf_counter() - start) * 1000,
        model=model_label,
        generation=gen.id if gen else None,
        notes=notes,
        weights=weights if mode == "hybrid" else None,
        adapter=adapter.id if adapter is not None and use_dense else None,
    )


def fine_tuned(gen: Generation | None) -> bool:
    """The generation's vectors come from a checkpoint trained on this workspace: its
    label's version is a checkpoint id, not `base` (`models.ModelRef`)."""
    return gen is not None and is_trained_label(gen.model)


def _sides(
    store: Store,
    embedder: QueryEncoder | None,
    gen: Generation | None,
    shape: QueryShape,
    *,
    lexical: bool,
    pool: int,
    ranking: Ranking,
    adapter: QueryAdapter | None = None,
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Each side's candidates, (chunk id, score) best first: the model's when an
    `embedder` is given (its query vector mapped by `adapter`), the words' when `lexical`."""
    dense: list[tuple[int, float]] = []
    pending: Future[list[tuple[int, float]]] | None = None
    if lexical and embedder is not None:
        # The two sides share nothing until fusion, and both release the GIL
        # (SQLite, torch): the words are looked up while the query is embedded.
        pending = _lexical_pool().submit(
            store.lexical_search, shape.terms, pool, ranking.bm25_weights, ranking.postings_budget
        )
    if embedder is not None:
        assert gen is not None  # an embedder is passed only with vectors to search
        qvec = embedder.encode_query(shape.text)  # (dim,)
        if adapter is not None:
            qvec = adapter.apply(qvec)  # (dim,): a matrix product, no chunk re-embedded
        hits = store.dense_search(gen, qvec, pool)
        owners = store.chunks_for_embeddings([eid for eid, _ in hits])
        for eid, sim in hits:
            dense.extend((cid, sim) for cid in owners.get(eid, ()))
    if pending is not None:
        return dense, pending.result()
    if lexical:
        return dense, store.lexical_search(
            shape.terms, pool, ranking.bm25_weights, ranking.postings_budget
        )
    return dense, []


DEFINITION_CANDIDATES = 50
"""Definitions of a named identifier looked up beyond what either side found."""


def _definitions(store: Store, shape: QueryShape, known: set[int]) -> list[Candidate]:
    """Chunks whose symbol holds a name the query types, not yet among `known`:
    the definition of `Flask.route` is a candidate however common `route` is."""
    found: list[Candidate] = []
    for name in shape.names:
        terms = [t for part in name_parts(name)[-2:] for t in whole_term(part)]
        for cid in store.definition_search(terms, DEFINITION_CANDIDATES):
            if cid not in known:
                known.add(cid)
                found.append(Candidate(cid))
    return found


_LEXICAL_POOL: ThreadPoolExecutor | None = None
_LEXICAL_POOL_LOCK = threading.Lock()


def _lexical_pool() -> ThreadPoolExecutor:
    global _LEXICAL_POOL
    with _LEXICAL_POOL_LOCK:
        if _LEXICAL_POOL is None:
            _LEXICAL_POOL = started_pool(2, "kenning-lexical")
        return _LEXICAL_POOL


def _result(chunk: StoredChunk, cand: Candidate, decay: float, explain: bool) -> SearchResult:
    final = cand.score * decay
    return result_of(chunk, final, Explanation.of(cand, decay, final) if explain else None)


def result_of(
    chunk: StoredChunk, score: float, explanation: Explanation | None = None
) -> SearchResult:
    return SearchResult(
        path=chunk.path,
        start_line=chunk.start_line,
        end_line=chunk.end_line,
        score=score,
        symbol=chunk.symbol,
        language=chunk.language,
        snippet=snippet_of(chunk.text),
        kind=chunk.kind,
        explanation=explanation,
    )


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
    """The best `limit` results of `ranked` (chunk id, score), one per place: a chunk that
    overlaps a result already taken (windows of one long function) or one of `exclude`
    is dropped. `kenning/related` lists its neighbours with it; search uses `select`."""
    results: list[SearchResult] = []
    for cid, score in ranked:
        chunk = chunks.get(cid)
        if chunk is None or (path_filter is not None and not path_filter.match_file(chunk.path)):
            continue
        if any(
            chunk.path == r.path
            and chunk.start_line <= r.end_line
            and r.start_line <= chunk.end_line
            for r in (*exclude, *results)
        ):
            continue
        results.append(result_of(chunk, score))
        if len(results) >= limit:
            break
    return results


def snippet_of(text: str) -> str:
    """The first few non-blank lines, dedented, for a results list."""
    lines = [ln for ln in text.splitlines() if ln.strip()][:SNIPPET_LINES]
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines), default=0)
    snippet = "\n".join(ln[indent:] for ln in lines)
    return snippet if len(snippet) <= SNIPPET_CHARS else snippet[: SNIPPET_CHARS - 1] + "…"
