"""The command line beyond one machine: `index --ray`, `train --nproc`, and
`kenning export` / `kenning import` of a prebuilt index (the machinery is in
ray_embed.py, trainer/distributed.py and archive.py). Kept apart from cli.py so
that file stays the dispatcher and the everyday commands; nothing heavy is
imported until a command runs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kenning.trainer.options import TrainOptions

    from .archive import ArchiveSummary
    from .ray_embed import RayOptions
    from .settings import ScaleSettings


def add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="embed on a Ray cluster: auto joins the running one; without ADDRESS, "
        "scale.ray_address or a local Ray runtime (needs kenning[ray])",
    )
    p.add_argument(
        "--ray-replicas",
        type=int,
        metavar="N",
        help="model replicas on Ray (default: scale.ray_replicas; 0: one per GPU or CPU)",
    )


def ray_options(
    args: argparse.Namespace, scale: ScaleSettings, workspace: str
) -> RayOptions | None:
    """What `index --ray` asked for, checked before any work; None without --ray."""
    from .cli import UsageError

    if args.ray is None:
        return None
    if Path(args.ray).is_dir() and workspace == ".":
        raise UsageError("--ray takes a cluster address: put the workspace before it")
    if args.ray_replicas is not None and args.ray_replicas < 0:
        raise UsageError("--ray-replicas must be 0 (automatic) or more")
    from .ray_embed import RayOptions, import_ray

    import_ray()  # before any work: without Ray, say how to get it at once
    return RayOptions.from_settings(scale, args.ray, args.ray_replicas)


def add_nproc_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train in N processes with DDP through torchrun (gloo on CPUs, one GPU each "
        "with NCCL); the batch is split between them (default 1)",
    )


def train_in_processes(
    workspace: str, overrides: dict[str, Any], options: TrainOptions, nproc: int, progress: bool
) -> dict[str, Any]:
    """`kenning train --nproc N`: the run's JSON outcome, from process 0."""
    from kenning.trainer.distributed import launch

    outcome = launch(workspace, overrides, options, nproc, show_progress=progress)
    if outcome is None or "error" in outcome:
        why = outcome["error"] if outcome else "see the lines above"
        raise RuntimeError(f"training in {nproc} processes failed: {why}")
    return outcome


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `export` and `import` through cli.py's `command` (shared flags included)."""
    p = command(
        "export", "write the index to an archive a team can import", positional_workspace=False
    )
    p.add_argument("archive", metavar="OUT.tar", help="the archive to write (.tar.gz compresses)")
    p.add_argument("workspace_arg", nargs="?", metavar="WORKSPACE", help="same as --workspace")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(
        "import",
        "start this workspace's index from an exported archive",
        positional_workspace=False,
    )
    p.add_argument("archive", metavar="IN.tar")
    p.add_argument("workspace_arg", nargs="?", metavar="WORKSPACE", help="same as --workspace")
    p.add_argument(
        "--force", action="store_true", help="replace an existing index (the whole index folder)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_export(args: argparse.Namespace) -> int:
    from .archive import export_index
    from .cli import EXIT_OK, _open_engine, _setup

    with _open_engine(*_setup(args)) as engine:
        summary = export_index(
            engine.store, engine.model_ref, engine.settings.max_seq_length, Path(args.archive)
        )
    _print_summary(args, "exported", summary)
    if summary.pending and not args.json:
        print(f"kenning: warning: {summary.pending} chunks had no vector yet", file=sys.stderr)
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from .archive import import_index
    from .cli import EXIT_OK, _setup
    from .models import target_model

    # Not Engine.open: that would create an index in the folder the archive goes to.
    root, settings = _setup(args)
    index_dir = settings.resolved_index_dir(root)
    summary = import_index(
        Path(args.archive),
        index_dir,
        target_model(index_dir, settings),
        settings.max_seq_length,
        replace=args.force,
    )
    _print_summary(args, "imported", summary)
    if not args.json:
        print(f"index      {index_dir}: `kenning index` now embeds only what differs here")
    return EXIT_OK


def _print_summary(args: argparse.Namespace, verb: str, summary: ArchiveSummary) -> None:
    if args.json:
        print(json.dumps(summary.to_json()))
        return
    print(
        f"{verb} {summary.files} files, {summary.chunks} chunks, {summary.vectors} vectors "
        f"({summary.model}; {summary.path}, {summary.bytes / 1e6:.1f} MB) in {summary.took_s:.1f}s"
    )
