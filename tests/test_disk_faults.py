"""A full disk and a read-only index folder (issue 9): a clear one-line error,
the last complete index keeps answering, nothing half-written is left behind.

The full disk is a file-size limit (RLIMIT_FSIZE) on the indexing process, so
that SQLite's writes fail part-way through exactly as on a full disk. The
read-only folder is a tmpfs remounted read-only, which even root cannot write
(skipped where mounting is not allowed).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kenning.server.store import Store


def kenning(
    *args: str, env: dict[str, str], limit_bytes: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a dead process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "kenning.server.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit if limit_bytes else None,
    )


def add_code(workspace: Path, files: int) -> None:
    for m in range(files):
        (workspace / f"extra_{m:03d}.py").write_text(
            "\n\n".join(
                textwrap.dedent(f'''\
                def invoice_rule_{m}_{f}(invoice):
                    """Apply billing rule {f} of table {m} to the invoice lines."""
                    return [line for line in invoice.lines if line.code != "{m}-{f}"]
                ''')
                for f in range(10)
            )
        )


@pytest.fixture
def env(tmp_path: Path, tiny_model: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KENNING_INDEX_DIR": str(tmp_path / "index"),
        "KENNING_MODEL": str(tiny_model),
        "KENNING_DEVICE": "cpu",
    }


def test_a_full_disk_stops_indexing_with_one_line_and_keeps_the_last_index(
    core_workspace, tmp_path, env
):
    assert kenning("index", str(core_workspace), env=env).returncode == 0
    db = tmp_path / "index" / "index.sqlite"
    add_code(core_workspace, 150)

    full = kenning("index", str(core_workspace), env=env, limit_bytes=db.stat().st_size + 32 * 1024)

    assert full.returncode == 1
    [line] = full.stderr.strip().splitlines()
    assert line.startswith(f"kenning: error: could not write the index at {tmp_path / 'index'}")
    assert "free some space" in line and "The last complete index is kept" in line
    store = Store.open(tmp_path / "index")
    assert store.consistency_problems() == []
    store.close()
    # Search still answers, from what is there, and says why it did not refresh.
    answer = kenning(
        "search",
        "upload with retry",
        "--mode",
        "lexical",
        "--workspace",
        str(core_workspace),
        env=env,
        limit_bytes=db.stat().st_size + 32 * 1024,
    )
    assert answer.returncode == 0 and "upload_with_retry" in answer.stdout
    assert "answering from it as it is" in answer.stderr
    # With space again, the next run completes the index.
    assert kenning("index", str(core_workspace), env=env).returncode == 0
    store = Store.open(tmp_path / "index")
    assert store.consistency_problems() == []
    assert store.counts(store.active_generation().id).pending == 0
    assert any(p.startswith("extra_149") for p in store.file_records())
    store.close()


@pytest.fixture
def read_only_mount(tmp_path: Path):
    mount = tmp_path / "ro"
    mount.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_read_only_index_still_answers_and_refuses_updates_clearly(
    core_workspace, read_only_mount, env
):
    env = {**env, "KENNING_INDEX_DIR": str(read_only_mount / "index")}
    assert kenning("index", str(core_workspace), env=env).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)

    answer = kenning(
        "search",
        "upload with retry",
        "--mode",
        "lexical",
        "--workspace",
        str(core_workspace),
        env=env,
    )
    update = kenning("index", str(core_workspace), env=env)

    assert answer.returncode == 0 and "upload_with_retry" in answer.stdout
    assert "is read-only: search answers from it" in answer.stderr
    assert update.returncode == 1
    assert update.stderr.strip().splitlines()[-1].startswith("kenning: error: the index at")
    assert "read-only, so it cannot be updated" in update.stderr
