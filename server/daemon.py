"""The daemon for the command line: one writer per index, answering over the socket.

- `handle` answers a socket request (server/socket_server.py) from a
  `ServedIndex`: the engine, the index worker and the change queue of
  whichever server holds the writer lock, an editor's or a background one.
- `run_background` is `kenning serve --background`'s detached process: it
  takes the writer lock (or exits if another server holds it), indexes and
  watches the workspace like an editor's server, answers the socket, and exits
  after `daemon.idle_minutes` without a request, on `kenning stop` or SIGTERM.
  It does not retrain on a schedule; an editor's server does.
- `start_background` and `stop_background` are what `kenning serve
  --background`, `daemon.auto_start` and `kenning stop` call.
- `claim_writer` is how a server takes the lock: an editor's server asks a
  background daemon to step aside and waits for its lock; if another editor's
  server holds it, the caller serves reads only (docs/design.md, "One writer").
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .answers import IndexView, answer_search, search_json, status_json
from .engine import Engine
from .search import MODES, SearchError, SemanticUnavailable
from .socket_client import DaemonError, ask, socket_path
from .watcher import ChangeQueue
from .worker import IndexWorker, WorkerState
from .writer_lock import BACKGROUND, LONG_LIVED, ROLE_NAMES, WriterLock

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
"""How long `kenning serve --background` waits for the new daemon to answer."""
STEP_ASIDE_S = 30.0
"""How long an editor's server waits for a background daemon to release the lock
(it finishes the batch in flight first)."""
LOG_NAME = "daemon.log"


@dataclass
class ServedIndex:
    """What a server that holds the writer lock answers socket requests from."""

    engine: Engine
    role: str
    worker: IndexWorker | None
    changes: ChangeQueue
    stop: Callable[[], None] | None = None
    """Ends a background daemon; None for an editor's server (it stops with its editor)."""
    last_request: float = field(default_factory=time.monotonic)

    def view(self) -> IndexView:
        worker = self.worker
        return IndexView(
            first_index_done=worker is None or worker.first_index_done.is_set(),
            semantic_available=worker is None or worker.semantic_available,
        )

    def served_by(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "role": self.role}


def handle(served: ServedIndex, request: dict[str, Any]) -> dict[str, Any]:
    """Answer one socket request (the protocol is in socket_server's docstring)."""
    served.last_request = time.monotonic()
    engine = served.engine
    op = request["op"]
    if (
        request.get("workspace", str(engine.root)) != str(engine.root)
        or request.get("model", engine.settings.model) != engine.settings.model
    ):
        return {"ok": False, "elsewhere": True, "error": "this daemon serves another setup"}
    if op == "ping":
        return {"ok": True, "result": {**served.served_by(), "workspace": str(engine.root)}}
    if op == "search":
        return _search(served, request)
    if op == "status":
        return {"ok": True, "result": {**status_json(engine), "served_by": served.served_by()}}
    if op == "reindex":
        paths = request.get("paths")
        if paths is None:
            served.changes.request_rescan()
            return {"ok": True, "result": {"queued": engine.store.counts(None).files}}
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            return {"ok": False, "error": "paths must be a list of strings", "usage": True}
        served.changes.add_many(paths, urgent=True)
        return {"ok": True, "result": {"queued": len(paths)}}
    if op == "stop":
        if served.stop is None:
            return {
                "ok": False,
                "error": f"the server is {ROLE_NAMES.get(served.role, served.role)} "
                f"(pid {os.getpid()}); it stops with the editor or agent that started it",
            }
        threading.Timer(0.05, served.stop).start()  # after this answer is sent
        return {"ok": True, "result": served.served_by()}
    return {"ok": False, "error": f"unknown op {op!r}", "usage": True}


def _search(served: ServedIndex, request: dict[str, Any]) -> dict[str, Any]:
    query, limit = request.get("query"), request.get("limit", 10)
    mode, paths = request.get("mode", "hybrid"), request.get("paths", [])
    explain = request.get("explain", False)
    if not isinstance(query, str):
        return {"ok": False, "error": "query must be a string", "usage": True}
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return {"ok": False, "error": "-k must be at least 1", "usage": True}
    if mode not in MODES or not isinstance(paths, list):
        return {"ok": False, "error": f"mode must be one of {', '.join(MODES)}", "usage": True}
    if not isinstance(explain, bool):
        return {"ok": False, "error": "explain must be true or false", "usage": True}
    try:
        outcome = answer_search(
            served.engine,
            query,
            limit=limit,
            mode=mode,
            paths=paths,
            view=served.view(),
            explain=explain,
        )
    except SearchError as exc:
        return {"ok": False, "error": str(exc), "usage": True}
    except SemanticUnavailable as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "result": search_json(outcome, explain=explain)}


def claim_writer(engine: Engine, role: str) -> WriterLock | None:
    """The index's writer lock for this process, or None when another server keeps it.

    An editor's or an MCP server asks a background daemon to step aside and waits for its lock.
    """
    lock = WriterLock(engine.index_dir)
    root = str(engine.root)
    if lock.try_acquire(role, root):
        return lock
    holder = lock.holder()
    if role in LONG_LIVED and holder is not None and holder.role == BACKGROUND:
        log.info("asking the background daemon (pid %d) to hand over the index", holder.pid)
        try:
            ask(engine.index_dir, {"op": "stop"}, timeout=STEP_ASIDE_S)
        except DaemonError as exc:
            log.warning("the background daemon did not step aside: %s", exc)
        if lock.wait_acquire(role, root, STEP_ASIDE_S):
            return lock
    return None


def run_background(workspace: str | Path, overrides: Mapping[str, Any]) -> int:
    """The detached daemon's life: a workspace service (server/workspace_service.py)
    that writes the index without retraining, or nothing if another server writes it;
    returns its exit code."""
    from .workspace_service import LogListener, WorkspaceService

    service = WorkspaceService.open(
        workspace, overrides, listener=LogListener(), role=BACKGROUND, retrain=False
    )
    engine = service.engine
    engine.light_queries = True
    if not service.start(read_if_taken=False):
        holder = WriterLock(engine.index_dir).holder()
        log.info("%s already keeps this index", holder.describe() if holder else "another server")
        service.stop()
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    served, worker = service.served, service.worker
    assert worker is not None
    if served is not None:
        served.stop = stop.set
    try:
        gen = engine.serving_generation()
        if gen is not None:  # semantic answers in a second, while the full model loads
            threading.Thread(target=engine.light_encoder, args=(gen.location,), daemon=True).start()
        idle_s = engine.settings.daemon.idle_minutes * 60
        log.info("daemon %d serving %s (idle exit after %gs)", os.getpid(), engine.root, idle_s)
        started = time.monotonic()
        while not stop.wait(min(5.0, idle_s)):
            quiet = time.monotonic() - (served.last_request if served else started)
            if worker.state is WorkerState.IDLE and quiet >= idle_s:
                log.info("no request for %.0fs; exiting", quiet)
                break
    finally:
        service.stop()  # the socket first, so that clients fall back instead of waiting
    return 0


def start_background(
    root: Path, index_dir: Path, model: str, argv: list[str], *, timeout: float = START_TIMEOUT_S
) -> tuple[int, bool]:
    """Start a detached daemon for `root` (unless one answers); returns (its pid, whether
    it was already running). `argv` are the command-line flags to pass on."""
    ping = {"op": "ping", "workspace": str(root), "model": model}
    running = ask(index_dir, ping)
    if running is not None:
        return int(running["pid"]), True
    index_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = index_dir / LOG_NAME
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "kenning.server.cli", "serve", "--background-child", *argv],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=fd,
            start_new_session=True,  # not killed with the terminal or the calling command
        )
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if socket_path(index_dir).exists():
            running = ask(index_dir, ping, timeout=2.0)
            if running is not None:
                # Another start may have won the race for the lock: that one serves.
                return int(running["pid"]), int(running["pid"]) != child.pid
        if child.poll() is not None and not WriterLock(index_dir).holder():
            raise RuntimeError(
                f"the daemon exited with code {child.returncode} before answering; see {log_path}"
            )
        time.sleep(0.1)
    raise RuntimeError(f"the daemon did not answer within {timeout:.0f}s; see {log_path}")


def stop_background(index_dir: Path, *, timeout: float = STEP_ASIDE_S) -> int | None:
    """Stop the background daemon of this index; its pid, or None when none runs.

    Raises DaemonError when the server is an editor's (it stops with its editor)."""
    answer = ask(index_dir, {"op": "stop"})
    if answer is None:
        return None
    lock = WriterLock(index_dir)
    deadline = time.monotonic() + timeout
    while lock.holder() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    return int(answer["pid"])
