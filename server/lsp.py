"""`kenning serve`: the language server (docs/protocol.md §2).

Thin handlers on a typed `KenningLanguageServer`. The event loop only reads
params, hands work to a thread and maps results to protocol types:

- each indexed workspace folder has a `WorkspaceService`
  (server/workspace_service.py): its index worker (one thread: the store has
  one writer) reads, embeds and writes, its watcher feeds a debounced change
  queue, and what it reports is forwarded by server/lsp_events.py as
  `$/progress` and `kenning/indexChanged`;
- several folders (a multi-root workspace) each get an index, a folder inside
  another shares the outer one's (server/folders.py); `kenning/search` merges
  their answers by score (server/lsp_answers.py);
- queries (`kenning/search`, `kenning/related`, `kenning/status`,
  `workspace/symbol`) run on a small thread pool, so they are answered while
  the workers are busy; opening and closing folders and applying changed
  settings (server/live_settings.py) run in order on one more thread;
- `kenning/feedback` (a result the user opened) is kept as a pick, off the loop.

Each `kenning/*` request in server/protocol.py's table has its handler in
`KENNING_HANDLERS`; the server refuses to start while one is missing.

Logs go to stderr and to the client's log (`window/logMessage`); stdout
carries the protocol only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from .database import StoreClosed
from .folders import Folder, FolderError, FolderMap, indexed_folders
from .live_settings import apply_settings
from .lsp_answers import (
    answer_related,
    answer_status,
    merge_search,
    search_one,
)
from .lsp_events import ClientListener, LspLogHandler, ProgressForwarder
from .models import ModelError
from .pools import started_pool
from .protocol import (
    HANDLED,
    KENNING_FEEDBACK,
    KENNING_REINDEX,
    KENNING_RELATED,
    KENNING_SEARCH,
    KENNING_STATUS,
    KENNING_TRAIN,
    FeedbackParams,
    KenningProtocol,
    ReindexParams,
    ReindexResponse,
    RelatedParams,
    RelatedResponse,
    SearchParams,
    SearchResponse,
    StatusParams,
    StatusResponse,
    TrainParams,
    TrainResponse,
    make_converter,
)
from .related import RelatedError
from .search import SearchError, SemanticUnavailable
from .settings import (
    SettingsError,
    drop_setting,
    load_settings,
    normalise_keys,
    options_for_workspace,
)
from .symbols import symbols_for
from .workspace_service import NotTheWriter, WorkspaceService
from .writer_lock import EDITOR

log = logging.getLogger(__name__)

VERSION = "0.1.0"
REQUEST_FAILED = -32803
"""LSP's RequestFailed: the request was valid but the server cannot answer it."""
SYMBOL_LIMIT = 50
T = TypeVar("T")


class KenningLanguageServer(LanguageServer):
    """The server and everything it holds for the workspace's folders."""

    def __init__(
        self, overrides: Mapping[str, Any] | None = None, workspace: str | Path | None = None
    ):
        # pygls reads stdin on its thread pool, one line or body at a time, and runs
        # nothing else there (no handler here is a `@thread()` one). With the default
        # max_workers (cores + 4) the pool grows under load for no use: the loop often
        # submits the next read before the worker that finished the last one has marked
        # itself idle, so another worker starts, and stays. One worker is all it needs.
        super().__init__(
            "kenning",
            VERSION,
            protocol_cls=KenningProtocol,
            converter_factory=make_converter,
            max_workers=1,
        )
        self.overrides: dict[str, Any] = dict(overrides or {})
        """Settings from the command line: above everything else."""
        self.default_root = Path(workspace).resolve() if workspace else None
        """`kenning serve --workspace DIR`: the workspace when the client names none."""
        self.init_options: Any = None
        self.client_settings: dict[str, Any] = {}
        """Settings the client sent since start, by folder URI; they replace its
        initializationOptions for that folder."""
        self.roots: FolderMap[WorkspaceService] = FolderMap()
        self.queries = started_pool(2, "kenning-query")
        """Searches and status: off the event loop, apart from the index workers."""
        self.admin = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kenning-folders")
        """Opening and closing folders and applying settings, one at a time, in order."""
        self.startup_error: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._changing: asyncio.Lock | None = None
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------

    def remember_workspace(self, params: types.InitializeParams) -> None:
        self.loop = asyncio.get_running_loop()
        named = [(f.uri, f.name) for f in params.workspace_folders or []]
        if not named:
            uri = params.root_uri or (from_fs_path(params.root_path) if params.root_path else None)
            named = [(uri, "")] if uri else []
        if not named and self.default_root is not None:
            named = [(from_fs_path(str(self.default_root)) or str(self.default_root), "")]
        self.roots.folders = [f for uri, name in named if (f := folder_of(uri, name))]
        self.init_options = params.initialization_options

    async def open_index(self) -> None:
        """Open every indexed folder's stored index (searchable at once), then start indexing
        and watching; a folder that cannot open is reported and the others still serve."""
        self.loop = asyncio.get_running_loop()
        self._ready = self._ready or asyncio.Event()
        self._changing = self._changing or asyncio.Lock()
        if not self.roots.folders:
            self.startup_error = (
                "Kenning cannot start: no workspace folder is open, so there is nothing to index"
            )
            self.show(self.startup_error, types.MessageType.Error)
        else:
            await self.open_folders(self.roots.indexed())
        self._ready.set()

    async def open_folders(self, folders: list[Folder]) -> None:
        loop = asyncio.get_running_loop()
        wants_progress = bool(
            getattr(getattr(self.client_capabilities, "window", None), "work_done_progress", False)
        )
        for folder in folders:
            listener = ClientListener(
                self, ProgressForwarder(self) if wants_progress else None, folder
            )
            try:
                service = await loop.run_in_executor(
                    self.admin, self._open_service, folder, listener
                )
                await loop.run_in_executor(self.admin, service.start)
            except Exception as exc:  # noqa: BLE001 - stay up and say why in every answer
                log.exception("cannot open the index of %s", folder.path)
                where = f" for {folder.name}" if len(self.roots.folders) > 1 else ""
                self.roots.failures[folder.uri] = f"Kenning cannot start{where}: {exc}"
                self.startup_error = self.roots.failures[folder.uri]
                self.show(self.startup_error, types.MessageType.Error)
                continue
            self.roots.failures.pop(folder.uri, None)
            self.roots.services[folder.uri] = service
            for warning in service.engine.store.warnings:
                self.show(f"Kenning: {warning}", types.MessageType.Warning)
            log.info("workspace %s, index %s", service.root, service.engine.index_dir)

    def _options_for(self, folder: Folder) -> tuple[dict[str, Any], str]:
        """The client's settings for `folder` and their name in messages; SettingsError
        when their shape is wrong."""
        if folder.uri in self.client_settings:
            raw = self.client_settings[folder.uri]
            return options_for_workspace(raw, folder.real), "client settings"
        return options_for_workspace(self.init_options, folder.real), "initializationOptions"

    def _open_service(self, folder: Folder, listener: ClientListener) -> WorkspaceService:
        """WorkspaceService.open with the client's settings; each bad one is reported and
        dropped alone, the rest apply."""
        try:
            options, source = self._options_for(folder)
            options = normalise_keys(options)
        except SettingsError as exc:
            self.show(
                f"Kenning: {exc}; using the other settings sources instead", types.MessageType.Error
            )
            options, source = {}, "initializationOptions"
        for _ in range(64):  # each pass drops one bad field of the client's settings
            try:
                load_settings(
                    folder.real, cli=self.overrides, init_options=options, client_source=source
                )
                break
            except SettingsError as exc:
                if exc.source != source or not exc.field:
                    raise
                self.show(f"Kenning: {exc}; ignoring that setting", types.MessageType.Error)
                drop_setting(options, exc.field)
        return WorkspaceService.open(
            folder.path, self.overrides, listener=listener, role=EDITOR, init_options=options
        )

    def stop_indexing(self) -> None:
        """Finish each folder's batch in flight, save the vector snapshots, close. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        services = list(self.roots.services.values())
        self.roots.services.clear()
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            list(pool.map(WorkspaceService.stop, services))
        self.queries.shutdown(wait=False, cancel_futures=True)
        self.admin.shutdown(wait=False, cancel_futures=True)

    # -- workspace folders and settings, changed while running ----------------------------

    async def change_folders(self, added: list[Folder], removed: set[str]) -> None:
        """Follow `workspace/didChangeWorkspaceFolders`: stop the indexes no longer wanted
        (each finishes its batch in flight), then open the new ones."""
        await self.ready_wait()
        assert self._changing is not None
        async with self._changing:
            before = {f.uri for f in self.roots.indexed()}
            known = {f.uri for f in self.roots.folders}
            folders = [f for f in self.roots.folders if f.uri not in removed]
            folders += [f for f in added if f.uri not in known]
            now = indexed_folders(folders)
            # A closing folder stays listed (state `stopping`) until its index is closed.
            for uri in before - {f.uri for f in now}:
                service = self.roots.services.pop(uri, None)
                self.roots.failures.pop(uri, None)
                if service is not None:
                    log.info("closing the index of %s", service.root)
                    self.roots.closing.add(uri)
                    try:
                        await asyncio.get_running_loop().run_in_executor(self.admin, service.stop)
                    finally:
                        self.roots.closing.discard(uri)
            self.roots.folders = folders
            await self.open_folders([f for f in now if f.uri not in before])

    async def settings_changed(self, pushed: Any) -> None:
        """Follow `workspace/didChangeConfiguration`: pull each folder's settings when the
        client can answer `workspace/configuration`, else take the pushed ones, and apply."""
        await self.ready_wait()
        assert self._changing is not None
        async with self._changing:
            running = self.roots.running()
            pulled = await self._pull_settings([f for f, _ in running])
            reopen = []
            for i, (folder, service) in enumerate(running):
                raw = pulled[i] if pulled is not None else pushed
                if raw is None:
                    continue  # nothing sent for this folder: its settings stay
                self.client_settings[folder.uri] = raw
                loop = asyncio.get_running_loop()
                if await loop.run_in_executor(self.admin, self._apply_settings, folder, service):
                    reopen.append(folder)
            for folder in reopen:
                service = self.roots.services.pop(folder.uri)
                await asyncio.get_running_loop().run_in_executor(self.admin, service.stop)
                await self.open_folders([folder])

    async def _pull_settings(self, folders: list[Folder]) -> list[Any] | None:
        can_pull = getattr(
            getattr(self.client_capabilities, "workspace", None), "configuration", None
        )
        if not can_pull or not folders:
            return None
        items = [types.ConfigurationItem(scope_uri=f.uri, section="kenning") for f in folders]
        try:
            answer = await self.workspace_configuration_async(
                types.ConfigurationParams(items=items)
            )
        except Exception as exc:  # noqa: BLE001 - a client that cannot answer pushes instead
            log.info("workspace/configuration failed (%s); using the pushed settings", exc)
            return None
        # One answer per item; lsprotocol structures the list as a tuple.
        if isinstance(answer, (list, tuple)) and len(answer) == len(folders):
            return list(answer)
        log.info("workspace/configuration answered %r; using the pushed settings", answer)
        return None

    def _apply_settings(self, folder: Folder, service: WorkspaceService) -> bool:
        """Apply the client's new settings to one folder (on the admin thread); True when
        its index must be reopened elsewhere. Bad settings: one message, nothing changes."""
        try:
            options, source = self._options_for(folder)
            settings = load_settings(
                service.root, cli=self.overrides, init_options=options, client_source=source
            )
            change = apply_settings(service, settings)
        except (SettingsError, ModelError) as exc:
            self.show(f"Kenning: {exc}; keeping the previous settings", types.MessageType.Error)
            return False
        message = change.message(folder.name, service.writing)
        if message:
            self.show(message)
        return change.reopen

    # -- helpers for handlers --------------------------------------------------------------

    async def ready_wait(self) -> None:
        self._ready = self._ready or asyncio.Event()
        await self._ready.wait()

    async def ready(self) -> FolderMap[WorkspaceService]:
        """The workspace once `initialized` has opened it; -32803 when no folder could open."""
        await self.ready_wait()
        if not self.roots.running():
            message = self.startup_error or "Kenning is not running"
            raise JsonRpcException(message, code=REQUEST_FAILED)
        return self.roots

    async def run_query(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the query pool; what it raises becomes the matching LSP error."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.queries, functools.partial(fn, *args, **kwargs))
        except StoreClosed as exc:
            raise FolderClosed(
                f"{exc}: its folder was removed or the server is stopping", code=REQUEST_FAILED
            ) from exc
        except SearchError as exc:
            raise JsonRpcInvalidParams(f"Invalid params: {exc}") from exc
        except RelatedError as exc:
            if exc.retry:
                raise JsonRpcException(str(exc), code=REQUEST_FAILED) from exc
            raise JsonRpcInvalidParams(f"Invalid params: {exc}") from exc
        except (SemanticUnavailable, NotTheWriter) as exc:
            raise JsonRpcException(str(exc), code=REQUEST_FAILED) from exc

    def locate(self, uri_or_path: str) -> tuple[Folder, WorkspaceService, str] | None:
        """The indexed folder, its service and the relative path of a file:// URI or a path
        (relative paths are relative to the first folder); None outside every folder."""
        raw = to_fs_path(uri_or_path) if uri_or_path.startswith("file:") else uri_or_path
        running = self.roots.running()
        if raw is None or not running:
            return None
        if not os.path.isabs(raw):
            folder, service = running[0]
        else:
            found = self.roots.route(Path(raw))
            if found is None:
                return None
            folder, service = found
        rel = service.relative_path(raw)
        return (folder, service, rel) if rel is not None else None

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


def folder_of(uri: str, name: str = "") -> Folder | None:
    """A workspace folder from the client's URI; None when it is not a local folder."""
    path = to_fs_path(uri) if uri.startswith("file:") else uri
    if not path:
        return None
    norm = Path(os.path.normpath(path))
    return Folder(name=name or norm.name or str(norm), uri=uri, path=norm)


# -- handlers ----------------------------------------------------------------------------


def on_initialize(ls: KenningLanguageServer, params: types.InitializeParams) -> None:
    ls.remember_workspace(params)


async def on_initialized(ls: KenningLanguageServer, params: types.InitializedParams) -> None:
    await ls.open_index()


async def on_shutdown(ls: KenningLanguageServer, params: None) -> None:
    await asyncio.get_running_loop().run_in_executor(None, ls.stop_indexing)


def on_did_save(ls: KenningLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    found = ls.locate(params.text_document.uri)
    if found is not None:  # a reader passes it on over a socket: off the event loop
        ls.queries.submit(found[1].changed, [found[2]], urgent=True)


def on_did_open(ls: KenningLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    found = ls.locate(params.text_document.uri)
    if found is not None:  # embedded first while vectors are missing
        found[1].engine.indexer.open_files.add(found[2])


def on_did_close(ls: KenningLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    found = ls.locate(params.text_document.uri)
    if found is not None:
        found[1].engine.indexer.open_files.discard(found[2])


def on_watched_files(ls: KenningLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
    by_service: dict[int, tuple[WorkspaceService, list[str]]] = {}
    for change in params.changes:
        found = ls.locate(change.uri)
        if found is not None:
            by_service.setdefault(id(found[1]), (found[1], []))[1].append(found[2])
    for service, rels in by_service.values():
        ls.queries.submit(service.changed, rels)  # a reader passes them on over a socket


async def on_folders_changed(
    ls: KenningLanguageServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    added = [f for w in params.event.added if (f := folder_of(w.uri, w.name))]
    await ls.change_folders(added, {w.uri for w in params.event.removed})


async def on_configuration_changed(
    ls: KenningLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    await ls.settings_changed(params.settings)


class FolderClosed(JsonRpcException):
    """A folder's index closed while a request read it: the folder was removed, or the
    server is stopping."""


async def each_open_folder(calls: Iterable[Awaitable[T]]) -> list[T | None]:
    """Every folder's answer, None for one whose index closed while the request read it
    (its folder was removed meanwhile): the others still answer. FolderClosed when
    every folder's did; any other error as it came."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    answers: list[T | None] = []
    closed: FolderClosed | None = None
    for outcome in outcomes:
        if isinstance(outcome, FolderClosed):
            closed = closed or outcome
            answers.append(None)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            answers.append(outcome)
    if closed is not None and all(a is None for a in answers):
        raise closed
    return answers


async def on_search(ls: KenningLanguageServer, params: SearchParams) -> SearchResponse:
    folders = await ls.ready()
    try:
        targets = folders.targets(params.folders)
    except FolderError as exc:
        raise JsonRpcInvalidParams(f"Invalid params: params.folders: {exc}") from exc
    outcomes = await each_open_folder(ls.run_query(search_one, t, params) for t in targets)
    answered = [(t, o) for t, o in zip(targets, outcomes, strict=True) if o is not None]
    return merge_search(
        [t for t, _ in answered], [o for _, o in answered], params.limit, params.explain
    )


async def on_related(ls: KenningLanguageServer, params: RelatedParams) -> RelatedResponse:
    await ls.ready()
    found = ls.locate(params.uri)
    if found is None:
        roots = ", ".join(str(f.path) for f in ls.roots.folders)
        raise JsonRpcInvalidParams(
            f"Invalid params: params.uri is not a file inside the workspace ({roots})"
        )
    folder, service, rel = found
    outcome = await ls.run_query(
        service.related, rel, params.position.line + 1, limit=params.limit, paths=params.paths
    )
    return answer_related(folder, outcome)


async def on_status(ls: KenningLanguageServer, params: StatusParams) -> StatusResponse:
    folders = await ls.ready()
    running = folders.running()
    statuses = await each_open_folder(ls.run_query(s.status) for _, s in running)
    answered = {f.uri: st for (f, _), st in zip(running, statuses, strict=True) if st is not None}
    return answer_status(folders, answered)


async def on_reindex(ls: KenningLanguageServer, params: ReindexParams) -> ReindexResponse:
    folders = await ls.ready()
    if params.paths is None:
        counts = [ls.run_query(s.reindex, None) for _, s in folders.running()]
        outcomes = await asyncio.gather(*counts, return_exceptions=True)
        queued = [n for n in outcomes if isinstance(n, int)]
        if not queued:
            raise next(e for e in outcomes if isinstance(e, BaseException))
        return ReindexResponse(queued=sum(queued))
    by_service: dict[int, tuple[WorkspaceService, list[str]]] = {}
    for i, raw in enumerate(params.paths):
        found = ls.locate(raw)
        if found is None:
            roots = ", ".join(str(f.path) for f in folders.folders)
            raise JsonRpcInvalidParams(
                f"Invalid params: params.paths[{i}] is not inside the workspace {roots}"
            )
        by_service.setdefault(id(found[1]), (found[1], []))[1].append(found[2])
    total = 0
    for service, rels in by_service.values():
        total += await ls.run_query(service.reindex, rels)
    return ReindexResponse(queued=total)


async def on_train(ls: KenningLanguageServer, params: TrainParams) -> TrainResponse:
    folders = await ls.ready()
    if params.folder is None:
        service = folders.running()[0][1]
    else:
        try:
            home = folders.home(folders.find(params.folder))
        except FolderError as exc:
            raise JsonRpcInvalidParams(f"Invalid params: params.folder: {exc}") from exc
        service = folders.services.get(home.uri) or folders.running()[0][1]
    started, reason = service.train(params.force)
    return TrainResponse(started=started, reason=reason)


async def on_feedback(ls: KenningLanguageServer, params: FeedbackParams) -> None:
    """Keep an opened result as a pick, in the index of the folder it lies in. A
    notification has no answer: what cannot be kept is logged (never the query) and dropped."""
    try:
        await ls.ready()
    except JsonRpcException:
        log.info("kenning/feedback dropped: Kenning is not running")
        return
    found = ls.locate(params.uri)
    if found is None:
        log.warning("kenning/feedback dropped: %s is not inside the workspace", params.uri)
        return
    _, service, rel = found
    engine = service.engine
    if not engine.settings.learn_from_picks:
        log.debug("kenning/feedback ignored: learn_from_picks is false")
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
    answer = await on_search(ls, SearchParams(query=params.query, limit=SYMBOL_LIMIT))
    return symbols_for(answer.results)


KENNING_HANDLERS: dict[str, Callable[..., Any]] = {
    KENNING_SEARCH: on_search,
    KENNING_STATUS: on_status,
    KENNING_REINDEX: on_reindex,
    KENNING_TRAIN: on_train,
    KENNING_FEEDBACK: on_feedback,
    KENNING_RELATED: on_related,
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
        (types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS, on_folders_changed, None),
        (types.WORKSPACE_DID_CHANGE_CONFIGURATION, on_configuration_changed, None),
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
