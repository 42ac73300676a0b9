"""Multi-root workspaces: one index per workspace folder, searched together.

`workspaceFolders` at initialize and `workspace/didChangeWorkspaceFolders` later;
`kenning/search` merges the folders' results by score and takes a `folders`
filter; `kenning/status` lists every folder; a folder inside another is indexed
once; a folder removed while it is being indexed stops cleanly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kenning.server.settings import workspace_key
from kenning.server.store import Store
from kenning.server.writer_lock import EDITOR, WriterLock
from kenning_client import DATA, Session, copy_workspace, kenning_server, paths
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

CORE = DATA.parent / "core"


def uri(path: Path) -> str:
    return from_fs_path(str(path))


def change_folders(ls: Session, added=(), removed=()) -> None:
    ls.client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=uri(p), name=p.name) for p in added],
                removed=[types.WorkspaceFolder(uri=uri(p), name=p.name) for p in removed],
            )
        )
    )


async def folder_named(ls: Session, name: str):
    status = await ls.status()
    return next((f for f in status.folders if f.name == name), None)


async def test_two_folders_get_an_index_each_and_one_search(tmp_path):
    shop = copy_workspace(tmp_path / "shop")
    core = tmp_path / "core"
    shutil.copytree(CORE, core)
    index_dir = tmp_path / "index"
    async with kenning_server(shop, index_dir, folders=[shop, core]) as ls:
        status = await ls.settled()

        assert [(f.name, f.indexed_in) for f in status.folders] == [
            ("shop", uri(shop)),
            ("core", uri(core)),
        ]
        assert status.workspace == str(shop.resolve())  # the top level is the first folder's
        assert status.folders[0].index_dir == str(index_dir)
        assert status.folders[1].index_dir == str(index_dir / "folders" / workspace_key(core))

        upload = await ls.search("upload a file, retrying failed uploads", limit=5)
        assert upload.results[0].folder == uri(core)
        assert upload.results[0].uri == uri(core / upload.results[0].path)
        invoice = await ls.search("total of an invoice with tax", limit=5)
        assert invoice.results[0].folder == uri(shop)
        both = await ls.search("retry with exponential backoff", limit=6)
        assert {h.folder for h in both.results} == {uri(shop), uri(core)}
        scores = [h.score for h in both.results]
        assert scores == sorted(scores, reverse=True)

        only_core = await ls.search("total of an invoice with tax", folders=["core"])
        assert only_core.results and {h.folder for h in only_core.results} == {uri(core)}
        by_uri = await ls.search("retry", folders=[uri(shop)])
        assert {h.folder for h in by_uri.results} == {uri(shop)}

        with pytest.raises(JsonRpcInvalidParams, match="params.folders: 'elsewhere' is not a"):
            await ls.search("retry", folders=["elsewhere"])

        related = await ls.request(
            "kenning/related",
            {"uri": uri(core / "app" / "uploads.py"), "position": {"line": 20, "character": 0}},
        )
        assert related.source.folder == uri(core)
        assert all(h.folder == uri(core) for h in related.results)


async def test_folders_come_and_go_and_a_nested_folder_is_indexed_once(tmp_path):
    shop = copy_workspace(tmp_path / "shop")
    core = tmp_path / "core"
    shutil.copytree(CORE, core)
    big = make_big_folder(tmp_path / "big", files=400)
    index_dir = tmp_path / "index"
    async with kenning_server(shop, index_dir) as ls:
        await ls.settled()

        change_folders(ls, added=[core])
        await ls.eventually(lambda: folder_named(ls, "core"), what="the core folder")
        await ls.settled()
        assert "app/uploads.py" in paths(await ls.search("upload with retries", folders=["core"]))

        # A folder inside an open one: no index of its own, answers from the outer one.
        billing = shop / "billing"
        change_folders(ls, added=[billing])
        nested = await ls.eventually(lambda: folder_named(ls, "billing"), what="billing")
        assert nested.indexed_in == uri(shop)
        assert not (index_dir / "folders" / workspace_key(billing)).exists()
        answer = await ls.search("apply a discount code", folders=["billing"])
        assert answer.results and all(p.startswith("billing/") for p in paths(answer))

        # A folder removed while it is still being indexed stops cleanly.
        change_folders(ls, added=[big])

        async def indexing():
            folder = await folder_named(ls, "big")
            return folder if folder is not None and folder.state == "indexing" else None

        await ls.eventually(indexing, what="the big folder to be indexing", timeout=60)
        change_folders(ls, removed=[big])

        await ls.eventually(
            lambda: not_listed(ls, "big"), what="the big folder to close", timeout=120
        )
        assert_closed_cleanly(index_dir, big, ls.client._server.pid)

        change_folders(ls, removed=[core])
        await ls.eventually(
            lambda: not_listed(ls, "core"), what="the core folder to close", timeout=60
        )
        status = await ls.settled()
        assert [f.name for f in status.folders] == ["shop", "billing"]
        assert "billing/invoices.py" in paths(await ls.search("invoice total"))


async def not_listed(ls: Session, name: str) -> bool:
    return await folder_named(ls, name) is None


def assert_closed_cleanly(index_dir: Path, folder: Path, server_pid: int) -> None:
    """A closed folder's index: not marked open by the server, unlocked, and whole."""
    index = index_dir / "folders" / workspace_key(folder)
    assert not (index / f"open-{server_pid}").exists()
    assert WriterLock(index).try_acquire(EDITOR, str(folder))
    store = Store.open(index)
    try:
        assert store.consistency_problems() == []
    finally:
        store.close()


def make_big_folder(root: Path, files: int) -> Path:
    """Enough distinct code that its first index takes a while to embed."""
    for i in range(files):
        folder = root / f"pkg{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{i}.py").write_text(
            f'def handler_{i}(request):\n    """Handle request kind {i} for tenant {i * 7}."""\n'
            f"    return request.payload[{i}] * {i + 3}\n\n\n"
            f"class Store{i}:\n    def load_{i}(self, key):\n"
            f'        """Load record {i} from shard {i % 13}."""\n'
            f"        return self.rows.get(key, {i})\n"
        )
    return root
