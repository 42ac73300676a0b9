"""Every knob that decides the order of search results, in one place.

`search.py` runs the pipeline (`fusion`, then `priors`, then the file-aware
selection); each step reads its part of a `Ranking`. Changing a default
changes what users see first: give it an ablation row in bench/RESULTS.md,
tuned on some benchmark packages (tqdm, marshmallow, flask) and reported on the
untouched ones. `bench/ranking_lab.py` scores variants of this dataclass on the
stored indexes without re-embedding anything.
"""

from __future__ import annotations

from dataclasses import dataclass

PROSE_LANGUAGES = frozenset({"markdown", "rst", "text"})


@dataclass(frozen=True)
class Ranking:
    # -- candidates ----------------------------------------------------------------------
    pool: int = 50
    """Candidates taken from each side (at least; five times the limit when larger)."""

    # -- the lexical side ------------------------------------------------------------------
    bm25_weights: tuple[float, float, float] = (2.0, 4.0, 1.0)
    """bm25 column weights for (path, symbol, body): a query word in the symbol or
    the path says more than one in the body."""
    postings_budget: int = 20_000
    """At most this many rows of posting lists are scored per query; past it the
    commonest terms are left out (`fts.search`). Every term counts on the
    benchmark's packages; at 10^5 chunks it keeps bm25 within its old time."""

    # -- fusing the two rankings ---------------------------------------------------------
    rrf_k: int = 10
    """Reciprocal rank fusion constant: 1 / (rrf_k + rank). Small values let each
    side's first places count for much more than its tail; 10 beat the usual 60
    on the tuning packages once the weights follow each query."""
    dense_weight: float = 1.5
    lexical_weight: float = 1.0
    """The sides' weights when nothing about the query moves them (`adaptive` off)."""
    trained_dense_weight: float = 2.5
    """The model's weight once it was trained on this workspace (a promoted query
    adapter or fine-tuned checkpoint answers): it has learnt the workspace's own
    words for things, so its ranking deserves more of the say. On the tuning
    packages' trained indexes 2.5 beat 1.5 by +0.018 MRR@10 in the partly
    documented protocol and tied in the full one (2 to 6 tried)."""
    adaptive: bool = True
    """Weigh the words' side per query by how sure it is (see `fusion.weights_for`)."""
    lexical_weight_min: float = 0.3
    lexical_weight_max: float = 2.0
    lexical_gap_range: tuple[float, float] = (0.18, 0.48)
    """The words' weight rises from min to max as their first bm25 score stands
    from 18% to 48% above their tenth (the middle half of the tuning queries)."""
    name_lexical_weight: float = 3.0
    """The lexical side's weight for a query that is a name or a path: the words
    are the identifier itself, the model reads them as prose."""

    # -- priors: what a result's kind of file is worth before its text is compared -------
    prose_prior: float = 0.3
    """Prose (Markdown, reST, text): docs that describe an API in the same words as
    a query otherwise outrank the code itself..."""
    docs_question_prose_prior: float = 1.0
    """...unless the query reads like a question the docs answer."""
    test_prior: float = 0.3
    """Test files: people mostly look for the implementation..."""
    tests_asked_test_prior: float = 1.0
    """...unless the query asks for tests ("test", "tests", "fixture", ...)."""
    example_prior: float = 0.3
    """examples/, docs_src/ and the like: code that shows a use, not the thing used."""
    compat_prior: float = 0.3
    """Vendored and compatibility shims (compat/, _compat.py, vendor/, legacy/)."""
    reexport_prior: float = 0.5
    """Module-level code of `__init__.py` and other re-export barrels: a name's
    import, not its definition."""
    stub_prior: float = 0.5
    """Type stubs (.pyi, .d.ts): a definition's signature, not its body."""

    # -- code-aware boosts ---------------------------------------------------------------
    definition_boost: float = 2.0
    """Added share (times the top score) for the definition of the name a query
    is: 1.0 puts an exact definition level with the best other result."""
    embedded_definition_boost: float = 0.0
    """The same for names inside a sentence ("where is parse_url called"). Off: on
    the tuning packages it never helped (0.1 level, 0.3 cost 0.01), since a name
    in a sentence is as often a neighbour of the answer as the answer."""
    name_boost: float = 0.2
    """Added share for a definition whose own name the query's words spell out."""
    path_boost: float = 0.1
    """Added share for a file whose name or folder is one of the query's words."""
    coherence: float = 0.1
    """Added share for the best chunk of a file in proportion to how much of the
    candidates' score the file holds: several hits in one file raise the file."""
    file_decay: float = 1.0
    """Each further chunk of a file already listed is worth this much less (1: no decay)."""


DEFAULT = Ranking()
