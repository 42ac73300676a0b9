"""The lexical side of the index: one FTS5 row per chunk, and bm25 search over them.

Each chunk's row holds its path, symbol and text as terms (`lexical.document_terms`:
every identifier as its whole and its parts). A query's terms are ORed into one
MATCH ranked by bm25 with per-column weights (`ranking`). Names asked for by a
query that looks like code are also looked up in the symbol column alone, so
the definition of `Flask.route` is a candidate however common its words are.

The format of the rows is versioned (`LEXICAL_FORMAT`, kept in the store's meta
table). An index written in an older format is rebuilt when it is opened: the
new rows go into a second table in batches, each its own transaction, with the
progress kept in meta, so a crash resumes where it stopped; one last transaction
catches up with chunks changed meanwhile and swaps the tables. Until then the
old rows keep answering. The store calls these inside its own transactions.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable

from .lexical import document_terms, match_any

log = logging.getLogger(__name__)

LEXICAL_FORMAT = 2
"""1: the text as written, camelCase words added (before identifiers had wholes)."""
FORMAT_KEY = "lexical_format"
PROGRESS_KEY = "lexical_rebuilt_upto"
REBUILD_BATCH = 2000
TABLE = "chunks_fts"
NEXT_TABLE = "chunks_fts_next"
COLUMNS = "path, symbol, body, tokenize = 'porter unicode61'"
CREATE = f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5({COLUMNS});"


def add_entry(conn: sqlite3.Connection, chunk_id: int, path: str, symbol: str, text: str) -> None:
    conn.execute(
        f"INSERT INTO {TABLE}(rowid, path, symbol, body) VALUES (?,?,?,?)",
        (chunk_id, *_row(path, symbol, text)),
    )


def _row(path: str, symbol: str, text: str) -> tuple[str, str, str]:
    return document_terms(path), document_terms(symbol), document_terms(text)


def remove_entries(conn: sqlite3.Connection, chunk_ids: Iterable[int]) -> None:
    conn.executemany(f"DELETE FROM {TABLE} WHERE rowid = ?", [(cid,) for cid in chunk_ids])


def search(
    conn: sqlite3.Connection,
    terms: list[str],
    k: int,
    weights: tuple[float, float, float],
    budget: int,
) -> list[tuple[int, float]]:
    """Top-k (chunk id, bm25 relevance) of the chunks holding any of `terms`,
    with `weights` for the (path, symbol, body) columns.

    FTS5 scores every row that holds any term, so the work grows with the
    terms' posting lists. The rarest terms are kept while their lists hold at
    most `budget` rows together (the rarest always stays): on a workspace of a
    few thousand chunks every term counts, and on 10^5 chunks the commonest
    ones (in tens of thousands of rows, idf near zero) are left out.
    """
    terms = affordable_terms(conn, terms, budget)
    if not terms:
        return []
    rows = conn.execute(
        f"SELECT rowid, bm25({TABLE}, ?, ?, ?) AS rank FROM {TABLE} "
        f"WHERE {TABLE} MATCH ? ORDER BY rank LIMIT ?",
        (*weights, match_any(terms), k),
    ).fetchall()
    return [(int(r), -float(score)) for r, score in rows]


def affordable_terms(conn: sqlite3.Connection, terms: list[str], budget: int) -> list[str]:
    """`terms` without the commonest ones, once their posting lists together
    would pass `budget` rows; in the order given when nothing is left out."""
    if len(terms) <= 1:
        return terms
    try:
        df = document_frequencies(conn, terms)
    except sqlite3.Error as exc:  # e.g. an SQLite without fts5vocab: match every term
        log.debug("no term statistics: %s", exc)
        return terms
    if sum(df.values()) <= budget:
        return terms
    kept: list[str] = []
    rows = 0
    for term in sorted(terms, key=lambda t: df[t]):
        if kept and rows + df[term] > budget:
            break
        kept.append(term)
        rows += df[term]
    return kept


def document_frequencies(conn: sqlite3.Connection, terms: list[str]) -> dict[str, int]:
    """Rows holding each term, as FTS5 stems it (run through the same tokenizer)."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_terms "
        "USING fts5(w, tokenize = 'porter unicode61')"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_stems "
        "USING fts5vocab(temp, kenning_terms, 'instance')"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_vocab "
        f"USING fts5vocab(main, {TABLE}, 'row')"
    )
    # One transaction, committed (or rolled back) at once: left open, it
    # would pin this connection's view of the index to this moment.
    with conn:
        conn.executemany(
            "INSERT INTO temp.kenning_terms(rowid, w) VALUES (?, ?)", list(enumerate(terms))
        )
        stems = dict(conn.execute("SELECT doc, term FROM temp.kenning_stems").fetchall())
        conn.execute("DELETE FROM temp.kenning_terms")
    df = {}
    for i, term in enumerate(terms):
        row = conn.execute(
            "SELECT doc FROM temp.kenning_vocab WHERE term = ?", (stems.get(i, term),)
        ).fetchone()
        df[term] = row[0] if row else 0
    return df


def symbol_search(conn: sqlite3.Connection, terms: list[str], k: int) -> list[int]:
    """Chunks whose symbol holds all of `terms` (an identifier's whole, say),
    shortest symbols first: the candidates for 'the definition of this name'."""
    if not terms:
        return []
    expression = "{symbol} : (" + " AND ".join(f'"{t}"' for t in terms) + ")"
    rows = conn.execute(
        f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH ? ORDER BY rank LIMIT ?",
        (expression, k),
    ).fetchall()
    return [int(r) for (r,) in rows]


# -- the format of the rows, and rebuilding them ---------------------------------------------


def format_of(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (FORMAT_KEY,)).fetchone()
    return int(row[0]) if row else 1


def stamp_new_index(conn: sqlite3.Connection) -> None:
    """A fresh index is written in the current format from its first chunk."""
    if conn.execute("SELECT 1 FROM meta WHERE key = ?", (FORMAT_KEY,)).fetchone():
        return
    if conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None:
        _set(conn, FORMAT_KEY, LEXICAL_FORMAT)


def rebuild_if_stale(conn: sqlite3.Connection, lock: threading.Lock) -> int:
    """Bring the lexical rows to LEXICAL_FORMAT; returns how many chunks were rewritten.

    Each batch is one transaction under `lock` (the store's writer lock) and
    records how far it got, so another process opening the same index at the
    same time shares the work and a crash loses at most one batch.
    """
    if format_of(conn) == LEXICAL_FORMAT:
        return 0
    log.info("rebuilding the lexical index in format %d", LEXICAL_FORMAT)
    rewritten = 0
    while True:
        with lock, conn:
            conn.execute("BEGIN IMMEDIATE")  # two openers take turns, batch by batch
            if format_of(conn) == LEXICAL_FORMAT:
                return rewritten  # another process finished it
            upto = _progress(conn)
            rows = conn.execute(
                "SELECT c.id, f.path, c.symbol, c.text FROM chunks c JOIN files f "
                "ON f.id = c.file_id WHERE c.id > ? ORDER BY c.id LIMIT ?",
                (upto, REBUILD_BATCH),
            ).fetchall()
            if rows:
                _fill_next(conn, rows)
                _set(conn, PROGRESS_KEY, rows[-1][0])
                rewritten += len(rows)
                continue
            _swap(conn)
            return rewritten


def _progress(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (PROGRESS_KEY,)).fetchone()
    if row is None:  # starting (or a crash left a table with no record of it): begin afresh
        conn.execute(f"DROP TABLE IF EXISTS {NEXT_TABLE}")
        conn.execute(f"CREATE VIRTUAL TABLE {NEXT_TABLE} USING fts5({COLUMNS})")
        _set(conn, PROGRESS_KEY, 0)
        return 0
    return int(row[0])


def _fill_next(conn: sqlite3.Connection, rows: list[tuple[int, str, str | None, str]]) -> None:
    ids = [(cid,) for cid, *_ in rows]
    conn.executemany(f"DELETE FROM {NEXT_TABLE} WHERE rowid = ?", ids)
    conn.executemany(
        f"INSERT INTO {NEXT_TABLE}(rowid, path, symbol, body) VALUES (?,?,?,?)",
        [(cid, *_row(path, symbol or "", text)) for cid, path, symbol, text in rows],
    )


def _swap(conn: sqlite3.Connection) -> None:
    """Catch up with chunks removed or added by others meanwhile, then take over."""
    conn.execute(f"DELETE FROM {NEXT_TABLE} WHERE rowid NOT IN (SELECT id FROM chunks)")
    missing = conn.execute(
        "SELECT c.id, f.path, c.symbol, c.text FROM chunks c JOIN files f ON f.id = c.file_id "
        f"WHERE c.id NOT IN (SELECT rowid FROM {NEXT_TABLE})"
    ).fetchall()
    _fill_next(conn, missing)
    conn.execute(f"DROP TABLE {TABLE}")
    conn.execute(f"ALTER TABLE {NEXT_TABLE} RENAME TO {TABLE}")
    conn.execute("DELETE FROM meta WHERE key = ?", (PROGRESS_KEY,))
    _set(conn, FORMAT_KEY, LEXICAL_FORMAT)


def _set(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, str(value)))
