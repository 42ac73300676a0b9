"""`kenning train --nproc N`: the same run in N processes with DDP, launched by torchrun.

Every process mines the same pairs (mining is deterministic) and trains one
DDP replica on its share of each batch; `MultipleNegativesRankingLoss` with
`gather_across_devices=True` gathers every process's embeddings, so each
anchor still sees the whole batch's positives as negatives. Process 0 alone
holds the run lock, measures the current model, writes checkpoints and
resumable state, runs the gate and promotes; the others only train. On CPUs
the processes talk over gloo, on GPUs over NCCL, one GPU each.

The command line runs `python -m torch.distributed.run --standalone
--nproc-per-node N -m kenning.trainer.distributed ...`; process 0 writes the
run's result as JSON to the file it is given, which the command line prints
as a single-process run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .options import TrainOptions

if TYPE_CHECKING:
    from .run import TrainResult, _Prepared

COLLECTIVE_TIMEOUT = timedelta(hours=3)
"""How long a process waits for the others at a collective: process 0 measures
the current model before training starts, which takes minutes on a CPU."""


def rank() -> int:
    """This process's place in the run (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Processes in the run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process writes checkpoints, runs the gate and reports."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process of a distributed run (nothing to wait for alone)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def train_replica(
    prep: _Prepared,
    options: TrainOptions,
    callbacks: Sequence[Any],
    load_model: Callable[[str, str], Any] | None,
) -> TrainResult:
    """What a process other than 0 does in `train_workspace`: the same decision to
    train (mining is deterministic), then its share of the training; what it
    returns is not reported."""
    from .finetune import finetune
    from .model_step import finetune_config, run_dir
    from .run import TrainResult, model_skip_reason

    reason = model_skip_reason(prep, options)
    if not reason:
        config = finetune_config(prep, options)
        finetune(
            prep.current.location,
            prep.train,
            run_dir(prep, config),
            config,
            callbacks=callbacks,
            load_model=load_model,
        )
    return TrainResult(
        status="skipped" if reason else "trained",
        reason=reason or f"process {rank()} of a distributed run",
        model_before=prep.current.label,
        model_after=prep.current.label,
    )


def launch(
    workspace: str | Path,
    overrides: Mapping[str, Any],
    options: TrainOptions,
    nproc: int,
    *,
    show_progress: bool = False,
) -> dict[str, Any] | None:
    """Run the training in `nproc` processes; the result as `TrainResult.to_json()`,
    or None when torchrun failed before process 0 could write one (its
    processes' errors went to stderr)."""
    with tempfile.TemporaryDirectory(prefix="kenning-train-") as tmp:
        result = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "kenning.trainer.distributed",
            "--workspace",
            str(workspace),
            "--settings",
            json.dumps(dict(overrides)),
            "--options",
            json.dumps(options.__dict__),
            "--result",
            str(result),
        ]
        if show_progress:
            command.append("--progress")
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        # torchrun's own output goes to stderr; stdout stays the command line's.
        subprocess.run(command, stdout=2, env=env, check=False)
        if not result.exists():
            return None
        return json.loads(result.read_text("utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kenning.trainer.distributed")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--settings", default="{}", help="command-line settings, as JSON")
    parser.add_argument("--options", required=True, help="TrainOptions fields, as JSON")
    parser.add_argument("--result", required=True, help="where process 0 writes the result")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    # Deprecation notices from DDP's libraries, twice per process, say nothing to a user.
    warnings.filterwarnings("ignore", category=FutureWarning)

    import torch
    import torch.distributed as dist
    from kenning.server.models import pick_device
    from kenning.server.settings import load_settings, resolve_workspace

    options = TrainOptions(**json.loads(args.options))
    overrides = json.loads(args.settings)
    settings = load_settings(resolve_workspace(args.workspace), cli=overrides)
    device = pick_device(settings.device if options.device == "auto" else options.device)
    gpus = device.startswith("cuda")
    if gpus:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        options = TrainOptions(**{**options.__dict__, "device": f"cuda:{local}"})
    dist.init_process_group("nccl" if gpus else "gloo", timeout=COLLECTIVE_TIMEOUT)

    from .run import train_workspace

    def say(line: str) -> None:
        print(f"kenning: {line}", file=sys.stderr, flush=True)

    outcome: dict[str, Any] = {}
    code = 0
    try:
        result = train_workspace(
            args.workspace,
            overrides,
            options,
            say=say if is_main() else lambda _: None,
            show_progress=args.progress and is_main(),
        )
        outcome = result.to_json()
    except Exception as exc:  # noqa: BLE001 - process 0 reports it as one line
        if is_main():
            outcome = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        else:
            traceback.print_exc()  # torchrun stops the others and says which process failed
            code = 1
    finally:
        dist.destroy_process_group()
    if is_main():
        partial = Path(args.result + ".tmp")
        partial.write_text(json.dumps(outcome), "utf-8")
        partial.replace(args.result)
    return code


def exit_now(code: int) -> NoReturn:
    """End a torchrun process without the interpreter's teardown.

    gloo's threads outlive `destroy_process_group` (torch 2.13: its run loops
    are still there after it, and after a garbage collection). Tearing the
    interpreter down under them now and then aborts a process whose work is
    done ("terminate called without an active exception", seen in CI), and
    torchrun then reports the whole run as failed. Everything this process
    owes is on disk by now.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
