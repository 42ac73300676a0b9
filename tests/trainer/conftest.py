"""Fixtures for the trainer tests: fixture workspaces, git histories made on the
spot; the tiny model is in tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(__file__).resolve().parent.parent / "data" / "trainer"
SHOPCART = DATA / "shopcart"


@pytest.fixture
def shopcart(tmp_path: Path) -> Path:
    """A copy of the shopcart fixture workspace (no git history)."""
    ws = tmp_path / "shopcart"
    shutil.copytree(SHOPCART, ws)
    return ws


def git(ws: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test Author",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=ws,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_all(ws: Path, message: str) -> None:
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", message)


class Git:
    """git with a fixed author, for histories made inside a test."""

    run = staticmethod(git)
    commit_all = staticmethod(commit_all)


@pytest.fixture
def gitrepo() -> type[Git]:
    return Git
