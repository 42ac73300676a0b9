"""Picks: the search results people opened, kept as (query, place) pairs to learn from.

When a person opens a result in the editor, the client sends `kenning/feedback`
`{query, uri, range}`. The server keeps it here, in the index folder, as one
JSON line per pick (`picks.jsonl`, owner-only), and the trainer reads them back
as the strongest kind of training pair: a query someone really typed, and the
code they chose for it. Nothing else is kept, and the queries never go to a log.

The file is capped: past `MAX_PICKS` the oldest picks are dropped (the file is
rewritten to a temporary name and renamed, so a crash leaves the old file or
the new one). A burst of thousands of picks costs one short append each.
`kenning feedback --clear` removes the file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

PICKS_NAME = "picks.jsonl"
MAX_PICKS = 5000
"""Picks kept per index; the oldest go first. Thousands of picks are months of use."""
MAX_PICK_QUERY_CHARS = 400
"""Longer queries are cut here (the trainer reads no more of an anchor)."""


@dataclass(frozen=True)
class Pick:
    query: str
    path: str
    """Workspace-relative, `/` separators."""
    start_line: int
    """1-based, inclusive (as in search results)."""
    end_line: int
    time: float


class PickStore:
    """The picks of one index folder. Safe for several threads; several processes may
    read it while one appends."""

    def __init__(self, index_dir: Path, cap: int = MAX_PICKS):
        self.path = Path(index_dir) / PICKS_NAME
        self.cap = cap
        self._lock = threading.Lock()
        self._lines: int | None = None
        """Lines in the file as this process last counted (None: not counted yet)."""

    def add(self, pick: Pick) -> None:
        """Append one pick; past the cap (plus some slack) drop the oldest."""
        line = json.dumps(asdict(pick), ensure_ascii=False) + "\n"
        with self._lock:
            if self._lines is None:
                self._lines = self._count_lines()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(line)
            self._lines += 1
            # Rewriting on every pick past the cap would be quadratic in a burst:
            # let the file run a quarter over, then cut it back in one rewrite.
            if self._lines > self.cap + max(100, self.cap // 4):
                self._compact()

    def read(self) -> list[Pick]:
        """The newest `cap` picks, oldest first; damaged lines are skipped."""
        return list(self._parse())[-self.cap :]

    def count(self) -> int:
        return min(self.cap, self._count_lines())

    def count_since(self, when: float) -> int:
        """Picks made after `when` (a time.time() value)."""
        return sum(1 for p in self.read() if p.time > when)

    def clear(self) -> int:
        """Forget every pick; returns how many there were."""
        with self._lock:
            n = self.count()
            self.path.unlink(missing_ok=True)
            self._lines = 0
            return n

    def _parse(self) -> Iterator[Pick]:
        try:
            text = self.path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                data = json.loads(line)
                pick = Pick(
                    query=str(data["query"]),
                    path=str(data["path"]),
                    start_line=int(data["start_line"]),
                    end_line=int(data["end_line"]),
                    time=float(data["time"]),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            if pick.query and pick.start_line >= 1 and pick.end_line >= pick.start_line:
                yield pick

    def _count_lines(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 16), b""))
        except FileNotFoundError:
            return 0

    def _compact(self) -> None:
        keep = list(self._parse())[-self.cap :]
        tmp = self.path.with_name(f".{PICKS_NAME}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for pick in keep:
                fh.write(json.dumps(asdict(pick), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._lines = len(keep)


def clean_query(query: str) -> str:
    """The query as it is kept: lone surrogates replaced, whitespace collapsed, cut short."""
    text = " ".join(query.encode("utf-8", "replace").decode("utf-8").split())
    return text[:MAX_PICK_QUERY_CHARS]


def make_pick(
    root: Path, rel: str, start_line: int, end_line: int, query: str, max_file_bytes: int
) -> tuple[Pick | None, str | None]:
    """(the pick to keep, None) or (None, why it is dropped), for a result opened at
    1-based lines `start_line`..`end_line` of workspace file `rel`.

    A range past the end of the file is clipped to it. A file that is gone, not a
    regular file or too large to be indexed is dropped: there is no code to learn.
    The reason never repeats the query (it stays out of logs).
    """
    text = clean_query(query)
    if not text:
        return None, "the query is empty"
    path = root / rel
    try:
        if not path.is_file():
            return None, f"{rel} is not a file in the workspace (deleted?)"
        if path.stat().st_size > max_file_bytes:
            return None, f"{rel} is larger than max_file_bytes, so it is not indexed"
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{rel} cannot be read ({exc.strerror or exc})"
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    if lines == 0:
        return None, f"{rel} is empty"
    start = min(max(1, start_line), lines)
    end = min(max(start, end_line), lines)
    return Pick(query=text, path=rel, start_line=start, end_line=end, time=time.time()), None
