"""Every knob that decides the order of search results, in one place.

`search.py` fuses and weighs with these; the store's lexical side (bm25 and
the pruning of common words) reads its part from here too. Changing a value
changes what users see first: give it an ablation row in bench/RESULTS.md,
tuned on some benchmark packages and reported on the untouched ones.
"""

from __future__ import annotations

# -- fusing the two rankings -------------------------------------------------------

RRF_K = 60
"""Reciprocal rank fusion constant: 1 / (RRF_K + rank). 60 is the usual choice;
it flattens the head so one side's first place does not drown the other."""
DENSE_WEIGHT = 3.0
LEXICAL_WEIGHT = 1.0
"""The model's ranking counts three times the words': bm25 finds exact names
but also every file that repeats a query's common words. Tuned on three of the
benchmark packages (tqdm, marshmallow, flask); see bench/RESULTS.md."""

# -- priors: what a result's kind of file is worth before its text is compared -----

PROSE_PRIOR = 0.5
"""Score multiplier for prose (Markdown, reST, plain text): docs that describe an
API in the same words as a query otherwise outrank the code itself."""
TEST_PRIOR = 0.6
"""Score multiplier for test files: people mostly look for the implementation."""
PROSE_LANGUAGES = frozenset({"markdown", "rst", "text"})

# -- the lexical side (SQLite FTS5) -------------------------------------------------

BM25_WEIGHTS = (2.0, 4.0, 1.0)
"""bm25 column weights for (path, symbol, body), the columns of `chunks_fts`: a
query word in the symbol or the path says more than one in the body."""
COMMON_TERM_SHARE = 0.1
"""A word in more than this share of all chunks is too common to search by: its
posting list is a long one (slow on large indexes) and its idf is near zero."""
MAX_LEXICAL_TERMS = 8
"""At most this many of a query's words (the rarest) go into the FTS match."""
