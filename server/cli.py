"""The `kenning` command line: argument parsing and output only.

Each subcommand parses its flags, calls the engine (or the server, or the
trainer), and prints a human summary or, with --json, one JSON object.
Exit codes: 0 success, 2 bad usage (including a missing workspace or a bad
setting), 1 anything else — always with one line on stderr, and a traceback
only with --verbose.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from . import (  # light: what they run is imported when a command runs
    cli_agents,
    cli_learning,
    cli_scale,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad flags or arguments: exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with an error that becomes one line on stderr (exit code 2) instead of a
    usage block: the help is one `--help` away."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# Flags every command takes, before or after the command's name (`kenning -v search ...`
# and `kenning search ... -v`). The copies under each command default to SUPPRESS, so
# one given before the command is not overwritten by the command's default.
_SHARED: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--verbose", "-v"), {"action": "store_true", "help": "log details and show tracebacks"}),
    (("--quiet", "-q"), {"action": "store_true", "help": "no progress lines on stderr"}),
    (("--model",), {"help": "sentence-transformers model id or local directory"}),
    (("--index-dir",), {"help": "where the index lives (default: per-user cache dir)"}),
    (("--device",), {"help": "auto, cpu, cuda, cuda:N or mps"}),
    (("--workspace",), {"metavar": "DIR", "help": "the workspace folder (default: .)"}),
)


def _shared(p: argparse.ArgumentParser, *, top: bool) -> None:
    for flags, options in _SHARED:
        extra: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
        if top and options.get("action") != "store_true":
            extra["default"] = None
        p.add_argument(*flags, **options, **extra)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kenning", description="Local natural-language code search that learns your codebase."
    )
    _shared(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, *, positional_workspace: bool = True) -> _Parser:
        p = sub.add_parser(name, help=help)
        if positional_workspace:
            p.add_argument(
                "workspace_arg", nargs="?", metavar="WORKSPACE", help="same as --workspace"
            )
        _shared(p, top=False)
        return p

    p = command("serve", "run the language server (stdio unless --tcp)", positional_workspace=False)
    transport = p.add_mutually_exclusive_group()
    transport.add_argument(
        "--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)"
    )
    transport.add_argument(
        "--tcp", metavar="HOST:PORT", type=_host_port, help="listen for one client on HOST:PORT"
    )
    transport.add_argument(
        "--background",
        action="store_true",
        help="start a detached daemon for the workspace that answers `kenning search` and "
        "`kenning status`, and return",
    )
    transport.add_argument("--background-child", action="store_true", help=argparse.SUPPRESS)

    cli_agents.add_commands(command)

    p = command("index", "build or update the index, then print a summary")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    cli_scale.add_ray_flags(p)

    p = command("search", "search the workspace in natural language", positional_workspace=False)
    p.add_argument("query")
    p.add_argument("-k", "--limit", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--mode", choices=("hybrid", "semantic", "lexical"), default="hybrid")
    p.add_argument(
        "--explain",
        action="store_true",
        help="show why each result ranks where it does (each side's rank, priors, boosts)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--no-daemon", action="store_true", help="work in-process even if a daemon is running"
    )

    cli_learning.add_commands(command)
    cli_scale.add_commands(command)

    p = command("status", "index size, model in use, training history")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--no-daemon", action="store_true", help="read the index in-process even if a daemon runs"
    )

    command("stop", "stop the background daemon of the workspace (`kenning serve --background`)")
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
    except SystemExit as exc:  # --help (or --version) printed what was asked
        return int(exc.code or 0)
    except UsageError as exc:
        print(f"kenning: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevel("kenning: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
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


class _LowerLevel(logging.Formatter):
    """`kenning: warning: ...`, as the command line's own warnings read."""

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return super().format(record)


def _is_usage_error(exc: Exception) -> bool:
    from .models import ModelSettingError
    from .related import RelatedError
    from .search import SearchError
    from .settings import SettingsError, WorkspaceError
    from .socket_client import DaemonError

    if isinstance(exc, DaemonError):
        return exc.usage
    if isinstance(exc, RelatedError):
        return not exc.retry  # a bad FILE:LINE is usage; "not indexed yet" is not
    usage: tuple[type[Exception], ...] = (
        UsageError,
        WorkspaceError,
        SettingsError,
        SearchError,
        ModelSettingError,
    )
    run = sys.modules.get("kenning.trainer.run")  # only loaded by train and eval
    if run is not None:
        usage += (run.DeviceUnavailable,)
    return isinstance(exc, usage)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _workspace(args: argparse.Namespace) -> str:
    """`--workspace DIR` or the positional WORKSPACE (the same when both are given)."""
    flag, positional = args.workspace, getattr(args, "workspace_arg", None)
    if flag is not None and positional is not None and flag != positional:
        raise UsageError(f"two workspaces given: {positional} and --workspace {flag}")
    return flag or positional or "."


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for key in ("model", "index_dir", "device"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    return out


def _forwarded_flags(args: argparse.Namespace) -> list[str]:
    """The shared flags again, for a process this one starts."""
    flags = ["--workspace", str(_setup(args)[0])]
    for key, value in _overrides(args).items():
        flags += [f"--{key.replace('_', '-')}", value]
    return flags + (["-v"] if args.verbose else [])


def _setup(args: argparse.Namespace):
    """The workspace folder and its settings, without opening the index."""
    from .settings import load_settings, resolve_workspace

    root = resolve_workspace(_workspace(args))
    return root, load_settings(root, cli=_overrides(args))


def _open_engine(root, settings):
    from .engine import Engine

    engine = Engine(root, settings)
    for warning in engine.store.warnings:
        print(f"kenning: warning: {warning}", file=sys.stderr)
    return engine


def _progress(args: argparse.Namespace):
    from .progress import Progress

    return Progress(quiet=args.quiet)


def cmd_serve(args: argparse.Namespace) -> int:
    # A crash in native code (torch, SQLite, a parser) then leaves every thread's
    # Python stack on stderr: the editor's log, or a daemon's daemon.log.
    faulthandler.enable(all_threads=True)
    if args.background or args.background_child:
        return _serve_background(args)
    from .lsp import serve

    workspace = _workspace(args) if args.workspace else None
    serve(_overrides(args), tcp=args.tcp, verbose=args.verbose, workspace=workspace)
    return EXIT_OK


def _serve_background(args: argparse.Namespace) -> int:
    from .daemon import run_background, start_background

    root, settings = _setup(args)
    if args.background_child:
        logging.getLogger("kenning").setLevel(logging.INFO)  # stderr is the daemon's log
        return run_background(root, _overrides(args))
    index_dir = settings.resolved_index_dir(root)
    pid, already = start_background(root, index_dir, settings.model, _forwarded_flags(args))
    verb = "is already running" if already else "started"
    print(f"kenning: daemon {verb} for {root} (pid {pid}); `kenning stop` ends it", file=sys.stderr)
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    from .daemon import stop_background

    root, settings = _setup(args)
    pid = stop_background(settings.resolved_index_dir(root))
    if pid is None:
        print(f"no daemon is running for {root}")
    else:
        print(f"stopped the daemon for {root} (pid {pid})")
    return EXIT_OK


def cmd_index(args: argparse.Namespace) -> int:
    from .writer_lock import ONE_SHOT, WriterLock

    root, settings = _setup(args)
    ray = cli_scale.ray_options(args, settings.scale, _workspace(args))
    with _open_engine(root, settings) as engine:
        lock = WriterLock(engine.index_dir)
        if not engine.store.read_only and not lock.try_acquire(ONE_SHOT, str(root)):
            if ray is not None:  # the server would embed in-process, not on Ray
                raise RuntimeError(
                    "a running server keeps this index; `kenning stop` it to index with --ray"
                )
            return _forward_index(engine.index_dir, lock, args)
        progress = _progress(args)
        try:
            summary = engine.index(progress=progress, ray=ray)
            engine.prepare_light_path()
        finally:
            progress.stop()
            lock.release()
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


def _forward_index(index_dir, lock, args: argparse.Namespace) -> int:
    """Another server keeps this index: ask it to rescan rather than write beside it."""
    from .socket_client import ask

    holder = lock.holder()
    who = f"pid {holder.pid}, {holder.role}" if holder else "another process"
    answer = ask(index_dir, {"op": "reindex"})
    if answer is None:
        raise RuntimeError(
            f"the index is being written by {who} and it does not answer; "
            "try again when it has finished"
        )
    if args.json:
        print(json.dumps({"forwarded_to": holder.__dict__ if holder else None, **answer}))
    else:
        print(
            f"a running server ({who}) keeps this index up to date; it is re-indexing "
            f"{answer['queued']} files now (`kenning status` shows its progress)"
        )
    return EXIT_OK


def _ask_daemon(args: argparse.Namespace, root, settings, request: dict[str, Any]):
    """The daemon's answer to `request`, starting one first when `daemon.auto_start` says
    so; None when the command should work in-process."""
    if args.no_daemon:
        return None
    from .socket_client import ask

    index_dir = settings.resolved_index_dir(root)
    request = {**request, "workspace": str(root), "model": settings.model}
    answer = ask(index_dir, request)
    if answer is None and settings.daemon.auto_start:
        from .daemon import start_background

        pid, _ = start_background(root, index_dir, settings.model, _forwarded_flags(args))
        print(f"kenning: started a daemon for {root} (pid {pid})", file=sys.stderr)
        answer = ask(index_dir, request)
    return answer


def cmd_search(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("-k must be at least 1")
    root, settings = _setup(args)
    request = {
        "op": "search",
        "query": args.query,
        "limit": args.limit,
        "mode": args.mode,
        "explain": args.explain,
    }
    data = _ask_daemon(args, root, settings, request)
    if data is None:
        data = _search_in_process(args, root, settings)
    if args.json:
        print(json.dumps(data))
        return EXIT_OK
    for note in data["notes"]:
        print(f"kenning: {note}", file=sys.stderr)
    if args.explain:
        from .explain import describe_weights

        print(describe_weights(data.get("weights")))
    print_results(
        data["results"],
        "no results: the index is empty or nothing matches; try other words or `kenning status`",
    )
    return EXIT_OK


def print_results(results: list[dict[str, Any]], empty: str) -> None:
    """Results as `kenning search` prints them (`to_json` objects), `empty` when none."""
    if not results:
        print(empty)
    for r in results:
        name = f"  {r['symbol']}" if r["symbol"] else ""
        print(f"{r['path']}:{r['start_line']}-{r['end_line']}{name}  ({r['score']:.2f})")
        first = r["snippet"].splitlines()[0] if r["snippet"] else ""
        print(f"    {first}")
        if "explain" in r:
            from .explain import describe

            print(f"    why: {describe(r['explain'])}")


def refresh_under_lock(engine, args: argparse.Namespace) -> None:
    """Bring the index up to date before answering, holding the writer lock for the write;
    an index another process writes, or a read-only one, answers as it is."""
    from .store import StoreError
    from .writer_lock import ONE_SHOT, WriterLock

    lock = WriterLock(engine.index_dir)
    if engine.store.read_only:
        return  # answer from it as it is (a warning said why)
    if not lock.try_acquire(ONE_SHOT, str(engine.root)):
        holder = lock.holder()
        who = holder.describe() if holder else "another Kenning process"
        print(
            f"kenning: warning: {who} is writing this index; answering from it as it is",
            file=sys.stderr,
        )
        return
    try:
        _refresh(engine, args)
    except StoreError as exc:
        print(f"kenning: warning: {exc}; answering from it as it is", file=sys.stderr)
    finally:
        lock.release()


def _search_in_process(args: argparse.Namespace, root, settings) -> dict[str, Any]:
    from .answers import IndexView, answer_search, search_json

    with _open_engine(root, settings) as engine:
        engine.light_queries = True
        refresh_under_lock(engine, args)
        outcome = answer_search(
            engine,
            args.query,
            limit=args.limit,
            mode=args.mode,
            view=IndexView(load_if_needed=True),
            explain=args.explain,
        )
        return search_json(outcome, explain=args.explain)


def _refresh(engine, args: argparse.Namespace) -> None:
    """Bring the index up to date before searching it. With nothing changed this reads
    the folder's metadata and loads no model."""
    if getattr(args, "mode", "hybrid") == "lexical":
        engine.refresh_lexical()
        return
    progress = _progress(args)
    try:
        engine.index(progress=progress)
        engine.prepare_light_path()  # while the model is loaded: the next search starts fast
    finally:
        progress.stop()


def cmd_status(args: argparse.Namespace) -> int:
    from .answers import status_json

    root, settings = _setup(args)
    status = _ask_daemon(args, root, settings, {"op": "status"})
    if status is None:
        with _open_engine(root, settings) as engine:
            status = {**status_json(engine), "served_by": None}
    if args.json:
        print(json.dumps(status))
        return EXIT_OK
    print(f"workspace  {status['workspace']}")
    print(f"index      {status['index_dir']} ({status['index_bytes'] / 1e6:.1f} MB)")
    print(f"files      {status['files']}")
    print(f"chunks     {status['chunks']} ({status['pending']} waiting for a vector)")
    print(f"model      {status['model']} (generation {status['generation']})")
    adapter = status["adapter"]
    print(f"adapter    {adapter or 'none'}" + ("" if adapter else " (kenning train trains one)"))
    print(f"picks      {status['picks']} opened results kept to learn from")
    served = status.get("served_by")
    if served:
        print(f"daemon     pid {served['pid']} ({served['role']})")
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


COMMANDS = {
    "serve": cmd_serve,
    "index": cmd_index,
    "search": cmd_search,
    "train": cli_learning.cmd_train,
    "eval": cli_learning.cmd_eval,
    "feedback": cli_learning.cmd_feedback,
    "status": cmd_status,
    "export": cli_scale.cmd_export,
    "import": cli_scale.cmd_import,
    "stop": cmd_stop,
    "mcp": cli_agents.cmd_mcp,
    "related": cli_agents.cmd_related,
}


if __name__ == "__main__":
    sys.exit(main())
