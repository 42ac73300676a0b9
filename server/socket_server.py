"""The daemon's local socket: the command line asks a running server instead of loading a model.

The server that holds the index's writer lock (server/writer_lock.py) listens
on `kenning.sock` in the index folder: a Unix domain socket, created
owner-only (the folder is 0700 and the socket 0600), and every connection's
peer is checked to be this user (SO_PEERCRED) before anything is read. One
connection carries one request and one answer, each a line of JSON:

    {"op": "search", "workspace": "/repo", "model": "all-MiniLM-L6-v2", "query": "...",
     "limit": 10, "mode": "hybrid", "paths": [], "explain": false}
    {"ok": true, "result": {... exactly what `kenning search --json` prints ...}}

Ops: `ping`, `search`, `status`, `reindex` (`paths` or a full rescan), `stop`
(a background daemon ends; an editor's server refuses). An error answer is
`{"ok": false, "error": "...", "usage": bool}`, or `"elsewhere": true` when
the request names another workspace or model than this server's (the
command line then works in-process). The protocol is specified in
docs/protocol.md §4.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .socket_client import MAX_LINE, socket_address, socket_path

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 10.0
"""A client that connects and sends nothing is dropped after this long."""

Handler = Callable[[dict[str, Any]], dict[str, Any]]
"""request -> the answer object ({"ok": ..., ...})."""


class SocketServer:
    """Accepts connections on the index's socket and answers them with `handler` on a
    small pool of threads, apart from the caller's event loop and index worker."""

    def __init__(self, index_dir: Path, handler: Handler):
        self.index_dir = Path(index_dir)
        self.path = socket_path(index_dir)
        self.handler = handler
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kenning-socket")
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self) -> None:
        """Bind and listen. Only the writer-lock holder calls this, so a socket file
        already there is a dead server's, and is replaced."""
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket file is created 0600
        try:
            with socket_address(self.index_dir) as address:
                sock.bind(address)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        sock.listen(16)
        self._sock = sock
        self._inode = self.path.stat().st_ino
        self._thread = threading.Thread(target=self._accept, name="kenning-socket", daemon=True)
        self._thread.start()
        log.info("answering the command line on %s", self.path)

    def stop(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        try:  # remove the file only if it is still ours (not a successor's)
            if self._inode is not None and self.path.stat().st_ino == self._inode:
                self.path.unlink()
        except OSError:
            pass
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _accept(self) -> None:
        while not self._closed.is_set():
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed by stop()
            if not _same_user(conn):
                log.warning("refused a connection on %s from another user", self.path)
                conn.close()
                continue
            try:
                self._pool.submit(self._serve, conn)
            except RuntimeError:  # the pool shut down meanwhile
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(READ_TIMEOUT_S)
            try:
                raw = _read_request(conn)
            except OSError:
                return
            answer = self._answer(raw)
            try:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                pass  # the client gave up waiting

    def _answer(self, raw: bytes | None) -> dict[str, Any]:
        try:
            request = json.loads(raw) if raw is not None else None
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": "expected one JSON object with an op", "usage": True}
        try:
            return self.handler(request)
        except Exception as exc:  # noqa: BLE001 - a bad request never takes the server down
            log.exception("socket request %s failed", request.get("op"))
            return {"ok": False, "error": str(exc) or type(exc).__name__}


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\n" not in data:
        block = conn.recv(1 << 16)
        if not block:
            return data or None
        data += block
        if len(data) > MAX_LINE:
            return None
    return data.split(b"\n", 1)[0]


def _same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as this user (Linux; elsewhere the 0600 socket file and the
    0700 folder are the guard)."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None or not hasattr(os, "getuid"):
        return True
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()
