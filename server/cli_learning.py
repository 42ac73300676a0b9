"""The command line's learning commands: `kenning train`, `kenning eval` and
`kenning feedback` (the picks kept to learn from).

Apart from server/cli.py, which keeps the commands every user runs; the
training itself is kenning.trainer (the one part of the server package that
imports it, when one of these commands runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from . import cli_scale


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `train`, `eval` and `feedback` through cli.py's `command` (shared flags included)."""
    from kenning.trainer.options import TrainOptions

    p = command(
        "train", "fine-tune the model and/or train a query adapter on the workspace's own code"
    )
    run = TrainOptions()
    p.add_argument(
        "--parts",
        choices=("adapter", "model", "both"),
        help="adapter: a query adapter only (seconds, swapped in at once); model: a full "
        "fine-tune only (minutes on a CPU, then the index is re-embedded); both: the "
        "fine-tune, then an adapter for the model that serves after it "
        "(default: both, or model when train.adapter is false)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help=f"passes over the training pairs (default: train.epochs, {run.epochs})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help="pairs per step; each anchor sees the others as negatives "
        f"(default: train.batch_size, {run.batch_size})",
    )
    p.add_argument("--lr", type=float, help=f"peak learning rate (default: train.lr, {run.lr:g})")
    p.add_argument(
        "--no-gate",
        action="store_true",
        help="promote the new model even if held-out quality does not improve (marked in its card)",
    )
    p.add_argument(
        "--max-pairs",
        type=int,
        help=f"training pairs to use at most (default: train.max_pairs, {run.max_pairs})",
    )
    p.add_argument(
        "--min-steps",
        type=int,
        default=run.min_steps,
        help="repeat small data until the run has this many optimizer steps "
        f"(default {run.min_steps})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=run.seed,
        help=f"seed for the split, sampling and training (default {run.seed})",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start over instead of resuming an interrupted run"
    )
    cli_scale.add_nproc_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command("eval", "retrieval quality on the workspace's own held-out pairs")
    p.add_argument(
        "--seed",
        type=int,
        default=run.seed,
        help=f"seed of the train/held-out split (default {run.seed})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command("feedback", "the search results you opened, which Kenning learns from (picks)")
    p.add_argument("--clear", action="store_true", help="forget every pick kept for this workspace")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _say(enabled: bool):
    return (
        (lambda line: print(f"kenning: {line}", file=sys.stderr))
        if enabled
        else (lambda line: None)
    )


def cmd_train(args: argparse.Namespace) -> int:
    from kenning.trainer.options import TrainOptions
    from kenning.trainer.run import train_workspace

    from .cli import EXIT_ERROR, EXIT_OK, UsageError, _overrides, _setup, _workspace

    # Flags win; otherwise the same train.* settings the server's runs use.
    workspace = _workspace(args)
    train = _setup(args)[1].train
    flags = {n: getattr(args, n) for n in ("epochs", "batch_size", "lr", "max_pairs", "parts")}
    options = TrainOptions.from_settings(
        train,
        **{n: v for n, v in flags.items() if v is not None},
        no_gate=args.no_gate,
        min_steps=args.min_steps,
        seed=args.seed,
        resume=not args.no_resume,
    )
    for flag, value, least in (
        ("--epochs", options.epochs, 1),
        ("--batch-size", options.batch_size, 2),
        ("--max-pairs", options.max_pairs, 2),
        ("--min-steps", options.min_steps, 1),
    ):
        if value < least:
            raise UsageError(f"{flag} must be at least {least}")
    if not options.lr > 0:
        raise UsageError("--lr must be positive")
    if args.nproc < 1:
        raise UsageError("--nproc must be at least 1")
    progress = sys.stderr.isatty() and not args.json and not args.quiet
    try:
        if args.nproc > 1:
            outcome = cli_scale.train_in_processes(
                workspace, _overrides(args), options, args.nproc, progress
            )
        else:
            outcome = train_workspace(
                workspace,
                _overrides(args),
                options,
                say=_say(not args.json and not args.quiet),
                show_progress=progress,
            ).to_json()
    except KeyboardInterrupt:
        print(
            "kenning: training interrupted; the model in use is unchanged and "
            "`kenning train` resumes from the last saved step",
            file=sys.stderr,
        )
        return 130
    status = outcome["status"]
    if args.json:
        print(json.dumps(outcome))
    elif status in ("skipped", "failed"):
        print(f"kenning: {outcome['reason']}", file=sys.stderr)
    else:
        print(f"{status}: {outcome['reason']}")
        if outcome.get("model_status") == "promoted":
            print(
                f"model      {outcome['model_after']} "
                "(the index re-embeds on the next `kenning index` or search)"
            )
        adapter = outcome.get("adapter")
        if adapter and adapter.get("status") == "promoted":
            print(f"adapter    {adapter['adapter']} (searches use it now; nothing re-embeds)")
        if outcome["chart_path"]:
            print(f"chart      {outcome['chart_path']}")
        print(f"history    {outcome['history_path']}")
    return EXIT_OK if status in ("promoted", "rejected") else EXIT_ERROR


def cmd_feedback(args: argparse.Namespace) -> int:
    from .cli import EXIT_OK, _setup
    from .picks import PickStore

    root, settings = _setup(args)
    store = PickStore(settings.resolved_index_dir(root))
    if args.clear:
        cleared = store.clear()
        summary = {"picks": 0, "cleared": cleared, "path": str(store.path)}
    else:
        summary = {"picks": store.count(), "cleared": 0, "path": str(store.path)}
    summary["learn_from_picks"] = settings.learn_from_picks
    if args.json:
        print(json.dumps(summary))
    elif args.clear:
        print(f"forgot {cleared} picks ({store.path} removed)")
    else:
        state = "on" if settings.learn_from_picks else "off (learn_from_picks is false)"
        print(f"{summary['picks']} picks kept in {store.path}; learning from picks is {state}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from kenning.trainer.run import evaluate_workspace

    from .cli import EXIT_OK, _overrides, _workspace

    result = evaluate_workspace(
        _workspace(args),
        _overrides(args),
        seed=args.seed,
        say=_say(not args.json and not args.quiet),
    )
    if args.json:
        print(json.dumps(result.to_json()))
        return EXIT_OK
    m = result.metrics
    print(
        f"model      {result.model}" + (f" with adapter {result.adapter}" if result.adapter else "")
    )
    print(
        f"held-out   {m.queries} queries from {result.heldout_files} files, "
        f"against {m.corpus} chunks"
    )
    print(f"MRR@10     {m.mrr_at_10:.3f}")
    print(f"Recall@1   {m.recall_at_1:.3f}")
    print(f"Recall@10  {m.recall_at_10:.3f}")
    for kind, k in sorted(m.by_kind.items()):
        print(
            f"  {kind:<10} {k['queries']:>4} queries  MRR@10 {k['mrr_at_10']:.3f}  "
            f"R@1 {k['recall_at_1']:.3f}  R@10 {k['recall_at_10']:.3f}"
        )
    return EXIT_OK
