"""A retraining run for the daemon, in a process of its own: `python -m kenning.trainer.child`.

The daemon starts this at low priority so that an out-of-memory kill or a
crash in training never takes the language server down. It speaks JSON
lines on stdout, one object each:

    {"say": "mined 812 pairs ..."}        a phase, as `kenning train` prints it
    {"step": 12, "of": 60}                an optimizer step finished
    {"result": {...}}                     the TrainResult; always the last line
    {"error": "...", "busy": false}       the run could not happen at all

Everything else (library warnings, tracebacks) goes to stderr, which the
daemon keeps in a log file. The daemon holds this process's stdin open and
never writes to it: end of file means the daemon is gone, and the run stops
at once (its resumable state is kept, as with Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

NICENESS = 10


def _emit(out: TextIO, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def _exit_when_parent_goes(stdin: TextIO) -> None:
    def watch() -> None:
        stdin.read()
        os._exit(3)  # the daemon died: nobody is left to hear the result

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _step_reporter(out: TextIO):
    from transformers import TrainerCallback

    class StepReporter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - transformers' signature
            _emit(out, {"step": state.global_step, "of": state.max_steps})

    return StepReporter()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kenning.trainer.child")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--settings", required=True, help="the daemon's settings, as JSON")
    parser.add_argument("--options", default="{}", help="TrainOptions fields, as JSON")
    args = parser.parse_args(argv)

    # The protocol gets a private copy of stdout; fd 1 then points at stderr so
    # that a stray print from any library cannot corrupt it.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="kenning-train: %(levelname)s %(message)s"
    )
    try:
        os.nice(NICENESS)
    except OSError:
        pass  # already at the lowest priority allowed
    _exit_when_parent_goes(sys.stdin)

    from kenning.server.settings import load_settings, resolve_workspace

    from .checkpoints import TrainingBusy
    from .options import TrainOptions
    from .run import train_workspace

    try:
        # The daemon sends only what differs from the workspace's train.* settings
        # (which parts to train).
        settings = json.loads(args.settings)
        train = load_settings(resolve_workspace(args.workspace), cli=settings).train
        options = TrainOptions.from_settings(train, **json.loads(args.options))
        result = train_workspace(
            args.workspace,
            settings,
            options,
            say=lambda line: _emit(out, {"say": line}),
            callbacks=[_step_reporter(out)],
        )
    except TrainingBusy as exc:
        _emit(out, {"error": str(exc), "busy": True})
        return 1
    except Exception as exc:  # noqa: BLE001 - the daemon records it; the traceback goes to the log
        logging.exception("training failed")
        _emit(out, {"error": f"{type(exc).__name__}: {exc}".splitlines()[0], "busy": False})
        return 1
    _emit(out, {"result": result.to_json()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
