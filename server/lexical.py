"""Words: how code and queries are cut into the terms lexical search matches,
and which paths hold tests.

SQLite's FTS5 (`porter unicode61`) splits snake_case at the underscore but
keeps a camelCase identifier whole, so `lexical_terms` adds its words beside
it; a query is cut the same way, its stop words dropped, before it reaches
FTS5. The trainer uses the same splitting to read a test's name as words, and
the same test-path rule to tell tests from the code they exercise.
"""

from __future__ import annotations

import re
from functools import cache

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9]*[a-z][A-Z][A-Za-z0-9]*")
_WORD = re.compile(r"[A-Za-z0-9]+")
_DIGITS = re.compile(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i if in into is it its of on or our "
    "that the their them then there these this to was we what when where which who why will "
    "with you your".split()
)


def lexical_terms(text: str) -> str:
    """Text for FTS: the original, plus camelCase identifiers split into words
    (the tokenizer already splits snake_case at the underscore)."""
    extra = {" ".join(_CAMEL.split(m)) for m in _IDENT.findall(text)}
    return text + ("\n" + "\n".join(sorted(extra)) if extra else "")


def split_words(text: str, *, split_digits: bool = False) -> list[str]:
    """Lower-cased words of `text` in order, repeats kept: runs of ASCII letters
    and digits, camelCase split (`getURLFor` -> get, url, for).

    With `split_digits`, letters and digits part too (`parse2json` -> parse, 2,
    json): right for reading a name as words, wrong for FTS5, whose tokenizer
    keeps `parse2json` one token.
    """
    words: list[str] = []
    for raw in _WORD.findall(text):
        for word in _CAMEL.split(raw):
            parts = _DIGITS.split(word) if split_digits else (word,)
            words.extend(part.lower() for part in parts if part)
    return words


def query_words(query: str) -> list[str]:
    """The query's meaningful words, lower-cased, camelCase split, stop words dropped."""
    words: list[str] = []
    for w in split_words(query):
        if w not in STOP_WORDS and w not in words:
            words.append(w)
    return words


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression ORing the query's meaningful words.

    Quoting each word keeps user text from being read as FTS syntax.
    """
    return match_any(query_words(query))


def match_any(words: list[str]) -> str:
    """An FTS5 MATCH expression for any of `words` (already free of FTS syntax)."""
    return " OR ".join(f'"{w}"' for w in words)


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
