"""What the language server tells the client unasked, from any thread.

The index worker, the retraining scheduler and the logging module run on
their own threads; the LSP connection belongs to the event loop. These
classes take their reports and hand each message to the loop:

- `ProgressForwarder`: `$/progress` bars (begin / report / end), in order;
- `ClientListener`: the worker's and the scheduler's listener (progress,
  `kenning/indexChanged` after each batch, problems shown to the user);
- `LspLogHandler`: Kenning's log records as `window/logMessage`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types

from .protocol import KENNING_INDEX_CHANGED, IndexChanged
from .train_process import RunOutcome
from .worker import IndexCounts

if TYPE_CHECKING:
    from .folders import Folder
    from .lsp import KenningLanguageServer

log = logging.getLogger(__name__)


class ProgressForwarder:
    """Progress as `$/progress` (begin / report / end), in order, from any thread.

    Each stream (indexing, training) has its own token, so a retraining's
    progress bar and an indexing one can be shown at once.
    """

    def __init__(self, ls: KenningLanguageServer):
        self.ls = ls
        self._queue: asyncio.Queue[tuple[str, str, str, str, int | None]] = asyncio.Queue()
        self._tokens: dict[str, str] = {}
        self._task = asyncio.get_running_loop().create_task(self._pump())

    def post(
        self,
        kind: str,
        title: str = "",
        message: str = "",
        percentage: int | None = None,
        *,
        stream: str = "index",
    ) -> None:
        self.ls.call_soon(self._queue.put_nowait, (stream, kind, title, message, percentage))

    async def _pump(self) -> None:
        progress = self.ls.work_done_progress
        while True:
            stream, kind, title, message, percentage = await self._queue.get()
            token = self._tokens.get(stream)
            if kind == "begin":
                if token is not None:  # a new phase replaces an unfinished one
                    progress.end(token, types.WorkDoneProgressEnd())
                    del self._tokens[stream]
                token = f"kenning-{stream}-{uuid.uuid4().hex[:8]}"
                try:
                    await progress.create_async(token)
                except Exception as exc:  # noqa: BLE001 - the client refused: no progress bar
                    log.debug("client refused a progress token: %s", exc)
                    continue
                self._tokens[stream] = token
                progress.begin(
                    token,
                    types.WorkDoneProgressBegin(
                        title=title, message=message, percentage=0, cancellable=False
                    ),
                )
            elif token is None:
                continue
            elif kind == "report":
                progress.report(
                    token, types.WorkDoneProgressReport(message=message, percentage=percentage)
                )
            else:
                progress.end(token, types.WorkDoneProgressEnd(message=message))
                del self._tokens[stream]


class ClientListener:
    """What one workspace folder's index worker and scheduler report, forwarded to the
    client (called on their threads); progress goes nowhere when the client shows none
    (`progress` None). With several folders open, titles name the folder."""

    def __init__(
        self, ls: KenningLanguageServer, progress: ProgressForwarder | None, folder: Folder
    ):
        self.ls = ls
        self.progress = progress
        self.folder = folder

    def _title(self, title: str) -> str:
        return f"{title} ({self.folder.name})" if len(self.ls.roots.folders) > 1 else title

    def progress_begin(self, title: str, message: str) -> None:
        if self.progress:
            self.progress.post("begin", self._title(title), message)

    def progress_report(self, message: str, percentage: int) -> None:
        if self.progress:
            self.progress.post("report", message=message, percentage=percentage)

    def progress_end(self, message: str) -> None:
        if self.progress:
            self.progress.post("end", message=message)

    def index_changed(self, counts: IndexCounts) -> None:
        params = IndexChanged(
            generation=counts.generation,
            files=counts.files,
            chunks=counts.chunks,
            partial=counts.partial,
            folder=self.folder.uri,
        )
        self.ls.call_soon(self.ls.protocol.notify, KENNING_INDEX_CHANGED, params)

    def problem(self, message: str) -> None:
        self.ls.show(message, types.MessageType.Error)

    # -- the scheduler's side ---------------------------------------------------------

    def training_progress(self, kind: str, message: str, percentage: int | None) -> None:
        if self.progress:
            title = self._title("Kenning: training on this workspace") if kind == "begin" else ""
            self.progress.post(kind, title, message, percentage, stream="train")

    def training_finished(self, outcome: RunOutcome) -> None:
        if outcome.status == "failed":
            self.ls.show(f"Kenning: retraining failed: {outcome.reason}", types.MessageType.Warning)


class LspLogHandler(logging.Handler):
    """Kenning's log records as `window/logMessage`, from any thread."""

    _TYPES = (
        (logging.ERROR, types.MessageType.Error),
        (logging.WARNING, types.MessageType.Warning),
        (logging.INFO, types.MessageType.Info),
    )

    def __init__(self, ls: KenningLanguageServer, level: int = logging.INFO):
        super().__init__(level)
        self.ls = ls
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        kind = next(
            (t for level, t in self._TYPES if record.levelno >= level), types.MessageType.Log
        )
        try:
            message = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never raise
            return
        self.ls.call_soon(
            self.ls.window_log_message, types.LogMessageParams(type=kind, message=message)
        )
