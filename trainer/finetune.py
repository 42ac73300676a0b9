"""One fine-tuning run with sentence-transformers' own trainer.

MultipleNegativesRankingLoss (InfoNCE): each anchor should score its own
positive above every other positive in the batch, so a batch of B pairs gives
B-1 negatives per anchor for free; the no-duplicates batch sampler keeps a
repeated text from showing up as its own negative. On a GPU with a large batch
the cached variant (GradCache) gives the same loss at a fraction of the
memory. Mixed precision (bf16 where supported, else fp16) on CUDA.

The run is resumable: the trainer saves its state every `save_steps` optimizer
steps under `work_dir`, and a later call with the same `work_dir` continues
from the last saved step. Every file it writes is safetensors or JSON; the
optimizer, scheduler and RNG states that the stock trainer pickles are stored
as safetensors tensors plus JSON here.

This is an in-process function with no global state beyond torch's, so the
daemon can run it in a child process.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sentence_transformers import SentenceTransformerTrainer
from transformers import PrinterCallback, TrainerCallback

from . import distributed
from .options import TrainOptions
from .pairs import Pair

_RUN = TrainOptions()

log = logging.getLogger(__name__)

MIN_BATCH_SIZE = 4
"""Below this, in-batch negatives are too few to learn from: an OOM here gives up."""
CACHED_LOSS_MIN_BATCH = 64
"""From this batch size on a GPU the cached loss keeps activation memory flat."""


class TrainingFailed(RuntimeError):
    """Training could not finish (e.g. out of GPU memory even at the smallest batch)."""


@dataclass(frozen=True)
class FinetuneConfig:
    """What the fine-tuning loop needs of a run's options (see `TrainOptions`)."""

    epochs: int = _RUN.epochs
    batch_size: int = _RUN.batch_size
    """Pairs per optimizer step, which is also 1 + the negatives each anchor sees."""
    lr: float = _RUN.lr
    warmup_ratio: float = _RUN.warmup_ratio
    min_steps: int = _RUN.min_steps
    max_seq_length: int = _RUN.max_seq_length
    seed: int = _RUN.seed
    device: str = "cpu"
    save_steps: int = _RUN.save_steps


@dataclass
class FinetuneResult:
    steps: int
    epochs: float
    batch_size: int
    """The batch size that finished (halved after each out-of-memory)."""
    losses: list[tuple[int, float]] = field(default_factory=list)
    """(optimizer step, training loss) as logged."""
    took_s: float = 0.0
    resumed_from_step: int | None = None
    precision: str = "fp32"
    loss_name: str = "MultipleNegativesRankingLoss"
    oom_retries: int = 0


def plan_steps(n_pairs: int, config: FinetuneConfig, batch_size: int) -> tuple[int, int]:
    """(steps per epoch, total optimizer steps) for `n_pairs` training pairs."""
    per_epoch = max(1, n_pairs // batch_size)  # the sampler drops the ragged last batch
    return per_epoch, max(per_epoch * config.epochs, config.min_steps)


def finetune(
    model_location: str,
    pairs: Sequence[Pair],
    work_dir: Path,
    config: FinetuneConfig,
    *,
    show_progress: bool = False,
    callbacks: Sequence[Any] = (),
    load_model: Callable[[str, str], Any] | None = None,
):
    """Fine-tune the model at `model_location` on `pairs`; returns (model, FinetuneResult).

    Args:
        model_location: a local sentence-transformers folder (the model in use).
        pairs: training pairs (anchor, positive); never held-out ones.
        work_dir: where resumable state lives; reused when it already holds a run
            with the same settings, cleared when the batch size changes.
        config: the hyper-parameters.
        show_progress: draw the trainer's progress bar (on a terminal).
        callbacks: extra transformers TrainerCallbacks (tests use them to interrupt).
        load_model: (location, device) -> SentenceTransformer; the default loads
            offline from local files.

    Raises:
        TrainingFailed: CUDA ran out of memory even at MIN_BATCH_SIZE.
    """
    import torch

    batch_size = max(1, min(config.batch_size, len(pairs)))
    retries = 0
    while True:
        try:
            return _run(
                model_location,
                pairs,
                work_dir,
                config,
                batch_size,
                show_progress,
                callbacks,
                load_model,
                retries,
            )
        except torch.cuda.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if batch_size // 2 < MIN_BATCH_SIZE:
                raise TrainingFailed(
                    f"CUDA ran out of memory even at batch size {batch_size}; "
                    "the current model is kept"
                ) from exc
            log.warning(
                "CUDA out of memory at batch size %d; retrying with %d", batch_size, batch_size // 2
            )
            batch_size //= 2
            retries += 1
            # Saved state belongs to the old batch size's schedule: start over.
            shutil.rmtree(work_dir, ignore_errors=True)


def _load_default(location: str, device: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(location, device=device, local_files_only=True)


def _run(
    model_location,
    pairs,
    work_dir: Path,
    config: FinetuneConfig,
    batch_size: int,
    show_progress: bool,
    callbacks,
    load_model,
    retries: int,
):
    import torch
    import transformers
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    transformers.logging.set_verbosity_error()
    start = time.perf_counter()
    transformers.set_seed(config.seed)
    model = (load_model or _load_default)(model_location, config.device)
    serving_length = model.max_seq_length
    model.max_seq_length = config.max_seq_length

    on_cuda = config.device.startswith("cuda")
    # In a `--nproc` run each process embeds its share of the batch; gathering
    # them gives every anchor the whole batch's positives as negatives.
    processes = distributed.world_size()
    loss: MultipleNegativesRankingLoss | CachedMultipleNegativesRankingLoss
    if on_cuda and batch_size >= CACHED_LOSS_MIN_BATCH:
        loss = CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=32, gather_across_devices=processes > 1
        )
    else:
        loss = MultipleNegativesRankingLoss(model, gather_across_devices=processes > 1)
    bf16 = on_cuda and torch.cuda.is_bf16_supported()
    fp16 = on_cuda and not bf16
    _, total_steps = plan_steps(len(pairs), config, batch_size)

    if distributed.is_main():  # the one process that writes the resumable state
        work_dir.mkdir(parents=True, exist_ok=True)
        _check_work_dir(work_dir, config, batch_size, len(pairs))
    distributed.barrier()
    resume = _last_checkpoint(work_dir)

    dataset = Dataset.from_dict(
        {"anchor": [p.anchor for p in pairs], "positive": [p.positive for p in pairs]}
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir),
        max_steps=total_steps,
        # The batch is the run's, split between its processes.
        per_device_train_batch_size=max(1, batch_size // processes),
        learning_rate=config.lr,
        warmup_steps=max(1, math.ceil(config.warmup_ratio * total_steps))
        if config.warmup_ratio
        else 0,
        lr_scheduler_type="linear",
        weight_decay=0.01,
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        fp16=fp16,
        use_cpu=not on_cuda,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        dataloader_drop_last=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=on_cuda,
        logging_strategy="steps",
        logging_steps=1,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=not show_progress,
        optim="adamw_torch",
    )
    recorder = _LossRecorder()
    trainer = SafeStateTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        callbacks=[recorder, *callbacks],
    )
    trainer.remove_callback(PrinterCallback)  # losses go to the result and the chart, not stdout
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    # Train short, serve long: the saved model keeps the length it was loaded with.
    model.max_seq_length = serving_length
    result = FinetuneResult(
        steps=int(trainer.state.global_step),
        epochs=float(trainer.state.epoch or 0.0),
        batch_size=batch_size,
        losses=recorder.losses,
        took_s=time.perf_counter() - start,
        resumed_from_step=_step_of(resume) if resume else None,
        precision="bf16" if bf16 else "fp16" if fp16 else "fp32",
        loss_name=type(loss).__name__,
        oom_retries=retries,
    )
    return model, result


def _check_work_dir(work_dir: Path, config: FinetuneConfig, batch_size: int, n_pairs: int) -> None:
    """Keep saved state only if it was made with the same settings; else start over."""
    stamp = {"config": config.__dict__, "batch_size": batch_size, "pairs": n_pairs}
    path = work_dir / "run.json"
    try:
        same = json.loads(path.read_text("utf-8")) == json.loads(json.dumps(stamp))
    except (OSError, ValueError):
        same = False
    if not same:
        for child in work_dir.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        path.write_text(json.dumps(stamp, sort_keys=True), "utf-8")


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[-1])


def _last_checkpoint(work_dir: Path) -> Path | None:
    """The newest complete saved state (its trainer_state.json is written last)."""
    done = [
        p
        for p in work_dir.glob("checkpoint-*")
        if p.name.rsplit("-", 1)[-1].isdigit()
        and (p / "trainer_state.json").is_file()
        and (p / _OPTIMIZER).is_file()
    ]
    return max(done, key=_step_of) if done else None


class _LossRecorder(TrainerCallback):
    """Collects (step, loss) from the trainer's logs."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append((int(state.global_step), float(logs["loss"])))


# -- pickle-free trainer state ------------------------------------------------------------

_OPTIMIZER = "optimizer.safetensors"
_OPTIMIZER_META = "optimizer.json"
_SCHEDULER = "scheduler.json"
_SCALER = "scaler.json"
_RNG = "rng_state.safetensors"
_RNG_META = "rng_state.json"


class SafeStateTrainer(SentenceTransformerTrainer):
    """SentenceTransformerTrainer whose checkpoints hold no pickles.

    The stock trainer writes training_args.bin, optimizer.pt, scheduler.pt and
    rng_state.pth with torch.save. Here the model goes through safetensors, the
    tensors of the optimizer state and the RNG states through safetensors, and
    everything else through JSON, and resuming reads those back.
    """

    def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
        # Kenning writes its own card (trainer.checkpoints); the Hub model card's
        # bookkeeping would only sample the data and print a progress bar.
        return

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        assert output_dir is not None  # the trainer always has one (set in _run)
        os.makedirs(output_dir, exist_ok=True)
        self.model.save(output_dir, safe_serialization=True, create_model_card=False)
        Path(output_dir, "training_args.json").write_text(self.args.to_json_string(), "utf-8")

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        from safetensors.torch import save_file

        if not self.args.should_save:
            return  # DDP keeps the optimizer state identical in every process
        assert self.optimizer is not None and self.lr_scheduler is not None  # set up by now
        state = self.optimizer.state_dict()
        tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
        for idx, values in state["state"].items():
            meta["state"][str(idx)] = {}
            for key, value in values.items():
                if hasattr(value, "detach"):
                    tensors[f"{idx}.{key}"] = value.detach().contiguous().cpu()
                else:
                    meta["state"][str(idx)][key] = value
        save_file(tensors, os.path.join(output_dir, _OPTIMIZER))
        _write_json(os.path.join(output_dir, _OPTIMIZER_META), meta)
        _write_json(os.path.join(output_dir, _SCHEDULER), self.lr_scheduler.state_dict())

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and self.args.should_save:
            _write_json(os.path.join(output_dir, _SCALER), scaler.state_dict())

    def _save_rng_state(self, output_dir: str) -> None:
        import numpy as np
        import torch
        from safetensors.torch import save_file

        tensors = {"cpu": torch.random.get_rng_state()}
        if torch.cuda.is_available():
            tensors["cuda"] = torch.cuda.random.get_rng_state()
        # The legacy form: a tuple (name, keys, pos, has_gauss, cached_gaussian).
        np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
        meta = {
            "python": random.getstate(),
            "numpy": [np_state[0], np_state[1].tolist(), *[_plain(x) for x in np_state[2:]]],
        }
        os.makedirs(output_dir, exist_ok=True)
        rng, rng_meta = self._rng_files()
        save_file(tensors, os.path.join(output_dir, rng))
        _write_json(os.path.join(output_dir, rng_meta), meta)

    def _rng_files(self) -> tuple[str, str]:
        """Each process of a distributed run has its own random state."""
        if self.args.world_size <= 1:
            return _RNG, _RNG_META
        index = self.args.process_index
        return f"rng_state_{index}.safetensors", f"rng_state_{index}.json"

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None or not os.path.isfile(os.path.join(checkpoint, _OPTIMIZER)):
            return
        from safetensors.torch import load_file

        assert self.optimizer is not None and self.lr_scheduler is not None  # set up by now
        tensors = load_file(os.path.join(checkpoint, _OPTIMIZER), device=str(self.args.device))
        meta = json.loads(Path(checkpoint, _OPTIMIZER_META).read_text("utf-8"))
        state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
        for name, tensor in tensors.items():
            idx, key = name.split(".", 1)
            state.setdefault(int(idx), {})[key] = tensor
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        self.lr_scheduler.load_state_dict(
            json.loads(Path(checkpoint, _SCHEDULER).read_text("utf-8"))
        )

    def _load_scaler(self, checkpoint: str | None) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        path = Path(checkpoint or "", _SCALER)
        if checkpoint and scaler is not None and path.is_file():
            scaler.load_state_dict(json.loads(path.read_text("utf-8")))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        rng, rng_meta = self._rng_files()
        if checkpoint is None or not os.path.isfile(os.path.join(checkpoint, rng)):
            return
        import numpy as np
        import torch
        from safetensors.torch import load_file

        tensors = load_file(os.path.join(checkpoint, rng))
        meta = json.loads(Path(checkpoint, rng_meta).read_text("utf-8"))
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, *rest = meta["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        torch.random.set_rng_state(tensors["cpu"])
        if "cuda" in tensors and torch.cuda.is_available():
            torch.cuda.random.set_rng_state(tensors["cuda"])


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _write_json(path: str, data: Any) -> None:
    Path(path).write_text(json.dumps(data, default=_plain), "utf-8")
