"""What a search says beside its results: workspace symbols named after what they are
(never after a raw comment line), and notes that name only what is true."""

from __future__ import annotations

import json

from kenning.server.answers import STILL_BUILDING, IndexView, answer_search
from kenning.server.cli import main
from kenning.server.engine import Engine
from kenning.server.protocol import SearchHit
from kenning.server.symbols import symbol_kind, symbol_name, symbols_for
from lsprotocol import types


def hit(path: str, start: int, end: int, **extra) -> SearchHit:
    return SearchHit(
        uri=f"file:///ws/{path}",
        range=types.Range(
            start=types.Position(line=start - 1, character=0),
            end=types.Position(line=end, character=0),
        ),
        score=1.0,
        snippet="# The parent of watchdog's observers logs an overflow",
        path=path,
        **extra,
    )


def test_a_window_of_lines_is_named_by_its_file_and_lines_not_its_first_line():
    window = hit("server/watcher.py", 1, 40, language="python", kind="window")
    (symbol,) = symbols_for([window])
    assert symbol.name == "watcher.py lines 1-40"
    assert symbol.kind == types.SymbolKind.Module
    assert symbol.container_name == "server/watcher.py"


def test_a_window_of_prose_is_a_file_section():
    section = hit("docs/design.md", 41, 80, language="markdown", kind="window")
    assert (symbol_name(section), symbol_kind(section)) == (
        "design.md lines 41-80",
        types.SymbolKind.File,
    )


def test_definitions_keep_their_names_and_kinds():
    method = hit("a.py", 3, 9, symbol="Cache.get", language="python", kind="method")
    long_def = hit("a.py", 60, 120, symbol="parse", language="python", kind="window")
    assert (symbol_name(method), symbol_kind(method)) == ("Cache.get", types.SymbolKind.Method)
    assert (symbol_name(long_def), symbol_kind(long_def)) == ("parse", types.SymbolKind.Function)


def test_while_only_the_model_loads_the_note_says_so_and_nothing_else(capsys, core_workspace):
    assert main(["index", str(core_workspace), "-q", "--json"]) == 0
    capsys.readouterr()
    with Engine.open(core_workspace) as engine:  # a fresh process: the model is not loaded
        loading = IndexView(first_index_done=True, load_if_needed=False)
        outcome = answer_search(engine, "retry failed uploads", view=loading)
    assert outcome.partial is True and outcome.results
    assert outcome.notes == ["the model is still loading: these results are lexical only"]
    assert STILL_BUILDING not in outcome.notes


def test_while_the_first_index_runs_the_note_says_so(capsys, core_workspace):
    assert main(["index", str(core_workspace), "-q", "--json"]) == 0
    json.loads(capsys.readouterr().out)
    with Engine.open(core_workspace) as engine:
        building = IndexView(first_index_done=False, load_if_needed=True)
        outcome = answer_search(engine, "retry failed uploads", view=building)
    assert outcome.partial is True and outcome.notes == [STILL_BUILDING]
