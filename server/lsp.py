"""`kenning serve`: the language server (docs/protocol.md §2).

Thin handlers on a typed `KenningLanguageServer`. The event loop only reads
params, hands work to a thread and maps results to protocol types:

- the index worker (server/worker.py, one thread: the store has one writer)
  reads, embeds and writes; it reports progress and landed batches, which
  server/lsp_events.py forwards as `$/progress` and `kenning/indexChanged`;
- queries (`kenning/search`, `kenning/status`, `workspace/symbol`) run on a
  small thread pool, so they are answered while the worker is busy;
- changes arrive from `didSave` (urgent), `workspace/didChangeWatchedFiles`
  and a watchdog observer, all into one debounced ChangeQueue;
- `kenning/feedback` (a result the user opened) is kept as a pick, off the loop.

Each `kenning/*` request in server/protocol.py's table has its handler in
`KENNING_HANDLERS`; the server refuses to start while one is missing.

Logs go to stderr and to the client's log (`window/logMessage`); stdout
carries the protocol only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from .answers import IndexView
from .answers import answer_search as answer_for
from .daemon import ServedIndex, claim_writer, handle
from .engine import Engine
from .lsp_events import ClientListener, LspLogHandler, ProgressForwarder
from .pools import started_pool
from .protocol import (
    HANDLED,
    KENNING_FEEDBACK,
    KENNING_REINDEX,
    KENNING_SEARCH,
    KENNING_STATUS,
    KENNING_TRAIN,
    FeedbackParams,
    KenningProtocol,
    ModelInfo,
    ReindexParams,
    ReindexResponse,
    SearchHit,
    SearchParams,
    SearchResponse,
    ServerState,
    StatusParams,
    StatusResponse,
    TrainParams,
    TrainResponse,
    make_converter,
)
from .scheduler import Scheduler
from .search import SearchError, SemanticUnavailable
from .settings import SettingsError, drop_setting, normalise_keys, options_for_workspace
from .socket_client import DaemonError, ask
from .socket_server import SocketServer
from .symbols import symbols_for
from .watcher import ChangeQueue, WorkspaceWatcher
from .worker import IndexWorker
from .writer_lock import EDITOR, Holder, WriterLock

log = logging.getLogger(__name__)

VERSION = "0.1.0"
REQUEST_FAILED = -32803
"""LSP's RequestFailed: the request was valid but the server cannot answer it."""
SYMBOL_LIMIT = 50
T = TypeVar("T")


class KenningLanguageServer(LanguageServer):
    """The server and everything it holds for one workspace."""

    def __init__(
        self, overrides: Mapping[str, Any] | None = None, workspace: str | Path | None = None
    ):
        super().__init__(
            "kenning", VERSION, protocol_cls=KenningProtocol, converter_factory=make_converter
        )
        self.overrides: dict[str, Any] = dict(overrides or {})
        """Settings from the command line: above everything else."""
        self.default_root = Path(workspace).resolve() if workspace else None
        """`kenning serve --workspace DIR`: the workspace when the client names none."""
        self.root: Path | None = None
        self.init_options: Any = None
        self.engine: Engine | None = None
        self.worker: IndexWorker | None = None
        self.scheduler: Scheduler | None = None
        self.watcher: WorkspaceWatcher | None = None
        self.changes = ChangeQueue()
        self.queries = started_pool(2, "kenning-query")
        """Searches and status: off the event loop, apart from the index worker."""
        self.startup_error: str | None = None
        self.writer: WriterLock | None = None
        self.socket: SocketServer | None = None
        self.reader_of: Holder | None = None
        """The server that keeps this index when this one only reads it (docs/design.md)."""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------

    def remember_workspace(self, params: types.InitializeParams) -> None:
        self.loop = asyncio.get_running_loop()
        folders = params.workspace_folders or []
        uri = folders[0].uri if folders else params.root_uri
        if uri is None and params.root_path:
            uri = from_fs_path(params.root_path)
        if uri:
            path = to_fs_path(uri)
            self.root = Path(os.path.normpath(path)) if path else None
        if self.root is None:
            self.root = self.default_root
        if len(folders) > 1:
            log.warning("Kenning indexes one folder per server; indexing %s only", self.root)
        self.init_options = params.initialization_options

    async def open_index(self) -> None:
        """Open the stored index (searchable at once), then start indexing and watching."""
        self.loop = asyncio.get_running_loop()
        self._ready = self._ready or asyncio.Event()
        try:
            if self.root is None:
                raise SettingsError("no workspace folder is open, so there is nothing to index")
            self.engine = await self.loop.run_in_executor(
                self.queries, self._open_engine, self.root
            )
        except Exception as exc:  # noqa: BLE001 - stay up and say why in every answer
            log.exception("cannot open the index")
            self.startup_error = f"Kenning cannot start: {exc}"
            self.show(self.startup_error, types.MessageType.Error)
            self._ready.set()
            return
        for warning in self.engine.store.warnings:
            self.show(f"Kenning: {warning}", types.MessageType.Warning)
        log.info("workspace %s, index %s", self.engine.root, self.engine.index_dir)
        engine = self.engine
        if not engine.store.read_only:
            self.writer = await self.loop.run_in_executor(
                self.queries, claim_writer, engine, EDITOR
            )
            if self.writer is None:
                self._serve_reads_only(engine)
                self._ready.set()
                return
        wants_progress = bool(
            getattr(getattr(self.client_capabilities, "window", None), "work_done_progress", False)
        )
        listener = ClientListener(self, ProgressForwarder(self) if wants_progress else None)
        self.worker = IndexWorker(self.engine, self.changes, listener)
        self.scheduler = Scheduler(self.engine, self.worker, listener)
        self.watcher = WorkspaceWatcher(
            self.engine.root, self.changes, ignore_dirs=[self.engine.index_dir]
        )
        self.worker.start()
        self.scheduler.start()
        try:
            self.watcher.start()
        except OSError as exc:  # e.g. out of inotify watches: saves still work
            log.warning("cannot watch the workspace for outside changes: %s", exc)
        if self.writer is not None:
            served = ServedIndex(engine, EDITOR, self.worker, self.changes)
            self.socket = SocketServer(engine.index_dir, lambda request: handle(served, request))
            try:
                self.socket.start()
            except OSError as exc:  # the command line then works in-process
                log.warning("cannot listen on %s: %s", self.socket.path, exc)
                self.socket = None
        self._ready.set()

    def _serve_reads_only(self, engine: Engine) -> None:
        """Another editor's server keeps this index: answer searches from it, forward
        saves and reindex requests to it, index nothing here."""
        self.reader_of = WriterLock(engine.index_dir).holder()
        pid = self.reader_of.pid if self.reader_of else "?"
        message = (
            f"another Kenning server (pid {pid}) keeps this index; this one answers "
            "searches from it and passes saves on"
        )
        engine.store.warnings.append(message)
        self.show(f"Kenning: {message}", types.MessageType.Info)
        engine.light_queries = True  # nothing is embedded here: queries need no torch
        gen = engine.serving_generation()
        if gen is not None:  # load the query model now rather than on the first search
            self.queries.submit(engine.query_encoder_for, gen)

    def forward(self, request: dict[str, Any]) -> Any:
        """Send a change to the server that keeps the index (reads-only mode)."""
        if self.engine is None:
            return None
        try:
            return ask(self.engine.index_dir, request)
        except DaemonError as exc:
            log.warning("the server that keeps this index refused %s: %s", request["op"], exc)
            return None

    def _open_engine(self, root: Path) -> Engine:
        """Engine.open with the client's options; bad options are reported and skipped."""
        try:
            options = normalise_keys(options_for_workspace(self.init_options, root))
        except SettingsError as exc:
            self.show(
                f"Kenning: {exc}; using the other settings sources instead", types.MessageType.Error
            )
            return Engine.open(root, self.overrides)
        for _ in range(64):  # each pass drops one bad field of the client's options
            try:
                return Engine.open(root, self.overrides, init_options=options)
            except SettingsError as exc:
                if exc.source != "initializationOptions" or not exc.field:
                    raise
                self.show(f"Kenning: {exc}; ignoring that setting", types.MessageType.Error)
                drop_setting(options, exc.field)
        return Engine.open(root, self.overrides)

    def stop_indexing(self) -> None:
        """Finish the batch in flight, save the vector snapshot and close the store. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self.socket is not None:
            self.socket.stop()
        self.changes.close()
        if self.worker is not None and not self.worker.stop():
            log.warning("the index worker did not stop in time; the unfinished batch is dropped")
        if self.engine is not None:
            self.engine.close()
        if self.writer is not None:
            self.writer.release()
        self.queries.shutdown(wait=False, cancel_futures=True)

    # -- helpers for handlers --------------------------------------------------------------

    async def ready_engine(self) -> Engine:
        """The open Engine, waiting for `initialized` to have opened it."""
        self._ready = self._ready or asyncio.Event()
        await self._ready.wait()
        if self.engine is None:
            raise JsonRpcException(
                self.startup_error or "Kenning is not running", code=REQUEST_FAILED
            )
        return self.engine

    async def run_query(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the query pool; a SearchError becomes InvalidParams."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.queries, fn, *args)
        except SearchError as exc:
            raise JsonRpcInvalidParams(f"Invalid params: {exc}") from exc

    @property
    def state(self) -> ServerState:
        if self.reader_of is not None:
            return "idle"  # the server that keeps the index tells its own state
        if self.worker is None:
            return "starting"
        if not self.worker.first_index_done.is_set():
            return "indexing"
        if self.worker.swapping or (
            self.scheduler is not None and self.scheduler.current is not None
        ):
            return "training"
        if self.changes.waiting():
            return "indexing"
        return "idle"

    def relative_path(self, uri_or_path: str) -> str | None:
        """Workspace-relative `/` path of a file:// URI or path; None if outside the workspace."""
        if self.engine is None:
            return None
        raw = to_fs_path(uri_or_path) if uri_or_path.startswith("file:") else uri_or_path
        if raw is None:
            return None
        if not os.path.isabs(raw):
            rel = PurePosixPath(raw.replace(os.sep, "/"))
            return None if ".." in rel.parts or rel.as_posix() == "." else rel.as_posix()
        path = Path(os.path.normpath(raw))
        # The client may name the root through a symlink (/tmp -> /private/tmp).
        for root in dict.fromkeys(r for r in (self.root, self.engine.root) if r is not None):
            if path.is_relative_to(root) and path != root:
                return path.relative_to(root).as_posix()
        return None

    def uri_for(self, rel: str) -> str:
        """The file:// URI of a workspace file, under the root as the client named it."""
        root = self.root or (self.engine.root if self.engine else Path("."))
        return from_fs_path(str(root / rel)) or ""

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        """window/showMessage from any thread."""
        self.call_soon(
            self.window_show_message, types.ShowMessageParams(type=kind, message=message)
        )

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """`fn(*args)` on the event loop, from any thread; dropped once the loop has closed."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop closed meanwhile: we are exiting

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Full detail to the log; a short message to the user, never for a request
        (its error response already says it)."""
        log.error("%s: %s", getattr(source, "__name__", source), error)
        if source is not FeatureRequestError:
            self.show(f"Kenning: {error}", types.MessageType.Error)


# -- answers (run on the query pool) -----------------------------------------------------


def answer_search(
    ls: KenningLanguageServer, engine: Engine, params: SearchParams
) -> SearchResponse:
    worker = ls.worker
    if ls.reader_of is not None:
        engine.store.follow_writer()  # vectors the other server committed since
        view = IndexView()
    else:
        view = IndexView(
            first_index_done=worker is not None and worker.first_index_done.is_set(),
            semantic_available=worker is None or worker.semantic_available,
        )
    try:
        outcome = answer_for(
            engine,
            params.query,
            limit=params.limit,
            mode=params.mode,
            paths=params.paths,
            view=view,
            explain=params.explain,
        )
    except SemanticUnavailable as exc:
        raise JsonRpcException(str(exc), code=REQUEST_FAILED) from exc
    hits = [
        SearchHit(
            uri=ls.uri_for(r.path),
            range=types.Range(
                start=types.Position(line=r.start_line - 1, character=0),
                end=types.Position(line=r.end_line, character=0),
            ),
            score=round(r.score, 4),
            snippet=r.snippet,
            path=r.path,
            symbol=r.symbol,
            language=r.language,
            kind=r.kind or None,
            explain=r.explanation,
        )
        for r in outcome.results
    ]
    return SearchResponse(
        results=hits,
        took_ms=round(outcome.took_ms, 2),
        model=outcome.model,
        generation=outcome.generation,
        partial=outcome.partial,
        notes=outcome.notes,
        adapter=outcome.adapter,
        weights=outcome.weights if params.explain else None,
    )


def answer_status(ls: KenningLanguageServer, engine: Engine) -> StatusResponse:
    status = engine.status()
    current = ls.scheduler.current if ls.scheduler else None
    name, _, version = status.model.partition("@")
    return StatusResponse(
        state=ls.state,
        files=status.files,
        chunks=status.chunks,
        pending=status.pending,
        model=ModelInfo(name=name, version=version or "base"),
        workspace=status.workspace,
        index_dir=status.index_dir,
        generation=status.generation,
        queued=ls.changes.waiting(),
        embedded_since_start=ls.worker.embedded if ls.worker else 0,
        index_bytes=status.index_bytes,
        warnings=status.warnings,
        last_training=status.training[-1] if status.training else None,
        training=current.to_json() if current else None,
        adapter=status.adapter,
        picks=status.picks,
    )


# -- handlers ----------------------------------------------------------------------------


def on_initialize(ls: KenningLanguageServer, params: types.InitializeParams) -> None:
    ls.remember_workspace(params)


async def on_initialized(ls: KenningLanguageServer, params: types.InitializedParams) -> None:
    await ls.open_index()


async def on_shutdown(ls: KenningLanguageServer, params: None) -> None:
    await asyncio.get_running_loop().run_in_executor(None, ls.stop_indexing)


def on_did_save(ls: KenningLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    rel = ls.relative_path(params.text_document.uri)
    if rel is not None and ls.reader_of is not None:
        ls.queries.submit(ls.forward, {"op": "reindex", "paths": [rel]})
    elif rel is not None:
        ls.changes.add(rel, urgent=True)


def on_did_open(ls: KenningLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    rel = ls.relative_path(params.text_document.uri)
    if rel is not None and ls.engine is not None:
        ls.engine.indexer.open_files.add(rel)  # embedded first while vectors are missing


def on_did_close(ls: KenningLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    rel = ls.relative_path(params.text_document.uri)
    if rel is not None and ls.engine is not None:
        ls.engine.indexer.open_files.discard(rel)


def on_watched_files(ls: KenningLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
    rels = [rel for change in params.changes if (rel := ls.relative_path(change.uri)) is not None]
    ls.changes.add_many(rels)


async def on_search(ls: KenningLanguageServer, params: SearchParams) -> SearchResponse:
    engine = await ls.ready_engine()
    return await ls.run_query(answer_search, ls, engine, params)


async def on_status(ls: KenningLanguageServer, params: StatusParams) -> StatusResponse:
    engine = await ls.ready_engine()
    return await ls.run_query(answer_status, ls, engine)


async def on_reindex(ls: KenningLanguageServer, params: ReindexParams) -> ReindexResponse:
    engine = await ls.ready_engine()
    if ls.reader_of is not None:
        request: dict[str, Any] = {"op": "reindex", "paths": None}
        if params.paths is not None:
            request["paths"] = [ls.relative_path(p) or p for p in params.paths]
        answer = await ls.run_query(ls.forward, request)
        return ReindexResponse(queued=answer["queued"] if answer else 0)
    if params.paths is None:
        ls.changes.request_rescan()
        files = await ls.run_query(lambda: engine.store.counts(None).files)
        return ReindexResponse(queued=files)
    rels = []
    for i, raw in enumerate(params.paths):
        rel = ls.relative_path(raw)
        if rel is None:
            raise JsonRpcInvalidParams(
                f"Invalid params: params.paths[{i}] is not inside the workspace {engine.root}"
            )
        rels.append(rel)
    ls.changes.add_many(rels, urgent=True)
    return ReindexResponse(queued=len(rels))


async def on_train(ls: KenningLanguageServer, params: TrainParams) -> TrainResponse:
    await ls.ready_engine()
    if ls.reader_of is not None:
        return TrainResponse(
            started=False,
            reason=f"another Kenning server (pid {ls.reader_of.pid}) keeps this index; "
            "ask that one, or run `kenning train`",
        )
    if ls.scheduler is None:
        raise JsonRpcException("Kenning is not running", code=REQUEST_FAILED)
    started, reason = ls.scheduler.request(params.force)
    return TrainResponse(started=started, reason=reason)


async def on_feedback(ls: KenningLanguageServer, params: FeedbackParams) -> None:
    """Keep an opened result as a pick. A notification has no answer: what cannot be
    kept is logged (never the query) and dropped."""
    try:
        engine = await ls.ready_engine()
    except JsonRpcException:
        log.info("kenning/feedback dropped: Kenning is not running")
        return
    if not engine.settings.learn_from_picks:
        log.debug("kenning/feedback ignored: learn_from_picks is false")
        return
    rel = ls.relative_path(params.uri)
    if rel is None:
        log.warning("kenning/feedback dropped: %s is not inside the workspace", params.uri)
        return
    start, end = params.range.start, params.range.end
    # LSP ranges are 0-based with an exclusive end (a result's range ends at the start
    # of the line after it); picks keep 1-based inclusive lines, as results do.
    last = end.line if end.character == 0 and end.line > start.line else end.line + 1
    why = await asyncio.get_running_loop().run_in_executor(
        ls.queries, engine.record_pick, rel, start.line + 1, last, params.query
    )
    if why:
        log.warning("kenning/feedback dropped: %s", why)


async def on_workspace_symbol(
    ls: KenningLanguageServer, params: types.WorkspaceSymbolParams
) -> list[types.WorkspaceSymbol]:
    if not params.query.strip():
        return []
    engine = await ls.ready_engine()
    answer = await ls.run_query(
        answer_search, ls, engine, SearchParams(query=params.query, limit=SYMBOL_LIMIT)
    )
    return symbols_for(answer.results)


KENNING_HANDLERS: dict[str, Callable[..., Any]] = {
    KENNING_SEARCH: on_search,
    KENNING_STATUS: on_status,
    KENNING_REINDEX: on_reindex,
    KENNING_TRAIN: on_train,
    KENNING_FEEDBACK: on_feedback,
}


def kenning_features(
    handlers: Mapping[str, Callable[..., Any]],
) -> list[tuple[str, Callable[..., Any]]]:
    """Each request and client notification of protocol.py's table with its handler;
    raises if the two disagree."""
    missing = [name for name in HANDLED if name not in handlers]
    unknown = [name for name in handlers if name not in HANDLED]
    if missing or unknown:
        raise RuntimeError(
            f"requests without a handler in lsp.py: {', '.join(missing) or 'none'}; "
            f"handlers without a row in protocol.py's METHODS: {', '.join(unknown) or 'none'}"
        )
    return [(name, handlers[name]) for name in HANDLED]


def build_server(
    overrides: Mapping[str, Any] | None = None, workspace: str | Path | None = None
) -> KenningLanguageServer:
    """A server with every feature registered; `overrides` are settings from the command line."""
    ls = KenningLanguageServer(overrides, workspace)
    features: list[tuple[str, Callable[..., Any], Any]] = [
        (types.INITIALIZE, on_initialize, None),
        (types.INITIALIZED, on_initialized, None),
        (types.SHUTDOWN, on_shutdown, None),
        (types.TEXT_DOCUMENT_DID_SAVE, on_did_save, types.SaveOptions(include_text=False)),
        (types.TEXT_DOCUMENT_DID_OPEN, on_did_open, None),
        (types.TEXT_DOCUMENT_DID_CLOSE, on_did_close, None),
        (types.WORKSPACE_DID_CHANGE_WATCHED_FILES, on_watched_files, None),
        (types.WORKSPACE_SYMBOL, on_workspace_symbol, None),
    ]
    features += [(name, handler, None) for name, handler in kenning_features(KENNING_HANDLERS)]
    for method, handler, options in features:
        ls.feature(method, options)(handler)
    return ls


def serve(
    overrides: Mapping[str, Any] | None = None,
    *,
    tcp: tuple[str, int] | None = None,
    verbose: bool = False,
    workspace: str | Path | None = None,
) -> None:
    """Run the language server until the client exits (stdio unless `tcp` is given)."""
    ls = build_server(overrides, workspace)
    kenning_log = logging.getLogger("kenning")
    kenning_log.setLevel(logging.DEBUG if verbose else logging.INFO)
    kenning_log.addHandler(LspLogHandler(ls))
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="kenning: %(levelname)s %(message)s")
    # The client's log already gets INFO through window/logMessage; editors file
    # every stderr line as an error, so stderr carries only warnings and worse.
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        if tcp is not None:
            ls.start_tcp(*tcp)
        else:
            stdin, stdout = _protocol_streams()
            ls.start_io(stdin, stdout)
    finally:
        ls.stop_indexing()


def _protocol_streams() -> tuple[Any, Any]:
    """stdin and a private duplicate of stdout for the protocol; file descriptor 1
    itself then points at stderr, so a stray print (ours or a library's, from
    Python or C) lands in the log instead of corrupting the JSON-RPC stream."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    return sys.stdin.buffer, os.fdopen(protocol_fd, "wb")
