"""One consistent command line (issue 21): shared flags in either position, `--workspace` on
every command, one line on stderr for bad usage, the same exit code for the same mistake,
progress on stderr only, and what `kenning search --json` says about a thin answer."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kenning.server.cli import build_parser, main
from kenning.server.progress import Progress


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "search", "x", "--model", "m", "--index-dir", "i", "--device", "cpu"],
        ["search", "x", "-v", "--model", "m", "--index-dir", "i", "--device", "cpu"],
        ["--model", "m", "--index-dir", "i", "search", "x", "--device", "cpu", "--verbose"],
    ],
)
def test_shared_flags_work_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert args.verbose is True
    assert (args.model, args.index_dir, args.device) == ("m", "i", "cpu")


@pytest.mark.parametrize("command", ["index", "status", "train", "eval", "stop"])
def test_every_command_takes_workspace_as_flag_and_as_positional(command):
    parser = build_parser()
    assert parser.parse_args([command, "--workspace", "ws"]).workspace == "ws"
    assert parser.parse_args([command, "ws"]).workspace_arg == "ws"
    assert parser.parse_args(["search", "q", "--workspace", "ws"]).workspace == "ws"
    assert parser.parse_args(["serve", "--background", "--workspace", "ws"]).workspace == "ws"


def test_status_accepts_workspace_flag(capsys, core_workspace):
    code, out, _ = run(capsys, "status", "--workspace", str(core_workspace), "--json")
    assert code == 0 and json.loads(out)["workspace"] == str(core_workspace.resolve())


def test_two_different_workspaces_are_bad_usage(capsys, core_workspace, tmp_path):
    code, _, err = run(capsys, "status", str(core_workspace), "--workspace", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "two workspaces" in err


def test_argument_errors_are_one_line_on_stderr_with_exit_code_2():
    for argv in (["search", "x", "--mode", "fuzzy"], ["index", "--nope"], ["frobnicate"]):
        proc = subprocess.run(
            [sys.executable, "-m", "kenning.server.cli", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, argv
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("kenning: error: "), argv
        assert "--help" in proc.stderr and proc.stdout == ""


def test_a_model_folder_that_does_not_exist_is_bad_usage_for_every_command(capsys, tmp_path):
    missing = str(tmp_path / "no-such-model")
    (tmp_path / "ws").mkdir()
    for command in ("index", "status"):
        code, _, err = run(capsys, command, str(tmp_path / "ws"), "--model", missing)
        assert code == 2 and "does not exist" in err, command


def test_a_device_that_is_not_here_is_bad_usage_for_index_as_for_train(capsys, core_workspace):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run(capsys, "index", str(core_workspace), "--device", "cuda:0", "-q")
    assert code == 2 and "no CUDA GPU" in err and err.count("\n") == 1


def test_a_train_setting_too_small_to_train_with_is_refused_naming_the_setting(capsys, tmp_path):
    (tmp_path / "kenning.toml").write_text("[train]\nbatch_size = 1\n")
    code, _, err = run(capsys, "status", str(tmp_path))
    assert code == 2 and "setting 'train.batch_size'" in err and "at least 2" in err


def test_search_json_says_why_results_are_thin(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, _ = run(capsys, "search", "anything", "--workspace", str(empty), "--json")
    answer = json.loads(out)
    assert code == 0 and answer["results"] == [] and answer["partial"] is False
    assert any("nothing matched" in n for n in answer["notes"])
    assert answer["load_ms"] == 0 and answer["took_ms"] >= 0


def test_search_json_results_carry_their_kind(capsys, core_workspace):
    code, out, _ = run(
        capsys, "search", "retry failed uploads", "--workspace", str(core_workspace), "--json"
    )
    answer = json.loads(out)
    assert code == 0 and answer["results"][0]["kind"] == "function"
    assert answer["load_ms"] > 0  # the first search loaded the model: counted apart
    assert answer["took_ms"] < answer["load_ms"] + answer["took_ms"]


def test_progress_lines_go_to_stderr_every_few_seconds_when_not_a_terminal():
    stream = io.StringIO()
    now = [0.0]
    progress = Progress(stream=stream, every_s=5, clock=lambda: now[0], ticker=False)
    for done in range(0, 1001, 100):
        now[0] = done / 20  # 20 chunks a second
        progress("embed", done, 1000)
    lines = stream.getvalue().splitlines()
    assert 8 <= len(lines) <= 10
    assert lines[0].startswith("kenning: embedding 100/1,000 chunks (10%)")
    assert "20.0/s" in lines[0] and "about 45s left" in lines[0]


def test_progress_lines_keep_coming_while_one_long_batch_runs():
    stream = io.StringIO()
    progress = Progress(stream=stream, every_s=0.05)
    progress("embed", 0, 500)  # then nothing for a while: the model loads, a batch runs
    time.sleep(0.5)
    progress.stop()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3 and all(ln.startswith("kenning: embedding 0/500 chunks") for ln in lines)


def test_quiet_silences_progress():
    stream = io.StringIO()
    now = [0.0]
    progress = Progress(quiet=True, stream=stream, every_s=0, clock=lambda: now[0])
    for done in range(10):
        now[0] += 10
        progress("scan", done, 10)
    assert stream.getvalue() == ""


def test_index_json_stays_clean_when_stderr_is_a_pipe(core_workspace, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kenning.server.cli", "index", str(core_workspace), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(tmp_path / "index"),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == 11
    assert all(line.startswith("kenning: ") for line in proc.stderr.splitlines())


def test_unknown_setting_keys_get_a_one_line_warning(core_workspace, tmp_path):
    env = {**_env(tmp_path / "index"), "KENNING_TRAIN__SCHEDUEL": "off"}
    proc = subprocess.run(
        [sys.executable, "-m", "kenning.server.cli", "status", str(core_workspace)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == (
        "kenning: warning: unknown setting 'train.scheduel' (environment) is ignored; "
        "the settings are listed in docs/protocol.md"
    )


def _env(index_dir: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KENNING_")}
    return {**env, "KENNING_INDEX_DIR": str(index_dir)}
