"""`kenning serve --tcp HOST:PORT` speaks the same protocol over a socket."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest
from kenning_client import SERVER_COMMAND, copy_workspace
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import client_capabilities
from pytest_lsp.client import make_test_lsp_client

pytestmark = pytest.mark.asyncio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def connect(client, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.start_tcp("127.0.0.1", port)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_serve_over_tcp_answers_and_exits_cleanly(tmp_path: Path):
    workspace = copy_workspace(tmp_path / "workspace")
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *SERVER_COMMAND,
        "--tcp",
        f"127.0.0.1:{port}",
        env={**os.environ, "KENNING_INDEX_DIR": str(tmp_path / "index")},
    )
    client = make_test_lsp_client()
    try:
        await connect(client, port)
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri=from_fs_path(str(workspace)),
            )
        )

        status = await client.protocol.send_request_async("kenning/status", {})
        assert status.workspace == str(workspace)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the lexical pass lands within moments
            answer = await client.protocol.send_request_async(
                "kenning/search", {"query": "compute_invoice_total", "mode": "lexical"}
            )
            if answer.results:
                break
            await asyncio.sleep(0.1)
        assert answer.results[0].path == "billing/invoices.py"
        await client.shutdown_async(None)
        client.exit(None)
        assert await asyncio.wait_for(server.wait(), timeout=60) == 0
    finally:
        if server.returncode is None:
            server.kill()
        await client.stop()
