"""A hostile workspace, indexed end to end by `kenning index` (issue 9): links out
of the workspace and in loops, a FIFO and a device node, a 100 MB file, NUL
bytes, invalid UTF-8, 200-deep folders, names with a newline or bytes that are
not UTF-8. Nothing outside the workspace is read, nothing hangs, every skip is
counted, and the ordinary files are indexed and searchable."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

SECRET = "zebracornflakes"  # a word only the file outside the workspace holds


def build(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.py").write_text(f"def {SECRET}():\n    return 'outside'\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "ok.py").write_text("def upload_with_retry(path):\n    return path\n")
    os.symlink(outside / "private.py", ws / "escape.py")
    os.symlink(outside, ws / "escape_dir")
    os.symlink(ws, ws / "loop")
    os.symlink("/etc/passwd", ws / "passwd.txt")
    os.mkfifo(ws / "pipe.py")  # opening it for reading would block forever
    try:
        os.mknod(ws / "null.py", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pass  # not root: the FIFO stands for special files
    with open(ws / "huge.py", "wb") as fh:  # 100 MB, written sparse
        fh.truncate(100 * 2**20)
    (ws / "nul.py").write_bytes(b"def f():\n    return 1\x00\x00\n")
    (ws / "latin.py").write_bytes(
        "# café au lait\ndef brew_coffee():\n    return 1\n".encode("latin-1")
    )
    deep = ws
    for i in range(200):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "deep_module.py").write_text("def found_in_the_depths():\n    return 42\n")
    (ws / "new\nline.py").write_text("x = 1\n")
    with open(os.fsencode(ws) + b"/bad\xff.py", "wb") as fh:
        fh.write(b"x = 1\n")
    return ws


def kenning(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kenning.server.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_hostile_workspace_is_indexed_safely_and_every_skip_counted(tmp_path, tiny_model):
    ws = build(tmp_path)
    env = {
        **os.environ,
        "KENNING_INDEX_DIR": str(tmp_path / "index"),
        "KENNING_MODEL": str(tiny_model),
        "KENNING_DEVICE": "cpu",
    }

    run = kenning("index", str(ws), "--json", env=env)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    skipped = summary["skipped_by_reason"]
    assert (
        skipped["outside_workspace"] >= 2
    )  # escape.py, passwd.txt (escape_dir is pruned or counted)
    assert skipped["special"] >= 1 and skipped["too_large"] == 1 and skipped["bad_name"] == 2
    assert skipped["binary"] == 1  # NUL bytes

    def lexical(query: str) -> str:
        answer = kenning(
            "search", query, "--mode", "lexical", "--json", "--workspace", str(ws), env=env
        )
        assert answer.returncode == 0, answer.stderr
        return json.dumps(json.loads(answer.stdout)["results"])

    assert SECRET not in lexical(SECRET)
    assert "root:" not in lexical("root bash")
    assert "ok.py" in lexical("upload with retry")
    assert "latin.py" in lexical("brew coffee")
    assert "deep_module.py" in lexical("found in the depths")
