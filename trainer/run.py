"""A whole retraining: mine -> split -> measure -> train -> measure -> gate -> promote or discard.

`train_workspace` is what `kenning train` (and later the daemon's scheduler, in
a child process) runs. It never touches the model in use until the very end:
the new model is written as a checkpoint, measured on the held-out pairs, and
promoted (one atomic pointer switch) only when its held-out MRR@10 beats the
current model's. Every run, promoted or not, is appended to the history, and
a chart of loss and held-out MRR across runs is redrawn beside it.

An interrupted run (Ctrl-C, a killed process) leaves the promoted model as it
was and its resumable state under the index directory: the next run on the
same pairs continues from the last saved step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kenning.server.discover import FileFilter
from kenning.server.embedder import Embedder, usable_cores
from kenning.server.models import ModelError, ModelRef, pick_device, target_model
from kenning.server.settings import load_settings, resolve_workspace

from . import checkpoints as ckpt
from . import distributed
from .evaluate import (
    Corpus,
    Metrics,
    PairedTest,
    Split,
    paired_test,
    sample,
    split_by_file,
)
from .options import DEFAULT_HELDOUT_FRACTION, DEFAULT_MAX_COMMITS, DEFAULT_SEED, TrainOptions
from .pairs import QUERY_KINDS, MinedPairs, Pair, mine_pairs, pairs_digest

log = logging.getLogger(__name__)

Say = Callable[[str], None]
"""Where a run reports its phases (one line each); the CLI prints them to stderr."""


class DeviceUnavailable(ValueError):
    """The requested device does not exist here (bad usage: exit code 2)."""


@dataclass
class TrainResult:
    status: str
    """promoted, rejected, skipped (not enough data) or failed (training could not finish)."""
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

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["before"] = self.before.to_json() if self.before else None
        data["after"] = self.after.to_json() if self.after else None
        return data


@dataclass
class EvalResult:
    model: str
    metrics: Metrics
    pairs: dict[str, int]
    heldout_files: int
    took_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metrics": self.metrics.to_json(),
            "pairs": self.pairs,
            "heldout_files": self.heldout_files,
            "took_s": round(self.took_s, 3),
        }


@dataclass
class _Prepared:
    root: Path
    index_dir: Path
    current: ModelRef
    device: str
    embed_seq_length: int
    embed_batch: int
    mined: MinedPairs
    split: Split
    train: list
    heldout: list


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
    pairs: list[Pair], kind: str, max_share: float, seed: int = DEFAULT_SEED
) -> list[Pair]:
    """Keep pairs of `kind` to at most `max_share` of the result (a seeded sample of them)."""
    if max_share >= 1:
        return list(pairs)
    other = [p for p in pairs if p.kind != kind]
    allowed = int(len(other) * max_share / (1 - max_share)) if max_share > 0 else 0
    keep = set(sample([p for p in pairs if p.kind == kind], allowed, seed))
    return [p for p in pairs if p.kind != kind or p in keep]


def _prepare(
    workspace: str | Path,
    overrides: Mapping[str, Any] | None,
    device_setting: str,
    seed: int,
    heldout_fraction: float,
    max_pairs: int,
    max_eval_pairs: int,
    max_commits: int,
    say: Say,
    max_signature_share: float = 1.0,
) -> _Prepared:
    # Settings and model only: the index itself is not opened, because the
    # daemon may have it open and be writing it while this run trains.
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
    mined = mine_pairs(root, flt, settings.max_file_bytes, max_commits=max_commits)
    say(
        f"mined {len(mined.pairs)} pairs from {mined.files} files: "
        + ", ".join(f"{n} {k}" for k, n in mined.counts.items() if n)
    )
    split = split_by_file(mined.pairs, heldout_fraction=heldout_fraction, seed=seed)
    train = limit_kind(split.train, "signature", max_signature_share, seed)
    heldout = [p for p in split.heldout if p.kind in QUERY_KINDS]
    return _Prepared(
        root=root,
        index_dir=index_dir,
        current=current,
        device=device,
        embed_seq_length=settings.max_seq_length,
        embed_batch=settings.batch_size,
        mined=mined,
        split=split,
        train=sample(train, max_pairs, seed),
        heldout=sample(heldout, max_eval_pairs, seed),
    )


def _encoder(ref: ModelRef, prep: _Prepared):
    # The same embedder (and sequence length) the index uses, so the numbers
    # describe search as users get it.
    return Embedder(
        ref, device=prep.device, max_seq_length=prep.embed_seq_length, batch_size=prep.embed_batch
    ).encode


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
    prep = _prepare(
        workspace, overrides, device, seed, heldout_fraction, 0, max_eval_pairs, max_commits, say
    )
    if not prep.heldout:
        raise ValueError(
            f"no held-out pairs: only {len(prep.mined.pairs)} pairs were found in {prep.root}"
        )
    say(
        f"measuring {prep.current.label} on {len(prep.heldout)} held-out queries "
        f"against {len(Corpus(prep.mined.chunks))} chunks"
    )
    metrics = Corpus(prep.mined.chunks).evaluate(_encoder(prep.current, prep), prep.heldout)
    return EvalResult(
        prep.current.label,
        metrics,
        prep.mined.counts,
        len(prep.split.heldout_files),
        time.perf_counter() - start,
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
    """Run one retraining of the workspace's model; see the module docstring.

    Args:
        workspace: the workspace folder.
        overrides: settings from the command line (model, index_dir, device...).
        options: hyper-parameters, data caps and the gate switch; None takes
            the workspace's `train.*` settings (as the daemon's runs do).
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
    prep = _prepare(
        workspace,
        overrides,
        options.device,
        options.seed,
        options.heldout_fraction,
        options.max_pairs,
        options.max_eval_pairs,
        options.max_commits,
        say,
        options.max_signature_share,
    )
    if not distributed.is_main():
        # Another process of a `--nproc` run: it trains, process 0 does the rest.
        return distributed.train_replica(prep, options, callbacks, load_model)
    with ckpt.run_lock(prep.index_dir):
        for leftover in ckpt.remove_leftovers(prep.index_dir):
            log.info("removed %s, left by an interrupted run", leftover)
        return _train(prep, options, start, say, show_progress, callbacks, load_model)


def _train(
    prep: _Prepared,
    options: TrainOptions,
    start: float,
    say: Say,
    show_progress: bool,
    callbacks: Sequence[Any],
    load_model: Callable[[str, str], Any] | None,
) -> TrainResult:
    from .finetune import TrainingFailed, finetune, plan_steps

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
    )
    result.reason = _skip_reason(prep, options)
    if result.reason:
        return _finish(result, prep, options, start)

    corpus = Corpus(prep.mined.chunks)
    say(
        f"measuring {prep.current.label} on {len(prep.heldout)} held-out queries "
        f"against {len(corpus)} chunks"
    )
    result.before = corpus.evaluate(_encoder(prep.current, prep), prep.heldout)
    say(
        f"  MRR@10 {result.before.mrr_at_10:.3f}, Recall@1 {result.before.recall_at_1:.3f}, "
        f"Recall@10 {result.before.recall_at_10:.3f}"
    )

    config = _finetune_config(prep, options)
    work_dir = _work_dir(prep, config)
    if not options.resume:
        shutil.rmtree(work_dir, ignore_errors=True)
    _, steps = plan_steps(len(prep.train), config, min(config.batch_size, len(prep.train)))
    say(
        f"training on {len(prep.train)} pairs from {len(prep.split.train_files)} files: "
        f"{steps} steps of batch {min(config.batch_size, len(prep.train))} on {prep.device}"
    )
    try:
        model, run = finetune(
            prep.current.location,
            prep.train,
            work_dir,
            config,
            show_progress=show_progress,
            callbacks=callbacks,
            load_model=load_model,
        )
    except TrainingFailed as exc:
        result.status, result.reason = "failed", str(exc)
        shutil.rmtree(work_dir, ignore_errors=True)
        return _finish(result, prep, options, start)
    result.training = {
        "steps": run.steps,
        "epochs": round(run.epochs, 3),
        "batch_size": run.batch_size,
        "lr": options.lr,
        "warmup_ratio": options.warmup_ratio,
        "max_seq_length": options.max_seq_length,
        "seed": options.seed,
        "device": prep.device,
        "precision": run.precision,
        "loss": run.loss_name,
        "losses": run.losses,
        "took_s": round(run.took_s, 2),
        "resumed_from_step": run.resumed_from_step,
        "oom_retries": run.oom_retries,
        "steps_per_s": round(run.steps / run.took_s, 4) if run.took_s else None,
        "processes": distributed.world_size(),
    }

    card = {
        "root_model": prep.current.name,
        "base_model": {
            "name": prep.current.name,
            "version": prep.current.version,
            "location": prep.current.location,
        },
        "workspace": str(prep.root),
        "pairs": {
            "mined": prep.mined.counts,
            "train": len(prep.train),
            "heldout": len(prep.heldout),
            "train_files": len(prep.split.train_files),
            "heldout_files": len(prep.split.heldout_files),
        },
        "training": result.training,
        "versions": _versions(),
        "created_at": time.time(),
    }
    folder = ckpt.save_checkpoint(model, prep.index_dir, card)
    del model
    result.checkpoint = folder.name
    new_ref = ModelRef(prep.current.name, folder.name, str(folder))
    say(f"measuring the new model {new_ref.label}")
    result.after = corpus.evaluate(_encoder(new_ref, prep), prep.heldout)
    result.paired = paired_test(result.before.ranks, result.after.ranks)

    passed = result.after.mrr_at_10 > result.before.mrr_at_10
    delta = result.after.mrr_at_10 - result.before.mrr_at_10
    verdict = (
        f"held-out MRR@10 {result.before.mrr_at_10:.3f} -> {result.after.mrr_at_10:.3f} "
        f"({delta:+.3f}; {result.paired.better} queries better, {result.paired.worse} worse, "
        f"Wilcoxon p={result.paired.wilcoxon_p:.2g})"
    )
    if passed:
        result.status, result.reason = "promoted", verdict
    elif options.no_gate:
        result.status, result.reason = (
            "promoted",
            f"{verdict}; promoted without the gate (--no-gate)",
        )
    else:
        result.status, result.reason = "rejected", f"{verdict}: not better than the current model"
    ckpt.update_card(
        folder,
        {
            "metrics": {"before": result.before.to_json(), "after": result.after.to_json()},
            "paired_test": result.paired.to_json(),
            "gate": {
                "passed": passed,
                "bypassed": options.no_gate and not passed,
                "no_gate": options.no_gate,
                "reason": result.reason,
            },
        },
    )
    if result.promoted:
        ckpt.promote(prep.index_dir, folder.name)
        result.model_after = new_ref.label
    else:
        ckpt.discard(prep.index_dir, folder.name)
    shutil.rmtree(work_dir, ignore_errors=True)
    return _finish(result, prep, options, start)


def _skip_reason(prep: _Prepared, options: TrainOptions) -> str:
    """Why this workspace cannot be trained on (too little data); empty when it can."""
    n = len(prep.mined.pairs)
    if n < options.min_pairs:
        return (
            f"not enough training pairs in {prep.root}: found {n}, need at least "
            f"{options.min_pairs} (docstrings, leading comments, tests and commits feed it)"
        )
    if len(prep.heldout) < options.min_heldout or not prep.train:
        return (
            f"not enough held-out pairs to measure a new model: {len(prep.heldout)} from "
            f"{len(prep.split.heldout_files)} files, need at least {options.min_heldout}"
        )
    return ""


def _finetune_config(prep: _Prepared, options: TrainOptions):
    from .finetune import FinetuneConfig

    return FinetuneConfig(
        epochs=options.epochs,
        batch_size=options.batch_size,
        lr=options.lr,
        warmup_ratio=options.warmup_ratio,
        min_steps=options.min_steps,
        max_seq_length=options.max_seq_length,
        seed=options.seed,
        device=prep.device,
        save_steps=options.save_steps,
    )


def _work_dir(prep: _Prepared, config) -> Path:
    """Resumable state is keyed by what the run depends on: the starting model and the pairs."""
    key = hashlib.blake2b(
        json.dumps(
            [prep.current.label, pairs_digest(prep.train), config.__dict__], sort_keys=True
        ).encode(),
        digest_size=6,
    ).hexdigest()
    return ckpt.trainer_dir(prep.index_dir) / "work" / key


def _finish(
    result: TrainResult, prep: _Prepared, options: TrainOptions, start: float
) -> TrainResult:
    result.took_s = time.perf_counter() - start
    record = {
        "time": time.time(),
        "status": result.status,
        "reason": result.reason,
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
        "no_gate": options.no_gate,
        "took_s": round(result.took_s, 2),
    }
    result.history_path = str(ckpt.append_history(prep.index_dir, record))
    if result.training is not None:
        result.chart_path = write_chart(prep.index_dir)
    return result


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("kenning", "torch", "transformers", "sentence-transformers", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def write_chart(index_dir: Path) -> str:
    """Redraw the PNG of training loss and held-out MRR@10 across all runs; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in ckpt.read_history(index_dir) if r.get("training")]
    path = ckpt.trainer_dir(index_dir) / ckpt.CHART_NAME
    fig, (ax_loss, ax_mrr) = plt.subplots(1, 2, figsize=(11, 4))
    for i, r in enumerate(runs, 1):
        losses = r["training"].get("losses") or []
        if losses:
            steps, values = zip(*losses, strict=True)
            ax_loss.plot(steps, values, label=f"run {i} ({r['status']})", linewidth=1)
    ax_loss.set(title="training loss (MNRL)", xlabel="optimizer step", ylabel="loss")
    if runs:
        ax_loss.legend(fontsize="small")
    xs = list(range(1, len(runs) + 1))
    before = [r.get("mrr_before") for r in runs]
    after = [r.get("mrr_after") for r in runs]
    ax_mrr.plot(xs, before, "o--", color="grey", label="current model")
    ax_mrr.plot(xs, after, "s-", color="tab:blue", label="new checkpoint")
    for x, r, y in zip(xs, runs, after, strict=True):
        if r["status"] == "promoted" and y is not None:
            ax_mrr.annotate(
                "promoted",
                (x, y),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize="small",
            )
    ax_mrr.set(title="held-out MRR@10", xlabel="run", ylabel="MRR@10")
    ax_mrr.margins(x=0.1, y=0.15)
    ax_mrr.set_xticks(xs)
    ax_mrr.legend(fontsize="small")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return str(path)
