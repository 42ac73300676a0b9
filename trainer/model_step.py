"""The full fine-tune part of a run: measure, train, measure, gate, promote or discard.

"Before" is what searches get now: the current model, with its query adapter
when one is in use for it. The new checkpoint is measured alone; it is
promoted only if it beats that. A promotion retires the adapter, which
belongs to the old model's vectors; when the run also trains an adapter, it
trains one for the new model right after (`adapter_step`), on the chunk
vectors this step's measurement already computed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from kenning.server.adapters import adapter_for_identity
from kenning.server.embedder import Embedder
from kenning.server.models import ModelRef, target_model, vector_identity

from . import checkpoints as ckpt
from . import distributed
from .evaluate import Corpus, Encoder, paired_test
from .options import TrainOptions
from .pairs import pairs_digest

if TYPE_CHECKING:
    from .run import TrainResult, _Prepared

Say = Callable[[str], None]


@dataclass
class ModelStep:
    """What the model step leaves for the adapter step."""

    model: ModelRef
    """The model that answers after this step (the new one when it was promoted)."""
    chunk_vecs: np.ndarray | None
    """That model's vectors of every corpus chunk, when this step computed them."""


def encoder(ref: ModelRef, prep: _Prepared) -> Encoder:
    # The same embedder (and sequence length) the index uses, so the numbers
    # describe search as users get it.
    return Embedder(
        ref, device=prep.device, max_seq_length=prep.embed_seq_length, batch_size=prep.embed_batch
    ).encode


def train_model(
    prep: _Prepared,
    options: TrainOptions,
    result: TrainResult,
    corpus: Corpus,
    say: Say,
    *,
    show_progress: bool,
    callbacks: Sequence[Any],
    load_model: Callable[[str, str], Any] | None,
) -> ModelStep:
    """Fine-tune, gate and promote or discard; fills `result`'s model fields."""
    from .finetune import TrainingFailed, finetune, plan_steps

    unchanged = ModelStep(prep.current, None)
    current_encode = encoder(prep.current, prep)
    adapter = adapter_for_identity(
        prep.index_dir, vector_identity(prep.current, prep.embed_seq_length)
    )
    using = f" with adapter {adapter.id}" if adapter else ""
    say(
        f"measuring {prep.current.label}{using} on {len(prep.heldout)} held-out queries "
        f"against {len(corpus)} chunks"
    )
    before_vecs = corpus.embed(current_encode)
    result.before = corpus.evaluate(
        current_encode,
        prep.heldout,
        chunk_vecs=before_vecs,
        query_map=adapter.apply_many if adapter else None,
    )
    unchanged.chunk_vecs = before_vecs
    say(
        f"  MRR@10 {result.before.mrr_at_10:.3f}, Recall@1 {result.before.recall_at_1:.3f}, "
        f"Recall@10 {result.before.recall_at_10:.3f}"
    )

    config = finetune_config(prep, options)
    work_dir = run_dir(prep, config)
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
        return unchanged
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
    new_encode = encoder(new_ref, prep)
    after_vecs = corpus.embed(new_encode)
    result.after = corpus.evaluate(new_encode, prep.heldout, chunk_vecs=after_vecs)
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
    shutil.rmtree(work_dir, ignore_errors=True)
    if not result.promoted:
        ckpt.discard(prep.index_dir, folder.name)
        return unchanged
    ckpt.promote(prep.index_dir, folder.name)
    retired = ckpt.retire_adapter(prep.index_dir)
    if retired:
        result.notes.append(f"adapter {retired} belonged to the previous model and was retired")
    # The model as the engine will name it (the pointer's view of the same folder).
    served = target_model(prep.index_dir, prep.settings)
    result.model_after = served.label
    return ModelStep(served, after_vecs)


def finetune_config(prep: _Prepared, options: TrainOptions) -> Any:
    """The fine-tune's hyper-parameters: the same in every process of a `--nproc` run."""
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


def run_dir(prep: _Prepared, config: Any) -> Path:
    """Resumable state is keyed by what the run depends on: the starting model and the pairs."""
    key = hashlib.blake2b(
        json.dumps(
            [prep.current.label, pairs_digest(prep.train), config.__dict__], sort_keys=True
        ).encode(),
        digest_size=6,
    ).hexdigest()
    return ckpt.trainer_dir(prep.index_dir) / "work" / key


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("kenning", "torch", "transformers", "sentence-transformers", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out
