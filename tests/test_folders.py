"""Which workspace folders get an index, and where a request for them goes."""

from __future__ import annotations

from pathlib import Path

import pytest
from kenning.server.folders import (
    Folder,
    FolderError,
    FolderMap,
    Target,
    indexed_folders,
    merge_results,
)
from kenning.server.lsp import FolderClosed, each_open_folder
from kenning.server.search import SearchResult


def folder(path: Path) -> Folder:
    return Folder(name=path.name, uri=path.as_uri(), path=path)


@pytest.fixture
def tree(tmp_path):
    for rel in ("app/api", "lib", "applet"):
        (tmp_path / rel).mkdir(parents=True)
    return tmp_path


def test_a_folder_inside_another_is_indexed_once_as_part_of_it(tree):
    app, api, lib, applet = (folder(tree / p) for p in ("app", "app/api", "lib", "applet"))

    assert indexed_folders([api, app, lib, applet]) == [app, lib, applet]
    assert indexed_folders([app, folder(tree / "app")]) == [app]  # the same folder twice


def test_requests_go_to_the_index_that_holds_the_folder(tree):
    app, api, lib = folder(tree / "app"), folder(tree / "app/api"), folder(tree / "lib")
    folders = FolderMap(folders=[app, api, lib], services={app.uri: "app-index", lib.uri: "lib"})

    assert folders.home(api) == app
    assert folders.route(tree / "app/api/views.py") == (app, "app-index")
    assert folders.route(tree / "elsewhere.py") is None
    everything = folders.targets(None)
    assert [(t.folder, t.service, t.prefixes) for t in everything] == [
        (app, "app-index", ()),
        (lib, "lib", ()),
    ]
    (only_api,) = folders.targets(["api"])
    assert (only_api.service, only_api.prefixes) == ("app-index", ("api/",))
    assert only_api.wants("api/views.py") and not only_api.wants("app.py")
    (both,) = folders.targets([app.uri, "api"])
    assert both.prefixes == ()  # the outer folder was asked for: all of it
    with pytest.raises(FolderError, match="'nope' is not a folder of this workspace"):
        folders.targets(["nope"])


def test_answers_of_several_folders_merge_by_score():
    def hit(path: str, score: float) -> SearchResult:
        return SearchResult(path, 1, 2, score, None, "python", "")

    left = Target(Folder("a", "file:///a", Path("/a")), "A")
    right = Target(Folder("b", "file:///b", Path("/b")), "B", ("sub/",))
    merged = merge_results(
        [
            (left, [hit("x.py", 0.9), hit("y.py", 0.5)]),
            (right, [hit("sub/z.py", 0.7), hit("w.py", 1.0)]),
        ],
        limit=3,
    )
    assert [(t.service, r.path) for t, r in merged] == [
        ("A", "x.py"),
        ("B", "sub/z.py"),
        ("A", "y.py"),
    ]


async def _answer(value: int) -> int:
    return value


async def _closed() -> int:
    raise FolderClosed("the index at /w/big is closed: its folder was removed", code=-32803)


async def _broken() -> int:
    raise ValueError("a real failure")


async def test_a_folder_whose_index_closed_mid_request_is_left_out_and_the_others_answer():
    assert await each_open_folder([_answer(1), _closed(), _answer(3)]) == [1, None, 3]
    with pytest.raises(FolderClosed, match="is closed"):
        await each_open_folder([_closed(), _closed()])  # nothing left to answer
    with pytest.raises(ValueError, match="a real failure"):
        await each_open_folder([_answer(1), _closed(), _broken()])
