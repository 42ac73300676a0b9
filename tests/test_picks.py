"""Picks: the results people open, kept owner-only in the index folder, capped, never
lost to bad input (server/picks.py)."""

from __future__ import annotations

import stat
from pathlib import Path

from kenning.server.picks import MAX_PICK_QUERY_CHARS, PICKS_NAME, Pick, PickStore, make_pick


def pick(i: int, query: str = "parse a price") -> Pick:
    return Pick(query=f"{query} {i}", path="shop/price.py", start_line=1, end_line=3, time=float(i))


def test_picks_are_kept_in_order_owner_only_and_forgotten_on_clear(tmp_path: Path):
    store = PickStore(tmp_path)
    for i in range(3):
        store.add(pick(i))
    assert [p.query for p in store.read()] == [
        "parse a price 0",
        "parse a price 1",
        "parse a price 2",
    ]
    assert store.count() == 3 and store.count_since(0.5) == 2
    assert stat.S_IMODE((tmp_path / PICKS_NAME).stat().st_mode) == 0o600
    assert store.clear() == 3
    assert not (tmp_path / PICKS_NAME).exists() and store.read() == [] and store.count() == 0


def test_ten_thousand_picks_keep_only_the_newest_and_the_file_stays_bounded(tmp_path: Path):
    store = PickStore(tmp_path, cap=500)
    for i in range(10_000):
        store.add(pick(i))
    kept = store.read()
    assert len(kept) == 500 and kept[0].query.endswith(" 9500") and kept[-1].query.endswith(" 9999")
    lines = (tmp_path / PICKS_NAME).read_text().count("\n")
    assert lines <= 500 + max(100, 500 // 4)  # cut back in one rewrite once a quarter over
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path):
    store = PickStore(tmp_path)
    store.add(pick(1))
    with open(tmp_path / PICKS_NAME, "a") as fh:
        fh.write('{"query": "half a li')
    store.add(pick(2))  # appended after the damaged line, as a new process would
    assert [p.query for p in PickStore(tmp_path).read()] == ["parse a price 1"]


def test_another_process_sees_the_picks_and_its_clear(tmp_path: Path):
    server, cli = PickStore(tmp_path), PickStore(tmp_path)
    server.add(pick(1))
    assert cli.count() == 1
    cli.clear()
    server.add(pick(2))
    assert [p.query for p in cli.read()] == ["parse a price 2"]


def write(ws: Path, rel: str, lines: int) -> None:
    path = ws / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"line {i}\n" for i in range(1, lines + 1)))


def test_a_range_past_the_end_of_the_file_is_clipped(tmp_path: Path):
    write(tmp_path, "shop/price.py", 20)
    kept, why = make_pick(tmp_path, "shop/price.py", 15, 400, "parse a price", 1 << 20)
    assert why is None and (kept.start_line, kept.end_line) == (15, 20)
    kept, _ = make_pick(tmp_path, "shop/price.py", 90, 95, "parse a price", 1 << 20)
    assert (kept.start_line, kept.end_line) == (20, 20)


def test_a_huge_query_is_cut_and_its_whitespace_collapsed(tmp_path: Path):
    write(tmp_path, "a.py", 3)
    kept, _ = make_pick(tmp_path, "a.py", 1, 2, "find   the\tprice " * 10_000, 1 << 20)
    assert len(kept.query) == MAX_PICK_QUERY_CHARS and "  " not in kept.query
    kept, _ = make_pick(tmp_path, "a.py", 1, 2, "lone \ud800 surrogate", 1 << 20)
    assert kept.query.encode("utf-8")


def test_picks_of_files_that_cannot_teach_anything_are_dropped_saying_why(tmp_path: Path):
    write(tmp_path, "big.py", 5000)
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "folder").mkdir()
    cases = {
        "gone.py": "gone.py is not a file in the workspace (deleted?)",
        "folder": "folder is not a file in the workspace (deleted?)",
        "empty.py": "empty.py is empty",
        "big.py": "big.py is larger than max_file_bytes, so it is not indexed",
    }
    for rel, reason in cases.items():
        kept, why = make_pick(tmp_path, rel, 1, 2, "a secret query", 1000)
        assert kept is None and why == reason
        assert "secret" not in why  # the query never reaches a log line
    assert make_pick(tmp_path, "big.py", 1, 2, "   ", 1 << 20) == (None, "the query is empty")


def test_the_command_line_counts_picks_and_forgets_them(tmp_path: Path, capsys):
    import json

    from kenning.server.cli import main

    ws = tmp_path / "ws"
    write(ws, "a.py", 3)
    index = tmp_path / "index"
    index.mkdir()
    store = PickStore(index)
    for i in range(3):
        store.add(pick(i))
    common = ["--index-dir", str(index)]
    assert main(["feedback", str(ws), "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "picks": 3,
        "cleared": 0,
        "path": str(index / PICKS_NAME),
        "learn_from_picks": True,
    }
    assert main(["status", str(ws), "--json", *common]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["picks"] == 3 and status["adapter"] is None
    assert main(["feedback", str(ws), "--clear", *common]) == 0
    assert capsys.readouterr().out.startswith("forgot 3 picks")
    assert not (index / PICKS_NAME).exists()
