"""1,000 concurrent searches from one client, a third of them cancelled (issue 9):
every request is answered — with results, or as cancelled (-32800) when the
cancellation arrived in time — nothing errors, and the server's memory and
threads come back to where they were."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from kenning_client import copy_workspace, kenning_server, paths, rss_kib
from pygls.exceptions import JsonRpcException

pytestmark = pytest.mark.asyncio

REQUESTS = 1000
QUERIES = [
    "sales tax on an invoice",
    "retry a failed request",
    "parse a date",
    "send an email",
    "hash a password",
    "read the configuration",
]


def threads(pid: int) -> int:
    """Threads that stay: the fewest seen over two seconds. A leaked thread stays; a
    short-lived one (a debounce timer, a native pool's helper) comes and goes."""
    counts = []
    for _ in range(10):
        counts.append(len(list(Path(f"/proc/{pid}/task").iterdir())))
        time.sleep(0.2)
    return min(counts)


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads /proc for memory and threads"
)
async def test_a_thousand_concurrent_searches_with_cancellations(tmp_path):
    workspace = copy_workspace(tmp_path / "workspace")
    async with kenning_server(workspace, tmp_path / "index") as kenning:
        await kenning.settled()
        pid = kenning.client._server.pid
        # Warm up with a whole burst before measuring: a thread that starts once, on the
        # first large batch of queries (a native pool, most likely), is not a leak.
        await burst(kenning)
        rss_before, threads_before = rss_kib(pid), threads(pid)

        first = await burst(kenning)
        await asyncio.sleep(1)
        rss_first, threads_first = rss_kib(pid), threads(pid)
        second = await burst(kenning)
        await asyncio.sleep(1)
        rss_after, threads_after = rss_kib(pid), threads(pid)
        final = await kenning.search("sales tax on an invoice")

    print(
        f"2 x {REQUESTS} requests: {first} then {second}; RSS {rss_before // 1024} -> "
        f"{rss_first // 1024} -> {rss_after // 1024} MiB, threads {threads_before} -> "
        f"{threads_first} -> {threads_after}"
    )
    for answered, was_cancelled, errors in (first, second):
        assert errors == []
        assert answered + was_cancelled == REQUESTS and answered >= REQUESTS * 2 // 3
        assert was_cancelled > 0
    # A leak grows with every burst; the second burst must not add threads or much memory.
    assert threads_after <= threads_first
    assert rss_after - rss_first < 50 * 1024, "memory grew by more than 50 MiB in the second burst"
    assert paths(final)[0] == "billing/invoices.py"


async def burst(kenning: Any) -> tuple[int, int, list[str]]:
    """Send REQUESTS searches at once, cancelling every third; (answered, cancelled, errors)."""
    protocol = kenning.client.protocol
    futures: dict[str, asyncio.Future[Any]] = {}
    cancelled: set[str] = set()
    for i in range(REQUESTS):
        msg_id = f"load-{i}-{uuid.uuid4().hex[:6]}"
        future: Future[Any] = Future()
        protocol._request_futures[msg_id] = future
        protocol._send_data(
            {
                "jsonrpc": "2.0",
                "id": msg_id,
                "method": "kenning/search",
                "params": {"query": QUERIES[i % len(QUERIES)], "limit": 5},
            }
        )
        futures[msg_id] = asyncio.wrap_future(future)
        if i % 3 == 2:
            protocol._send_data(
                {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": msg_id}}
            )
            cancelled.add(msg_id)
    done = await asyncio.wait_for(asyncio.gather(*futures.values(), return_exceptions=True), 600)

    answered = was_cancelled = 0
    errors: list[str] = []
    for msg_id, outcome in zip(futures, done, strict=True):
        if isinstance(outcome, JsonRpcException) and outcome.code == -32800 and msg_id in cancelled:
            was_cancelled += 1
        elif isinstance(outcome, BaseException):
            errors.append(f"{msg_id}: {outcome!r}")
        elif outcome.results:
            answered += 1
        else:
            errors.append(f"{msg_id}: no results")
    return answered, was_cancelled, errors
