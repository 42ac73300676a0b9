"""What a query looks like, before anything is searched: words, a name, a path
or a question about the docs.

Ranking leans on the shape: a query that names an identifier (`Flask.route`,
`parse_url`, `getUser()`) wants that definition first and trusts the words more
than the model; a path (`src/app.py`) wants that file; a question ("how do I
configure logging?") may be answered by the docs rather than the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .lexical import identifier_terms, query_terms

_SEPARATORS = re.compile(r"::|->|#|\.")
_NAME = re.compile(r"^[A-Za-z_$][\w$]*(?:(?:::|->|#|\.)[A-Za-z_$][\w$]*)*$")
_CALL_SUFFIX = re.compile(r"\s*\([^()]*\)\s*$")
_EMBEDDED = re.compile(
    r"[A-Za-z_$][\w$]*(?:(?:::|->|\.)[A-Za-z_$][\w$]*)+"  # dotted: os.path.join, Foo::bar
    r"|\w*_\w+"  # snake_case, _private, __init__
    r"|[A-Za-z][a-z0-9]*[A-Z]\w*"  # camelCase, PascalCase with an inner capital
)
_PATH = re.compile(r"^[\w./\\-]*[/\\][\w./\\-]*$|^[\w.-]+\.[A-Za-z0-9]{1,6}$")
_FILE_SUFFIXES = frozenset(
    "py pyi js mjs cjs jsx ts tsx go rs java c h cc cpp hpp cs rb php kt swift scala lua sh "
    "md rst txt toml yaml yml json ini cfg html css sql proto".split()
)
_QUESTION_OPENERS = frozenset(
    "how what why where when which who is are can could should does do did will".split()
)
_TEST_WORDS = frozenset("test tests testing unittest pytest fixture fixtures spec specs".split())
_DOCS_WORDS = frozenset(
    "documentation docs doc readme tutorial guide changelog quickstart faq".split()
)


@dataclass(frozen=True)
class QueryShape:
    text: str
    """The query as typed (what the model reads)."""
    terms: list[str]
    """The terms the lexical side searches (lexical.query_terms)."""
    names: list[str]
    """Identifiers the query names (`Flask.route`, `parse_url`), as typed."""
    is_name: bool
    """The whole query is one name (maybe with `()`): a jump to a definition."""
    is_path: bool
    """The whole query is a path or a file name."""
    docs_question: bool
    """It reads like a question the docs answer ("how do I ...?", "... documentation")."""
    asks_for_tests: bool
    """It asks for tests ("tests for the retry logic", "fixture that ...")."""

    @property
    def has_words(self) -> bool:
        """Whether it holds any word at all, in any script (not only punctuation)."""
        return bool(re.search(r"\w", self.text))

    @property
    def looks_like_code(self) -> bool:
        return self.is_name or self.is_path


def shape_of(query: str) -> QueryShape:
    text = query.strip()
    bare = _CALL_SUFFIX.sub("", text)
    is_path = bool(_PATH.match(bare)) and _path_like(bare)
    is_name = not is_path and bool(_NAME.match(bare))
    if is_name:
        names = [bare]
    elif is_path:
        names = []
    else:
        names = [m for m in _EMBEDDED.findall(text) if not _path_like(m)]
    words = [w.lower() for w in re.findall(r"\w+", text)]
    docs_question = bool(words) and (
        words[0] in _QUESTION_OPENERS or text.endswith("?") or bool(_DOCS_WORDS & set(words))
    )
    terms = query_terms(text)
    return QueryShape(
        text=query,
        terms=terms,
        names=names,
        is_name=is_name,
        is_path=is_path,
        docs_question=docs_question and not (is_name or is_path),
        asks_for_tests=bool(_TEST_WORDS & set(terms)),
    )


def _path_like(text: str) -> bool:
    if "/" in text or "\\" in text:
        return True
    suffix = text.rsplit(".", 1)[-1] if "." in text else ""
    return suffix.lower() in _FILE_SUFFIXES


def name_parts(name: str) -> list[str]:
    """`Flask.route` -> ['Flask', 'route']: the components of a qualified name."""
    return [p for p in _SEPARATORS.split(name) if p]


def whole_term(component: str) -> list[str]:
    """The one term an identifier's whole is indexed under (its first), if any."""
    terms = identifier_terms(component)
    return terms[:1]
