"""Driving a real `kenning serve` process from tests, through pytest-lsp's client.

`kenning_server(...)` starts the server on a workspace of real files, with its
index in a temporary folder (never the user's cache), initializes it with the
recorded capabilities of a real editor, and shuts it down cleanly afterwards.
Waiting is always for a notification or a polled condition, with a timeout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

SERVER_COMMAND = [sys.executable, "-m", "kenning.server.cli", "serve"]
DATA = Path(__file__).resolve().parents[1] / "data" / "lsp"
SETTLE_TIMEOUT_S = 150.0
"""The first index loads the model (seconds, more on a busy CI machine) and embeds."""
CHANGE_TIMEOUT_S = 30.0

T = TypeVar("T")


def copy_workspace(dest: Path, name: str = "workspace") -> Path:
    """A fresh copy of tests/data/lsp/<name>, so tests may edit it freely."""
    shutil.copytree(DATA / name, dest)
    return dest


@dataclass
class Session:
    """One running server, its workspace and what it has told us."""

    client: LanguageClient
    workspace: Path
    index_dir: Path
    index_changes: list[Any] = field(default_factory=list)
    """Every `kenning/indexChanged` notification received, in order."""

    def uri(self, rel: str) -> str:
        return from_fs_path(str(self.workspace / rel))

    async def request(self, method: str, params: Any = None) -> Any:
        return await self.client.protocol.send_request_async(method, params)

    async def raw_request(self, method: str, params: Any) -> Any:
        """Send `params` exactly as given, even where the client's own types would
        refuse them (a number for workspace/symbol's query): how a buggy client behaves."""
        protocol = self.client.protocol
        msg_id = f"raw-{uuid.uuid4().hex}"
        future: Future[Any] = Future()
        protocol._request_futures[msg_id] = future
        protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return await asyncio.wrap_future(future)

    async def search(self, query: str, **options: Any) -> Any:
        return await self.request("kenning/search", {"query": query, **options})

    async def status(self) -> Any:
        return await self.request("kenning/status", {})

    async def eventually(
        self,
        check: Callable[[], Awaitable[T | None] | T | None],
        *,
        what: str,
        timeout: float = CHANGE_TIMEOUT_S,
    ) -> T:
        """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.1)

    async def settled(self, timeout: float = SETTLE_TIMEOUT_S) -> Any:
        """The status once the server is idle with nothing queued and every vector embedded,
        in every workspace folder."""

        def done(s: Any) -> bool:
            return s.state == "idle" and s.queued == 0 and s.pending == 0

        async def idle() -> Any:
            status = await self.status()
            folders = getattr(status, "folders", None) or []
            return status if done(status) and all(done(f) for f in folders) else None

        return await self.eventually(idle, what="the index to settle", timeout=timeout)

    async def save(self, rel: str, text: str) -> None:
        """What an editor does on save: write the file, then send didSave."""
        (self.workspace / rel).write_text(text)
        self.client.text_document_did_save(
            types.DidSaveTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri(rel))
            )
        )


def rss_kib(pid: int) -> int:
    """Resident memory of a process (Linux /proc), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def paths(answer: Any) -> list[str]:
    return [hit.path for hit in answer.results]


def init_options(shape: str, workspace: Path, settings: dict[str, Any]) -> Any:
    """Settings as a client sends them: one dict (Neovim) or a per-folder list (VS Code)."""
    if shape == "dict":
        return settings
    return [{"workspace": from_fs_path(str(workspace)), **settings}]


@asynccontextmanager
async def kenning_server(
    workspace: Path,
    index_dir: Path,
    *,
    editor: str = "visual-studio-code",
    options: Any = None,
    env: dict[str, str] | None = None,
    folders: list[Path] | None = None,
    capabilities: types.ClientCapabilities | None = None,
) -> AsyncIterator[Session]:
    """A started and initialized server; shut down (shutdown + exit) on leaving.

    The index lives in `index_dir` through `KENNING_INDEX_DIR` unless `options` or
    `env` say otherwise. `folders` are the workspace folders (default: `workspace`
    alone); `capabilities` replace the recorded editor's.
    """
    client = make_test_lsp_client()
    session = Session(client=client, workspace=workspace, index_dir=index_dir)

    @client.feature("kenning/indexChanged")
    def record_index_changed(ls: LanguageClient, params: Any) -> None:
        session.index_changes.append(params)

    server_env = {**os.environ, "KENNING_INDEX_DIR": str(index_dir), **(env or {})}
    await client.start_io(*SERVER_COMMAND, env=server_env)
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities or client_capabilities(editor),
                root_uri=session.uri(""),
                workspace_folders=[
                    types.WorkspaceFolder(uri=from_fs_path(str(f)), name=f.name)
                    for f in (folders or [workspace])
                ],
                initialization_options=options,
            )
        )
        yield session
        if client._server is not None and client._server.returncode is None:
            await client.shutdown_session()  # not when the test killed the server on purpose
    finally:
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()  # the test failed before a clean shutdown: do not wait on it
        await client.stop()


class SearchLoop:
    """Searches back to back (semantic and hybrid in turn) until stopped, recording every
    answer with the time it arrived, and every error."""

    def __init__(self, session: Session, query: str, pause_s: float = 0.02):
        self.session = session
        self.query = query
        self.pause_s = pause_s
        self.timed: list[tuple[float, Any]] = []
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def answers(self) -> list[Any]:
        return [answer for _, answer in self.timed]

    async def _run(self) -> None:
        modes = ("semantic", "hybrid")
        i = 0
        while not self._stop.is_set():
            try:
                answer = await self.session.search(self.query, mode=modes[i % 2], limit=5)
                self.timed.append((time.time(), answer))
            except Exception as exc:  # noqa: BLE001 - the test reports every failure
                self.errors.append(f"{type(exc).__name__}: {exc}")
            i += 1
            await asyncio.sleep(self.pause_s)

    async def stop(self) -> None:
        self._stop.set()
        await self._task
