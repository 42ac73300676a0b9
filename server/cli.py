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
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad flags or arguments: exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kenning", description="Local natural-language code search that learns your codebase."
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log details and show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="sentence-transformers model id or local directory")
        p.add_argument("--index-dir", help="where the index lives (default: per-user cache dir)")
        p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")

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

    p = sub.add_parser("status", help="index size, model in use, training history")
    p.add_argument("workspace", nargs="?", default=".")
    p.add_argument("--json", action="store_true")
    common(p)
    return parser


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
    from .engine import WorkspaceError
    from .search import SearchError
    from .settings import SettingsError

    return isinstance(exc, (UsageError, WorkspaceError, SettingsError, SearchError))


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
        self.bar = None
        self.phase = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            from tqdm import tqdm

            label = {"scan": "reading files", "embed": "embedding chunks"}.get(phase, phase)
            self.bar = tqdm(total=total, desc=label, unit="chunk" if phase == "embed" else "file",
                            file=sys.stderr, leave=False)
            self.phase = phase
        self.bar.total = max(total, done)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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


def cmd_search(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("-k must be at least 1")
    with _open_engine(args.workspace, args) as engine:
        if args.mode == "lexical":
            engine.refresh_lexical()
        else:
            bar = _ProgressBar(sys.stderr.isatty() and not args.json)
            try:
                engine.index(progress=bar)
            finally:
                bar.close()
        outcome = engine.search_outcome(args.query, limit=args.limit, mode=args.mode)
    if args.json:
        print(json.dumps({
            "query": outcome.query, "took_ms": round(outcome.took_ms, 2), "model": outcome.model,
            "generation": outcome.generation, "results": [r.to_json() for r in outcome.results],
        }))
        return EXIT_OK
    if not outcome.results:
        print("no results: the index is empty or nothing matches; try other words or `kenning status`")
        return EXIT_OK
    for r in outcome.results:
        name = f"  {r.symbol}" if r.symbol else ""
        print(f"{r.path}:{r.start_line}-{r.end_line}{name}  ({r.score:.2f})")
        first = r.snippet.splitlines()[0] if r.snippet else ""
        print(f"    {first}")
    return EXIT_OK


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
    return EXIT_OK


COMMANDS = {"index": cmd_index, "search": cmd_search, "status": cmd_status}


if __name__ == "__main__":
    sys.exit(main())
