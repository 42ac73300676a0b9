"""The command line's agent-facing commands: `kenning mcp` and `kenning related FILE:LINE`.

Apart from server/cli.py so that file keeps to the commands every user runs;
the MCP server itself is server/mcp_server.py (docs/protocol.md §5).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `mcp` and `related` through cli.py's `command` (shared flags included)."""
    p = command(
        "mcp", "serve the workspace to coding agents over MCP (stdio)", positional_workspace=False
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=2000,
        help="default token budget of a search_code or find_related answer (default 2000)",
    )

    p = command(
        "related", "code similar to the definition at FILE:LINE", positional_workspace=False
    )
    p.add_argument("location", metavar="FILE:LINE", help="a file and a line in it (1-based)")
    p.add_argument("-k", "--limit", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_mcp(args: argparse.Namespace) -> int:
    from .cli import EXIT_OK, UsageError, _overrides, _setup
    from .mcp_server import MAX_MAX_TOKENS, MIN_MAX_TOKENS, serve_mcp

    if not MIN_MAX_TOKENS <= args.max_tokens <= MAX_MAX_TOKENS:
        raise UsageError(f"--max-tokens must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS}")
    root, _ = _setup(args)
    serve_mcp(root, _overrides(args), max_tokens=args.max_tokens, verbose=args.verbose)
    return EXIT_OK


def cmd_related(args: argparse.Namespace) -> int:
    from .cli import EXIT_OK, UsageError, _open_engine, _setup, print_results, refresh_under_lock

    file, sep, line = args.location.rpartition(":")
    if not sep or not file or not line.isdigit():
        raise UsageError(f"expected FILE:LINE, e.g. app/uploads.py:17, got {args.location!r}")
    if args.limit < 1:
        raise UsageError("-k must be at least 1")
    root, settings = _setup(args)
    with _open_engine(root, settings) as engine:
        rel = workspace_relative(engine.root, file)
        refresh_under_lock(engine, args)
        outcome = engine.related(rel, int(line), limit=args.limit)
    results = [r.to_json() for r in outcome.results]
    if args.json:
        print(
            json.dumps(
                {
                    "source": outcome.source.to_json(),
                    "took_ms": round(outcome.took_ms, 2),
                    "model": outcome.model,
                    "generation": outcome.generation,
                    "results": results,
                    "notes": outcome.notes,
                }
            )
        )
        return EXIT_OK
    s = outcome.source
    print(
        f"similar to {s.path}:{s.start_line}-{s.end_line}" + (f"  {s.symbol}" if s.symbol else "")
    )
    print_results(results, "nothing else in the index is close to this code")
    return EXIT_OK


def workspace_relative(root: Path, file: str) -> str:
    """FILE as given on the command line made relative to the workspace: absolute, relative
    to here when that is inside the workspace, else relative to the workspace itself.
    UsageError when it is outside."""
    from .cli import UsageError

    inside = str(root) + os.sep
    candidates = [os.path.abspath(file)]
    if not os.path.isabs(file):
        candidates.append(os.path.normpath(os.path.join(root, file)))
    for path in candidates:
        for form in (path, os.path.realpath(path)):
            if form.startswith(inside):
                return os.path.relpath(form, root).replace(os.sep, "/")
    raise UsageError(f"{file} is not inside the workspace {root}; use --workspace")
