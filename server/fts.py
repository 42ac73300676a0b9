"""The lexical side of the index: one FTS5 row per chunk, and bm25 search over them.

Each chunk's row holds its path, symbol and text, each with its camelCase
identifiers also split into words (`lexical.lexical_terms`). A query's words
(`lexical.query_words`) are first pruned of those too common to help, then
ORed into one MATCH ranked by bm25 with per-column weights; the knobs live in
`ranking`. The store calls these inside its own transactions.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable

from .lexical import lexical_terms, match_any, query_words
from .ranking import BM25_WEIGHTS, COMMON_TERM_SHARE, MAX_LEXICAL_TERMS

log = logging.getLogger(__name__)


def add_entry(conn: sqlite3.Connection, chunk_id: int, path: str, symbol: str, text: str) -> None:
    conn.execute(
        "INSERT INTO chunks_fts(rowid, path, symbol, body) VALUES (?,?,?,?)",
        (chunk_id, lexical_terms(path), lexical_terms(symbol), lexical_terms(text)),
    )


def remove_entries(conn: sqlite3.Connection, chunk_ids: Iterable[int]) -> None:
    conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(cid,) for cid in chunk_ids])


def search(conn: sqlite3.Connection, query: str, k: int) -> list[tuple[int, float]]:
    """Top-k (chunk id, bm25 relevance) for a natural-language query.

    Words found in more than COMMON_TERM_SHARE of all chunks are left out of
    the match (at most the MAX_LEXICAL_TERMS rarest are kept): their posting
    lists are the long ones that made bm25 slow on large indexes, and their
    idf is close to zero anyway.
    """
    words = informative_words(conn, query_words(query))
    if not words:
        return []
    rows = conn.execute(
        "SELECT rowid, bm25(chunks_fts, ?, ?, ?) AS rank FROM chunks_fts "
        "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
        (*BM25_WEIGHTS, match_any(words), k),
    ).fetchall()
    return [(int(r), -float(score)) for r, score in rows]


def informative_words(conn: sqlite3.Connection, words: list[str]) -> list[str]:
    """`words` rarest first, without those too common to search by (the rarest
    one stays when all are), at most MAX_LEXICAL_TERMS."""
    if len(words) <= 1:
        return words
    try:
        df = document_frequencies(conn, words)
    except sqlite3.Error as exc:  # e.g. an SQLite without fts5vocab: match every word
        log.debug("no term statistics: %s", exc)
        return words
    total = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM chunks").fetchone()[0]
    by_rarity = sorted(words, key=lambda w: df[w])
    kept = [w for w in by_rarity if df[w] <= max(COMMON_TERM_SHARE * total, 1)]
    return (kept or by_rarity[:1])[:MAX_LEXICAL_TERMS]


def document_frequencies(conn: sqlite3.Connection, words: list[str]) -> dict[str, int]:
    """Chunks containing each word, as FTS5 stems it (run through the same tokenizer)."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_words "
        "USING fts5(w, tokenize = 'porter unicode61')"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_stems "
        "USING fts5vocab(temp, kenning_words, 'instance')"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kenning_vocab "
        "USING fts5vocab(main, chunks_fts, 'row')"
    )
    # One transaction, committed (or rolled back) at once: left open, it
    # would pin this connection's view of the index to this moment.
    with conn:
        conn.executemany(
            "INSERT INTO temp.kenning_words(rowid, w) VALUES (?, ?)", list(enumerate(words))
        )
        stems = dict(conn.execute("SELECT doc, term FROM temp.kenning_stems").fetchall())
        conn.execute("DELETE FROM temp.kenning_words")
    df = {}
    for i, word in enumerate(words):
        row = conn.execute(
            "SELECT doc FROM temp.kenning_vocab WHERE term = ?", (stems.get(i, word),)
        ).fetchone()
        df[word] = row[0] if row else 0
    return df
