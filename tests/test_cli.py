"""The command line end to end, on a fixture repository of real files, with the
real bundled model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kenning.server.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def index_json(capsys, workspace: Path) -> dict:
    code, out, _ = run(capsys, "index", str(workspace), "--json")
    assert code == 0
    return json.loads(out)


def search_json(capsys, workspace: Path, query: str, *extra: str) -> dict:
    code, out, _ = run(capsys, "search", query, "--workspace", str(workspace), "--json", *extra)
    assert code == 0
    return json.loads(out)


def test_index_then_search_finds_the_function_that_does_it(capsys, core_workspace):
    summary = index_json(capsys, core_workspace)
    assert summary["files"] == 11 and summary["chunks"] > 20
    assert summary["embedded"] > 0 and summary["removed"] == 0
    assert set(summary) >= {"files", "chunks", "embedded", "removed", "skipped", "took_s"}

    answer = search_json(capsys, core_workspace, "where do we retry failed uploads?")
    top = answer["results"][0]
    assert (top["path"], top["symbol"]) == ("app/uploads.py", "upload_with_retry")
    assert (top["start_line"], top["end_line"]) == (17, 26)
    assert top["language"] == "python" and top["snippet"].startswith("def upload_with_retry")
    assert answer["query"] == "where do we retry failed uploads?"
    assert answer["model"] == "all-MiniLM-L6-v2@base" and answer["took_ms"] > 0
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)


def test_each_mode_answers_and_finds_other_languages(capsys, core_workspace):
    index_json(capsys, core_workspace)
    for mode in ("semantic", "lexical", "hybrid"):
        answer = search_json(
            capsys, core_workspace, "least recently used cache", "--mode", mode, "-k", "3"
        )
        assert answer["results"][0]["path"] == "native/lru.cpp", mode
        assert len(answer["results"]) <= 3


def test_explain_shows_why_each_result_ranks_where_it_does(capsys, core_workspace):
    index_json(capsys, core_workspace)

    code, out, _ = run(
        capsys, "search", "upload_with_retry", "--workspace", str(core_workspace), "--explain"
    )

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("fusion: model x") and "name" in lines[0]
    assert lines[1].startswith("app/uploads.py:17-26  upload_with_retry")
    assert lines[3].startswith("    why: model #") and "definition +" in lines[3]
    answer = search_json(capsys, core_workspace, "upload_with_retry", "--explain", "-k", "2")
    first = answer["results"][0]["explain"]
    assert first["lexical_rank"] == 1 and first["boosts"]["definition"] > 0
    assert first["final"] == answer["results"][0]["score"]
    assert answer["weights"]["lexical"] > answer["weights"]["dense"]
    assert "explain" not in search_json(capsys, core_workspace, "upload")["results"][0]


def test_second_index_embeds_nothing(capsys, core_workspace):
    index_json(capsys, core_workspace)
    again = index_json(capsys, core_workspace)
    assert (again["embedded"], again["removed"]) == (0, 0)


def test_editing_one_function_reembeds_only_that_chunk(capsys, core_workspace):
    index_json(capsys, core_workspace)
    path = core_workspace / "app" / "config.py"
    text = path.read_text()
    old_body = '        return self.data.get("database_url", "sqlite:///app.db")'
    assert old_body in text
    path.write_text(
        text.replace(old_body, '        return self.data.get("redis_url", "redis://cache:6379/0")')
    )

    summary = index_json(capsys, core_workspace)
    assert summary["embedded"] == 1
    assert summary["removed"] == len_chunks_of(core_workspace, "app/config.py")  # the old version

    answer = search_json(capsys, core_workspace, "redis cache url", "--mode", "lexical")
    assert any("redis://cache" in r["snippet"] for r in answer["results"])
    gone = search_json(capsys, core_workspace, "sqlite app db", "--mode", "lexical")
    assert not any("sqlite:///app.db" in r["snippet"] for r in gone["results"])


def len_chunks_of(workspace: Path, rel: str) -> int:
    from kenning.server.chunking import chunk_file

    return len(chunk_file(rel, (workspace / rel).read_text()))


def test_deleted_files_leave_the_index(capsys, core_workspace):
    index_json(capsys, core_workspace)
    (core_workspace / "native" / "lru.cpp").unlink()
    summary = index_json(capsys, core_workspace)
    assert summary["files"] == 10 and summary["removed"] > 0
    answer = search_json(capsys, core_workspace, "least recently used cache")
    assert all(r["path"] != "native/lru.cpp" for r in answer["results"])


def test_empty_workspace_indexes_to_nothing_and_searches_to_an_empty_list(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert index_json(capsys, empty)["chunks"] == 0
    assert search_json(capsys, empty, "anything at all")["results"] == []


def test_skipped_files_are_counted_never_fatal(capsys, core_workspace):
    (core_workspace / "blob.bin2").write_bytes(b"\x00" * 100)
    (core_workspace / ".env").write_text("TOKEN=hunter2\n")
    (core_workspace / "big.py").write_text("x = 1\n" * 300_000)
    summary = index_json(capsys, core_workspace)
    assert summary["skipped"] == 3
    assert summary["skipped_by_reason"] == {"binary": 1, "secret": 1, "too_large": 1}


def test_status_reports_the_index(capsys, core_workspace):
    index_json(capsys, core_workspace)
    code, out, _ = run(capsys, "status", str(core_workspace), "--json")
    status = json.loads(out)
    assert code == 0
    assert status["files"] == 11 and status["pending"] == 0 and status["generation"] == 1
    assert status["model"] == "all-MiniLM-L6-v2@base"
    assert status["training"] == []  # no run yet; `kenning train` appends to the history
    code, out, _ = run(capsys, "status", str(core_workspace))
    assert code == 0 and "training   0 run(s)" in out


def test_corrupt_index_is_rebuilt_with_a_warning(capsys, core_workspace, tmp_path):
    index_json(capsys, core_workspace)
    db = tmp_path / "index" / "index.sqlite"
    db.write_bytes(b"garbage" * 1000)
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (tmp_path / "index" / extra).unlink(missing_ok=True)
    code, out, err = run(capsys, "index", str(core_workspace), "--json")
    assert code == 0 and json.loads(out)["files"] == 11
    assert "warning" in err and "corrupt" in err and "Traceback" not in err


def test_missing_workspace_exits_2_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kenning.server.cli", "index", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "does not exist" in proc.stderr


def test_bad_usage_exits_2(capsys, core_workspace):
    assert run(capsys, "search", "x", "--mode", "fuzzy")[0] == 2
    code, _, err = run(capsys, "search", "x", "-k", "0", "--workspace", str(core_workspace))
    assert code == 2 and "at least 1" in err
