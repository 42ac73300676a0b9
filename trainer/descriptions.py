"""Reading the description out of a piece of code: its docstring, the comment
above or at the top of it, and its signature, each separated from the code
it describes.

Pair mining (`pairs`) makes training pairs of what these return. A
description becomes an anchor only as a line of prose with enough words;
the code left over counts only when it still does something.
"""

from __future__ import annotations

import inspect
import re

MAX_ANCHOR_CHARS = 400
"""Queries are short; a longer description is cut at a sentence or word boundary."""
MIN_ANCHOR_WORDS = 3
MIN_BODY_CHARS = 24
"""Same threshold as the chunker's: a body with less text tells the model nothing."""

_PY_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+\w+", re.MULTILINE)
_STRING_START = re.compile(r"[ \t]*\n?(?:[ \t]*\n)*[ \t]*([rRuU]?)(\"\"\"|'''|\"|')")
_TRIVIAL_BODY = re.compile(
    r"^\s*(pass|\.\.\.|raise NotImplementedError(\(.*\))?|return|return None)\s*$"
)


def split_python(text: str) -> tuple[str, str, str | None, str] | None:
    """(leading lines, signature, docstring or None, body after both) of a Python def/class."""
    match = _PY_DEF.search(text)
    if match is None:
        return None
    end = _signature_end(text, match.end())
    if end is None:
        return None
    head = text[: match.start()]
    signature = text[match.start() : end + 1]
    rest = text[end + 1 :]
    # A one-line body (`def f(): return 1`) has no docstring to find.
    newline = rest.find("\n")
    if newline == -1 or rest[:newline].strip() and not rest[:newline].lstrip().startswith("#"):
        return head, signature, None, rest
    after_line = rest[newline + 1 :]
    doc_match = _STRING_START.match(after_line)
    if doc_match is None:
        return head, signature, None, rest
    quote = doc_match.group(2)
    start = doc_match.end()
    close = after_line.find(quote, start)
    if close == -1:
        return head, signature, None, rest
    raw = after_line[start:close]
    body = after_line[close + len(quote) :]
    body = body.split("\n", 1)[1] if "\n" in body else ""
    return head, signature, raw, body


def _signature_end(text: str, pos: int) -> int | None:
    """Index of the `:` that ends a Python def/class header starting before `pos`."""
    depth = 0
    quote = ""
    i = pos
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ":" and depth == 0:
            return i
        elif ch == "#" and depth == 0:
            return None
        i += 1
    return None


COMMENT_LINE = re.compile(r"^\s*(//[/!]?|#(?![!\[])|/\*\*?|\*/|\*(?!/)|--)")
_BRACE_SIG = re.compile(r"^(?P<sig>[^{;]*?)\s*(\{|=>\s*\{)", re.DOTALL)


def split_braced(text: str) -> tuple[str, str, str | None, str] | None:
    """(leading comment lines, signature, None, body) of a C-family definition."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and (not lines[i].strip() or COMMENT_LINE.match(lines[i])):
        i += 1
    code = "\n".join(lines[i:])
    match = _BRACE_SIG.match(code)
    if match is None:
        return None
    signature = match.group("sig").strip()
    if not signature or "\n\n" in signature or len(signature) > 300:
        return None
    return "\n".join(lines[:i]), signature, None, code[match.end() :]


def strip_comment_markers(block: list[str]) -> str:
    """A comment block's text without its markers (`//`, `#`, `/*`, `*`, `*/`, `--`)."""
    out = []
    for line in block:
        s = line.strip()
        s = re.sub(r"^(///?!?|#+|/\*\*?|\*/|\*|--)\s?", "", s)
        s = re.sub(r"\*/\s*$", "", s)
        out.append(s)
    return "\n".join(out)


_SKIP_COMMENT = re.compile(
    r"^(type:|noqa|pylint|eslint|prettier|@ts-|ts-|nolint|fmt:|isort:|pragma|region|endregion|"
    r"TODO\b|FIXME\b|XXX\b|HACK\b|-\*-|SPDX|copyright|\(c\))",
    re.IGNORECASE,
)
_SECTION = re.compile(
    r"^(args|arguments|parameters|params|returns?|yields?|raises?|examples?|notes?|see also|"
    r"attributes|todo|warning|\.\. |:param|:type|:return|:raises|@\w+|>>>)",
    re.IGNORECASE,
)


def clean_description(raw: str) -> str | None:
    """The first paragraph of a docstring or comment, as one line of prose.

    Parameter lists, doctests, directives and tool pragmas are dropped; the
    result is None when fewer than MIN_ANCHOR_WORDS words remain.
    """
    text = inspect.cleandoc(raw)
    kept: list[str] = []
    for line in text.split("\n"):
        s = line.strip()
        if not s:
            if kept:
                break
            continue
        if _SECTION.match(s) or _SKIP_COMMENT.match(s):
            if kept:
                break
            continue
        if set(s) <= set("-=~*#_/"):
            continue
        kept.append(s)
    sentence = " ".join(" ".join(kept).split())
    if "license" in sentence.lower() and "copyright" in sentence.lower():
        return None
    if too_few_words(sentence):
        return None
    if len(sentence) > MAX_ANCHOR_CHARS:
        cut = sentence[:MAX_ANCHOR_CHARS]
        sentence = cut[: cut.rfind(". ") + 1] if ". " in cut else cut.rsplit(" ", 1)[0]
    return sentence


def meaningful(body: str, min_lines: int = 1) -> bool:
    """Whether `body` still does something: `min_lines` lines that are not blank, a
    comment, a bare `pass`/`return` or a lone bracket, with MIN_BODY_CHARS of text."""
    lines = [
        ln
        for ln in body.split("\n")
        if ln.strip()
        and not _TRIVIAL_BODY.match(ln)
        and not COMMENT_LINE.match(ln)
        and ln.strip() not in ("}", "};", ")", "]")
    ]
    return len(lines) >= min_lines and sum(len(ln.strip()) for ln in lines) >= MIN_BODY_CHARS


def too_few_words(text: str) -> bool:
    """Whether `text` has fewer than MIN_ANCHOR_WORDS words of two letters or more."""
    return len(re.findall(r"[A-Za-z]{2,}", text)) < MIN_ANCHOR_WORDS
