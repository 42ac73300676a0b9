"""One workspace folder kept live, with no protocol in it (docs/design.md).

A `WorkspaceService` owns what keeps an index fresh and answers from it: the
Engine, the change queue, the index worker, the retraining scheduler and the
file watcher. Both servers run on it: the language server (server/lsp.py)
holds one per indexed workspace folder, the MCP server (server/mcp_server.py)
one for the workspace it was started in. Each turns the plain answers here
(`SearchOutcome`, `RelatedOutcome`, `ServiceStatus`) into its own wire types.

The background daemon (`kenning serve --background`, server/daemon.py) runs
on one too, without the retraining scheduler.

One writer per index (docs/design.md, "One writer"). Before it starts the
worker, the watcher and the scheduler, a service takes the index folder's
writer lock (server/writer_lock.py, through daemon.claim_writer: a background
daemon steps aside for it) and answers the command line on the index's socket
(server/socket_server.py). When another server holds the lock (an editor's
`kenning serve`, a `kenning mcp`, or a second editor), the service only
reads, and says so in its status: it answers from the index as that process
writes it, taking in new vectors before each search, passes saves and
re-index requests on to the writer over the socket, and tries the lock every
few seconds, so it takes over the writing when the other process exits.
Training runs only in the writer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from .answers import STILL_BUILDING, IndexView, answer_search
from .daemon import ServedIndex, claim_writer, handle
from .engine import Engine, Status
from .protocol import ServerState
from .related import RelatedOutcome
from .scheduler import Scheduler, SchedulerListener
from .search import SearchOutcome, Semantic
from .socket_client import DaemonError, ask
from .socket_server import SocketServer
from .train_process import RunOutcome
from .watcher import ChangeQueue, WorkspaceWatcher
from .worker import IndexCounts, IndexWorker, WorkerListener
from .writer_lock import Holder, WriterLock

log = logging.getLogger(__name__)

CATCH_UP_S = 1.0
"""A reader looks for vectors the writer added at most this often."""
TAKEOVER_S = 2.0
"""A reader tries the writer lock this often, to take over when the writer exits."""
PENDING_TTL_S = 5.0
"""A reader re-counts the vectors still missing at most this often (to say `partial`)."""


class ServiceListener(WorkerListener, SchedulerListener, Protocol):
    """What a service reports, on its threads: the worker's and the scheduler's events."""


class LogListener:
    """A listener for a server with no one to show things to (the MCP server over
    stdio, the background daemon): problems and progress go to the log, progress at
    most every 10 s."""

    def __init__(self) -> None:
        self._last = 0.0

    def progress_begin(self, title: str, message: str) -> None:
        log.info("%s: %s", title, message)

    def progress_report(self, message: str, percentage: int) -> None:
        if time.monotonic() - self._last >= 10:
            self._last = time.monotonic()
            log.info("%s (%d%%)", message, percentage)

    def progress_end(self, message: str) -> None:
        log.info("%s", message)

    def index_changed(self, counts: IndexCounts) -> None:
        pass

    def problem(self, message: str) -> None:
        log.warning("%s", message)

    def training_progress(self, kind: str, message: str, percentage: int | None) -> None:
        log.debug("training %s: %s", kind, message)

    def training_finished(self, outcome: RunOutcome) -> None:
        log.info("training %s: %s", outcome.status, outcome.reason)


class NotTheWriter(RuntimeError):
    """The request needs the index's writer, and another process is it."""


@dataclass
class ServiceStatus:
    """One workspace's status: the engine's figures, and the service's own state."""

    index: Status
    """Files, chunks, pending vectors, model, generation, size, warnings, training history."""
    state: ServerState
    queued: int
    embedded_since_start: int
    writer: bool
    """Whether this process writes the index (else another Kenning process does)."""
    training: dict[str, Any] | None = None
    """The run in progress (phase, message, step/steps), or None."""

    @property
    def last_training(self) -> dict[str, Any] | None:
        return self.index.training[-1] if self.index.training else None


class WorkspaceService:
    """One workspace's live index: searchable at once, kept fresh while it runs."""

    def __init__(
        self,
        engine: Engine,
        listener: ServiceListener,
        *,
        role: str,
        named_root: Path | None = None,
        retrain: bool = True,
    ):
        self.engine = engine
        self.listener = listener
        self.named_root = named_root or engine.root
        """The root as the client named it (it may go through a symlink)."""
        self.changes = ChangeQueue()
        self.worker: IndexWorker | None = None
        self.scheduler: Scheduler | None = None
        self.watcher: WorkspaceWatcher | None = None
        self.role = role
        self.retrain = retrain
        """Whether a writer runs the retraining scheduler (the background daemon does not)."""
        """Who this process is in the writer lock (writer_lock.EDITOR, MCP, BACKGROUND)."""
        self.lock = WriterLock(engine.index_dir)
        self.socket: SocketServer | None = None
        self.served: ServedIndex | None = None
        """What the socket answers from, while this process writes."""
        self._stopping = threading.Event()
        self._state_lock = threading.Lock()
        self._follower: threading.Thread | None = None
        self._reader_model_failed = False
        self._last_catch_up = 0.0
        self._pending_seen: tuple[float, int] = (0.0, 0)

    @classmethod
    def open(
        cls,
        root: str | Path,
        overrides: Mapping[str, Any] | None = None,
        *,
        listener: ServiceListener,
        role: str,
        init_options: Mapping[str, Any] | None = None,
        retrain: bool = True,
    ) -> WorkspaceService:
        """Open the workspace's index (searchable at once); `start` makes it live."""
        engine = Engine.open(root, overrides, init_options=init_options)
        return cls(engine, listener, role=role, named_root=Path(root), retrain=retrain)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, *, read_if_taken: bool = True) -> bool:
        """Start writing (worker, scheduler, watcher, socket) if no other process writes
        this index; else start reading beside that process, ready to take over (or, with
        `read_if_taken` False, start nothing). Returns whether this process writes."""
        if self.engine.store.read_only:
            self._start_writing()  # the worker says why nothing can be written
            return True
        lock = claim_writer(self.engine, self.role)
        if lock is not None:
            self.lock = lock
            self._start_writing()
            return True
        if read_if_taken:
            self._start_reading()
        return False

    def _start_writing(self) -> None:
        with self._state_lock:
            if self._stopping.is_set() or self.worker is not None:
                return
            engine = self.engine
            self.worker = IndexWorker(engine, self.changes, self.listener)
            if self.retrain:
                self.scheduler = Scheduler(engine, self.worker, self.listener)
            self.watcher = WorkspaceWatcher(
                engine.root, self.changes, ignore_dirs=[engine.index_dir]
            )
            self.worker.start()
            if self.scheduler is not None:
                self.scheduler.start()
        try:
            self.watcher.start()
        except OSError as exc:  # e.g. out of inotify watches: saves still work
            log.warning("cannot watch %s for outside changes: %s", self.engine.root, exc)
        if self.lock.held:
            self._listen()

    def _listen(self) -> None:
        """Answer the command line on the index's socket (only the writer does)."""
        assert self.worker is not None
        self.served = ServedIndex(self.engine, self.role, self.worker, self.changes)
        served = self.served
        socket = SocketServer(self.engine.index_dir, lambda request: handle(served, request))
        try:
            socket.start()
        except OSError as exc:  # the command line then works in-process
            log.warning("cannot listen on %s: %s", socket.path, exc)
            return
        self.socket = socket

    def writer_name(self) -> str:
        """Who writes this index, for messages: `an MCP server (pid 4242)`."""
        holder = self.lock.holder()
        return holder.describe() if holder else "another Kenning process"

    def writer_holder(self) -> Holder | None:
        return None if self.writing else self.lock.holder()

    def _start_reading(self) -> None:
        log.info(
            "%s writes the index of %s; answering from it, and taking over when it exits",
            self.writer_name(),
            self.engine.root,
        )
        # Nothing is embedded here: queries need no torch (the light path).
        self.engine.light_queries = True
        self._follower = threading.Thread(
            target=self._read_beside_writer, name="kenning-reader", daemon=True
        )
        self._follower.start()

    def _read_beside_writer(self) -> None:
        gen = self.engine.serving_generation()
        try:
            if gen is not None:  # load the query model now rather than on the first search
                self.engine.query_encoder_for(gen)
        except Exception as exc:  # noqa: BLE001 - lexical search still works
            self._reader_model_failed = True
            self.listener.problem(f"Kenning could not load its model, so search is lexical: {exc}")
        while not self._stopping.wait(TAKEOVER_S):
            try:
                if self.lock.try_acquire(self.role, str(self.engine.root)):
                    log.info(
                        "the index writer of %s exited; this process writes it now",
                        self.engine.root,
                    )
                    self._start_writing()
                    return
            except OSError as exc:
                log.debug("cannot try the writer lock: %s", exc)

    def stop(self) -> None:
        """Finish the batch in flight, save the vector snapshot, close. Idempotent."""
        with self._state_lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self.socket is not None:
            self.socket.stop()  # first of the rest, so that clients fall back instead of waiting
        self.changes.close()
        if self.worker is not None and not self.worker.stop():
            log.warning("the index worker did not stop in time; the unfinished batch is dropped")
        self.engine.close(save_snapshot=self.writing)
        self.lock.release()

    # -- state ---------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.engine.root

    @property
    def writing(self) -> bool:
        """Whether this process writes the index (holds the writer lock)."""
        return self.worker is not None

    @property
    def state(self) -> ServerState:
        worker = self.worker
        if worker is None:
            return "idle" if self._follower is not None else "starting"
        if not worker.first_index_done.is_set():
            return "indexing"
        if worker.swapping or (self.scheduler is not None and self.scheduler.current is not None):
            return "training"
        if self.changes.waiting():
            return "indexing"
        return "idle"

    def semantic(self) -> Semantic:
        """What stands in the way of the model's side of a search now."""
        worker = self.worker
        if (worker is not None and not worker.semantic_available) or (
            worker is None and self._reader_model_failed
        ):
            return Semantic.MODEL_FAILED
        return Semantic.READY if self.engine.model_loaded else Semantic.MODEL_LOADING

    def still_building(self) -> bool:
        """True while the first index is not complete: answers are partial."""
        worker = self.worker
        if worker is not None:
            return not worker.first_index_done.is_set()
        if self._follower is None:
            return True
        # A reader cannot see the writer's progress; missing vectors tell it.
        now = time.monotonic()
        seen_at, pending = self._pending_seen
        if now - seen_at > PENDING_TTL_S:
            gen = self.engine.serving_generation()
            pending = self.engine.store.counts(gen.id).pending if gen else 1
            self._pending_seen = (now, pending)
        return pending > 0

    def _catch_up(self) -> None:
        """A reader takes in what the writer added since the last look (throttled)."""
        if self.writing:
            return
        now = time.monotonic()
        if now - self._last_catch_up < CATCH_UP_S:
            return
        self._last_catch_up = now
        changed = self.engine.store.catch_up()
        if changed:
            log.debug("took in %d vector changes from the index writer", changed)

    # -- answers -------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        limit: int = 10,
        mode: str = "hybrid",
        paths: Sequence[str] = (),
        explain: bool = False,
    ) -> SearchOutcome:
        """Search now, never waiting for indexing: `partial` and `notes` say what the
        answer lacks. Raises SemanticUnavailable (semantic mode, no model) or SearchError."""
        self._catch_up()
        view = IndexView(
            first_index_done=not self.still_building(),
            semantic_available=self.semantic() is not Semantic.MODEL_FAILED,
        )
        if self.served is not None:
            self.served.last_request = time.monotonic()
        return answer_search(
            self.engine, query, limit=limit, mode=mode, paths=paths, view=view, explain=explain
        )

    def related(
        self, rel: str, line: int, *, limit: int = 10, paths: Sequence[str] = ()
    ) -> RelatedOutcome:
        """Code most similar to the chunk at 1-based `line` of `rel`; raises RelatedError."""
        self._catch_up()
        outcome = self.engine.related(rel, line, limit=limit, paths=paths)
        if self.still_building():
            outcome.notes.insert(0, STILL_BUILDING)
        return outcome

    def status(self) -> ServiceStatus:
        index = self.engine.status()
        current = self.scheduler.current if self.scheduler else None
        if not self.writing and self._follower is not None:
            index.warnings.append(
                f"{self.writer_name()} writes this index; this process only reads it "
                "and passes saves and re-index requests on"
            )
        return ServiceStatus(
            index=index,
            state=self.state,
            queued=self.changes.waiting(),
            embedded_since_start=self.worker.embedded if self.worker else 0,
            writer=self.writing,
            training=current.to_json() if current else None,
        )

    # -- requests that change things -----------------------------------------------------

    def _forward(self, request: dict[str, Any]) -> dict[str, Any]:
        """Ask the process that writes this index to do what a reader cannot."""
        try:
            answer = ask(self.engine.index_dir, request)
        except DaemonError as exc:
            raise NotTheWriter(
                f"{self.writer_name()} writes this index and refused: {exc}"
            ) from exc
        if answer is None:
            raise NotTheWriter(
                f"{self.writer_name()} writes this index and does not answer on its socket; "
                "try again when it has started, or stop it"
            )
        return answer

    def reindex(self, rels: Sequence[str] | None = None, *, urgent: bool = True) -> int:
        """Queue `rels` (workspace-relative; None: rescan everything); returns how many.
        A reader passes the request on to the writer."""
        if not self.writing:
            answer = self._forward({"op": "reindex", "paths": None if rels is None else list(rels)})
            return int(answer.get("queued", 0))
        if rels is None:
            self.changes.request_rescan()
            return self.engine.store.counts(None).files
        self.changes.add_many(rels, urgent=urgent)
        return len(rels)

    def changed(self, rels: Sequence[str], *, urgent: bool = False) -> None:
        """Files the client says changed (a save is urgent); a reader passes them on to the
        writer (a blocking socket call: run it off the event loop)."""
        if not rels:
            return
        if self.writing:
            self.changes.add_many(rels, urgent=urgent)
            return
        try:
            self._forward({"op": "reindex", "paths": list(rels)})
        except NotTheWriter as exc:
            log.warning("%s", exc)

    def train(self, force: bool) -> tuple[bool, str | None]:
        """Ask for a retraining run now: (started, why not)."""
        if self.scheduler is None:
            return False, (
                f"{self.writer_name()} writes this index, and retraining runs there; "
                "ask that one, or run `kenning train`"
            )
        return self.scheduler.request(force)

    # -- paths ---------------------------------------------------------------------------

    def relative_path(self, raw: str) -> str | None:
        """Workspace-relative `/` path of a path (absolute, or relative to the root);
        None when it is outside the workspace or names the root itself."""
        if not Path(raw).is_absolute():
            rel = PurePosixPath(raw.replace("\\", "/"))
            return None if ".." in rel.parts or rel.as_posix() == "." else rel.as_posix()
        path = Path(os.path.normpath(raw))
        # The client may name the root through a symlink (/tmp -> /private/tmp).
        for root in dict.fromkeys((self.named_root, self.engine.root)):
            if path.is_relative_to(root) and path != root:
                return path.relative_to(root).as_posix()
        return None
