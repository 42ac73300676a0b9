"""Other lexical engines behind the product's own ranking, for the lexical-parity study.

Kenning's words' side is SQLite FTS5 over `lexical.document_terms`. To choose it by
numbers, the ranking lab can swap `Store.lexical_search` for:

* ``bm25s`` — a real BM25 engine (bm25s, Lucene's k1 1.5 and b 0.75) over the same
  chunks, with the reference's tokens (``bench.bm25_reference.tokens``: whole
  identifiers and parts, Snowball stemming, Lucene's stop words). Fusion, priors
  and boosts stay the product's, so only the scoring engine differs;
* ``pruned`` — FTS5 as shipped, but the query's words found in more than a share
  of all chunks left out of the match (at most the 8 rarest kept), as Kenning did
  before: it kept bm25's posting lists short on large indexes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np

Search = Callable[[list[str], int, tuple[float, float, float], int], list[tuple[int, float]]]


def bm25s_engine(store: Any) -> Search:
    """A bm25s index over every chunk of `store`, answering the product's lexical calls."""
    import bm25s

    from bench.bm25_reference import tokens

    rows = store.conn.execute(
        "SELECT c.id, f.path, c.symbol, c.text FROM chunks c JOIN files f ON f.id = c.file_id"
    ).fetchall()
    ids = [cid for cid, *_ in rows]
    model = bm25s.BM25()
    model.index(
        [tokens(f"{path}\n{symbol or ''}\n{text}") for _, path, symbol, text in rows],
        show_progress=False,
    )
    vocab = model.vocab_dict

    def search(
        terms: list[str], k: int, weights: tuple[float, float, float], budget: int
    ) -> list[tuple[int, float]]:
        words = [w for w in tokens(" ".join(terms)) if w in vocab]
        if not words:
            return []
        scores = model.get_scores(words)
        top = np.argsort(-scores)[:k]
        return [(ids[i], float(scores[i])) for i in top if scores[i] > 0]

    return search


def pruned_engine(store: Any, share: float = 0.1, max_terms: int = 8) -> Search:
    """FTS5 as shipped, with the query's common words pruned before the match."""
    conn: sqlite3.Connection = store.conn
    for name, spec in (
        ("lab_vocab", "fts5vocab(main, chunks_fts, 'row')"),
        ("lab_words", "fts5(w, tokenize = 'porter unicode61')"),
        ("lab_stems", "fts5vocab(temp, lab_words, 'instance')"),
    ):
        conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{name} USING {spec}")
    total = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def df(term: str) -> int:
        with conn:
            conn.execute("DELETE FROM temp.lab_words")
            conn.execute("INSERT INTO temp.lab_words(rowid, w) VALUES (1, ?)", (term,))
            stem = conn.execute("SELECT term FROM temp.lab_stems").fetchone()
        row = conn.execute(
            "SELECT doc FROM temp.lab_vocab WHERE term = ?", (stem[0] if stem else term,)
        ).fetchone()
        return row[0] if row else 0

    def search(
        terms: list[str], k: int, weights: tuple[float, float, float], budget: int
    ) -> list[tuple[int, float]]:
        if len(terms) > 1:
            counts = {t: df(t) for t in terms}
            by_rarity = sorted(terms, key=lambda t: counts[t])
            kept = [t for t in by_rarity if counts[t] <= max(share * total, 1)]
            terms = (kept or by_rarity[:1])[:max_terms]
        from kenning.server import fts

        return fts.search(conn, terms, k, weights, budget)

    return search


ENGINES: dict[str, Callable[[Any], Search]] = {"bm25s": bm25s_engine, "pruned": pruned_engine}
