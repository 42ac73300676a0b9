"""The workspace folders of one language server, and which of them get an index.

An editor may open several folders at once (a multi-root workspace). Each
folder gets an index of its own, except a folder inside another folder of the
workspace: that one is indexed once, as part of the outer folder, and answers
from the outer folder's index. This module holds that bookkeeping without any
LSP in it:

- `Folder`: a workspace folder as the client named it;
- `indexed_folders`: the folders that get an index;
- `FolderMap`: the folders and the service of each indexed one; it routes a
  path to the index that holds it and resolves a `folders` filter;
- `merge_results`: several folders' results in one list, best score first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from .search import SearchResult

S = TypeVar("S")


class FolderError(ValueError):
    """A folder named in a request is not one of the workspace's; the message lists them."""


@dataclass(frozen=True)
class Folder:
    name: str
    uri: str
    path: Path
    """Absolute and normalised, as the client named it (it may go through a symlink)."""

    @property
    def real(self) -> Path:
        return Path(os.path.realpath(self.path))

    def contains(self, other: Folder) -> bool:
        """Whether `other` is this folder or lies inside it."""
        return other.real.is_relative_to(self.real)


def indexed_folders(folders: Sequence[Folder]) -> list[Folder]:
    """The folders that get an index: every folder not inside another one of the list
    (of two that are the same folder, the first)."""
    kept = []
    for i, folder in enumerate(folders):
        outer = [
            o
            for j, o in enumerate(folders)
            if j != i and o.contains(folder) and (o.real != folder.real or j < i)
        ]
        if not outer:
            kept.append(folder)
    return kept


@dataclass(frozen=True)
class Target(Generic[S]):
    """One index a request goes to, and which part of it was asked for."""

    folder: Folder
    """The indexed folder; result paths are relative to it."""
    service: S
    prefixes: tuple[str, ...] = ()
    """Only results under these relative folders (nested folders asked for alone);
    empty: the whole index."""

    def wants(self, rel: str) -> bool:
        return not self.prefixes or any(rel.startswith(p) for p in self.prefixes)


@dataclass
class FolderMap(Generic[S]):
    """The workspace's folders and the service (index) of each indexed one."""

    folders: list[Folder] = field(default_factory=list)
    services: dict[str, S] = field(default_factory=dict)
    """By the URI of the indexed folder."""
    failures: dict[str, str] = field(default_factory=dict)
    """Why an indexed folder has no service, by its URI."""
    closing: set[str] = field(default_factory=set)
    """Indexed folders being removed: their index is closing (no longer searched)."""

    def indexed(self) -> list[Folder]:
        return indexed_folders(self.folders)

    def home(self, folder: Folder) -> Folder:
        """The indexed folder whose index holds `folder` (itself when it is indexed)."""
        return next((f for f in self.indexed() if f.contains(folder)), folder)

    def running(self) -> list[tuple[Folder, S]]:
        """The indexed folders with a service, in the workspace's order."""
        return [(f, self.services[f.uri]) for f in self.indexed() if f.uri in self.services]

    def route(self, path: Path) -> tuple[Folder, S] | None:
        """The indexed folder (and its service) that holds the absolute `path`."""
        path = Path(os.path.normpath(path))
        real = Path(os.path.realpath(path))
        for folder, service in self.running():
            if path.is_relative_to(folder.path) or real.is_relative_to(folder.real):
                return folder, service
        return None

    def find(self, wanted: str) -> Folder:
        """The folder a request names: by URI, path or name; FolderError when none is."""
        norm = os.path.normpath(wanted) if wanted.startswith(("/", "~")) else None
        for folder in self.folders:
            if wanted in (folder.uri, folder.name) or (norm and Path(norm) == folder.path):
                return folder
        names = ", ".join(f"{f.name} ({f.uri})" for f in self.folders) or "none"
        raise FolderError(f"{wanted!r} is not a folder of this workspace; its folders are {names}")

    def targets(self, wanted: Sequence[str] | None = None) -> list[Target[S]]:
        """Where a request for the folders `wanted` (all when None or empty) goes: one
        target per index, restricted to the nested folders asked for when only they were."""
        chosen = [self.find(w) for w in wanted] if wanted else self.indexed()
        by_home: dict[str, tuple[Folder, list[str]]] = {}
        for folder in chosen:
            home = self.home(folder)
            _, prefixes = by_home.setdefault(home.uri, (home, []))
            prefix = folder.real.relative_to(home.real).as_posix()
            prefixes.append("" if prefix == "." else prefix + "/")
        out = []
        for home, prefixes in by_home.values():
            service = self.services.get(home.uri)
            if service is not None:
                whole = "" in prefixes
                out.append(Target(home, service, () if whole else tuple(dict.fromkeys(prefixes))))
        return out


def merge_results(
    answers: Sequence[tuple[Target[S], Sequence[SearchResult]]], limit: int
) -> list[tuple[Target[S], SearchResult]]:
    """Every target's results that it wants, best score first (a stable sort: one
    folder keeps its own order), at most `limit`."""
    rows = [(t, r) for t, results in answers for r in results if t.wants(r.path)]
    rows.sort(key=lambda row: -row[1].score)
    return rows[:limit]
