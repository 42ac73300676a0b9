"""The lexical side: how identifiers become terms, bm25 search over the store,
and rebuilding an index whose lexical rows an older version wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from kenning.server import fts
from kenning.server.chunking import chunk_file
from kenning.server.lexical import document_terms, identifier_terms, match_any, query_terms
from kenning.server.ranking import DEFAULT
from kenning.server.store import FileUpdate, Store


def update(path: str, text: str) -> FileUpdate:
    return FileUpdate(path, len(text), 1, str(hash(text)), "python", chunk_file(path, text))


def search(store: Store, query: str, k: int = 5) -> list[str]:
    hits = store.lexical_search(
        query_terms(query), k, DEFAULT.bm25_weights, DEFAULT.postings_budget
    )
    chunks = store.chunks_by_ids([cid for cid, _ in hits])
    return [chunks[cid].symbol or chunks[cid].path for cid, _ in hits]


def test_an_identifier_is_its_whole_and_its_parts():
    assert identifier_terms("HTTPAdapter.send") == ["httpadapter", "http", "adapter", "send"]
    assert identifier_terms("parse_url") == ["parseurl", "parse", "url"]
    assert identifier_terms("maxRetries") == ["maxretries", "max", "retries"]
    assert identifier_terms("utf8 __init__") == ["utf8", "utf", "8", "init"]
    assert identifier_terms("plain words") == ["plain", "words"]


def test_words_of_any_script_are_terms():
    assert identifier_terms("café データを読む") == ["café", "データを読む"]


def test_a_query_loses_its_stop_words_and_repeats_but_keeps_its_names():
    assert query_terms("where do we retry the failed retry") == ["retry", "failed"]
    assert query_terms("Flask.open_instance_resource") == [
        "flask",
        "openinstanceresource",
        "open",
        "instance",
        "resource",
    ]


@pytest.mark.parametrize(
    "query",
    ['"retry" OR NOT', "foo.*bar(", "' OR 1=1; DROP TABLE chunks; --", "a NEAR(b c) AND d*", "^$"],
)
def test_nothing_a_user_types_becomes_fts_syntax(tmp_path, query):
    store = Store.open(tmp_path)
    store.apply_files([update("a.py", "def retry_failed():\n    return foo_bar(1)\n")])
    parts = [p for p in match_any(query_terms(query)).split(" OR ") if p]
    assert all(p.startswith('"') and p.endswith('"') and p.count('"') == 2 for p in parts)
    search(store, query)  # answers (maybe nothing), never an FTS5 syntax error


def test_the_chunk_naming_the_query_ranks_first(tmp_path):
    store = Store.open(tmp_path)
    store.apply_files(
        [
            update("a.py", "def alpha():\n    return compute_alpha_value(1)\n"),
            update("b.py", "def beta():\n    return compute_beta_value(2)\n"),
            update("net.py", "def parse_url(raw):\n    return parse(raw)\n"),
            update("other.py", "def url_parts(raw):\n    return parse(raw).url\n"),
        ]
    )
    assert search(store, "compute beta value")[0] == "beta"
    assert search(store, "parse_url")[0] == "parse_url"  # the whole outranks its parts
    assert search(store, "parseUrl")[0] == "parse_url"  # however it is spelled


def test_the_symbol_column_finds_definitions_by_their_whole_name(tmp_path):
    store = Store.open(tmp_path)
    store.apply_files(
        [
            update("a.py", "class Flask:\n    def route(self):\n        pass\n"),
            update("b.py", "def route_map():\n    return 1\n"),
        ]
    )
    ids = store.definition_search(["flask", "route"], 10)
    assert [c.symbol for c in store.chunks_by_ids(ids).values()] == ["Flask.route"]


def old_format_index(path: Path, files: int) -> None:
    """An index whose lexical rows are in format 1: the raw text, no meta key."""
    store = Store.open(path)
    store.apply_files(
        [
            update(f"m{i}.py", f"def handler_{i}(value):\n    return value + {i}\n")
            for i in range(files)
        ]
    )
    conn = store.conn
    with conn:
        conn.execute("DELETE FROM chunks_fts")
        conn.execute(
            "INSERT INTO chunks_fts(rowid, path, symbol, body) SELECT c.id, f.path, "
            "coalesce(c.symbol, ''), c.text FROM chunks c JOIN files f ON f.id = c.file_id"
        )
        conn.execute("DELETE FROM meta WHERE key = ?", (fts.FORMAT_KEY,))
    store.close()


def test_rows_an_older_version_wrote_are_rebuilt_when_the_index_opens(tmp_path, monkeypatch):
    old_format_index(tmp_path, files=7)
    monkeypatch.setattr(fts, "REBUILD_BATCH", 3)  # several batches

    store = Store.open(tmp_path)

    assert fts.format_of(store.conn) == fts.LEXICAL_FORMAT
    assert store.consistency_problems() == []
    assert search(store, "handler_3")[0] == "handler_3"  # found by the whole name now
    assert not store.conn.execute(
        "SELECT 1 FROM meta WHERE key = ?", (fts.PROGRESS_KEY,)
    ).fetchone()


def test_a_rebuild_cut_short_by_a_crash_resumes_and_catches_up(tmp_path, monkeypatch):
    old_format_index(tmp_path, files=7)
    monkeypatch.setattr(fts, "REBUILD_BATCH", 3)
    real_swap = fts._swap

    def crash(conn: sqlite3.Connection) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(fts, "_swap", crash)
    with pytest.raises(KeyboardInterrupt):
        Store.open(tmp_path)
    # What the crash left: every batch written, the old rows still answering.
    conn = sqlite3.connect(tmp_path / "index.sqlite")
    assert conn.execute("SELECT value FROM meta WHERE key = ?", (fts.PROGRESS_KEY,)).fetchone()
    assert fts.format_of(conn) == 1
    conn.close()
    # Meanwhile another process changes a file the rebuild had already passed.
    monkeypatch.setattr(fts, "_swap", real_swap)
    monkeypatch.setattr(fts, "rebuild_if_stale", lambda conn, lock: 0)
    other = Store.open(tmp_path)
    other.apply_files(
        [update("m0.py", "def renamed_handler(value):\n    return value\n")], removed=["m1.py"]
    )
    other.close()
    monkeypatch.undo()

    store = Store.open(tmp_path)

    assert fts.format_of(store.conn) == fts.LEXICAL_FORMAT
    assert store.consistency_problems() == []
    assert search(store, "renamed_handler")[0] == "renamed_handler"
    assert "handler_1" not in search(store, "handler_1", k=20)


def test_a_new_index_starts_in_the_current_format(tmp_path):
    store = Store.open(tmp_path)
    assert fts.format_of(store.conn) == fts.LEXICAL_FORMAT
    store.apply_files([update("a.py", "def alpha():\n    return 1\n")])
    store.close()
    assert fts.format_of(Store.open(tmp_path).conn) == fts.LEXICAL_FORMAT


def test_document_terms_are_what_fts_stores():
    assert document_terms("def getURLFor(x):") == "def geturlfor get url for x"


def test_past_the_postings_budget_the_commonest_terms_are_left_out(tmp_path):
    store = Store.open(tmp_path)
    store.apply_files(
        [
            update(f"m{i}.py", f"def handler_{i}(value):\n    return value + {i}\n")
            for i in range(30)
        ]
        + [update("rare.py", "def checksum(value):\n    return crc32(value)\n")]
    )
    conn = store.conn
    # "value" is in every chunk, "checksum" in one; stems decide ("values" is "value").
    assert fts.affordable_terms(conn, ["values", "checksum"], budget=100) == ["values", "checksum"]
    assert fts.affordable_terms(conn, ["values", "checksum"], budget=10) == ["checksum"]
    assert fts.affordable_terms(conn, ["value", "values"], budget=10) == [
        "value"
    ]  # the rarest stays
    hits = store.lexical_search(["checksum", "value"], 5, DEFAULT.bm25_weights, 10)
    assert store.chunks_by_ids([hits[0][0]])[hits[0][0]].path == "rare.py"
