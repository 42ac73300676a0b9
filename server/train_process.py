"""One retraining run in a child process (trainer/child.py), seen from the daemon.

The child runs at low priority with a bounded number of CPU threads; whatever
happens to it (an exception, an out-of-memory kill, a segfault) comes back
here as an outcome with a one-line reason, and its stderr is kept in
`trainer/last-run.log` under the index directory for the details.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .embedder import background_thread_count

log = logging.getLogger(__name__)

LOG_NAME = "last-run.log"
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class RunOutcome:
    status: str
    """promoted, rejected, skipped or failed (as the trainer says), or busy
    (another run holds the trainer lock) or stopped (the server shut down)."""
    reason: str
    result: dict[str, Any] | None = None
    """The trainer's full result, when it finished."""


Event = Callable[[dict[str, Any]], None]
"""Receives each `say` and `step` line of the child, on the run's thread."""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env.setdefault("OMP_NUM_THREADS", str(background_thread_count()))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Importable from a source checkout that was never installed, too.
    project = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project, env.get("PYTHONPATH", "")) if p)
    return env


class TrainProcess:
    def __init__(
        self,
        workspace: Path,
        settings: Mapping[str, Any],
        options: Mapping[str, Any],
        log_dir: Path,
        on_event: Event = lambda _: None,
    ):
        self.workspace = workspace
        self.settings = dict(settings)
        self.options = dict(options)
        self.log_path = log_dir / LOG_NAME
        self.on_event = on_event
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = threading.Event()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def run(self) -> RunOutcome:
        """Start the child and wait for it; never raises for what happens inside it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        cmd = [
            sys.executable,
            "-m",
            "kenning.trainer.child",
            "--workspace",
            str(self.workspace),
            "--settings",
            json.dumps(self.settings),
            "--options",
            json.dumps(self.options),
        ]
        with open(
            os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w"
        ) as errlog:
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errlog,
                    text=True,
                    env=_child_env(),
                    start_new_session=True,
                )
            except OSError as exc:
                return RunOutcome("failed", f"could not start the training process: {exc}")
            if self._stopped.is_set():
                self.stop()
            final: dict[str, Any] | None = None
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                if "result" in msg or "error" in msg:
                    final = msg
                else:
                    self.on_event(msg)
            code = self._proc.wait()
            if self._proc.stdin:
                self._proc.stdin.close()
        return self._outcome(final, code)

    def _outcome(self, final: dict[str, Any] | None, code: int) -> RunOutcome:
        if final is not None and isinstance(final.get("result"), dict):
            result = final["result"]
            return RunOutcome(
                str(result.get("status", "failed")), str(result.get("reason", "")), result
            )
        if self._stopped.is_set():
            return RunOutcome(
                "stopped", "the server stopped during training; the next run resumes it"
            )
        if final is not None and "error" in final:
            status = "busy" if final.get("busy") else "failed"
            return RunOutcome(status, str(final["error"]))
        if code < 0:
            name = (
                signal.Signals(-code).name
                if -code in signal.Signals._value2member_map_
                else str(-code)
            )
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return RunOutcome(
                "failed", f"the training process was killed by {name}{hint}; see {self.log_path}"
            )
        return RunOutcome(
            "failed", f"the training process exited with code {code}; see {self.log_path}"
        )

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL); its resumable state is kept."""
        self._stopped.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.terminate()
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        except OSError:
            pass
