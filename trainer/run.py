"""A whole retraining: mine -> split -> (fine-tune the model) -> (fit a query adapter) -> record.

`train_workspace` is what `kenning train` and the daemon's training child run.
A run trains one or both parts (`TrainOptions.parts`):

- **model**: a full fine-tune (`model_step`): minutes on a CPU, and a promotion
  means re-embedding the whole index;
- **adapter**: a query adapter (`adapter_step`): seconds on a CPU, trained
  against the chunk vectors already in the index; its promotion is a pointer
  change.

Both are measured on the same held-out pairs (files, and picked queries, the
training never saw) and promoted only when their held-out MRR@10 beats what
searches get now. Nothing in use changes until a part passes its gate. Every
run is appended to the history, and a chart of loss and held-out MRR across
runs is redrawn beside it.

An interrupted run (Ctrl-C, a killed process) leaves the promoted model as it
was and its resumable state under the index directory: the next run on the
same pairs continues from the last saved step.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning.server.adapters import adapter_for_identity
from kenning.server.discover import FileFilter
from kenning.server.embedder import usable_cores
from kenning.server.models import (
    ModelError,
    ModelRef,
    pick_device,
    target_model,
    vector_identity,
)
from kenning.server.picks import PickStore
from kenning.server.settings import Settings, load_settings, resolve_workspace

from . import checkpoints as ckpt
from . import distributed
from .adapter_step import AdapterInputs, AdapterResult, enough_to_measure, train_adapter
from .chart import write_chart
from .cross_fit import group_of
from .evaluate import Corpus, Gated, Metrics, PairedTest, Split, sample, split_by_file
from .model_step import encoder, train_model
from .options import DEFAULT_HELDOUT_FRACTION, DEFAULT_MAX_COMMITS, DEFAULT_SEED, TrainOptions
from .pairs import WEAK_KINDS, MinedPairs, Pair, is_measured, mine_pairs
from .pick_pairs import pick_pairs, split_by_query

log = logging.getLogger(__name__)

Say = Callable[[str], None]
"""Where a run reports its phases (one line each); the CLI prints them to stderr."""

PARTS = ("adapter", "model", "both")


class DeviceUnavailable(ValueError):
    """The requested device does not exist here (bad usage: exit code 2)."""


@dataclass
class TrainResult(Gated):
    status: str
    """promoted, rejected, skipped (not enough data) or failed (training could not finish);
    with both parts, promoted when either was promoted."""
    reason: str
    model_before: str
    model_after: str
    checkpoint: str | None = None
    pairs: dict[str, int] = field(default_factory=dict)
    train_pairs: int = 0
    heldout_pairs: int = 0
    heldout_files: int = 0
    before: Metrics | None = None
    after: Metrics | None = None
    paired: PairedTest | None = None
    training: dict[str, Any] | None = None
    history_path: str | None = None
    chart_path: str | None = None
    took_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    parts: str = "model"
    """What the run trained: model, adapter or both."""
    model_status: str | None = None
    """The full fine-tune's own outcome (None when the run did not fine-tune)."""
    adapter: AdapterResult | None = None
    """The query adapter's outcome (None when the run did not train one)."""
    picks: int = 0
    """Opened search results used as pairs (train and held-out together)."""

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["adapter"] = self.adapter.to_json() if self.adapter else None
        return data


@dataclass
class EvalResult:
    model: str
    metrics: Metrics
    pairs: dict[str, int]
    heldout_files: int
    took_s: float
    adapter: str | None = None
    """The query adapter measured with the model (the one searches use), if any."""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "adapter": self.adapter,
            "metrics": self.metrics.to_json(),
            "pairs": self.pairs,
            "heldout_files": self.heldout_files,
            "took_s": round(self.took_s, 3),
        }


@dataclass
class _Prepared:
    root: Path
    index_dir: Path
    settings: Settings
    current: ModelRef
    device: str
    embed_seq_length: int
    embed_batch: int
    mined: MinedPairs
    split: Split
    train: list[Pair]
    heldout: list[Pair]
    picks_heldout: int = 0
    """Held-out pairs that are picks (split by query)."""
    picks_stale: int = 0


def cpu_threads() -> int:
    """Threads for CPU work: the cores not already kept busy by other processes.

    On a shared or loaded machine, more compute threads than free cores make
    every step several times slower, not faster: each thread waits at every
    barrier for a peer the OS has descheduled (measured here: 2 threads on 2
    busy cores took 10-25 s per step that 1 thread did in 2-3 s).
    """
    cpus = usable_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cpus
    return max(1, min(cpus, round(cpus - load)))


def _limit_threads(device: str, say: Say) -> None:
    if device != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return  # a GPU run, or the user chose the thread count
    import torch

    threads = cpu_threads()
    if threads < torch.get_num_threads():
        say(f"using {threads} CPU thread(s): the other cores are busy")
        torch.set_num_threads(threads)


def limit_kind(
    pairs: list[Pair],
    kind: str | Sequence[str],
    max_share: float,
    seed: int = DEFAULT_SEED,
) -> list[Pair]:
    """Keep pairs of `kind` (one kind or several) to at most `max_share` of the result
    (a seeded sample of them)."""
    kinds = {kind} if isinstance(kind, str) else set(kind)
    if max_share >= 1:
        return list(pairs)
    other = [p for p in pairs if p.kind not in kinds]
    allowed = int(len(other) * max_share / (1 - max_share)) if max_share > 0 else 0
    keep = set(sample([p for p in pairs if p.kind in kinds], allowed, seed))
    return [p for p in pairs if p.kind not in kinds or p in keep]


def _prepare(
    workspace: str | Path,
    overrides: Mapping[str, Any] | None,
    device_setting: str,
    options: TrainOptions,
    say: Say,
) -> _Prepared:
    # Settings and model only: the index database is not opened for writing,
    # because the daemon may have it open and be writing it while this run trains.
    root = resolve_workspace(workspace)
    settings = load_settings(root, cli=overrides)
    index_dir = settings.resolved_index_dir(root)
    current = target_model(index_dir, settings)
    flt = FileFilter(root, settings.include, settings.exclude)
    try:
        device = pick_device(device_setting if device_setting != "auto" else settings.device)
    except ModelError as exc:
        raise DeviceUnavailable(str(exc)) from exc
    _limit_threads(device, say)
    mined = mine_pairs(root, flt, settings.max_file_bytes, max_commits=options.max_commits)
    seed, fraction = options.seed, options.heldout_fraction
    # Held-out files are chosen, and counted, by the pairs that measure (`is_measured`):
    # counting every pair let one large test file, most of it signatures, be the whole
    # held-out side (tqdm and more-itertools, seed 43), so the gate judged a fine-tune
    # on tests' docstrings alone.
    split = split_by_file(mined.pairs, heldout_fraction=fraction, seed=seed, counts=is_measured)
    # Picks: the strongest pairs, split by query, never sampled away.
    picked = pick_pairs(
        PickStore(index_dir).read() if settings.learn_from_picks else [], mined.chunks
    )
    mined.counts["pick"] = len(picked.pairs)
    pick_split = split_by_query(picked.pairs, heldout_fraction=fraction, seed=seed)
    say(
        f"mined {len(mined.pairs)} pairs from {mined.files} files: "
        + ", ".join(f"{n} {k}" for k, n in mined.counts.items() if n)
    )
    train = limit_kind(split.train, WEAK_KINDS, options.max_signature_share, seed)
    picks_train = pick_split.train[-options.max_pairs :]
    train = picks_train + sample(train, max(0, options.max_pairs - len(picks_train)), seed)
    heldout = sample([p for p in split.heldout if is_measured(p)], options.max_eval_pairs, seed)
    return _Prepared(
        root=root,
        index_dir=index_dir,
        settings=settings,
        current=current,
        device=device,
        embed_seq_length=settings.max_seq_length,
        embed_batch=settings.batch_size,
        mined=mined,
        split=split,
        train=train,
        heldout=heldout + pick_split.heldout,
        picks_heldout=len(pick_split.heldout),
        picks_stale=picked.stale,
    )


def evaluate_workspace(
    workspace: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    device: str = "auto",
    seed: int = DEFAULT_SEED,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    max_eval_pairs: int = 500,
    max_commits: int = DEFAULT_MAX_COMMITS,
    say: Say = lambda _: None,
) -> EvalResult:
    """The model in use, measured on the workspace's held-out pairs (as `train` splits them)."""
    start = time.perf_counter()
    options = TrainOptions(
        seed=seed,
        heldout_fraction=heldout_fraction,
        max_pairs=0,
        max_eval_pairs=max_eval_pairs,
        max_commits=max_commits,
    )
    prep = _prepare(workspace, overrides, device, options, say)
    if not prep.heldout:
        raise ValueError(
            f"no held-out pairs: only {len(prep.mined.pairs)} pairs were found in {prep.root}"
        )
    corpus = Corpus(prep.mined.chunks)
    # What searches use: the model, with its query adapter when there is one for it.
    adapter = adapter_for_identity(
        prep.index_dir, vector_identity(prep.current, prep.embed_seq_length)
    )
    say(
        f"measuring {prep.current.label}"
        + (f" with adapter {adapter.id}" if adapter else "")
        + f" on {len(prep.heldout)} held-out queries against {len(corpus)} chunks"
    )
    metrics = corpus.evaluate(
        encoder(prep.current, prep),
        prep.heldout,
        query_map=adapter.apply_many if adapter else None,
    )
    return EvalResult(
        prep.current.label,
        metrics,
        prep.mined.counts,
        len(prep.split.heldout_files),
        time.perf_counter() - start,
        adapter.id if adapter else None,
    )


def train_workspace(
    workspace: str | Path,
    overrides: Mapping[str, Any] | None = None,
    options: TrainOptions | None = None,
    *,
    say: Say = lambda _: None,
    show_progress: bool = False,
    callbacks: Sequence[Any] = (),
    load_model: Callable[[str, str], Any] | None = None,
) -> TrainResult:
    """Run one retraining of the workspace's model and/or query adapter; see the module docstring.

    Args:
        workspace: the workspace folder.
        overrides: settings from the command line (model, index_dir, device...).
        options: hyper-parameters, data caps, the parts to train and the gate switch;
            None takes the workspace's `train.*` settings (as the daemon's runs do).
        say: receives one line per phase.
        show_progress: draw the trainer's progress bar.
        callbacks: extra transformers TrainerCallbacks.
        load_model: (location, device) -> SentenceTransformer, for tests.

    Raises:
        DeviceUnavailable: `options.device` names a device this machine lacks.
        KeyboardInterrupt: passed on; the promoted model is untouched and the run resumable.
        TrainingBusy: another run on the same index is in progress.
    """
    start = time.perf_counter()
    if options is None:
        settings = load_settings(resolve_workspace(workspace), cli=overrides)
        options = TrainOptions.from_settings(settings.train)
    if options.parts not in PARTS:
        raise ValueError(f"parts must be one of {', '.join(PARTS)}, got {options.parts!r}")
    prep = _prepare(workspace, overrides, options.device, options, say)
    if not distributed.is_main():
        # Another process of a `--nproc` run: it trains, process 0 does the rest.
        return distributed.train_replica(prep, options, callbacks, load_model)
    with ckpt.run_lock(prep.index_dir):
        for leftover in ckpt.remove_leftovers(prep.index_dir):
            log.info("removed %s, left by an interrupted run", leftover)
        result = _train(prep, options, say, show_progress, callbacks, load_model)
        return _finish(result, prep, options, start)


def _train(
    prep: _Prepared,
    options: TrainOptions,
    say: Say,
    show_progress: bool,
    callbacks: Sequence[Any],
    load_model: Callable[[str, str], Any] | None,
) -> TrainResult:
    result = TrainResult(
        status="skipped",
        reason="",
        model_before=prep.current.label,
        model_after=prep.current.label,
        pairs=prep.mined.counts,
        train_pairs=len(prep.train),
        heldout_pairs=len(prep.heldout),
        heldout_files=len(prep.split.heldout_files),
        notes=list(prep.mined.notes),
        parts=options.parts,
        picks=prep.mined.counts.get("pick", 0),
    )
    if prep.picks_stale:
        result.notes.append(
            f"{prep.picks_stale} picks point at code that is no longer there and were skipped"
        )
    wants_model = options.parts in ("model", "both")
    wants_adapter = options.parts in ("adapter", "both")
    model_too_little = _too_little(prep, options) if wants_model else None
    adapter_too_little = _adapter_too_little(prep, options) if wants_adapter else None
    if (model_too_little or not wants_model) and (adapter_too_little or not wants_adapter):
        # Never promote what cannot be measured; say what there is and what would help.
        result.reason = model_too_little or adapter_too_little or ""
        return result
    corpus = Corpus(prep.mined.chunks)
    model, chunk_vecs = prep.current, None
    if wants_model:
        too_few = model_too_little or _too_few_to_finetune(prep, options)
        if too_few:
            result.status, result.reason = "skipped", too_few
        else:
            step = train_model(
                prep,
                options,
                result,
                corpus,
                say,
                show_progress=show_progress,
                callbacks=callbacks,
                load_model=load_model,
            )
            model, chunk_vecs = step.model, step.chunk_vecs
        result.model_status = result.status
    if wants_adapter and adapter_too_little:
        result.adapter = AdapterResult("skipped", adapter_too_little, model.label)
        _combine(result, result.adapter)
    elif wants_adapter:
        result.adapter = train_adapter(
            AdapterInputs(
                index_dir=prep.index_dir,
                model=model,
                seq_length=prep.embed_seq_length,
                corpus=corpus,
                train=prep.train,
                heldout=prep.heldout,
                encode=encoder(model, prep),
                chunk_vecs=chunk_vecs,
                workspace=str(prep.root),
            ),
            options,
            say,
        )
        _combine(result, result.adapter)
    return result


def _combine(result: TrainResult, adapter: AdapterResult) -> None:
    """The run's status and reason from its parts: promoted if either part was."""
    if result.model_status is None:
        result.status, result.reason = adapter.status, f"adapter: {adapter.reason}"
        return
    statuses = (result.model_status, adapter.status)
    for status in ("promoted", "rejected", "failed"):
        if status in statuses:
            result.status = status
            break
    result.reason = f"model: {result.reason}; adapter: {adapter.reason}"


def _too_few_to_finetune(prep: _Prepared, options: TrainOptions) -> str | None:
    """Why the model itself is not fine-tuned (None when it is); an adapter needs fewer pairs."""
    n = len(prep.mined.pairs)
    if n >= options.min_pairs:
        return None
    return (
        f"not enough mined pairs to fine-tune the model: found {n}, need at least "
        f"{options.min_pairs} (docstrings, leading comments, tests and commits feed it)"
    )


def model_skip_reason(prep: _Prepared, options: TrainOptions) -> str | None:
    """Why this run does not fine-tune the model (None when it does): the same decision in
    every process of a `--nproc` run, since mining is deterministic."""
    if options.parts not in ("model", "both"):
        return f"this run trains only the {options.parts}"
    return _too_little(prep, options) or _too_few_to_finetune(prep, options)


def _too_little(prep: _Prepared, options: TrainOptions) -> str | None:
    """Why a fine-tune cannot be measured (None when it can), with what was found and what
    would help."""
    held = len(prep.heldout)
    if held >= options.min_heldout and prep.train:
        return None
    picks = f" and {prep.picks_heldout} picked queries" if prep.picks_heldout else ""
    return (
        f"not enough held-out pairs to measure a new model: {held - prep.picks_heldout} from "
        f"{len(prep.split.heldout_files)} files{picks} (tests' own code not counted), need at "
        f"least {options.min_heldout}. " + _what_would_help(prep)
    )


def _adapter_too_little(prep: _Prepared, options: TrainOptions) -> str | None:
    """Why an adapter cannot be measured (None when it can). It cross-fits on every pair,
    so it counts the query-like pairs of both sides of the split."""
    pool = [*prep.train, *prep.heldout]
    if enough_to_measure(pool, options.min_heldout):
        return None
    measured = [p for p in pool if is_measured(p)]
    groups = len({group_of(p) for p in measured})
    return (
        f"not enough pairs to measure a query adapter: {len(measured)} query-like pairs "
        f"(tests' own code not counted) from {groups} files and picked queries, need at "
        f"least {options.min_heldout} from two or more. " + _what_would_help(prep)
    )


def _what_would_help(prep: _Prepared) -> str:
    found = ", ".join(f"{n} {k}" for k, n in prep.mined.counts.items() if n) or "no pairs at all"
    return (
        f"Found {found}. What would help: docstrings or leading comments on more functions, "
        "tests named after what they check, a git history whose messages say what changed, "
        "or opening search results in the editor (each opened result is a pair)"
    )


def _finish(
    result: TrainResult, prep: _Prepared, options: TrainOptions, start: float
) -> TrainResult:
    result.took_s = time.perf_counter() - start
    record = {
        "time": time.time(),
        "status": result.status,
        "reason": result.reason,
        "parts": result.parts,
        "model_status": result.model_status,
        "model_before": result.model_before,
        "model_after": result.model_after,
        "checkpoint": result.checkpoint,
        "pairs": result.pairs,
        "train_pairs": result.train_pairs,
        "heldout_pairs": result.heldout_pairs,
        "mrr_before": result.before.mrr_at_10 if result.before else None,
        "mrr_after": result.after.mrr_at_10 if result.after else None,
        "paired_test": result.paired.to_json() if result.paired else None,
        "training": result.training,
        "adapter": result.adapter.record() if result.adapter else None,
        "no_gate": options.no_gate,
        "took_s": round(result.took_s, 2),
    }
    result.history_path = str(ckpt.append_history(prep.index_dir, record))
    if result.training is not None:
        result.chart_path = write_chart(prep.index_dir)
    return result
