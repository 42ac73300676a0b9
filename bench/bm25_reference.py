"""A textbook BM25 over Kenning's own chunks: the bar Kenning's lexical side must clear.

Method ``bm25-reference``: bm25s (Lucene's BM25, k1 1.5, b 0.75) over every chunk
of the package's Kenning index (``bench/.work/index/<pkg>``, built by
``bench.kenning_adapter``), each chunk read as its path, symbol and text. Both the
chunks and the queries are cut the same way: every identifier gives its whole
(``parse_url``, ``maxretries``) and its parts (snake_case at the underscore,
camelCase at the capitals), lower-cased; Lucene's English stop words are dropped
and every token is stemmed by the Snowball English stemmer (PyStemmer). Chunks that
overlap in one file are collapsed to the best, as Kenning does, so both answer ten
places. No priors: tests and docs rank as their words say.

Usage (from the repository root)::

    python -m bench.bm25_reference [--packages flask,tqdm] [--sets nl,symbols]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from bench.corpus import PACKAGES_BY_NAME
from bench.kenning_adapter import index_dir_for
from bench.quality import CUTOFF, QUERY_SETS, Answer, Span, corpus_packages, load_queries
from bench.quality import write_results as write_answers

METHOD = "bm25-reference"
_IDENT = re.compile(r"[A-Za-z0-9_]+")
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


@cache
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


@cache
def _stop_words() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokens(text: str) -> list[str]:
    """Whole identifiers and their parts, lower-cased, stop words out, stemmed."""
    out: list[str] = []
    for ident in _IDENT.findall(text):
        parts = [p.lower() for piece in ident.split("_") for p in _PART.findall(piece)]
        whole = ident.lower().strip("_")
        words = parts if len(parts) == 1 and parts[0] == whole else [whole, *parts]
        out.extend(w for w in words if w and w not in _stop_words())
    return _stemmer().stemWords(out)


@dataclass(frozen=True)
class _Chunk:
    path: str
    start_line: int
    end_line: int


class Reference:
    """A bm25s index over one Kenning index's chunks."""

    def __init__(self, chunks: list[_Chunk], texts: list[str]):
        import bm25s

        self.chunks = chunks
        self.model = bm25s.BM25()
        self.model.index([tokens(t) for t in texts], show_progress=False)
        self.vocab = self.model.vocab_dict

    @classmethod
    def of_package(cls, pkg: str) -> Reference:
        db = index_dir_for(pkg) / "index.sqlite"
        if not db.exists():
            raise FileNotFoundError(f"{db} is missing; run: python -m bench.kenning_adapter")
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        rows = conn.execute(
            "SELECT f.path, c.start_line, c.end_line, c.symbol, c.text "
            "FROM chunks c JOIN files f ON f.id = c.file_id ORDER BY c.id"
        ).fetchall()
        conn.close()
        chunks = [_Chunk(p, s, e) for p, s, e, _, _ in rows]
        return cls(chunks, [f"{p}\n{sym or ''}\n{text}" for p, _, _, sym, text in rows])

    def search(self, query: str, limit: int = CUTOFF) -> list[_Chunk]:
        words = [w for w in tokens(query) if w in self.vocab]
        if not words:
            return []
        scores = self.model.get_scores(words)
        order = np.argsort(-scores, kind="stable")
        out: list[_Chunk] = []
        for i in order:
            if scores[i] <= 0 or len(out) >= limit:
                break
            chunk = self.chunks[int(i)]
            if not any(_overlaps(chunk, kept) for kept in out):
                out.append(chunk)
        return out


def _overlaps(a: _Chunk, b: _Chunk) -> bool:
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line


def run_package(pkg: str, query_sets: Sequence[str]) -> None:
    started = time.perf_counter()
    reference = Reference.of_package(pkg)
    print(f"{pkg}: indexed in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    for query_set in query_sets:
        answers = []
        for q in load_queries(pkg, query_set):
            t0 = time.perf_counter()
            hits = reference.search(q.query)
            took = (time.perf_counter() - t0) * 1000
            answers.append(
                Answer(q.id, took, [Span(h.path, h.start_line, h.end_line) for h in hits])
            )
        write_answers(METHOD, pkg, answers, query_set)
        print(f"{pkg}: {len(answers)} {query_set} queries", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bm25_reference", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--packages", default="", help="comma-separated (default: all)")
    parser.add_argument("--sets", default="nl", help="query sets: " + ", ".join(QUERY_SETS))
    args = parser.parse_args(argv)
    packages = [p for p in args.packages.split(",") if p] or corpus_packages()
    if bad := [p for p in packages if p not in PACKAGES_BY_NAME]:
        parser.error(f"unknown package(s): {', '.join(bad)}")
    for pkg in packages:
        run_package(pkg, [s for s in args.sets.split(",") if s])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
