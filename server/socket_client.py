"""The command line's side of the daemon socket: ask a running server, or say why not.

A running `kenning serve` (an editor's, or a background daemon) listens on
`kenning.sock` in its index folder (server/socket_server.py). `ask` sends
one JSON line and reads one back. It returns None, so that the caller works
in-process instead, when:

- there is no socket, or nobody listens on it any more (a daemon that died
  left the file behind): silently, since that is the normal case;
- the socket belongs to another user, or the daemon answers garbage, hangs
  past a short timeout or closes mid-answer: with one line on stderr.

This module imports nothing heavy: a search answered by a daemon costs the
interpreter's start-up, the settings and one round trip.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SOCKET_NAME = "kenning.sock"
CONNECT_TIMEOUT_S = 1.0
ANSWER_TIMEOUT_S = 5.0
"""A daemon answers a search in milliseconds; past this it is hung, and the
command line answers in-process instead."""
MAX_LINE = 64 << 20
_MAX_PATH = 100
"""Unix socket paths are limited to about 104-108 bytes."""


class DaemonError(RuntimeError):
    """The daemon refused the request itself (a bad query): not a reason to fall back.

    `usage` is True for bad usage (exit code 2)."""

    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage


def socket_path(index_dir: Path) -> Path:
    return Path(index_dir) / SOCKET_NAME


@contextmanager
def socket_address(index_dir: Path) -> Iterator[str]:
    """A path for bind/connect: the socket's own path, or, where that is too long for a
    socket address, the same file reached through an open descriptor of its folder."""
    path = socket_path(index_dir)
    if len(os.fsencode(str(path))) <= _MAX_PATH or not Path("/proc/self/fd").is_dir():
        yield str(path)
        return
    fd = os.open(index_dir, os.O_RDONLY)
    try:
        yield f"/proc/self/fd/{fd}/{SOCKET_NAME}"
    finally:
        os.close(fd)


def owner_problem(path: Path) -> str | None:
    """Why the socket file at `path` must not be used (None when it is ours)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(st.st_mode):
        return f"{path} is not a socket"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{path} belongs to another user (uid {st.st_uid})"
    return None


def ask(
    index_dir: Path, request: dict[str, Any], *, timeout: float | None = None
) -> dict[str, Any] | None:
    """The daemon's `result` for `request`; None when no daemon answered (see the module
    docstring); DaemonError when the daemon answered with an error about the request."""
    timeout = ANSWER_TIMEOUT_S if timeout is None else timeout
    path = socket_path(index_dir)
    problem = owner_problem(path)
    if problem:
        _say(f"not using the daemon socket: {problem}; working in-process")
        return None
    if not path.exists():
        return None
    try:
        with socket_address(index_dir) as address:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        return None  # a socket file left by a daemon that is gone
    except OSError as exc:
        _say(f"cannot reach the daemon at {path} ({exc.strerror or exc}); working in-process")
        return None
    try:
        sock.settimeout(timeout)
        sock.sendall(json.dumps(request).encode() + b"\n")
        raw = _read_line(sock)
    except TimeoutError:
        _say(f"the daemon did not answer within {timeout:g}s; working in-process")
        return None
    except OSError as exc:
        _say(f"the daemon's connection failed ({exc.strerror or exc}); working in-process")
        return None
    finally:
        sock.close()
    if raw is None:
        _say("the daemon closed the connection mid-answer; working in-process")
        return None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "ok" not in answer:
        _say("the daemon answered something that is not Kenning's JSON; working in-process")
        return None
    if answer["ok"] and isinstance(answer.get("result"), dict):
        return answer["result"]
    if answer.get("elsewhere"):
        return None  # a daemon for another workspace or model: not an error
    raise DaemonError(str(answer.get("error") or "the daemon refused"), bool(answer.get("usage")))


def _read_line(sock: socket.socket) -> bytes | None:
    """One newline-terminated answer; None if the peer closed before the newline."""
    parts: list[bytes] = []
    size = 0
    while True:
        block = sock.recv(1 << 16)
        if not block:
            return None
        end = block.find(b"\n")
        if end >= 0:
            parts.append(block[:end])
            return b"".join(parts)
        parts.append(block)
        size += len(block)
        if size > MAX_LINE:
            return None


def _say(line: str) -> None:
    print(f"kenning: warning: {line}", file=sys.stderr)
