"""Code-aware adjustments to fused scores: what a file is worth, and what a
query that names things asks for.

Multipliers (`factors`) for the kind of file a result is in: tests (unless the
query asks for them), examples, vendored or compatibility shims, type stubs and
`__init__` re-exports are rarely what a search is after, and prose only when
the query reads like a docs question.
Boosts, added as shares of the best candidate's score, for code-aware matches:
the definition of a name the query types, a file named like the query's words,
and a file that holds several of the candidates (coherence). All strengths come
from `ranking.Ranking`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

from .fusion import Candidate
from .lexical import is_test_path, split_words
from .query_shape import QueryShape, name_parts
from .ranking import PROSE_LANGUAGES, Ranking
from .store import StoredChunk

_EXAMPLE = re.compile(r"(^|/)(_?examples?|samples?|demos?|docs?_src)/")
_COMPAT = re.compile(r"(^|/)(compat|_compat|vendor|vendored|_vendor|legacy|third_party)(/|\.\w+$)")
_REEXPORT_NAMES = frozenset({"__init__.py", "index.js", "index.ts", "mod.rs", "package-info.java"})
_STUB_SUFFIXES = (".pyi", ".d.ts", ".d.mts", ".d.cts")
_DEFINITION_KINDS = frozenset({"function", "method", "class", "type", "header"})


def file_factors(chunk: StoredChunk, shape: QueryShape, ranking: Ranking) -> dict[str, float]:
    """The multipliers for the kind of file `chunk` is in, by name (1.0 left out)."""
    factors = {}
    if chunk.language in PROSE_LANGUAGES:
        factors["prose"] = (
            ranking.docs_question_prose_prior if shape.docs_question else ranking.prose_prior
        )
    path = chunk.path
    if is_test_path(path):
        factors["test"] = (
            ranking.tests_asked_test_prior if shape.asks_for_tests else ranking.test_prior
        )
    if _EXAMPLE.search(path):
        factors["example"] = ranking.example_prior
    if _COMPAT.search(path):
        factors["compat"] = ranking.compat_prior
    name = PurePosixPath(path).name
    if name in _REEXPORT_NAMES and chunk.kind == "window":
        factors["reexport"] = ranking.reexport_prior
    if name.endswith(_STUB_SUFFIXES):
        factors["stub"] = ranking.stub_prior
    return {name: f for name, f in factors.items() if f != 1.0}


def apply(
    candidates: list[Candidate],
    chunks: Mapping[int, StoredChunk],
    shape: QueryShape,
    ranking: Ranking,
) -> None:
    """Set each candidate's factors, boosts and final score, in place."""
    present = [c for c in candidates if c.chunk_id in chunks]
    for cand in present:
        cand.factors = file_factors(chunks[cand.chunk_id], shape, ranking)
        cand.score = cand.fused
        for f in cand.factors.values():
            cand.score *= f
    top = max((c.score for c in present), default=0.0)
    if top <= 0:
        return
    strength = ranking.definition_boost if shape.is_name else ranking.embedded_definition_boost
    if strength and shape.names:
        for cand in present:
            tier = definition_tier(chunks[cand.chunk_id], shape)
            if tier:
                cand.boosts["definition"] = strength * tier
    if ranking.path_boost:
        for cand in present:
            share = path_match(chunks[cand.chunk_id].path, shape)
            if share:
                cand.boosts["path"] = ranking.path_boost * share
    if ranking.name_boost and not shape.is_name:
        for cand in present:
            share = name_match(chunks[cand.chunk_id], shape)
            if share:
                cand.boosts["name"] = ranking.name_boost * share
    if ranking.coherence:
        _coherence(present, chunks, ranking.coherence)
    for cand in present:
        cand.score += top * sum(cand.boosts.values())


def definition_tier(chunk: StoredChunk, shape: QueryShape) -> float:
    """How exactly `chunk` is the definition of a name in the query: 1 for the
    name itself, 0.8 for it inside something (`Outer.Flask.route`, a method
    `Foo.first` for `first`), 0.6 when only the case differs, 0.5 when only the
    last part agrees (`Scaffold.route` for `Flask.route`), 0 if it is not a
    definition of it."""
    symbol = chunk.symbol
    if not symbol or chunk.kind not in _DEFINITION_KINDS:
        return 0.0
    have = name_parts(symbol)
    best = 0.0
    for name in shape.names:
        parts = name_parts(name)
        if not parts:
            continue
        tail = have[-len(parts) :]
        if have == parts:
            tier = 1.0
        elif tail == parts:
            tier = 0.8
        elif [p.lower() for p in tail] == [p.lower() for p in parts]:
            tier = 0.6
        elif len(parts) > 1 and have[-1] == parts[-1]:
            tier = 0.5
        else:
            continue
        best = max(best, tier)
    return best


def path_match(path: str, shape: QueryShape) -> float:
    """The share of the query's words that name `path`'s file or folder; 1 when the
    query is this path (or its end)."""
    if shape.is_path:
        wanted = shape.text.strip().replace("\\", "/").lstrip("./")
        return 1.0 if path == wanted or path.endswith("/" + wanted) else 0.0
    words = [w for w in shape.terms if len(w) > 2 and not w.isdigit()]
    if not words:
        return 0.0
    p = PurePosixPath(path)
    names = set(split_words(p.stem)) | set(split_words(p.parent.name))
    hits = sum(1 for w in words if any(_same_word(w, n) for n in names))
    return hits / len(words)


def name_match(chunk: StoredChunk, shape: QueryShape) -> float:
    """The share of a definition's own name that the query's words spell out
    (`create_url_adapter` for "Creates a URL adapter for the request": 1.0);
    0 below half, or for a chunk that defines nothing."""
    if not chunk.symbol or chunk.kind not in _DEFINITION_KINDS:
        return 0.0
    own = [w for w in split_words(name_parts(chunk.symbol)[-1]) if len(w) > 1]
    if not own:
        return 0.0
    words = [w for w in shape.terms if len(w) > 1]
    share = sum(1 for w in own if any(_same_word(w, q) for q in words)) / len(own)
    return share if share >= 0.5 else 0.0


def _same_word(a: str, b: str) -> bool:
    """Equal, or one is a 4+ letter prefix of the other (`request`, `requests`)."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return short == long or (len(short) >= 4 and long.startswith(short))


def _coherence(present: list[Candidate], chunks: Mapping[int, StoredChunk], share: float) -> None:
    by_file: dict[str, list[Candidate]] = {}
    for cand in present:
        by_file.setdefault(chunks[cand.chunk_id].path, []).append(cand)
    totals = {path: sum(c.score for c in group) for path, group in by_file.items()}
    most = max(totals.values())
    if most <= 0:
        return
    for path, group in by_file.items():
        if len(group) < 2:
            continue
        best = max(group, key=lambda c: c.score)
        best.boosts["coherence"] = share * totals[path] / most
