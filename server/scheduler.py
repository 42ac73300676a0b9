"""When to retrain, and the daemon's side of a run (docs/design.md, the retraining path).

`why_not`, `parts_for` and `next_due` are the whole policy, as plain
functions: a run starts when the schedule says it is due, the index is idle,
enough code changed (or enough results were picked) since the last run, and
there is something it may train: the full model needs a GPU or
`train.on_cpu`, the query adapter (`train.adapter`, seconds on a CPU) needs
neither. `kenning/train` asks for a run now, skipping the schedule; with
`force` it skips every waiting condition and trains the full model even on
a CPU (never the quality gate, which lives in the trainer).

`Scheduler` is a thread that checks the policy every `poll_s` seconds and
runs one `TrainProcess` at a time. After a model promotion it asks the
index worker to re-embed into a new generation and switch (server/worker.py);
the old generation answers every search until then. An adapter promotion
needs nothing from it: the engine looks at the adapter pointer on every
search, so the next search uses the new adapter.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .models import ModelError, append_history, pick_device, pointer_path
from .settings import settings_to_dict
from .train_process import RunOutcome, TrainProcess

if TYPE_CHECKING:
    from .engine import Engine
    from .worker import IndexWorker

log = logging.getLogger(__name__)

POLL_S = 30.0
QUIET_S = 60.0
"""A scheduled run waits for the index to have been quiet this long (a burst of
saves or a checkout is usually followed by more)."""
MARK_KEY = "train_vector_mark"
MIN_NEW_PICKS = 10
"""Opened results since the last run that make a run worth it even without new code."""


@dataclass(frozen=True)
class Conditions:
    busy: str | None
    """Why the index is not idle now, or None."""
    has_gpu: bool
    on_cpu: bool
    new_chunks: int
    min_new_chunks: int
    adapter: bool = False
    """`train.adapter`: a query adapter may be trained, GPU or not."""
    new_picks: int = 0


def why_not(c: Conditions) -> str | None:
    """None when a run may start now; otherwise the one-line reason it waits."""
    if c.busy:
        return f"waiting for the index to be idle: {c.busy}"
    if not c.has_gpu and not c.on_cpu and not c.adapter:
        return "no GPU here and train.on_cpu is false (use force to train on the CPU now)"
    if c.new_chunks < c.min_new_chunks and c.new_picks < MIN_NEW_PICKS:
        return (
            f"{c.new_chunks} chunks changed and {c.new_picks} results were picked since the "
            f"last run; train.min_new_chunks is {c.min_new_chunks}"
        )
    return None


def parts_for(c: Conditions, forced: bool) -> str:
    """What a run trains: the full model where it may (a GPU, `train.on_cpu`, or forced),
    with an adapter on top when `train.adapter`; otherwise the adapter alone."""
    if c.has_gpu or c.on_cpu or forced:
        return "both" if c.adapter else "model"
    return "adapter"


def next_due(last_run_at: float | None, interval_s: float | None) -> float | None:
    """When the schedule next allows a run (a time.time() value); None when it is off."""
    if interval_s is None:
        return None
    return 0.0 if last_run_at is None else last_run_at + interval_s


@dataclass
class TrainingState:
    """What `kenning/status` shows about the run in progress."""

    phase: str
    """training, then re-embedding after a promotion."""
    started_at: float
    forced: bool
    parts: str = "both"
    """What the run trains: model, adapter or both (`parts_for`)."""
    message: str = ""
    step: int | None = None
    steps: int | None = None
    pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class SchedulerListener(Protocol):
    """Called on the scheduler's threads; implementations must hand off, not block."""

    def training_progress(self, kind: str, message: str, percentage: int | None) -> None: ...

    def training_finished(self, outcome: RunOutcome) -> None: ...


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        worker: IndexWorker,
        listener: SchedulerListener,
        *,
        poll_s: float = POLL_S,
        quiet_s: float = QUIET_S,
    ):
        self.engine = engine
        self.worker = worker
        self.listener = listener
        self.poll_s = poll_s
        self.quiet_s = quiet_s
        self._gpu: bool | None = None
        self._lock = threading.Lock()
        self._current: TrainingState | None = None
        self._process: TrainProcess | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runner: threading.Thread | None = None
        self._pointer_stamp = self._stamp()

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kenning-schedule", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking and stop a run in progress (it resumes next time)."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            process = self._process
        if process is not None:
            process.stop()
        runner = self._runner
        if runner is not None:
            runner.join(15)

    @property
    def current(self) -> TrainingState | None:
        with self._lock:
            return self._current

    def request(self, force: bool) -> tuple[bool, str | None]:
        """`kenning/train`: start a run now if allowed; (started, why not)."""
        conditions = self.conditions(quiet_s=0.0)
        if not force:
            reason = why_not(conditions)
            if reason:
                return False, reason
        return self._start(forced=force, parts=parts_for(conditions, force))

    # -- the policy's inputs -------------------------------------------------------------

    def conditions(self, quiet_s: float) -> Conditions:
        settings = self.engine.settings.train
        busy = self.worker.busy_reason(quiet_s)
        picks = self.engine.settings.learn_from_picks
        return Conditions(
            busy=busy,
            has_gpu=self.has_gpu() if not busy else False,
            on_cpu=settings.on_cpu,
            new_chunks=self.new_chunks(),
            min_new_chunks=settings.min_new_chunks,
            adapter=settings.adapter,
            new_picks=self.engine.picks.count_since(self.last_run_at() or 0.0) if picks else 0,
        )

    def has_gpu(self) -> bool:
        if self._gpu is None:
            try:
                self._gpu = pick_device(self.engine.settings.device) != "cpu"
            except ModelError:
                self._gpu = False
        return self._gpu

    def new_chunks(self) -> int:
        """Chunk texts embedded since the last run started (all of them before the first run)."""
        store = self.engine.store
        gen = store.active_generation()
        if gen is None:
            return 0
        mark = store.meta_value(MARK_KEY)
        return store.vectors_since(gen.id, int(mark) if mark and mark.isdigit() else 0)

    def last_run_at(self) -> float | None:
        history = self.engine.training_history()
        times = [float(t) for r in history if isinstance(t := r.get("time"), (int, float))]
        return max(times) if times else None

    # -- the thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._follow_outside_promotions()
                self._maybe_start()
            except Exception:  # noqa: BLE001 - the schedule must outlive any one check
                log.exception("the training schedule check failed")

    def _maybe_start(self) -> None:
        if self.current is not None:
            return
        due = next_due(self.last_run_at(), self.engine.settings.train.interval_s)
        if due is None or time.time() < due:
            return
        conditions = self.conditions(self.quiet_s)
        reason = why_not(conditions)
        if reason:
            log.debug("retraining is due but %s", reason)
            return
        started, reason = self._start(forced=False, parts=parts_for(conditions, False))
        if not started:
            log.info("scheduled retraining did not start: %s", reason)

    def _follow_outside_promotions(self) -> None:
        """A `kenning train` run in a terminal may promote a model: switch to it too."""
        stamp = self._stamp()
        if stamp == self._pointer_stamp or self.current is not None:
            return
        self._pointer_stamp = stamp
        if self.engine.reload_model():
            log.info("a new model was promoted outside the server; re-embedding with it")
            self.worker.request_swap()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = pointer_path(self.engine.index_dir).stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    # -- one run -------------------------------------------------------------------------

    def _start(self, forced: bool, parts: str) -> tuple[bool, str | None]:
        with self._lock:
            if self._stop.is_set():
                return False, "the server is shutting down"
            if self._current is not None:
                return False, f"a training run is already in progress ({self._current.phase})"
            if self.worker.swapping:
                return False, "the index is switching to a newly trained model"
            self._current = TrainingState(
                phase="training", started_at=time.time(), forced=forced, parts=parts
            )
            self._runner = threading.Thread(target=self._run, name="kenning-train", daemon=True)
            self._runner.start()
        return True, None

    def _run(self) -> None:
        engine = self.engine
        state = self._current
        assert state is not None
        settings = engine.settings
        self._mark_new_chunks_from_now()
        process = TrainProcess(
            engine.root,
            settings_to_dict(settings),
            {"parts": state.parts},  # the rest comes from the train.* settings
            engine.index_dir / "trainer",
            self._child_event,
        )
        with self._lock:
            self._process = process
        self.listener.training_progress("begin", "mining training pairs", 0)
        outcome = RunOutcome("failed", "the training process did not start")
        try:
            if not self._stop.is_set():
                outcome = process.run()
        except Exception as exc:  # noqa: BLE001 - report, never kill the server
            log.exception("training run failed")
            outcome = RunOutcome("failed", f"training failed: {exc}")
        finally:
            with self._lock:
                self._process = None
        if outcome.result is None and outcome.status == "failed":
            self._record_failure(outcome, state)
        log.info("training %s: %s", outcome.status, outcome.reason)
        promoted = outcome.status == "promoted" and engine.reload_model()
        self._pointer_stamp = self._stamp()
        if promoted and not self._stop.is_set():
            with self._lock:
                state.phase, state.message = (
                    "re-embedding",
                    "re-embedding every chunk with the new model",
                )
            self.listener.training_progress("report", state.message, 100)
            self.worker.request_swap(on_done=self._swap_done)
        else:
            with self._lock:
                self._current = None
        self.listener.training_progress("end", f"{outcome.status}: {outcome.reason}", None)
        self.listener.training_finished(outcome)

    def _mark_new_chunks_from_now(self) -> None:
        """Count `train.min_new_chunks` from here: a run starts, or a swap re-embedded all."""
        store = self.engine.store
        try:
            store.set_meta_value(MARK_KEY, str(store.vector_mark()))
        except Exception as exc:  # noqa: BLE001 - a read-only index still trains
            log.warning("could not record the retraining mark: %s", exc)

    def _swap_done(self) -> None:
        self._mark_new_chunks_from_now()
        with self._lock:
            self._current = None

    def _child_event(self, msg: dict[str, Any]) -> None:
        state = self._current
        if state is None:
            return
        with self._lock:
            if self._process is not None:
                state.pid = self._process.pid
            if "say" in msg:
                state.message = str(msg["say"])
            if "step" in msg:
                state.step, state.steps = int(msg["step"]), int(msg.get("of") or 0) or None
                state.message = f"training step {state.step}/{state.steps or '?'}"
        pct = None
        if state.step is not None and state.steps:
            pct = min(99, 100 * state.step // state.steps)
        self.listener.training_progress("report", state.message, pct)

    def _record_failure(self, outcome: RunOutcome, state: TrainingState) -> None:
        model = self.engine.model_ref.label
        try:
            append_history(
                self.engine.index_dir,
                {
                    "time": time.time(),
                    "status": "failed",
                    "reason": outcome.reason,
                    "model_before": model,
                    "model_after": model,
                    "checkpoint": None,
                    "took_s": round(time.time() - state.started_at, 2),
                    "scheduled": not state.forced,
                },
            )
        except OSError as exc:
            log.warning("could not record the failed run: %s", exc)
