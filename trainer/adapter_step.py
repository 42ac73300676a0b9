"""The adapter part of a run: vectors, fit, measure, gate, promote (or not).

The chunk side comes from the index: the vectors the serving generation
already holds for this model (`store.read_index_vectors`), so nothing is
re-embedded; chunks the index has no vector for yet (new files, or no index
at all) are embedded here. When the run also fine-tuned the model, the
vectors its measurement computed are used instead. Only the queries, and the
positives that are not chunks as the index holds them (a definition with its
docstring cut out), are embedded.

The gate is cross-fitted (`cross_fit`): the run's training and held-out pairs
are dealt into folds by file (picks by query), and every query-like pair is
ranked against every chunk by an adapter fitted without its fold, next to the
model as it is. The new adapter is promoted only when a penalty beat the
identity and its MRR@10 gain is positive and at least what the adapter in use
gained when it was promoted (its card), while that figure still describes the
workspace: once fewer than half of today's pairs were among the ones it was
measured on (`SAME_WORKSPACE`), beating the model as it is suffices. Promotion
is one pointer rename; a running server follows it within seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from kenning.server.adapters import adapter_for_identity
from kenning.server.models import ModelRef, vector_identity
from kenning.server.store import read_index_vectors

from . import checkpoints as ckpt
from .adapter import FitData
from .cross_fit import IDENTITY, cross_fit, fold_count
from .evaluate import Corpus, Encoder, Gated, Metrics, PairedTest, metrics_of, paired_test
from .options import TrainOptions
from .pairs import Pair, is_measured
from .pick_pairs import PICK_WEIGHT

Say = Callable[[str], None]


KEEP_HELDOUT_UNSEEN = True
"""Whether the adapter kept is fitted on the run's training side only, so the held-out
files stay unseen by what searches use (`kenning eval`, the next fine-tune's gate), or on
every pair (`bench.learning` system ``adapter-allfit``)."""


@dataclass
class AdapterResult(Gated):
    status: str
    """promoted, rejected or skipped."""
    reason: str
    model: str
    """`name@version` of the model whose query vectors it maps."""
    adapter: str | None = None
    """Id of the new adapter when it was promoted."""
    train_pairs: int = 0
    heldout_pairs: int = 0
    before: Metrics | None = None
    after: Metrics | None = None
    paired: PairedTest | None = None
    penalty: float | None = None
    """The chosen pull toward the identity; None when the identity won."""
    validation: dict[str, float] = field(default_factory=dict)
    """Cross-fitted MRR@10 per penalty tried (`identity` for none)."""
    folds: int = 0
    gain: float | None = None
    """Cross-fitted MRR@10 over the model as it is."""
    steps: int = 0
    chunk_vectors: str = "index"
    """Where the chunk vectors came from: `index`; `embedded` for this run (no index for
    this model); `measured`: computed by this run's measurement of a fine-tuned model."""
    embedded: int = 0
    """Texts embedded for this step (queries, positives, chunks the index lacked)."""
    chunks_embedded: int = 0
    """Of those, chunks the index held no vector for (0 when the index is complete)."""
    fit_s: float = 0.0
    took_s: float = 0.0

    def record(self) -> dict[str, Any]:
        """The short form kept in the training history."""
        return {
            "status": self.status,
            "reason": self.reason,
            "model": self.model,
            "adapter": self.adapter,
            "train_pairs": self.train_pairs,
            "heldout_pairs": self.heldout_pairs,
            "mrr_before": self.before.mrr_at_10 if self.before else None,
            "mrr_after": self.after.mrr_at_10 if self.after else None,
            "paired_test": self.paired.to_json() if self.paired else None,
            "penalty": self.penalty,
            "gain": None if self.gain is None else round(self.gain, 4),
            "folds": self.folds,
            "took_s": round(self.took_s, 2),
        }


@dataclass
class AdapterInputs:
    """What the run hands this step."""

    index_dir: Path
    model: ModelRef
    seq_length: int
    corpus: Corpus
    train: Sequence[Pair]
    heldout: Sequence[Pair]
    encode: Encoder
    chunk_vecs: np.ndarray | None = None
    """The model's vectors of every corpus chunk, when the run already computed them."""
    workspace: str = ""


def train_adapter(inputs: AdapterInputs, options: TrainOptions, say: Say) -> AdapterResult:
    start = time.perf_counter()
    corpus = inputs.corpus
    identity = vector_identity(inputs.model, inputs.seq_length)
    result = AdapterResult("skipped", "", inputs.model.label)
    # The adapter cross-fits on both sides of the run's split (`cross_fit`), so every
    # query-like pair is measured once; the adapter kept is fitted on the training side
    # only, so the held-out files stay unseen by what searches use (`kenning eval`).
    # Signature pairs stay (capped, as for the fine-tune): on the tuning packages they
    # helped the adapter too (flask +0.015 hybrid MRR@10 with them, tqdm level).
    pool = list(inputs.train) + list(inputs.heldout)
    result.train_pairs = len(pool)
    result.heldout_pairs = sum(1 for p in pool if is_measured(p))
    if not enough_to_measure(pool, options.min_heldout) or not len(corpus):
        result.reason = "too few pairs to train and measure an adapter"
        return _done(result, start)

    chunks, embedded = _chunk_vectors(inputs, identity, say)
    if inputs.chunk_vecs is not None:
        result.chunk_vectors = "measured"
    else:
        result.chunk_vectors = "embedded" if embedded == len(corpus) else "index"
    result.chunks_embedded = embedded
    say(f"training a query adapter for {inputs.model.label} on {len(pool)} pairs")
    data, n = _fit_data(pool, corpus, chunks, inputs.encode)
    result.embedded = embedded + n

    def score(rows: Sequence[int], matrix: np.ndarray | None) -> np.ndarray:
        queries = data.queries[list(rows)]
        if matrix is not None:
            queries = queries @ matrix.T  # ranks ignore the length, no need to normalise
        picked = [pool[i] for i in rows]
        return np.asarray(corpus.score(queries, data.positives[list(rows)], chunks, picked).ranks)

    fitted = cross_fit(
        pool,
        data,
        chunks,
        _file_codes(corpus),
        score,
        final_rows=np.arange(len(inputs.train)) if KEEP_HELDOUT_UNSEEN else None,
        seed=options.seed,
    )
    result.penalty = None if fitted.penalty == IDENTITY else fitted.penalty
    result.validation, result.steps, result.fit_s = fitted.scores, fitted.steps, fitted.took_s
    result.folds = fitted.folds

    # Measured against the model as it is. The adapter in use (if any) was trained on
    # these same pairs, so ranking them with it would flatter it: a new adapter replaces
    # it when it gains at least as much over the model as that one did when promoted,
    # unless most of today's pairs are new to it (`recorded_gain`).
    current = adapter_for_identity(inputs.index_dir, identity)
    keys = pair_keys(pool)
    recorded = recorded_gain(inputs.index_dir, current.id, keys) if current else None
    heldout = [pool[i] for i in fitted.scored]
    result.before = metrics_of(fitted.identity_ranks, heldout, len(corpus))
    result.after = metrics_of(fitted.ranks, heldout, len(corpus))
    result.paired = paired_test(result.before.ranks, result.after.ranks)
    gain = result.after.mrr_at_10 - result.before.mrr_at_10
    result.gain = gain
    to_beat = recorded.gain if recorded is not None and recorded.applies else None
    verdict = (
        f"cross-fitted MRR@10 on {len(heldout)} queries in {fitted.folds} folds "
        f"{result.before.mrr_at_10:.3f} (no adapter) -> {result.after.mrr_at_10:.3f} "
        f"({result.paired.better} queries better, {result.paired.worse} worse, "
        f"Wilcoxon p={result.paired.wilcoxon_p:.2g})"
    )
    if fitted.penalty == IDENTITY or gain <= 0:
        passed, why = False, "not better than the model as it is"
    elif current is not None and to_beat is not None and gain < to_beat:
        passed = False
        why = f"adapter {current.id}, in use, gained {to_beat:+.3f} when it was promoted"
    else:
        passed, why = True, ""
        if current is not None and recorded is not None and not recorded.applies:
            verdict += (
                f"; adapter {current.id}, in use, gained {recorded.gain:+.3f} on pairs of "
                f"which {recorded.shared:.0%} are still here, so only the model as it is "
                "had to be beaten"
            )
    if passed or options.no_gate:
        folder = ckpt.save_adapter(
            inputs.index_dir,
            fitted.matrix,
            {
                "identity": identity,
                "model": inputs.model.label,
                "dim": int(chunks.shape[1]),
                "workspace": inputs.workspace,
                "pairs": {"train": len(pool), "heldout": len(heldout), "folds": fitted.folds},
                "penalty": result.penalty,
                "validation": fitted.scores,
                "metrics": {"before": result.before.to_json(), "after": result.after.to_json()},
                "paired_test": result.paired.to_json(),
                "gain": round(gain, 6),
                "pair_keys": sorted(keys),
                "gate": {"passed": passed, "bypassed": not passed},
            },
        )
        ckpt.promote_adapter(inputs.index_dir, folder.name)
        result.status, result.adapter = "promoted", folder.name
        result.reason = f"{verdict}; searches use adapter {folder.name} now" + (
            "" if passed else " (promoted without the gate, --no-gate)"
        )
    else:
        result.status, result.reason = "rejected", f"{verdict}: {why}"
    return _done(result, start)


def enough_to_measure(pairs: Sequence[Pair], minimum: int) -> bool:
    """Whether cross-fitting can measure an adapter on `pairs`: at least `minimum`
    query-like pairs, from two or more files or picked queries."""
    measured = sum(1 for p in pairs if is_measured(p))
    return measured >= minimum and fold_count(pairs) >= 2


SAME_WORKSPACE = 0.5
"""An adapter's recorded gain is a bar for the next one while at least this share of
the next run's pairs were among those it was measured on."""


def pair_key(pair: Pair) -> str:
    """A short digest of a pair, for telling whether two runs measured the same pairs."""
    text = f"{pair.kind}\0{pair.path}\0{pair.anchor}"
    return hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=4).hexdigest()


def pair_keys(pairs: Sequence[Pair]) -> set[str]:
    return {pair_key(p) for p in pairs}


@dataclass(frozen=True)
class RecordedGain:
    gain: float
    """What the adapter gained over the model when it was promoted."""
    shared: float
    """Share of today's pairs that were among those it was measured on (1.0 when its
    card does not list them: an adapter from before the list was kept)."""

    @property
    def applies(self) -> bool:
        return self.shared >= SAME_WORKSPACE


def recorded_gain(index_dir: Path, adapter_id: str, keys: set[str]) -> RecordedGain | None:
    """What an adapter's card says it gained, and how much of today's pairs (`keys`) it
    was measured on; None when the card does not say (an adapter from before
    cross-fitting: then any gain wins).

    The figure stops being a bar once the workspace has moved on: otherwise an adapter
    promoted on a workspace that later changed could never be replaced, even after it
    stopped helping."""
    try:
        card = json.loads((ckpt.adapters_dir(index_dir) / adapter_id / ckpt.CARD_NAME).read_text())
    except (OSError, ValueError):
        return None
    gain = card.get("gain")
    if not isinstance(gain, int | float):
        return None
    listed = card.get("pair_keys")
    if not isinstance(listed, list) or not keys:
        return RecordedGain(float(gain), 1.0)
    shared = len(keys & {str(k) for k in listed}) / len(keys)
    return RecordedGain(float(gain), shared)


def _done(result: AdapterResult, start: float) -> AdapterResult:
    result.took_s = time.perf_counter() - start
    return result


def _chunk_vectors(inputs: AdapterInputs, identity: str, say: Say) -> tuple[np.ndarray, int]:
    """(every corpus chunk's vector, how many were embedded here)."""
    corpus = inputs.corpus
    if inputs.chunk_vecs is not None:
        return np.asarray(inputs.chunk_vecs, dtype=np.float32), 0
    stored = read_index_vectors(inputs.index_dir, identity) or {}
    found: list[np.ndarray | None] = [stored.get(h) for h in corpus.hashes]
    missing = [i for i, v in enumerate(found) if v is None]
    if missing:
        say(
            f"embedding {len(missing)} of {len(corpus)} chunks the index holds no vector for"
            + ("" if stored else " (no index for this model yet)")
        )
        vecs = inputs.encode([corpus.texts[i] for i in missing])
        for i, v in zip(missing, vecs, strict=True):
            found[i] = v
    return np.stack([v for v in found if v is not None]).astype(np.float32), len(missing)


def _text_hash(text: str) -> str:
    # The chunker's hash of an embed text (`chunking._make`): a positive that is a
    # chunk as the index holds it finds its vector by it.
    return hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=16).hexdigest()


def _positive_vectors(
    pairs: Sequence[Pair], corpus: Corpus, chunks: np.ndarray, encode: Encoder
) -> tuple[np.ndarray, int]:
    """(each positive's vector, how many had to be embedded)."""
    rows = [corpus.row(_text_hash(p.positive)) for p in pairs]
    out = np.zeros((len(pairs), chunks.shape[1]), dtype=np.float32)
    todo = [i for i, r in enumerate(rows) if r < 0]
    for i, r in enumerate(rows):
        if r >= 0:
            out[i] = chunks[r]
    if todo:
        out[todo] = encode([pairs[i].positive for i in todo])
    return out, len(todo)


def _fit_data(
    pairs: Sequence[Pair], corpus: Corpus, chunks: np.ndarray, encode: Encoder
) -> tuple[FitData, int]:
    queries = encode([p.anchor for p in pairs])  # (n, dim)
    positives, embedded = _positive_vectors(pairs, corpus, chunks, encode)
    codes = {path: i for i, path in enumerate(sorted(set(corpus.paths)))}
    data = FitData(
        queries=np.asarray(queries, dtype=np.float32),
        positives=positives,
        own_rows=np.array([corpus.row(p.source_hash) for p in pairs], dtype=np.int64),
        files=np.array([codes.get(p.path, -1) for p in pairs], dtype=np.int64),
        weights=np.array(
            [PICK_WEIGHT if p.kind == "pick" else 1.0 for p in pairs], dtype=np.float32
        ),
    )
    return data, len(pairs) + embedded


def _file_codes(corpus: Corpus) -> np.ndarray:
    codes = {path: i for i, path in enumerate(sorted(set(corpus.paths)))}
    return np.array([codes[p] for p in corpus.paths], dtype=np.int64)
