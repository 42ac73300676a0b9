"""Folders added and removed over and over while a client searches and asks for
status (a campaign: `pytest -m stress tests/e2e/test_lsp_folder_churn.py -s`).

CI once saw the server die of SIGSEGV in test_lsp_folders.py, where a folder is
removed while it is being indexed. That test closes one folder once; this one
closes a folder at every stage of its first index (reading files, loading the
model, embedding) many times, with searches and status requests in flight
against it, and then checks that the server is alive, answers, and left every
closed index whole and unlocked.
"""

from __future__ import annotations

import asyncio
import random
import shutil

import pytest
from kenning.server.settings import workspace_key
from kenning_client import SearchLoop, copy_workspace, kenning_server, paths
from test_lsp_folders import assert_closed_cleanly, change_folders, make_big_folder, not_listed

pytestmark = [pytest.mark.asyncio, pytest.mark.stress]

ROUNDS = 25


async def test_a_folder_closed_at_any_stage_of_its_indexing_never_kills_the_server(tmp_path):
    shop = copy_workspace(tmp_path / "shop")
    big = make_big_folder(tmp_path / "big", files=400)
    index_dir = tmp_path / "index"
    chance = random.Random(7)
    async with kenning_server(shop, index_dir) as ls:
        await ls.settled()
        searches = SearchLoop(ls, "handle a request for a tenant", pause_s=0.01)
        statuses = 0
        try:
            for _ in range(ROUNDS):
                shutil.rmtree(index_dir / "folders" / workspace_key(big), ignore_errors=True)
                change_folders(ls, added=[big])
                # Anywhere from the first files read to the middle of embedding.
                deadline = asyncio.get_running_loop().time() + chance.uniform(0.0, 6.0)
                while asyncio.get_running_loop().time() < deadline:
                    await ls.status()
                    statuses += 1
                change_folders(ls, removed=[big])
                await ls.eventually(
                    lambda: not_listed(ls, "big"), what="the big folder to close", timeout=120
                )
        finally:
            await searches.stop()

        assert ls.client._server.returncode is None
        assert searches.errors == [] and searches.answers, searches.errors[:3]
        assert statuses > ROUNDS
        assert_closed_cleanly(index_dir, big, ls.client._server.pid)
        assert "billing/invoices.py" in paths(await ls.search("invoice total"))
