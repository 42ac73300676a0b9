"""Progress of long command-line work, on stderr only (stdout stays clean for `--json`).

On a terminal a tqdm bar redraws in place. Anywhere else (a pipe, a log, a
coding agent reading stderr) a bar would be noise, and silence reads as a
hang, so a short line is printed every few seconds instead, by a timer thread,
so that it keeps coming while one long batch (or the model's loading) runs:

    kenning: embedding 1,200/5,000 chunks (24%), 35.2/s, about 1m48s left

`--quiet` silences both.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

LINE_EVERY_S = 5.0
"""Seconds between progress lines when stderr is not a terminal."""

_LABELS = {"scan": ("reading", "files"), "embed": ("embedding", "chunks")}


class Progress:
    """`progress(phase, done, total)` for the indexer: a bar, periodic lines, or nothing."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        every_s: float = LINE_EVERY_S,
        clock=time.monotonic,
        ticker: bool = True,
    ):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s
        self.clock = clock
        self.bar: Any = None  # a tqdm bar on a terminal, created on the first report
        self.phase: str | None = None
        self._phase_start = 0.0
        self._last_line = 0.0
        self._state: tuple[str, int, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._use_ticker = ticker and not self.terminal and not quiet

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if phase != self.phase:
            self.close()
            self.phase = phase
            self._phase_start = self._last_line = self.clock()
        if self.terminal:
            self._draw_bar(phase, done, total)
            return
        with self._lock:
            self._state = (phase, done, total)
        if self._use_ticker and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="kenning-progress", daemon=True)
            self._ticker.start()
        self._print_if_due()

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s / 5):
            self._print_if_due()

    def _print_if_due(self) -> None:
        with self._lock:
            if self._state is None:
                return
            phase, done, total = self._state
            now = self.clock()
            if now - self._last_line < self.every_s or done >= total:
                return
            self._last_line = now
            print(f"kenning: {self.line(phase, done, total, now)}", file=self.stream, flush=True)

    def line(self, phase: str, done: int, total: int, now: float) -> str:
        verb, unit = _LABELS.get(phase, (phase, "items"))
        total = max(total, done)
        text = f"{verb} {done:,}/{total:,} {unit}"
        if total:
            text += f" ({100 * done // total}%)"
        elapsed = now - self._phase_start
        if done and elapsed > 0:
            rate = done / elapsed
            text += f", {rate:.1f}/s, about {_duration((total - done) / rate)} left"
        return text

    def stop(self) -> None:
        """End the timer thread (the command is done)."""
        self._stop.set()
        self.close()

    def _draw_bar(self, phase: str, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            verb, unit = _LABELS.get(phase, (phase, "items"))
            self.bar = tqdm(
                total=total, desc=verb, unit=unit.rstrip("s"), file=self.stream, leave=False
            )
        self.bar.total = max(total, done)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        with self._lock:
            self._state = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
