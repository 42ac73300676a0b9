"""The daemon's view of a training run in a child process: what comes back when
the run cannot even start (the server records it and keeps going)."""

from __future__ import annotations

from kenning.server.train_process import TrainProcess


def test_an_error_in_the_child_comes_back_as_a_one_line_failure(tmp_path):
    events = []
    run = TrainProcess(
        tmp_path / "missing",
        {"index_dir": str(tmp_path / "index")},
        {},
        tmp_path / "logs",
        events.append,
    )
    outcome = run.run()
    assert outcome.status == "failed" and outcome.result is None
    assert outcome.reason == f"WorkspaceError: workspace {tmp_path / 'missing'} does not exist"
    assert events == []
    assert "training failed" in (tmp_path / "logs" / "last-run.log").read_text()
