"""The index worker: the one thread that reads files, runs the model and writes the store.

The language server's event loop never does any of this itself; it only
answers requests and forwards what this worker reports. The store has one
writer, so one thread does all the writing, in this order:

1. **First index.** The lexical pass over the whole workspace (so lexical
   search works within seconds), then the model is loaded and the missing
   vectors are embedded in batches. Between batches the worker checks for a
   stop request (shutdown keeps every finished batch; a restart picks up the
   rest) and for files saved in the editor, which are indexed at once.
2. **Follow changes.** Drain the ChangeQueue: re-check the changed paths
   (saved files first), embed their new chunks, repeat.
3. **Switch models.** After a retraining promoted a model (server/scheduler.py),
   re-embed every chunk into a new generation in batches, still giving way to
   saves, while the old generation answers searches; then switch in one
   transaction and drop the old one. Files saved meanwhile are embedded into
   both generations, so neither misses them. A restart in the middle resumes
   the new generation and serves the old one until it is complete.

Everything it has to say goes to a `WorkerListener`: progress, "a batch
landed", and problems a user should see. No LSP in here.
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from .embedder import background_threads
from .engine import Engine, write_failure
from .indexer import DAEMON_TEXTS_PER_COMMIT, IndexSummary
from .memory import TRIM_AFTER_TEXTS, trim
from .store import Generation
from .watcher import ChangeBatch, ChangeQueue

log = logging.getLogger(__name__)

SCAN_SHARE = 10
"""Percent of the first-index progress bar given to reading files; the rest is embedding."""


class _StopRequested(Exception):
    """Raised from a progress callback to leave a long pass between two batches."""


class WorkerState(enum.Enum):
    STARTING = "starting"
    INDEXING = "indexing"
    IDLE = "idle"


@dataclass(frozen=True)
class IndexCounts:
    generation: int | None
    files: int
    chunks: int
    partial: bool


@dataclass
class _Meter:
    """Progress of one embedding pass, as `$/progress` shows it."""

    verb: str
    total: int
    start_pct: int
    """Percent already used by earlier phases (reading files)."""
    done: int = 0

    def message(self) -> str:
        return f"{self.verb} {self.done}/{max(self.total, self.done)} chunks"

    def percentage(self) -> int:
        total = max(self.total, self.done)
        share = 100 - self.start_pct
        return min(100, self.start_pct + (share * self.done // total if total else share))


class WorkerListener(Protocol):
    """Called on the worker thread; implementations must hand off, not block."""

    def progress_begin(self, title: str, message: str) -> None: ...

    def progress_report(self, message: str, percentage: int) -> None: ...

    def progress_end(self, message: str) -> None: ...

    def index_changed(self, counts: IndexCounts) -> None: ...

    def problem(self, message: str) -> None: ...


class IndexWorker:
    """Keeps one Engine's index live on a background thread."""

    def __init__(self, engine: Engine, changes: ChangeQueue, listener: WorkerListener):
        self.engine = engine
        self.changes = changes
        self.listener = listener
        self.state = WorkerState.STARTING
        self.first_index_done = threading.Event()
        """Set once the whole workspace has been read and embedded."""
        self.embedded = 0
        """Chunk texts sent to the model by this worker (a restart should need none)."""
        self.semantic_available = True
        """False once the model failed to load: search falls back to lexical."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backlog = False
        """Vectors left missing when embedding gave way to a save."""
        self._loading_model = False
        self.swapping = False
        """Re-embedding into a new model's generation (old one still answering)."""
        self.last_activity = time.monotonic()
        """When the worker last finished indexing something (the scheduler waits for quiet)."""
        self._swap_requested = threading.Event()
        self._swap_done: list[Callable[[], None]] = []
        self._meter: _Meter | None = None
        self._since_trim = 0
        """Chunk texts embedded since memory was last given back (server/memory.py)."""

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kenning-index", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> bool:
        """Finish the batch in flight, then stop; True if nothing was left unfinished.

        While the model is still loading there is no batch to finish, so this
        does not wait for the load (seconds) to end: the thread notices the stop
        request right after it and touches nothing more.
        """
        self._stop.set()
        self.changes.close()
        thread = self._thread
        deadline = time.monotonic() + timeout
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            if self._loading_model:
                return True
            thread.join(0.05)
        return thread is None or not thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_swap(self, on_done: Callable[[], None] | None = None) -> None:
        """Re-embed with the engine's (newly promoted) model and switch to it; `on_done`
        runs on the worker thread once the new generation answers (or nothing was needed)."""
        if on_done is not None:
            self._swap_done.append(on_done)
        self._swap_requested.set()
        self.changes.wake()

    def busy_reason(self, quiet_s: float = 0.0) -> str | None:
        """Why the index is not idle (None when it is): what a retraining waits for."""
        if not self.first_index_done.is_set():
            return "the first index is still being built"
        if self.swapping or self._swap_requested.is_set():
            return "the index is switching to a new model"
        waiting = self.changes.waiting()
        if waiting:
            return f"{waiting} changed files are being indexed"
        quiet = time.monotonic() - self.last_activity
        if quiet < quiet_s:
            return f"files changed {quiet:.0f}s ago; waiting for {quiet_s:.0f}s without changes"
        return None

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        if self.engine.store.read_only:
            # Searches answer from the index as it is; status carries the warning.
            self.first_index_done.set()
            self.state = WorkerState.IDLE
            self.listener.problem(f"Kenning: {self.engine.store.warnings[-1]}")
            return
        try:
            self._first_index()
            self._follow_changes()
        except _StopRequested:
            self.listener.progress_end("stopped; the index keeps every finished batch")
        except Exception as exc:  # noqa: BLE001 - report, never die silently
            log.exception("indexing stopped")
            self._report_failure(exc, stopped=True)
        finally:
            self.state = WorkerState.IDLE

    def _first_index(self) -> None:
        self.state = WorkerState.INDEXING
        indexer = self.engine.indexer
        self.listener.progress_begin("Kenning: indexing", "reading files")
        start = time.perf_counter()
        summary = indexer.scan(progress=self._scan_progress)
        log.info(
            "read %d changed files (%d skipped) in %.1fs; lexical search is ready",
            summary.changed_files,
            summary.skipped,
            time.perf_counter() - start,
        )
        self._announce()
        gen = self._generation() if not self.stopping else None
        if self.stopping:
            # stop() may not have waited for the model to load: the engine can be
            # closed by now, so touch nothing more.
            raise _StopRequested
        serving = self.engine.serving_generation()
        switching = gen is not None and serving is not None and serving.id != gen.id
        if switching:
            # A model switch was under way when the server stopped: bring the old,
            # complete generation up to date first and serve it; the new one
            # is finished after the first index, as a switch.
            gen, pending_switch = serving, gen
        if gen is not None:
            self._meter = _Meter("embedding", self.engine.store.counts(gen.id).pending, SCAN_SHARE)
            self._report_meter()
            try:
                while not self._embed(gen, stop_for_saves=True) and not self.stopping:
                    # A file was saved meanwhile: index it now, then carry on.
                    self._take_and_apply(timeout=0, embed_rest=False)
            finally:
                self._meter = None
            if not self.stopping:
                self.engine.finish_generation(gen)
        if switching and pending_switch is not None and not self.stopping:
            self._swap_requested.set()
            log.info("resuming the switch to %s", pending_switch.model)
        if self.stopping:
            self.listener.progress_end("stopped; the index keeps every finished batch")
            return
        self.engine.store.save_snapshot()
        self.first_index_done.set()
        totals = self.engine.store.counts(None)
        log.info(
            "index complete: %d files, %d chunks in %.1fs (%d chunks embedded)",
            totals.files,
            totals.chunks,
            time.perf_counter() - start,
            self.embedded,
        )
        self._announce()
        self.listener.progress_end(f"{totals.files} files, {totals.chunks} chunks")
        self._give_back_memory()
        self.state = WorkerState.IDLE

    def _follow_changes(self) -> None:
        while not self.stopping:
            if self._swap_requested.is_set():
                self._swap_requested.clear()
                self._switch_models()
                continue
            if not self._take_and_apply(timeout=None, embed_rest=True):
                return

    def _switch_models(self) -> None:
        """Re-embed everything into the current model's generation, then switch to it."""
        target = self._generation()
        serving = self.engine.serving_generation()
        if target is not None and serving is not None and target.id != serving.id:
            self.swapping = True
            try:
                # Not urgent: the old generation answers meanwhile, so leave
                # searches a share of the CPU.
                with background_threads():
                    self._build_generation(
                        target, "Kenning: training (switching to the new model)", "re-embedding"
                    )
            finally:
                self.swapping = False
        if not self.stopping:
            callbacks, self._swap_done = self._swap_done, []
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # noqa: BLE001 - a listener's bug must not stop indexing
                    log.exception("swap callback failed")

    def _build_generation(self, gen: Generation, title: str, verb: str) -> None:
        """Embed every missing vector of `gen` (giving way to saves), then switch to it."""
        total = self.engine.store.counts(gen.id).pending
        self.listener.progress_begin(title, f"{verb} {total} chunks")
        self._meter = _Meter(verb, total, 0)
        start = time.perf_counter()
        try:
            while not self._embed(gen, stop_for_saves=True) and not self.stopping:
                self._take_and_apply(timeout=0, embed_rest=False)
        finally:
            self._meter = None
        if self.stopping:
            self.listener.progress_end("stopped; the switch resumes at the next start")
            return
        if self.engine.finish_generation(gen):
            self.engine.store.save_snapshot()
            log.info(
                "switched to generation %d (%s): %d chunks re-embedded in %.1fs",
                gen.id,
                gen.model,
                total,
                time.perf_counter() - start,
            )
        self._announce()
        self.listener.progress_end(f"now searching with {gen.model}")
        self._give_back_memory()

    def _take_and_apply(self, timeout: float | None, *, embed_rest: bool) -> bool:
        batch = self.changes.take(timeout)
        if batch is None:
            return False
        if not (batch.urgent or batch.paths or batch.rescan):
            self.changes.done()
            return True  # woken up to look at something else (a model switch)
        self.state = WorkerState.INDEXING
        try:
            self._apply(batch, embed_rest=embed_rest)
        except Exception as exc:  # noqa: BLE001 - one bad batch must not end change tracking
            log.exception("could not re-index %s", ", ".join(batch.all_paths()[:5]))
            self._report_failure(exc, stopped=False)
        finally:
            self.changes.done()
            self._give_back_memory()
            self.last_activity = time.monotonic()
            if self.first_index_done.is_set():
                self.state = WorkerState.IDLE
        return True

    def _apply(self, batch: ChangeBatch, *, embed_rest: bool) -> None:
        """Re-index the paths of one batch: saved files first, lexical then vectors.

        With `embed_rest`, every other missing vector is embedded afterwards,
        giving way to the next save between batches (which then carries on).
        """
        start = time.perf_counter()
        indexer = self.engine.indexer
        rels = self._expand(batch.all_paths())
        rescan = batch.rescan
        for rel in rels:
            if rel == ".gitignore" or rel.endswith("/.gitignore"):
                self.engine.filter.forget_gitignore(rel.rpartition("/")[0])
                rescan = True  # what is ignored may have changed anywhere below it
        summary = indexer.scan() if rescan else IndexSummary()
        paths_summary = indexer.scan_paths(rels)
        changed = summary.changed_files + paths_summary.changed_files
        removed = summary.removed + paths_summary.removed
        if changed or removed:
            self._announce()
            log.info(
                "re-read %d changed files (%d chunks removed) in %.2fs",
                changed,
                removed,
                time.perf_counter() - start,
            )
        elif not (embed_rest and self._backlog):
            return
        gen = self._generation()
        if gen is None:
            return
        serving = self.engine.serving_generation()
        if serving is not None and serving.id != gen.id and (changed or removed):
            # Mid-switch: the old generation answers until the new one is done,
            # so it gets the changed files too (with its own model).
            self._embed(serving, paths=rels)
        if batch.urgent:
            self._embed(gen, paths=self._expand(batch.urgent))
        if embed_rest and serving is not None and serving.id != gen.id:
            self._swap_requested.set()  # the rest of a new generation is the switch's work
        elif embed_rest and self._embed(gen, stop_for_saves=True):
            self.engine.finish_generation(gen)

    def _report_failure(self, exc: Exception, *, stopped: bool) -> None:
        """A failed write (disk full, folder gone read-only) in status and as a message, once."""
        if isinstance(exc, (sqlite3.OperationalError, OSError)):
            message = write_failure(self.engine.index_dir, exc)
        else:
            message = f"{'indexing stopped' if stopped else 'could not update the index'}: {exc}"
        warnings = self.engine.store.warnings
        if message not in warnings:
            warnings.append(message)
            self.listener.problem(f"Kenning: {message}")

    # -- pieces --------------------------------------------------------------------------

    def _generation(self) -> Generation | None:
        """The generation to embed into, loading the model on first use; None without a model."""
        if not self.semantic_available:
            return None
        try:
            self._loading_model = True
            try:
                self.engine.embedder.load()
            finally:
                self._loading_model = False
            return None if self.stopping else self.engine.target_generation()
        except Exception as exc:  # noqa: BLE001 - any model failure leaves lexical search working
            self.semantic_available = False
            log.exception("cannot load the model")
            self.listener.problem(
                f"Kenning could not load its model, so search is lexical only: {exc}"
            )
            return None

    def _embed(
        self, gen: Generation, *, paths: list[str] | None = None, stop_for_saves: bool = False
    ) -> bool:
        """Embed what is missing (in `paths` only, when given); False if it stopped
        early for shutdown or, with `stop_for_saves`, for a file saved meanwhile."""

        def should_stop() -> bool:
            return self.stopping or (stop_for_saves and self.changes.has_urgent())

        self.engine.indexer.embed_pending(
            gen,
            self.engine.embedder_for(gen),
            should_stop=should_stop,
            on_batch=self._batch_landed,
            paths=paths,
            batch_size=DAEMON_TEXTS_PER_COMMIT,
        )
        finished = not should_stop()
        if paths is None:
            self._backlog = not finished
        return finished

    def _batch_landed(self, n: int) -> None:
        self.embedded += n
        self._since_trim += n
        if self._meter is not None:
            self._meter.done += n
            self._report_meter()
        self._announce()

    def _give_back_memory(self) -> None:
        """After large embedding work: the activations' freed pages go back to the system."""
        if self._since_trim >= TRIM_AFTER_TEXTS:
            self._since_trim = 0
            trim()

    def _announce(self) -> None:
        totals = self.engine.store.counts(None)
        gen = self.engine.serving_generation()
        self.listener.index_changed(
            IndexCounts(
                generation=gen.id if gen else None,
                files=totals.files,
                chunks=totals.chunks,
                partial=not self.first_index_done.is_set(),
            )
        )

    def _scan_progress(self, phase: str, done: int, total: int) -> None:
        if self.stopping:
            raise _StopRequested  # called between committed batches: nothing is lost
        share = SCAN_SHARE * done // total if total else SCAN_SHARE
        self.listener.progress_report(f"reading {done}/{total} files", share)

    def _report_meter(self) -> None:
        meter = self._meter
        if meter is not None:
            self.listener.progress_report(meter.message(), meter.percentage())

    def _expand(self, rels: Iterable[str]) -> list[str]:
        """Files meant by changed paths: a folder means every file below it, on
        disk now (created, renamed here) or in the index (deleted, renamed away)."""
        root = self.engine.root
        flt = self.engine.filter
        out: list[str] = []
        known: list[str] | None = None
        for rel in rels:
            path = root / rel
            if path.is_file():
                out.append(rel)
                continue
            if path.is_dir() and not path.is_symlink():
                for dirpath, dirnames, filenames in os.walk(path):
                    base = os.path.relpath(dirpath, root).replace(os.sep, "/")
                    dirnames[:] = [d for d in dirnames if not flt.dir_is_pruned(f"{base}/{d}")]
                    out.extend(f"{base}/{name}" for name in filenames)
            else:
                out.append(rel)  # gone: scan_paths drops it from the index
            if known is None:
                known = list(self.engine.store.file_records())
            prefix = rel + "/"
            out.extend(k for k in known if k.startswith(prefix))
        return list(dict.fromkeys(out))
