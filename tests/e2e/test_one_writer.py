"""One writer per index: a language server and an MCP server on one workspace share
its index. Whoever starts first writes; the other answers from the index as the
writer fills it, refuses what only the writer may do (saying who that is), and
takes over the writing when the writer exits.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack

from kenning.server.writer_lock import EDITOR, WriterLock
from kenning_client import copy_workspace, kenning_server
from mcp_session import eventually, kenning_mcp

NEW_CODE = '''

def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 32
'''


async def test_an_mcp_server_reads_beside_a_language_server_and_takes_over(tmp_path):
    workspace = copy_workspace(tmp_path / "workspace")
    index_dir = tmp_path / "index"
    async with AsyncExitStack() as stack:
        lsp_running = AsyncExitStack()
        await stack.enter_async_context(lsp_running)
        lsp = await lsp_running.enter_async_context(kenning_server(workspace, index_dir))
        await lsp.settled()
        agent = await stack.enter_async_context(kenning_mcp(workspace, index_dir))

        status = await agent.ok("index_status")
        assert "writer: another Kenning process" in status
        assert "an editor's language server (pid " in status
        assert "retry_with_backoff" in await agent.ok(
            "search_code", {"query": "retry a failed request with backoff"}
        )
        # A reader passes a re-index on to the writer over the index's socket.
        is_error, text = await agent.call("reindex")
        assert not is_error, text

        # The writer indexes a saved file; the reader's next search takes in its vector.
        await lsp.save("text/slugify.py", (workspace / "text/slugify.py").read_text() + NEW_CODE)
        await lsp.settled()

        async def found() -> bool:
            text = await agent.ok(
                "search_code",
                {"query": "convert celsius to fahrenheit", "mode": "semantic", "limit": 1},
            )
            return "celsius_to_fahrenheit" in text

        await eventually(found, what="the reader to see the writer's new vector")

        await lsp_running.aclose()  # the language server shuts down
        await eventually(
            lambda: _writer(agent), what="the MCP server to take over writing", timeout=60
        )
        assert (await agent.ok("reindex")).startswith("queued all 6 files")


async def _writer(agent) -> bool:
    return "writer: this server" in await agent.ok("index_status")


async def test_a_reader_says_a_file_is_not_indexed_yet_until_the_writer_has_it(tmp_path):
    workspace = copy_workspace(tmp_path / "workspace")
    index_dir = tmp_path / "index"
    index_dir.mkdir(mode=0o700)
    held = WriterLock(index_dir)
    assert held.try_acquire(EDITOR, str(workspace))
    try:
        async with kenning_mcp(workspace, index_dir) as agent:
            is_error, text = await agent.call("find_related", {"path": "net/retry.py", "line": 8})
            assert is_error
            assert "net/retry.py is not indexed yet; try again once indexing has caught up" in text
            assert f"an editor's language server (pid {os.getpid()})" in await agent.ok(
                "index_status"
            )

            held.release()
            await eventually(lambda: _writer(agent), what="the take-over", timeout=60)
            await agent.settled()
            related = await agent.ok(
                "find_related", {"path": "net/retry.py", "line": 8, "limit": 3}
            )
            assert "similar to net/retry.py:7-15 retry_with_backoff" in related
    finally:
        held.release()
