"""The command line asks a running daemon (issue 17): the same JSON as in-process, a fallback
with one line on stderr when the daemon misbehaves, stale and foreign sockets never used,
racing `--background` starts that end with one daemon, and `kenning stop`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kenning.server import socket_client
from kenning.server.cli import main
from kenning.server.daemon import ServedIndex, handle
from kenning.server.engine import Engine
from kenning.server.socket_server import SocketServer
from kenning.server.watcher import ChangeQueue
from kenning.server.writer_lock import EDITOR, WriterLock

KENNING = [sys.executable, "-m", "kenning.server.cli"]


def kenning(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """`kenning ARGV` in its own process."""
    return subprocess.run([*KENNING, *argv], capture_output=True, text=True, timeout=300, env=env)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def indexed(capsys, core_workspace) -> Path:
    code, _, err = run(capsys, "index", str(core_workspace), "-q")
    assert code == 0, err
    return core_workspace


@pytest.fixture
def index_dir(tmp_path) -> Path:
    return tmp_path / "index"  # KENNING_INDEX_DIR (tests/conftest.py)


@pytest.fixture
def daemon(indexed, index_dir):
    """A server for the workspace in this process: the writer lock, the socket and an engine."""
    engine = Engine.open(indexed)
    engine.light_queries = True  # as a background daemon does: semantic answers at once
    gen = engine.serving_generation()
    assert gen is not None and engine.light_encoder(gen.location) is not None
    lock = WriterLock(index_dir)
    assert lock.try_acquire(EDITOR, str(engine.root))
    served = ServedIndex(engine, EDITOR, None, ChangeQueue())
    server = SocketServer(index_dir, lambda request: handle(served, request))
    server.start()
    yield served
    server.stop()
    engine.close()
    lock.release()


def search(capsys, workspace: Path, *extra: str) -> tuple[int, dict, str]:
    code, out, err = run(
        capsys,
        "search",
        "where do we retry failed uploads?",
        "--workspace",
        str(workspace),
        "--json",
        *extra,
    )
    return code, json.loads(out) if out else {}, err


def test_a_running_daemon_answers_with_the_json_of_an_in_process_search(
    capsys, indexed, daemon, index_dir
):
    code, via_daemon, err = search(capsys, indexed)
    assert code == 0 and err == ""
    code, status, _ = run(capsys, "status", str(indexed), "--json")
    assert json.loads(status)["served_by"] == {"pid": os.getpid(), "role": "editor"}
    # The daemon holds the writer lock, so an in-process run answers from the index as it is.
    code, in_process, err = search(capsys, indexed, "--no-daemon")
    assert code == 0 and "answering from it as it is" in err
    assert set(via_daemon) == set(in_process)
    strip = ("took_ms", "load_ms")
    assert {k: v for k, v in via_daemon.items() if k not in strip} == {
        k: v for k, v in in_process.items() if k not in strip
    }


def test_explain_comes_back_from_the_daemon_as_from_an_in_process_search(capsys, indexed, daemon):
    code, via_daemon, err = search(capsys, indexed, "--explain")
    assert code == 0 and err == ""
    assert via_daemon["weights"]["dense"] > 0
    assert all(r["explain"]["final"] == r["score"] for r in via_daemon["results"])
    _, in_process, _ = search(capsys, indexed, "--explain", "--no-daemon")
    assert [r["explain"] for r in via_daemon["results"]] == [
        r["explain"] for r in in_process["results"]
    ]
    code, out, err = run(
        capsys, "search", "upload_with_retry", "--workspace", str(indexed), "--explain"
    )
    assert code == 0 and out.startswith("fusion: model x") and "    why: model #" in out


def test_a_daemon_refuses_an_explain_that_is_not_true_or_false(daemon):
    answer = handle(daemon, {"op": "search", "query": "upload", "explain": "yes"})
    assert answer == {"ok": False, "error": "explain must be true or false", "usage": True}


def test_a_stale_socket_file_is_ignored_silently(capsys, indexed, index_dir):
    path = socket_client.socket_path(index_dir)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: a daemon that died
    code, answer, err = search(capsys, indexed)
    assert code == 0 and err == "" and answer["results"][0]["symbol"] == "upload_with_retry"


def test_a_socket_of_another_user_is_never_used(capsys, indexed, index_dir):
    if os.getuid() != 0:
        pytest.skip("making a file owned by another user needs root")
    with fake_daemon(index_dir, lambda conn: conn.sendall(b'{"ok": true}\n')) as fake:
        os.chown(socket_client.socket_path(index_dir), 4242, -1)
        code, answer, err = search(capsys, indexed)
    assert code == 0 and answer["results"] and not fake.received
    assert err.count("\n") == 1 and "belongs to another user" in err


@pytest.mark.parametrize(
    ("behaviour", "said"),
    [
        (lambda conn: conn.sendall(b"this is not json\n"), "not Kenning's JSON"),
        (lambda conn: conn.sendall(b'{"ok": true, "resu'), "closed the connection mid-answer"),
        (lambda conn: time.sleep(3), "did not answer within"),
    ],
    ids=["garbage", "closes mid-answer", "hangs"],
)
def test_a_misbehaving_daemon_makes_the_command_line_fall_back_with_one_line(
    capsys, indexed, index_dir, monkeypatch, behaviour, said
):
    monkeypatch.setattr(socket_client, "ANSWER_TIMEOUT_S", 1.0)
    with fake_daemon(index_dir, behaviour):
        code, answer, err = search(capsys, indexed, "--mode", "lexical")
    assert code == 0 and answer["results"][0]["path"] == "app/uploads.py"
    assert err.count("\n") == 1 and said in err


def test_stop_without_a_daemon_says_so_and_exits_0(capsys, core_workspace):
    code, out, err = run(capsys, "stop", str(core_workspace))
    assert code == 0 and out.startswith("no daemon is running for") and err == ""


def test_stop_refuses_an_editors_server(capsys, indexed, daemon):
    code, _, err = run(capsys, "stop", "--workspace", str(indexed))
    assert code == 1 and "stops with the editor" in err and err.count("\n") == 1


def test_two_background_starts_race_to_one_daemon_and_stop_ends_it(indexed, index_dir):
    env = {**os.environ, "KENNING_INDEX_DIR": str(index_dir)}
    starts = [
        subprocess.Popen(
            [*KENNING, "serve", "--background", "--workspace", str(indexed)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    said = [p.communicate(timeout=240)[1] for p in starts]
    assert [p.returncode for p in starts] == [0, 0], said
    pids = {line.split("pid ")[1].split(")")[0] for line in said}
    assert len(pids) == 1, said  # both name the one daemon that won the lock
    pid = int(pids.pop())
    holder = WriterLock(index_dir).holder()
    assert holder is not None and (holder.pid, holder.role) == (pid, "background")

    found = kenning(env, "search", "retry failed uploads", "--workspace", str(indexed), "--json")
    assert found.returncode == 0 and json.loads(found.stdout)["results"], found.stderr
    status = kenning(env, "status", str(indexed), "--json")
    assert json.loads(status.stdout)["served_by"] == {"pid": pid, "role": "background"}

    stopped = kenning(env, "stop", str(indexed))
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert WriterLock(index_dir).holder() is None
    assert not socket_client.socket_path(index_dir).exists()
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_auto_start_starts_a_daemon_that_leaves_when_idle(indexed, index_dir):
    env = {
        **os.environ,
        "KENNING_INDEX_DIR": str(index_dir),
        "KENNING_DAEMON__AUTO_START": "true",
        "KENNING_DAEMON__IDLE_MINUTES": "0.05",
    }
    found = kenning(env, "search", "retry failed uploads", "--workspace", str(indexed), "--json")
    assert found.returncode == 0 and json.loads(found.stdout)["results"], found.stderr
    assert "started a daemon" in found.stderr
    holder = WriterLock(index_dir).holder()
    assert holder is not None and holder.role == "background"
    deadline = time.monotonic() + 240  # it loads its model, goes idle, then waits 3 s
    while WriterLock(index_dir).holder() is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert WriterLock(index_dir).holder() is None
    assert not socket_client.socket_path(index_dir).exists()


class fake_daemon:
    """A socket in the index folder that reads each request and then does `behaviour`."""

    def __init__(self, index_dir: Path, behaviour):
        self.path = socket_client.socket_path(index_dir)
        self.behaviour = behaviour
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.received: list[bytes] = []

    def __enter__(self) -> fake_daemon:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sock.bind(str(self.path))
        self.sock.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.received.append(conn.recv(1 << 16))
                self.behaviour(conn)

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


def test_a_daemon_that_crashes_in_native_code_leaves_its_threads_stacks_in_its_log(
    indexed, index_dir
):
    env = {**os.environ, "KENNING_INDEX_DIR": str(index_dir)}
    started = kenning(env, "serve", "--background", "--workspace", str(indexed))
    assert started.returncode == 0, started.stderr
    pid = int(started.stderr.split("pid ")[1].split(")")[0])
    os.kill(pid, signal.SIGSEGV)  # what a crash in torch or SQLite would raise
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    log = (index_dir / "daemon.log").read_text("utf-8", errors="replace")
    assert "Fatal Python error: Segmentation fault" in log
    assert log.count("Thread 0x") >= 2, log[-2000:]  # every thread's stack, not one
