"""The first index embeds what people look at first: files open in the editor, then files
changed lately, definitions before line windows, code before prose."""

from __future__ import annotations

import os
import time

from kenning.server.engine import Engine

DAY_NS = 24 * 3600 * 10**9


def write(root, rel: str, text: str, age_days: float) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = time.time_ns() - int(age_days * DAY_NS)
    os.utime(path, ns=(stamp, stamp))


def order(engine: Engine, **kwargs) -> list[str]:
    texts = engine.store.pending_texts(0, 1000, **kwargs)  # no generation 0: all pending
    paths = []
    for _, text in texts:
        path = text.splitlines()[0].split()[0]  # the context line starts with the path
        if path not in paths:
            paths.append(path)
    return paths


def test_open_then_recent_then_definitions_then_code_before_prose(tmp_path):
    ws = tmp_path / "ws"
    define = "def {0}(value):\n    '''Turn {0} values into something useful.'''\n    return value\n"
    window = "".join(f"SETTING_{i} = 'value number {i} for the old module'\n" for i in range(30))
    write(ws, "old_defs.py", define.format("old_helper"), age_days=90)
    write(ws, "old_windows.py", window, age_days=90)
    write(ws, "old_notes.md", "# Notes\n\n" + "Some old prose about the project.\n" * 20, 90)
    write(ws, "recent_defs.py", define.format("recent_helper"), age_days=1)
    write(ws, "opened.py", define.format("opened_helper"), age_days=400)
    with Engine.open(ws) as engine:
        engine.indexer.scan()
        recent = time.time_ns() - 7 * DAY_NS
        ranked = order(engine, first=["opened.py"], recent_since_ns=recent)
    assert ranked == [
        "opened.py",
        "recent_defs.py",
        "old_defs.py",
        "old_windows.py",
        "old_notes.md",
    ]
