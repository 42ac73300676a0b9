"""Shared fixtures: real fixture workspaces copied to a temp dir, and an index
dir per test so nothing lands in the user's cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _private_index(tmp_path, monkeypatch):
    monkeypatch.setenv("KENNING_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def core_workspace(tmp_path) -> Path:
    """A copy of tests/data/core: real code in eight languages plus docs."""
    target = tmp_path / "ws"
    shutil.copytree(DATA / "core", target)
    return target
