"""Paths an agent gives the MCP server, kept inside the workspace.

An agent may pass any text: `../secrets`, `/etc/*`, `~/.ssh/id_rsa`. Files
are accepted relative to the workspace or as absolute paths inside it; globs
are gitignore-style patterns relative to the workspace (a leading `/`
anchors at its root). Anything that would reach outside is refused with a
one-line error that says what to give instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ToolError

if TYPE_CHECKING:
    from .workspace_service import WorkspaceService


def workspace_globs(named_root: Path, root: Path, globs: Sequence[str]) -> list[str]:
    """The globs, checked: each must stay inside the workspace. An absolute path inside
    it becomes a root-anchored glob; ToolError names the first one that escapes."""
    out = []
    for i, glob in enumerate(globs):
        text = glob.strip()
        negate = text.startswith("!")
        body = text[1:] if negate else text
        where = f"paths[{i}] {glob!r}"
        if not body:
            raise ToolError(
                f"{where} is empty; give a glob relative to the workspace, e.g. 'src/**'"
            )
        if body.startswith("~") or ".." in PurePosixPath(body.replace("\\", "/")).parts:
            raise ToolError(f"{where} points outside the workspace; globs are relative to {root}")
        if body.startswith("/"):
            body = _anchored(named_root, root, body, where)
        out.append(("!" if negate else "") + body)
    return out


def _anchored(named_root: Path, root: Path, body: str, where: str) -> str:
    """A glob starting with `/`: an absolute path inside the workspace, or a pattern
    anchored at its root (`/src/*.py`); an absolute path elsewhere (`/etc/*`) is refused."""
    path = PurePosixPath(body)
    for base in (PurePosixPath(named_root.as_posix()), PurePosixPath(root.as_posix())):
        if path.is_relative_to(base):
            rel = path.relative_to(base)
            return "/" + rel.as_posix() if rel.parts else "/**"
    first = path.parts[1] if len(path.parts) > 1 else ""
    if first and not (root / first).exists() and Path("/" + first).exists():
        raise ToolError(
            f"{where} points outside the workspace; globs are relative to {root} "
            "(a leading / anchors at the workspace root)"
        )
    return body


def workspace_file(service: WorkspaceService, path: str, *, where: str = "path") -> str:
    """The workspace-relative form of a file path an agent gave; ToolError when it is
    empty or outside the workspace."""
    if not path.strip():
        raise ToolError(f"{where} is empty; give a file relative to the workspace {service.root}")
    rel = service.relative_path(os.path.expanduser(path) if path.startswith("~") else path)
    if rel is None:
        raise ToolError(
            f"{where} {path!r} is outside the workspace; give a path relative to {service.root}"
        )
    return rel
