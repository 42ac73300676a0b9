"""Held-out retrieval quality: split pairs by file, rank, score, compare.

The split is by file so that no file contributes to both training and
evaluation: a model that memorised a file's code cannot look good on that
file's queries. Each held-out query is searched against every chunk of the
workspace (as the index would store it), not just the held-out ones, with one
correction: the chunk a positive was cut from still contains the query's own
words (its docstring), so for that kind of query it is replaced by the
positive. Ranks are kept per query so two models can be compared query by
query with a paired test: with tens of queries a difference of a few points
in MRR is a handful of queries and often noise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from kenning.server.chunking import Chunk

from .options import DEFAULT_HELDOUT_FRACTION, DEFAULT_SEED
from .pairs import Pair

Encoder = Callable[[list[str]], np.ndarray]
"""texts -> unit-length vectors, shape (len(texts), dim); e.g. `Embedder.encode`."""

MAX_RANK = 10


@dataclass
class Split:
    train: list[Pair]
    heldout: list[Pair]
    train_files: list[str]
    heldout_files: list[str]


def split_by_file(
    pairs: Sequence[Pair],
    *,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    seed: int = DEFAULT_SEED,
    key: Callable[[Pair], str] = lambda p: p.path,
    counts: Callable[[Pair], bool] = lambda p: True,
) -> Split:
    """Put whole files on one side: files in a seeded random order go to the
    held-out side until it has `heldout_fraction` of the pairs that `counts`,
    the rest train.

    Every file's pairs land on one side only; at least one file is held out
    when there are two or more files that hold a counted pair, and a file with
    none stays on the training side: measured, it would say nothing and take
    its pairs from training. `key` groups by something else than the file
    (picks are split by their query); `*_files` then list those groups.
    """
    by_file: dict[str, list[Pair]] = {}
    for p in pairs:
        by_file.setdefault(key(p), []).append(p)
    weight = {f: sum(1 for p in group if counts(p)) for f, group in by_file.items()}
    files = sorted(by_file)
    random.Random(seed).shuffle(files)
    target = heldout_fraction * sum(weight.values())
    candidates = [f for f in files if weight[f]]
    heldout_files: list[str] = []
    count = 0
    for path in candidates[:-1] if len(candidates) > 1 else []:
        if count >= target and heldout_files:
            break
        heldout_files.append(path)
        count += weight[path]
    held = set(heldout_files)
    train_files = [f for f in files if f not in held]
    return Split(
        train=[p for p in pairs if key(p) not in held],
        heldout=[p for p in pairs if key(p) in held],
        train_files=sorted(train_files),
        heldout_files=sorted(heldout_files),
    )


def sample(pairs: Sequence[Pair], limit: int, seed: int = DEFAULT_SEED) -> list[Pair]:
    """At most `limit` pairs, a seeded random sample that keeps the original order."""
    if limit <= 0 or len(pairs) <= limit:
        return list(pairs)
    keep = sorted(random.Random(seed).sample(range(len(pairs)), limit))
    return [pairs[i] for i in keep]


@dataclass
class Metrics:
    mrr_at_10: float
    recall_at_1: float
    recall_at_10: float
    queries: int
    corpus: int
    """Chunks every query was searched against (the workspace's embeddable chunks)."""
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    """The same three metrics and the query count, per pair kind."""
    ranks: list[int] = field(default_factory=list)
    """1-based rank of each held-out query's positive, in held-out order."""

    def to_json(self, *, with_ranks: bool = False) -> dict:
        data = asdict(self)
        if not with_ranks:
            data.pop("ranks")
        return data


def reciprocal_ranks(ranks: Sequence[int] | np.ndarray, k: int = MAX_RANK) -> np.ndarray:
    """1/rank when the positive is in the top k, else 0: the per-query MRR@k terms."""
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r <= k, 1.0 / np.maximum(r, 1.0), 0.0)


def _summary(ranks: np.ndarray) -> dict[str, float]:
    if len(ranks) == 0:
        return {"mrr_at_10": 0.0, "recall_at_1": 0.0, "recall_at_10": 0.0, "queries": 0}
    return {
        "mrr_at_10": float(reciprocal_ranks(ranks).mean()),
        "recall_at_1": float((ranks <= 1).mean()),
        "recall_at_10": float((ranks <= MAX_RANK).mean()),
        "queries": int(len(ranks)),
    }


def corpus_texts(chunks: Sequence[Chunk]) -> tuple[list[str], list[str]]:
    """(hashes, embed texts) of the workspace's embeddable chunks, one per distinct text."""
    seen: dict[str, str] = {}
    for c in chunks:
        if c.embeddable and c.hash not in seen:
            seen[c.hash] = c.embed_text
    return list(seen), list(seen.values())


class Corpus:
    """The workspace's chunks, embedded once per model, to rank held-out queries against."""

    def __init__(self, chunks: Sequence[Chunk]):
        self.hashes, self.texts = corpus_texts(chunks)
        self._row = {h: i for i, h in enumerate(self.hashes)}
        path_of: dict[str, str] = {}
        for c in chunks:
            path_of.setdefault(c.hash, c.path)
        self.paths = [path_of[h] for h in self.hashes]
        """The file of each row (of the first chunk with that text)."""

    def __len__(self) -> int:
        return len(self.texts)

    def embed(self, encode: Encoder) -> np.ndarray:
        """Every chunk's vector under `encode`, in the order of `hashes`; (n_chunks, dim)."""
        return encode(self.texts) if self.texts else np.zeros((0, 1), np.float32)

    def row(self, chunk_hash: str | None) -> int:
        """The row of the chunk with this text hash, or -1."""
        return self._row.get(chunk_hash, -1) if chunk_hash is not None else -1

    def evaluate(
        self,
        encode: Encoder,
        heldout: Sequence[Pair],
        *,
        chunk_vecs: np.ndarray | None = None,
        query_map: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Metrics:
        """Embed the held-out pairs (and the chunks, unless `chunk_vecs` are given) and
        rank them; `query_map` (a query adapter) moves the query vectors first."""
        if not heldout:
            return Metrics(0.0, 0.0, 0.0, 0, len(self))
        chunk_vecs = self.embed(encode) if chunk_vecs is None else chunk_vecs
        query_vecs = encode([p.anchor for p in heldout])  # (n_queries, dim)
        if query_map is not None:
            query_vecs = query_map(query_vecs)
        pos_vecs = encode([p.positive for p in heldout])  # (n_queries, dim)
        return self.score(query_vecs, pos_vecs, chunk_vecs, heldout)

    def score(
        self,
        query_vecs: np.ndarray,
        pos_vecs: np.ndarray,
        chunk_vecs: np.ndarray,
        heldout: Sequence[Pair],
    ) -> Metrics:
        """Rank every held-out pair's positive for its anchor; return the metrics.

        For the queries of one kind the candidates are all workspace chunks
        (`chunk_vecs`, in the order of `hashes`), minus the chunks their
        positives were cut from, plus those positives. A tie counts in the
        positive's favour.
        """
        if not heldout:
            return Metrics(0.0, 0.0, 0.0, 0, len(self))
        ranks = np.zeros(len(heldout), dtype=np.int64)
        kinds = sorted({p.kind for p in heldout})
        for kind in kinds:
            idx = np.array([i for i, p in enumerate(heldout) if p.kind == kind])
            removed = {
                self._row[p.source_hash]
                for p in (heldout[i] for i in idx)
                if p.source_hash in self._row
            }
            keep = np.array([i for i in range(len(self)) if i not in removed], dtype=np.int64)
            q = query_vecs[idx]  # (k, dim)
            own = np.einsum("ij,ij->i", q, pos_vecs[idx])  # (k,)
            better = np.zeros(len(idx), dtype=np.int64)
            if len(keep):
                better += (q @ chunk_vecs[keep].T > own[:, None]).sum(axis=1)  # (k, n_keep) -> (k,)
            others = q @ pos_vecs[idx].T  # (k, k)
            np.fill_diagonal(others, -np.inf)
            better += (others > own[:, None]).sum(axis=1)
            ranks[idx] = better + 1
        return metrics_of(ranks, heldout, len(self))


def metrics_of(ranks: Sequence[int] | np.ndarray, pairs: Sequence[Pair], corpus: int) -> Metrics:
    """The metrics of the positives' 1-based `ranks` (one per pair, in order), overall
    and per pair kind, against a corpus of `corpus` chunks."""
    ranks = np.asarray(ranks, dtype=np.int64)
    kinds = sorted({p.kind for p in pairs})
    by_kind = {
        kind: _summary(ranks[[i for i, p in enumerate(pairs) if p.kind == kind]]) for kind in kinds
    }
    total = _summary(ranks)
    return Metrics(
        mrr_at_10=total["mrr_at_10"],
        recall_at_1=total["recall_at_1"],
        recall_at_10=total["recall_at_10"],
        queries=len(pairs),
        corpus=corpus,
        by_kind=by_kind,
        ranks=[int(r) for r in ranks],
    )


class Gated:
    """What a gated result has in common (a dataclass with `status`, `before`, `after`):
    whether it was promoted, and its JSON with the metrics' own."""

    status: str
    before: Metrics | None
    after: Metrics | None

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses
        data["before"] = self.before.to_json() if self.before else None
        data["after"] = self.after.to_json() if self.after else None
        return data


@dataclass
class PairedTest:
    """Query-by-query comparison of two models' reciprocal ranks (MRR@10 terms)."""

    queries: int
    better: int
    """Queries the new model ranks higher (within the top 10)."""
    worse: int
    ties: int
    mean_delta: float
    """Mean change of reciprocal rank = change of MRR@10."""
    wilcoxon_p: float
    """Two-sided Wilcoxon signed-rank p-value over the non-zero differences (1.0 when none)."""
    sign_p: float
    """Two-sided sign test p-value: better vs worse counts under a fair coin."""

    def to_json(self) -> dict:
        return asdict(self)


def paired_test(ranks_before: Sequence[int], ranks_after: Sequence[int]) -> PairedTest:
    """Compare two models on the same held-out queries, query by query."""
    from scipy.stats import binomtest, wilcoxon

    if len(ranks_before) != len(ranks_after):
        raise ValueError("the two rank lists must cover the same queries")
    delta = reciprocal_ranks(ranks_after) - reciprocal_ranks(ranks_before)
    better = int((delta > 0).sum())
    worse = int((delta < 0).sum())
    nonzero = delta[delta != 0]
    wilcoxon_p = 1.0
    if len(nonzero):
        wilcoxon_p = float(wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue)
    sign_p = float(binomtest(better, better + worse, 0.5).pvalue) if better + worse else 1.0
    return PairedTest(
        queries=len(delta),
        better=better,
        worse=worse,
        ties=len(delta) - better - worse,
        mean_delta=float(delta.mean()) if len(delta) else 0.0,
        wilcoxon_p=wilcoxon_p if not math.isnan(wilcoxon_p) else 1.0,
        sign_p=sign_p,
    )
