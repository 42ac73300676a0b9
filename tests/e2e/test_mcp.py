"""`kenning mcp` end to end: the MCP SDK's own stdio client launches the server on a
workspace of real files and calls every tool, with good input and with every bad
input an agent might send; the server answers each with a result or an error that
says what to do, and keeps answering.

One server for the module (starting one loads the model).
"""

from __future__ import annotations

import shutil

import pytest
import pytest_asyncio
from kenning.server.budget import count_tokens
from kenning_client import DATA
from mcp_session import McpSession, kenning_mcp

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mcp")
    workspace = root / "workspace"
    shutil.copytree(DATA / "workspace", workspace)
    (workspace / "assets").mkdir()
    (workspace / "assets" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(64))
    (workspace / "assets" / "tool.sh").write_bytes(b"#!/bin/sh\n\0\x7fELF" + bytes(64))
    async with kenning_mcp(workspace, root / "index") as session:
        await session.settled()
        yield session


async def test_the_server_lists_its_four_tools_with_typed_arguments(agent: McpSession):
    tools = {t.name: t for t in (await agent.client.list_tools()).tools}

    assert set(tools) == {"search_code", "find_related", "index_status", "reindex"}
    search = tools["search_code"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["limit"]["minimum"] == 1
    assert search["properties"]["limit"]["maximum"] == 100
    assert set(search["properties"]["mode"]["enum"]) == {"hybrid", "semantic", "lexical"}
    assert tools["find_related"].input_schema["required"] == ["path", "line"]
    assert "grep" in (agent.client.instructions or "")


async def test_search_code_finds_code_by_what_it_does(agent: McpSession):
    text = await agent.ok(
        "search_code", {"query": "retry a failed request, waiting longer each time", "limit": 3}
    )

    header, first, *_ = text.splitlines()
    assert header.startswith("3 results for")
    assert first.startswith("net/retry.py:7-15  retry_with_backoff  (")
    assert "def retry_with_backoff(" in text


async def test_search_code_takes_paths_and_modes(agent: McpSession):
    text = await agent.ok(
        "search_code", {"query": "total of an invoice", "mode": "lexical", "paths": ["billing/"]}
    )

    places = [ln.split(":")[0] for ln in text.splitlines()[1:] if not ln.startswith((" ", "("))]
    assert places and all(p.startswith("billing/") for p in places)


async def test_the_answer_stays_within_its_token_budget(agent: McpSession):
    full = await agent.ok("search_code", {"query": "code", "limit": 20, "max_tokens": 50_000})
    tight = await agent.ok("search_code", {"query": "code", "limit": 20, "max_tokens": 200})

    assert count_tokens(tight) <= 200 < count_tokens(full)
    assert "to stay within 200 tokens" in tight.splitlines()[-1]


async def test_find_related_lists_similar_code_but_not_the_code_itself(agent: McpSession):
    text = await agent.ok("find_related", {"path": "billing/invoices.py", "line": 14})

    header, *rows = text.splitlines()
    assert "similar to billing/invoices.py:13-16 compute_invoice_total" in header
    places = [r.split("  ")[0] for r in rows if not r.startswith(" ")]
    assert "billing/invoices.py:13-16" not in places
    assert any(p.startswith("billing/discounts.py") for p in places)


async def test_index_status_and_reindex(agent: McpSession):
    status = await agent.ok("index_status")
    queued = await agent.ok("reindex", {"paths": ["billing/invoices.py", "net"]})
    everything = await agent.ok("reindex")

    assert "files: 6, chunks:" in status
    assert "writer: this server" in status
    assert queued.startswith("queued 2 paths")
    assert everything.startswith("queued all 6 files")
    await agent.settled()


BAD_INPUT = [
    ("grep_code", {"query": "x"}, "unknown tool 'grep_code'; Kenning's tools are search_code"),
    ("search_code", {}, "search_code: query: Field required"),
    ("search_code", {"query": "x", "limit": "5"}, "limit: Input should be a valid integer"),
    (
        "search_code",
        {"query": "x", "limit": 0},
        "limit: Input should be greater than or equal to 1",
    ),
    ("search_code", {"query": "x", "limit": 10_000}, "less than or equal to 100 (got 10000)"),
    ("search_code", {"query": "x", "mode": "fuzzy"}, "mode: Input should be 'hybrid'"),
    ("search_code", {"query": "x", "paths": "billing"}, "paths: Input should be a valid list"),
    ("search_code", {"query": "  "}, "the query is empty"),
    ("search_code", {"query": "x", "paths": ["../**"]}, "points outside the workspace"),
    ("search_code", {"query": "x", "paths": ["/etc/*"]}, "points outside the workspace"),
    ("search_code", {"query": "x", "paths": ["~/.ssh/*"]}, "points outside the workspace"),
    ("search_code", {"query": "x", "max_tokens": 5}, "max_tokens: Input should be greater"),
    ("find_related", {"path": "billing/invoices.py"}, "line: Field required"),
    ("find_related", {"path": "assets/tool.sh", "line": 1}, "is a binary file"),
    ("find_related", {"path": "assets/logo.png", "line": 1}, "logo.png is a binary file"),
    ("find_related", {"path": "billing/invoices.py", "line": 500}, "line 500 is past the end"),
    ("find_related", {"path": "billing/invoices.py", "line": 0}, "line must be 1 or more"),
    ("find_related", {"path": "/etc/passwd", "line": 1}, "is outside the workspace"),
    ("find_related", {"path": "../secrets.py", "line": 1}, "is outside the workspace"),
    ("find_related", {"path": "nowhere.py", "line": 1}, "does not exist in the workspace"),
    ("reindex", {"paths": ["/etc"]}, "is outside the workspace"),
]


@pytest.mark.parametrize(("tool", "arguments", "says"), BAD_INPUT)
async def test_bad_input_gets_an_error_result_that_says_what_to_do(
    agent: McpSession, tool, arguments, says
):
    is_error, text = await agent.call(tool, arguments)

    assert is_error
    assert says in text
    assert "\n" not in text and "Traceback" not in text
    assert "retry_with_backoff" in await agent.ok("search_code", {"query": "retry with backoff"})


async def test_a_thousand_rapid_tool_calls_hold_memory_flat(agent: McpSession):
    import asyncio

    from kenning_client import rss_kib

    pid = agent.pid()
    calls = [
        ("search_code", {"query": "sales tax on an invoice", "limit": 5}),
        ("find_related", {"path": "net/retry.py", "line": 8, "limit": 3}),
        ("index_status", {}),
        ("search_code", {"query": "x", "limit": 0}),  # an error, too
    ]

    async def burst(n: int) -> None:
        for start in range(0, n, 50):
            await asyncio.gather(
                *(agent.call(*calls[i % len(calls)]) for i in range(start, start + 50))
            )

    await burst(200)  # warm: every code path has run once, thread pools are full
    before = rss_kib(pid)
    await burst(1000)
    after = rss_kib(pid)

    print(f"RSS before 1,000 calls {before // 1024} MiB, after {after // 1024} MiB")
    assert after - before < 64 * 1024, f"RSS grew {(after - before) // 1024} MiB"
    assert "state: idle" in await agent.ok("index_status")
