"""The `kenning` command line: argument parsing and output only.

Each subcommand parses its flags, calls the engine (or the server, or the
trainer), and prints a human summary or, with --json, one JSON object.
Exit codes: 0 success, 2 bad usage (including a missing workspace or a bad
setting), 1 anything else — always with one line on stderr, and a traceback
only with --verbose.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad flags or arguments: exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from kenning.trainer.options import TrainOptions

    parser = argparse.ArgumentParser(
        prog="kenning", description="Local natural-language code search that learns your codebase."
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="log details and show tracebacks"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def verbose_after_command(p: argparse.ArgumentParser) -> None:
        # Editors and agents put flags after the subcommand; SUPPRESS keeps a global -v intact.
        p.add_argument(
            "--verbose",
            "-v",
            action="store_true",
            default=argparse.SUPPRESS,
            help="log details to stderr",
        )

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="sentence-transformers model id or local directory")
        p.add_argument("--index-dir", help="where the index lives (default: per-user cache dir)")
        p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")

    p = sub.add_parser("serve", help="run the language server (stdio unless --tcp)")
    transport = p.add_mutually_exclusive_group()
    transport.add_argument(
        "--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)"
    )
    transport.add_argument(
        "--tcp", metavar="HOST:PORT", type=_host_port, help="listen for one client on HOST:PORT"
    )
    verbose_after_command(p)
    common(p)

    p = sub.add_parser("mcp", help="serve the workspace to coding agents over MCP (stdio)")
    p.add_argument("--workspace", default=".", help="the workspace to serve (default: here)")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=2000,
        help="default token budget of a search_code or find_related answer (default 2000)",
    )
    verbose_after_command(p)
    common(p)

    p = sub.add_parser("related", help="code similar to the definition at FILE:LINE")
    p.add_argument("location", metavar="FILE:LINE", help="a file and a line in it (1-based)")
    p.add_argument("--workspace", default=".")
    p.add_argument("-k", "--limit", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    common(p)

    p = sub.add_parser("index", help="build or update the index, then print a summary")
    p.add_argument("workspace", nargs="?", default=".")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    common(p)

    p = sub.add_parser("search", help="search the workspace in natural language")
    p.add_argument("query")
    p.add_argument("--workspace", default=".")
    p.add_argument("-k", "--limit", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--mode", choices=("hybrid", "semantic", "lexical"), default="hybrid")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    common(p)

    p = sub.add_parser("train", help="fine-tune the model on the workspace's own code")
    p.add_argument("workspace", nargs="?", default=".")
    run = TrainOptions()
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
    p.add_argument("--json", action="store_true", help="print one JSON object")
    common(p)

    p = sub.add_parser("eval", help="retrieval quality on the workspace's own held-out pairs")
    p.add_argument("workspace", nargs="?", default=".")
    p.add_argument(
        "--seed",
        type=int,
        default=run.seed,
        help=f"seed of the train/held-out split (default {run.seed})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    common(p)

    p = sub.add_parser("status", help="index size, model in use, training history")
    p.add_argument("workspace", nargs="?", default=".")
    p.add_argument("--json", action="store_true")
    common(p)
    return parser


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:2087, got {value!r}")
    return host or "127.0.0.1", int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="kenning: %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("kenning: interrupted; the index keeps every batch that finished", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        if args.verbose or os.environ.get("KENNING_VERBOSE"):
            raise
        print(f"kenning: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE if _is_usage_error(exc) else EXIT_ERROR


def _is_usage_error(exc: Exception) -> bool:
    from kenning.trainer.run import DeviceUnavailable

    from .related import RelatedError
    from .search import SearchError
    from .settings import SettingsError, WorkspaceError

    if isinstance(exc, RelatedError):
        return not exc.retry  # a bad FILE:LINE is usage; "not indexed yet" is not
    return isinstance(
        exc, (UsageError, WorkspaceError, SettingsError, SearchError, DeviceUnavailable)
    )


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for key in ("model", "index_dir", "device"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    return out


def _open_engine(workspace: str, args: argparse.Namespace):
    from .engine import Engine

    engine = Engine.open(workspace, _overrides(args))
    for warning in engine.store.warnings:
        print(f"kenning: warning: {warning}", file=sys.stderr)
    return engine


class _ProgressBar:
    """tqdm on a terminal, silence when piped."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None  # a tqdm bar, created on the first report
        self.phase: str | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            from tqdm import tqdm

            label = {"scan": "reading files", "embed": "embedding chunks"}.get(phase, phase)
            self.bar = tqdm(
                total=total,
                desc=label,
                unit="chunk" if phase == "embed" else "file",
                file=sys.stderr,
                leave=False,
            )
            self.phase = phase
        self.bar.total = max(total, done)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_serve(args: argparse.Namespace) -> int:
    from .lsp import serve

    serve(_overrides(args), tcp=args.tcp, verbose=args.verbose)
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    from .mcp_server import MAX_MAX_TOKENS, MIN_MAX_TOKENS, serve_mcp
    from .settings import resolve_workspace

    if not MIN_MAX_TOKENS <= args.max_tokens <= MAX_MAX_TOKENS:
        raise UsageError(f"--max-tokens must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS}")
    root = resolve_workspace(args.workspace)
    serve_mcp(root, _overrides(args), max_tokens=args.max_tokens, verbose=args.verbose)
    return EXIT_OK


def cmd_index(args: argparse.Namespace) -> int:
    with _open_engine(args.workspace, args) as engine:
        bar = _ProgressBar(sys.stderr.isatty() and not args.json)
        try:
            summary = engine.index(progress=bar)
        finally:
            bar.close()
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(summary.skipped_by_reason.items()))
        print(
            f"indexed {summary.files} files, {summary.chunks} chunks "
            f"({summary.changed_files} files changed, {summary.embedded} chunks embedded, "
            f"{summary.removed} removed) in {summary.took_s:.1f}s"
            + (f"; skipped {summary.skipped} ({reasons})" if summary.skipped else "")
        )
    return EXIT_OK


def _refresh_if_writable(engine, args: argparse.Namespace) -> None:
    """Bring the index up to date before answering; a read-only or failing index
    answers as it is (a warning says why)."""
    from .store import StoreError

    if engine.store.read_only:
        return
    try:
        _refresh(engine, args)
    except StoreError as exc:
        print(f"kenning: warning: {exc}; answering from it as it is", file=sys.stderr)


def _refresh(engine, args: argparse.Namespace) -> None:
    if getattr(args, "mode", "hybrid") == "lexical":
        engine.refresh_lexical()
        return
    bar = _ProgressBar(sys.stderr.isatty() and not args.json)
    try:
        engine.index(progress=bar)
    finally:
        bar.close()


def cmd_search(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("-k must be at least 1")
    with _open_engine(args.workspace, args) as engine:
        _refresh_if_writable(engine, args)
        outcome = engine.search_outcome(args.query, limit=args.limit, mode=args.mode)
    if args.json:
        print(
            json.dumps(
                {
                    "query": outcome.query,
                    "took_ms": round(outcome.took_ms, 2),
                    "model": outcome.model,
                    "generation": outcome.generation,
                    "results": [r.to_json() for r in outcome.results],
                }
            )
        )
        return EXIT_OK
    _print_results(
        outcome.results,
        "no results: the index is empty or nothing matches; try other words or `kenning status`",
    )
    return EXIT_OK


def _print_results(results, empty: str) -> None:
    if not results:
        print(empty)
    for r in results:
        name = f"  {r.symbol}" if r.symbol else ""
        print(f"{r.path}:{r.start_line}-{r.end_line}{name}  ({r.score:.2f})")
        first = r.snippet.splitlines()[0] if r.snippet else ""
        print(f"    {first}")


def cmd_related(args: argparse.Namespace) -> int:
    file, sep, line = args.location.rpartition(":")
    if not sep or not file or not line.isdigit():
        raise UsageError(f"expected FILE:LINE, e.g. app/uploads.py:17, got {args.location!r}")
    if args.limit < 1:
        raise UsageError("-k must be at least 1")
    with _open_engine(args.workspace, args) as engine:
        rel = _workspace_relative(engine.root, file)
        _refresh_if_writable(engine, args)
        outcome = engine.related(rel, int(line), limit=args.limit)
    if args.json:
        print(
            json.dumps(
                {
                    "source": outcome.source.to_json(),
                    "took_ms": round(outcome.took_ms, 2),
                    "model": outcome.model,
                    "generation": outcome.generation,
                    "results": [r.to_json() for r in outcome.results],
                    "notes": outcome.notes,
                }
            )
        )
        return EXIT_OK
    s = outcome.source
    print(
        f"similar to {s.path}:{s.start_line}-{s.end_line}" + (f"  {s.symbol}" if s.symbol else "")
    )
    _print_results(outcome.results, "nothing else in the index is close to this code")
    return EXIT_OK


def _workspace_relative(root, file: str) -> str:
    """FILE as given on the command line made relative to the workspace: absolute, relative
    to here when that is inside the workspace, else relative to the workspace itself.
    UsageError when it is outside."""
    inside = str(root) + os.sep
    candidates = [os.path.abspath(file)]
    if not os.path.isabs(file):
        candidates.append(os.path.normpath(os.path.join(root, file)))
    for path in candidates:
        for form in (path, os.path.realpath(path)):
            if form.startswith(inside):
                return os.path.relpath(form, root).replace(os.sep, "/")
    raise UsageError(f"{file} is not inside the workspace {root}; use --workspace")


def cmd_status(args: argparse.Namespace) -> int:
    with _open_engine(args.workspace, args) as engine:
        status = engine.status().to_json()
    if args.json:
        print(json.dumps(status))
    else:
        print(f"workspace  {status['workspace']}")
        print(f"index      {status['index_dir']} ({status['index_bytes'] / 1e6:.1f} MB)")
        print(f"files      {status['files']}")
        print(f"chunks     {status['chunks']} ({status['pending']} waiting for a vector)")
        print(f"model      {status['model']} (generation {status['generation']})")
        for w in status["warnings"]:
            print(f"warning    {w}")
        runs = status["training"]
        print(
            f"training   {len(runs)} run(s)"
            + (":" if runs else " (kenning train fine-tunes on this workspace)")
        )
        for run in runs[-5:]:
            stamp = run.get("time")
            when = (
                time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))
                if isinstance(stamp, (int, float))
                else "?"
            )
            print(f"  {when}  {run.get('status', '?')}: {run.get('reason', '')}")
    return EXIT_OK


def _say(enabled: bool):
    return (
        (lambda line: print(f"kenning: {line}", file=sys.stderr))
        if enabled
        else (lambda line: None)
    )


def cmd_train(args: argparse.Namespace) -> int:
    from kenning.trainer.options import TrainOptions
    from kenning.trainer.run import train_workspace

    from .settings import load_settings, resolve_workspace

    # Flags win; otherwise the same train.* settings the server's runs use.
    train = load_settings(resolve_workspace(args.workspace), cli=_overrides(args)).train
    flags = {n: getattr(args, n) for n in ("epochs", "batch_size", "lr", "max_pairs")}
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
    try:
        result = train_workspace(
            args.workspace,
            _overrides(args),
            options,
            say=_say(not args.json),
            show_progress=sys.stderr.isatty() and not args.json,
        )
    except KeyboardInterrupt:
        print(
            "kenning: training interrupted; the model in use is unchanged and "
            "`kenning train` resumes from the last saved step",
            file=sys.stderr,
        )
        return 130
    if args.json:
        print(json.dumps(result.to_json()))
    elif result.status in ("skipped", "failed"):
        print(f"kenning: {result.reason}", file=sys.stderr)
    else:
        print(f"{result.status}: {result.reason}")
        if result.promoted:
            print(
                f"model      {result.model_after} "
                "(the index re-embeds on the next `kenning index` or search)"
            )
        if result.chart_path:
            print(f"chart      {result.chart_path}")
        print(f"history    {result.history_path}")
    return EXIT_OK if result.status in ("promoted", "rejected") else EXIT_ERROR


def cmd_eval(args: argparse.Namespace) -> int:
    from kenning.trainer.run import evaluate_workspace

    result = evaluate_workspace(
        args.workspace, _overrides(args), seed=args.seed, say=_say(not args.json)
    )
    if args.json:
        print(json.dumps(result.to_json()))
        return EXIT_OK
    m = result.metrics
    print(f"model      {result.model}")
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


COMMANDS = {
    "serve": cmd_serve,
    "mcp": cmd_mcp,
    "related": cmd_related,
    "index": cmd_index,
    "search": cmd_search,
    "train": cmd_train,
    "eval": cmd_eval,
    "status": cmd_status,
}


if __name__ == "__main__":
    sys.exit(main())
