"""Stopping and starting `kenning serve` keeps the index: a shutdown in the middle
of the first index keeps every batch that landed (and the one in flight), and a
restart embeds only what is still missing, which after a complete index is nothing.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from kenning.server.indexer import DAEMON_TEXTS_PER_COMMIT as EMBED_BATCH
from kenning_client import copy_workspace, init_options, kenning_server, paths
from lsprotocol import types

pytestmark = pytest.mark.asyncio

GENERATED_MODULES = 40
FUNCTIONS_PER_MODULE = 8


def add_generated_code(workspace: Path) -> None:
    """Enough distinct functions that the first index takes several batches."""
    topics = ["orders", "users", "payments", "emails", "reports", "sessions", "uploads", "tickets"]
    for m in range(GENERATED_MODULES):
        functions = [
            textwrap.dedent(f'''\
                def {topic}_step_{m}_{f}(record: dict) -> dict:
                    """Step {f} of pipeline {m}: normalise {topic} record field {m * 10 + f}."""
                    record["{topic}_{m}_{f}"] = record.get("{topic}", 0) + {m * 100 + f}
                    return record
                ''')
            for f, topic in enumerate(topics[:FUNCTIONS_PER_MODULE])
        ]
        (workspace / "pipelines").mkdir(exist_ok=True)
        (workspace / "pipelines" / f"pipeline_{m:02d}.py").write_text("\n\n".join(functions))


def chunks_to_embed(progress_reports: dict) -> int:
    """N from the first "embedding 0/N chunks" progress report."""
    for reports in progress_reports.values():
        for report in reports:
            match = re.match(r"embedding 0/(\d+) chunks", getattr(report, "message", None) or "")
            if match:
                return int(match.group(1))
    raise AssertionError("no embedding progress was reported")


async def test_restarts_keep_every_stored_vector(tmp_path: Path):
    workspace = copy_workspace(tmp_path / "workspace")
    add_generated_code(workspace)
    index_dir = tmp_path / "index"

    async with kenning_server(workspace, index_dir) as first:
        # [0] announces the lexical pass, [1] the first batch of vectors.
        await first.eventually(
            lambda: len(first.index_changes) >= 2, what="the first batch of vectors", timeout=150
        )
        to_embed = chunks_to_embed(first.client.progress_reports)
        assert to_embed > 2 * EMBED_BATCH  # so the batch in flight at shutdown is not the last
        # Leaving the block sends shutdown while the second batch is being embedded.

    async with kenning_server(workspace, index_dir, editor="neovim") as second:
        resumed = await second.settled()
        # The batch in flight at shutdown was finished and kept, not thrown away.
        assert resumed.embedded_since_start == to_embed - 2 * EMBED_BATCH

    async with kenning_server(workspace, index_dir) as third:
        restarted = await third.settled()
        assert restarted.embedded_since_start == 0
        assert (restarted.files, restarted.chunks) == (resumed.files, resumed.chunks)
        answer = await third.search("retry a failed request, waiting longer each time")
        assert answer.partial is False
        assert paths(answer)[0] == "net/retry.py"


async def test_a_bad_initialization_option_is_reported_and_the_others_still_apply(tmp_path: Path):
    workspace = copy_workspace(tmp_path / "workspace")
    options = init_options(
        "dict", workspace, {"maxFileBytes": "lots", "indexDir": str(tmp_path / "chosen")}
    )

    async with kenning_server(workspace, tmp_path / "index", options=options) as kenning:
        message = await kenning.eventually(
            lambda: [m for m in kenning.client.messages if m.type == types.MessageType.Error],
            what="an error message about the options",
        )
        assert "max_file_bytes" in message[0].message
        assert "ignoring that setting" in message[0].message
        status = await kenning.status()
        assert status.index_dir == str(tmp_path / "chosen")  # the client's good option kept

        async def searchable():
            return "billing/invoices.py" in paths(
                await kenning.search("compute_invoice_total", mode="lexical")
            )

        await kenning.eventually(searchable, what="the workspace to be searchable")
