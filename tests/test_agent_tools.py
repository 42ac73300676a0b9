"""The pieces behind the MCP server that need no server: the token budget, paths an
agent gives, and the writer lock shared by every Kenning process on one index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kenning.server.agent_paths import workspace_globs
from kenning.server.budget import count_tokens, estimate_tokens, fit
from kenning.server.search import SearchResult
from kenning.server.writer_lock import EDITOR, MCP, WriterLock
from mcp.server.mcpserver.exceptions import ToolError


def result(i: int, lines: int = 6) -> SearchResult:
    body = "\n".join(f"    total += price_{i}_{n} * quantity_{n}  # line {n}" for n in range(lines))
    return SearchResult(
        path=f"pkg/mod{i}.py",
        start_line=10 * i + 1,
        end_line=10 * i + lines,
        score=1 - i / 100,
        symbol=f"compute_total_{i}",
        language="python",
        snippet=f"def compute_total_{i}(items):\n{body}",
        kind="function",
    )


def test_a_roomy_budget_keeps_every_result_with_its_whole_snippet():
    fitted = fit(["3 results"], [result(i) for i in range(3)], 2000)

    assert (fitted.shown, fitted.total, fitted.snippet_lines) == (3, 3, 6)
    assert fitted.text.splitlines()[1] == "pkg/mod0.py:1-6  compute_total_0  (1.000)"
    assert fitted.tokens == count_tokens(fitted.text) <= 2000


def test_snippets_shrink_before_results_are_dropped():
    results = [result(i) for i in range(10)]
    full = fit(["header"], results, 50_000)
    shorter = fit(["header"], results, full.tokens - 1)
    tight = fit(["header"], results, 200)

    assert shorter.shown == 10 and shorter.snippet_lines < 6
    assert "snippets cut to" in shorter.text.splitlines()[-1]
    assert tight.shown < 10 and tight.snippet_lines == 1
    assert "more results left out to stay within 200 tokens" in tight.text.splitlines()[-1]
    for fitted, budget in ((shorter, full.tokens - 1), (tight, 200)):
        assert count_tokens(fitted.text) <= budget


def test_the_fallback_estimate_is_a_quarter_of_the_characters():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2


def test_globs_stay_inside_the_workspace(tmp_path):
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)

    assert workspace_globs(root, root, ["src/**/*.py", "!*.md", "/src/*.py", "*.py"]) == [
        "src/**/*.py",
        "!*.md",
        "/src/*.py",
        "*.py",
    ]
    assert workspace_globs(root, root, [f"{root}/src/*.py", str(root)]) == ["/src/*.py", "/**"]
    for bad in ("../*", "src/../../x", "~/.ssh/*", "/etc/*", "!../x", " "):
        with pytest.raises(ToolError):
            workspace_globs(root, root, [bad])


def test_one_process_holds_the_writer_lock_until_it_lets_go_or_dies(tmp_path):
    first, second = WriterLock(tmp_path), WriterLock(tmp_path)

    assert first.try_acquire(EDITOR, str(tmp_path)) and first.try_acquire(EDITOR, str(tmp_path))
    assert not second.try_acquire(MCP, str(tmp_path))
    assert second.holder().describe() == f"an editor's language server (pid {os.getpid()})"
    first.release()
    assert second.try_acquire(MCP, str(tmp_path))
    second.release()

    # A process that dies holding the lock leaves nothing stuck.
    code = f"""
import os, sys
sys.path[:0] = {sys.path!r}
from kenning.server.writer_lock import EDITOR, MCP, WriterLock
assert WriterLock(__import__('pathlib').Path({str(tmp_path)!r})).try_acquire('mcp', 'w')
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    assert WriterLock(Path(tmp_path)).try_acquire(MCP, str(tmp_path))
