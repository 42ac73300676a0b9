"""Driving a real `kenning mcp` process from tests, through the MCP SDK's own stdio client.

`kenning_mcp(...)` launches the server on a workspace of real files with its
index in a temporary folder, connects (initialize), and closes the connection
afterwards, which ends the server. Waiting is for a polled condition with a
timeout.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

SETTLE_TIMEOUT_S = 150.0


@dataclass
class McpSession:
    client: Client
    workspace: Path
    index_dir: Path

    async def call(self, tool: str, arguments: dict[str, Any] | None = None) -> tuple[bool, str]:
        """(is_error, text) of one tool call."""
        result = await self.client.call_tool(tool, arguments or {})
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        return bool(result.is_error), text

    async def ok(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        is_error, text = await self.call(tool, arguments)
        assert not is_error, f"{tool}({arguments}) failed: {text}"
        return text

    async def settled(self, timeout: float = SETTLE_TIMEOUT_S) -> str:
        """index_status once the index is idle, complete and has every vector."""

        async def idle() -> str | None:
            text = await self.ok("index_status")
            done = "state: idle" in text and "waiting for a vector: 0," in text
            return text if done and "changes queued: 0" in text else None

        return await eventually(idle, what="the index to settle", timeout=timeout)

    def pid(self) -> int:
        """The server process: this test process's child running `kenning ... mcp`."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("PPid:"))
            if (
                ppid == os.getpid()
                and b"mcp" in cmdline
                and str(self.workspace).encode() in cmdline
            ):
                return int(entry.name)
        raise AssertionError("no kenning mcp child process found")


async def eventually(
    check: Callable[[], Awaitable[Any]], *, what: str, timeout: float = 30.0
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


def server_params(workspace: Path, index_dir: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "kenning.server.cli", "mcp", "--workspace", str(workspace), *extra],
        env={
            "KENNING_INDEX_DIR": str(index_dir),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        },
    )


@asynccontextmanager
async def kenning_mcp(workspace: Path, index_dir: Path, *extra: str) -> AsyncIterator[McpSession]:
    """A connected session. The client lives in a task of its own: anyio's cancel scopes
    must be left in the task that entered them, and pytest may finalise a fixture in
    another task than the one that set it up."""
    connected: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def hold() -> None:
        params = server_params(workspace, index_dir, *extra)
        try:
            async with Client(params, read_timeout_seconds=120) as client:
                connected.set_result(client)
                await done.wait()
        except BaseException as exc:
            if not connected.done():
                connected.set_exception(exc)
            raise

    task = asyncio.create_task(hold())
    try:
        yield McpSession(client=await connected, workspace=workspace, index_dir=index_dir)
    finally:
        done.set()
        await task
