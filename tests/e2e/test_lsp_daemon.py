"""One writer per index between editors' servers and the command line's daemon.

An editor's `kenning serve` takes the index from a background daemon (which steps aside),
answers the command line over the index's socket, and keeps the client's good settings
when one field is bad; a second editor's server on an index another one keeps answers
searches from it without writing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from kenning.server.writer_lock import EDITOR, WriterLock
from kenning_client import SETTLE_TIMEOUT_S, copy_workspace, kenning_server

KENNING = [sys.executable, "-m", "kenning.server.cli"]


def cli(index_dir, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KENNING_INDEX_DIR": str(index_dir)}
    return subprocess.run([*KENNING, *argv], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.asyncio
async def test_an_editor_takes_the_index_from_a_background_daemon_and_answers_the_cli(tmp_path):
    workspace = copy_workspace(tmp_path / "workspace")
    index_dir = tmp_path / "index"
    started = cli(index_dir, "serve", "--background", "--workspace", str(workspace))
    assert started.returncode == 0, started.stderr
    background = WriterLock(index_dir).holder()
    assert background is not None and background.role == "background"

    options = {"indexDir": str(index_dir), "maxFileBytes": "lots"}  # one bad field of two
    async with kenning_server(workspace, tmp_path / "unused", options=options) as kenning:
        status = await kenning.settled()
        assert status.index_dir == str(index_dir)  # the good field was kept
        holder = WriterLock(index_dir).holder()
        assert holder is not None and holder.role == EDITOR and holder.pid != background.pid
        with pytest.raises(ProcessLookupError):  # the background daemon stepped aside
            for _ in range(100):
                os.kill(background.pid, 0)
                time.sleep(0.1)

        found = cli(index_dir, "search", "compute the invoice total", "--workspace", str(workspace))
        assert found.returncode == 0 and "billing/invoices.py" in found.stdout, found.stderr
        served = json.loads(cli(index_dir, "status", str(workspace), "--json").stdout)
        assert served["served_by"] == {"pid": holder.pid, "role": "editor"}
        stop = cli(index_dir, "stop", str(workspace))
        assert stop.returncode == 1 and "stops with the editor" in stop.stderr


@pytest.mark.asyncio
async def test_a_second_editor_answers_from_an_index_another_one_keeps(tmp_path):
    workspace = copy_workspace(tmp_path / "workspace")
    index_dir = tmp_path / "index"
    built = cli(index_dir, "index", str(workspace), "-q")
    assert built.returncode == 0, built.stderr
    other_editor = WriterLock(index_dir)
    assert other_editor.try_acquire(EDITOR, str(workspace))
    try:
        async with kenning_server(workspace, index_dir) as kenning:
            status = await kenning.status()
            assert status.state == "idle" and status.files > 0
            writer = f"an editor's language server (pid {os.getpid()}) writes this index"
            assert any(w.startswith(writer) and "only reads it" in w for w in status.warnings)
            answer = await kenning.eventually(
                lambda: _semantic(kenning, "compute the invoice total"),
                what="a semantic answer",
                timeout=SETTLE_TIMEOUT_S,
            )
            assert "billing/invoices.py" in [hit.path for hit in answer.results]
            train = await kenning.request("kenning/train", {"force": True})
            assert train.started is False and train.reason.startswith(writer)
            assert other_editor.holder().pid == os.getpid()  # it never took the lock
    finally:
        other_editor.release()


async def _semantic(kenning, query: str):
    answer = await kenning.search(query, mode="hybrid")
    return answer if not answer.partial else None
