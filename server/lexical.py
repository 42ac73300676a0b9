"""Words: how code and queries are cut into the terms lexical search matches,
and which paths hold tests.

An identifier counts as its parts and as its whole: `parse_url` is `parse`,
`url` and `parseurl`; `HTTPAdapter` is `http`, `adapter` and `httpadapter`;
`utf8` is `utf`, `8` and `utf8`. The parts let a query in words find code
(`parse the url`); the whole lets a query that names the identifier rank it
above code that merely uses both words. The whole is written without its
underscores, so FTS5's own tokenizer (`porter unicode61`, which splits at `_`)
keeps it one token and stems it as it stems the query's. Queries are cut the
same way and lose their stop words; documents keep every word, since bm25's
idf already makes common ones count for little.

The trainer uses `split_words` to read a test's name as words, and the same
test-path rule to tell tests from the code they exercise.
"""

from __future__ import annotations

import re
from functools import cache

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[A-Za-z0-9]+")
_DIGITS = re.compile(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
_IDENTIFIER = re.compile(r"\w+")
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i if in into is it its of on or our "
    "that the their them then there these this to was we what when where which who why will "
    "with you your".split()
)
MAX_QUERY_TERMS = 32
"""A query's first this many distinct terms are searched: a pasted page of text
must not become an FTS5 expression of thousands of terms."""


def identifier_terms(text: str) -> list[str]:
    """Every identifier of `text` as lower-cased terms, in order, repeats kept:
    its whole (underscores dropped) when it has more than one part, then its
    parts (split at `_`, camelCase and letter/digit boundaries). Any script's
    words count; only ASCII ones have a case to split at."""
    terms: list[str] = []
    for ident in _IDENTIFIER.findall(text):
        parts = [part for piece in ident.split("_") for part in _parts(piece, split_digits=True)]
        if len(parts) > 1:
            terms.append("".join(parts))
        terms.extend(parts)
    return terms


def document_terms(text: str) -> str:
    """What FTS5 stores for a chunk's text, path or symbol: its terms, space-separated."""
    return " ".join(identifier_terms(text))


def query_terms(query: str) -> list[str]:
    """The query's distinct terms without stop words, at most MAX_QUERY_TERMS.

    Every term is a run of word characters, so nothing the user types can be
    read as FTS5 syntax (`NEAR`, `*`, quotes) once each term is quoted.
    """
    terms = dict.fromkeys(t for t in identifier_terms(query) if t not in STOP_WORDS)
    return list(terms)[:MAX_QUERY_TERMS]


def match_any(terms: list[str]) -> str:
    """An FTS5 MATCH expression for any of `terms` (each quoted: never FTS syntax)."""
    return " OR ".join(f'"{t}"' for t in terms)


def split_words(text: str, *, split_digits: bool = False) -> list[str]:
    """Lower-cased words of `text` in order, repeats kept: runs of ASCII letters
    and digits, camelCase split (`getURLFor` -> get, url, for).

    With `split_digits`, letters and digits part too (`parse2json` -> parse, 2,
    json): right for reading a name as words.
    """
    return [part for raw in _WORD.findall(text) for part in _parts(raw, split_digits)]


def _parts(word: str, split_digits: bool) -> list[str]:
    """A word without underscores, split at camelCase (and letter/digit) boundaries."""
    return [
        part.lower()
        for piece in _CAMEL.split(word)
        for part in (_DIGITS.split(piece) if split_digits else (piece,))
        if part
    ]


def is_test_path(path: str, *, testing_folder: bool = True, camel_case_name: bool = False) -> bool:
    """Whether a workspace-relative path looks like a test file: it lies in a
    test, tests, __tests__ or spec folder, or is named test_*, *_test.ext,
    *.test.ext or *.spec.ext.

    The two users have always drawn the line slightly differently, and each
    keeps its own: search's test prior also counts a `testing/` folder
    (`testing_folder`, the default); pair mining instead also counts a
    `FooTest.java` style name (`camel_case_name`).
    """
    return _test_path_pattern(testing_folder, camel_case_name).search(path) is not None


@cache
def _test_path_pattern(testing_folder: bool, camel_case_name: bool) -> re.Pattern[str]:
    folders = r"tests?|__tests__|spec" + (r"|testing" if testing_folder else "")
    endings = r"_test|\.test|\.spec" + (r"|Test" if camel_case_name else "")
    return re.compile(rf"(^|/)({folders})/|(^|/)test_[^/]*$|({endings})\.\w+$")
