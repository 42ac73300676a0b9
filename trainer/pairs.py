"""Mine contrastive training pairs (query-like text -> code) from a workspace.

The workspace's own code says, in its own words, what its code does: a
docstring or a leading comment describes the definition below it, a test's
name describes the code it calls, a README section describes the symbols it
mentions, and a commit message describes the hunks it changed. Each of these
becomes an (anchor, positive) pair, where the anchor reads like a search query
and the positive is the code as the index shows it to the model (a context
line plus the text, see `server.chunking.embed_text_for`) with the describing
text removed, so the model must learn the link instead of copying words.

Files are found and cut with the core's discovery and chunking, so the trainer
sees exactly what the index sees. Mining is deterministic for a given tree and
seed: files are visited in sorted order and only the split and the sampling
use randomness.

Reading a description out of a definition (docstring, comment, signature) is
`descriptions`' job; a test's name is read as words, and test files are told
apart, by the index's own rules in `kenning.server.lexical`.

Kinds (each counted separately, so their value can be measured):

- ``docstring``: a function's, method's or class's docstring -> the definition without it.
- ``comment``: the comment block directly above a definition -> the definition without it.
- ``module``: a module docstring -> the file's first definitions.
- ``signature``: name plus signature -> the body alone (a weak signal, kept for coverage).
- ``test``: a test's name, in words -> the workspace definition it calls whose name it shares.
- ``docs``: a README/docs section -> a definition it names in backticks.
- ``commit``: a commit message -> the largest hunk it changed (recent history only).
- ``identifier``: a definition's name, split into words -> its code as the index holds it
  (a weak signal, like signatures: training only).
- ``pick``: a query someone typed -> the result they opened (`kenning/feedback`); not
  mined from files but read from the index folder (`pick_pairs`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import textwrap
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kenning.server.chunking import Chunk, chunk_file, embed_text_for
from kenning.server.discover import FileFilter, discover, read_text
from kenning.server.lexical import is_test_path, split_words

from .descriptions import (
    COMMENT_LINE,
    MAX_ANCHOR_CHARS,
    MIN_ANCHOR_WORDS,
    clean_description,
    meaningful,
    split_braced,
    split_python,
    strip_comment_markers,
    too_few_words,
)
from .options import DEFAULT_MAX_COMMITS

log = logging.getLogger(__name__)

KINDS = (
    "docstring",
    "comment",
    "module",
    "signature",
    "test",
    "docs",
    "commit",
    "identifier",
    "pick",
)
WEAK_KINDS = ("signature", "identifier")
"""Plentiful but weak: at most a share of the training pairs (`max_signature_share`)."""
QUERY_KINDS = tuple(k for k in KINDS if k not in WEAK_KINDS)
"""Kinds whose anchor reads like something a person would search for; held-out
quality (and so the gate) is measured on these only. Signature anchors
(`def f(x) -> y:`) and bare names are training signal, not queries anyone types."""

MEASURE_TESTS_OWN_CODE = False
"""Whether training is measured on pairs whose answer is a test's own code."""


def is_measured(pair: Pair) -> bool:
    """Whether `pair` measures training: the fine-tune's held-out side (and which files
    go there) and the query adapter's cross-fit (and the penalty it chooses) count a
    query kind whose answer is what searches look for. A test's docstring describes
    the test, and search ranks tests below the code they exercise unless asked for
    them; where tests hold most of the described code (more-itertools: 62% of its
    query-like pairs), a verdict on them says little about searches. They still
    train. A pick is what a person searched for, wherever it points."""
    if pair.kind in WEAK_KINDS:
        return False
    return MEASURE_TESTS_OWN_CODE or pair.kind == "pick" or not is_test_path(pair.path)


MAX_POSITIVE_LINES = 80
"""Training reads at most 128-256 tokens of a positive; more lines are wasted tokenising."""
MAX_FILES_PER_COMMIT = 30
"""Larger commits are refactors or renames whose message describes no single hunk."""
MAX_ADDED_PER_COMMIT = 600
"""Commits adding more lines than this are imports or vendoring, not one described change."""

_DEF_KINDS = ("function", "method", "class", "header", "type")


@dataclass(frozen=True)
class Pair:
    anchor: str
    """Query-like text: a description of the code."""
    positive: str
    """The code it describes, as the model reads it (context line + text)."""
    kind: str
    """One of KINDS."""
    path: str
    """Workspace-relative file of the positive; the train/held-out split goes by it."""
    source_hash: str | None = None
    """Hash of the index chunk the positive was cut from. Evaluation leaves that chunk
    out of the corpus for this kind, since it still holds the anchor's words."""


@dataclass
class MinedPairs:
    pairs: list[Pair]
    chunks: list[Chunk]
    """Every chunk of the workspace, as the index would store it."""
    files: int
    counts: dict[str, int] = field(default_factory=dict)
    """Pairs per kind after de-duplication, every kind listed (0 when none)."""
    dropped_duplicates: int = 0
    notes: list[str] = field(default_factory=list)


def mine_pairs(
    root: Path,
    flt: FileFilter,
    max_file_bytes: int,
    *,
    max_commits: int = DEFAULT_MAX_COMMITS,
    kinds: Iterable[str] = KINDS,
) -> MinedPairs:
    """Every pair the workspace offers, de-duplicated, with counts per kind.

    Args:
        root: the workspace folder.
        flt: the core's file filter (.gitignore, excludes, secrets).
        max_file_bytes: files larger than this are skipped, as the indexer does.
        max_commits: how many recent non-merge commits to read when `root` is in a
            git repository (0 to skip history).
        kinds: which kinds to mine (all by default).
    """
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown pair kinds: {', '.join(sorted(unknown))}")
    root = root.resolve()
    found = discover(root, flt, max_file_bytes)
    chunks: list[Chunk] = []
    texts: dict[str, str] = {}
    for f in found.files:
        text = read_text(f.path, max_file_bytes)
        if text is None:
            continue
        texts[f.rel] = text
        chunks.extend(chunk_file(f.rel, text))

    raw: list[Pair] = []
    notes: list[str] = []
    definitions = [c for c in chunks if c.kind in _DEF_KINDS and c.symbol]
    # A long definition is cut into windows that share its symbol; only the
    # first carries the comment, signature and docstring.
    firsts: dict[tuple[str, str | None], Chunk] = {}
    for c in definitions:
        firsts.setdefault((c.path, c.symbol), c)
    for chunk in firsts.values():
        raw.extend(_description_pairs(chunk, wanted))
        if "comment" in wanted:
            pair = _comment_pair(chunk)
            if pair:
                raw.append(pair)
    if "module" in wanted:
        raw.extend(_module_pairs(texts, chunks))
    if "test" in wanted:
        raw.extend(_test_pairs(definitions))
    if "docs" in wanted:
        raw.extend(_docs_pairs(texts, definitions))
    if "identifier" in wanted:
        raw.extend(_identifier_pairs(firsts.values()))
    if "commit" in wanted and max_commits > 0:
        commit_pairs, note = _commit_pairs(root, flt, max_commits)
        raw.extend(commit_pairs)
        if note:
            notes.append(note)

    pairs, dropped = dedupe(raw)
    counts = Counter(p.kind for p in pairs)
    return MinedPairs(
        pairs=pairs,
        chunks=chunks,
        files=len(texts),
        counts={k: counts.get(k, 0) for k in KINDS},
        dropped_duplicates=dropped,
        notes=notes,
    )


def dedupe(pairs: list[Pair]) -> tuple[list[Pair], int]:
    """Drop repeated pairs and every pair whose anchor is shared by another.

    An anchor that describes two different pieces of code ("Return the name.")
    is no query with one answer: as a training pair it teaches noise, as a
    held-out query it cannot be scored. Returns (kept, how many were dropped).
    """
    seen: set[tuple[str, str]] = set()
    unique: list[Pair] = []
    for p in pairs:
        key = (_norm(p.anchor), p.positive)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    anchors = Counter(_norm(p.anchor) for p in unique)
    kept = [p for p in unique if anchors[_norm(p.anchor)] == 1]
    return kept, len(pairs) - len(kept)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


# -- docstrings, comments and signatures --------------------------------------------------


def _description_pairs(chunk: Chunk, wanted: set[str]) -> list[Pair]:
    """Docstring -> code, opening body comment -> code, and signature -> body pairs."""
    if chunk.language == "python":
        split = split_python(chunk.text)
    else:
        split = split_braced(chunk.text)
    if split is None:
        return []
    head, signature, docstring, body = split
    out = []
    if "docstring" in wanted and docstring:
        anchor = clean_description(docstring)
        code = f"{head}{signature}\n{body}"
        if anchor and meaningful(body):
            out.append(_pair(anchor, chunk, code, "docstring"))
    elif "comment" in wanted and not docstring:
        # No docstring, but the body opens with a comment that plays its part.
        lines = body.split("\n")
        first = 1 if lines and not lines[0].strip() else 0
        end = first
        while end < len(lines) and COMMENT_LINE.match(lines[end]):
            end += 1
        anchor = clean_description(strip_comment_markers(lines[first:end])) if end > first else None
        rest = "\n".join(lines[end:])
        if anchor and meaningful(rest):
            out.append(_pair(anchor, chunk, f"{head}{signature}\n{rest}", "comment"))
    if "signature" in wanted and chunk.kind in ("function", "method") and meaningful(body, 2):
        anchor = " ".join(signature.split())
        if len(anchor.split("(")[0].split()) >= 1 and len(anchor) >= 8:
            positive = embed_text_for(chunk.path, None, _cap_lines(_dedent(body)))
            out.append(
                Pair(anchor[:MAX_ANCHOR_CHARS], positive, "signature", chunk.path, chunk.hash)
            )
    return out


def _comment_pair(chunk: Chunk) -> Pair | None:
    lines = chunk.text.split("\n")
    block: list[str] = []
    i = 0
    while i < len(lines) and COMMENT_LINE.match(lines[i]):
        block.append(lines[i])
        i += 1
    if not block:
        return None
    anchor = clean_description(strip_comment_markers(block))
    code = "\n".join(lines[i:])
    if not anchor or not meaningful(code):
        return None
    return _pair(anchor, chunk, code, "comment")


def _pair(anchor: str, chunk: Chunk, code: str, kind: str) -> Pair:
    positive = embed_text_for(chunk.path, chunk.symbol, _cap_lines(code.strip("\n").rstrip()))
    return Pair(anchor, positive, kind, chunk.path, chunk.hash)


def _dedent(text: str) -> str:
    return textwrap.dedent(text.strip("\n"))


def _cap_lines(text: str) -> str:
    lines = text.split("\n")
    return "\n".join(lines[:MAX_POSITIVE_LINES])


# -- module docstrings ------------------------------------------------------------------

_MODULE_DOC = re.compile(r"\A(?:\s*#[^\n]*\n)*\s*[rRuU]?(\"\"\"|''')(.*?)\1", re.DOTALL)


def _module_pairs(texts: dict[str, str], chunks: list[Chunk]) -> list[Pair]:
    by_file: dict[str, list[Chunk]] = {}
    for c in chunks:
        if c.kind in _DEF_KINDS:
            by_file.setdefault(c.path, []).append(c)
    out = []
    for path, text in texts.items():
        if PurePosixPath(path).suffix not in (".py", ".pyi"):
            continue
        match = _MODULE_DOC.match(text)
        if match is None or path not in by_file:
            continue
        anchor = clean_description(match.group(2))
        if not anchor:
            continue
        # The module's first definitions (their signatures and opening lines)
        # stand for "this module".
        parts = []
        for c in by_file[path][:4]:
            parts.extend(c.text.split("\n")[:12])
        positive = embed_text_for(path, None, _cap_lines("\n".join(parts)))
        out.append(Pair(anchor, positive, "module", path, None))
    return out


# -- tests -> the code they exercise ---------------------------------------------------

_TEST_NAME = re.compile(r"(?:^|\.)(?:test_?|Test)(\w+)$")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def _is_test_path(path: str) -> bool:
    # Pair mining's own line, kept as it always was: unlike search's test prior it
    # counts FooTest.java but not a testing/ folder. (Positives here come from
    # grammar-parsed files, whose suffix is a plain word: the regex reads it as
    # pathlib's suffix did.)
    return is_test_path(path, testing_folder=False, camel_case_name=True)


def _words(name: str) -> list[str]:
    return split_words(name, split_digits=True)


def _test_pairs(definitions: list[Chunk]) -> list[Pair]:
    code = [
        c
        for c in definitions
        if not _is_test_path(c.path) and c.kind in ("function", "method", "class")
    ]
    by_name: dict[str, list[Chunk]] = {}
    for c in code:
        if c.symbol:
            by_name.setdefault(c.symbol.rsplit(".", 1)[-1], []).append(c)
    out = []
    for test in definitions:
        if not _is_test_path(test.path) or test.kind not in ("function", "method"):
            continue
        match = _TEST_NAME.search(test.symbol or "")
        if match is None:
            continue
        test_words = _words(match.group(1))
        if len(test_words) < MIN_ANCHOR_WORDS:
            continue
        best: tuple[int, Chunk] | None = None
        for called in dict.fromkeys(_CALL.findall(test.text)):
            targets = by_name.get(called, [])
            if len(targets) != 1:
                continue  # unknown, or ambiguous between definitions
            shared = len(set(_words(called)) & set(test_words))
            if shared and (best is None or shared > best[0]):
                best = (shared, targets[0])
        if best is None:
            continue
        target = best[1]
        positive = embed_text_for(target.path, target.symbol, _cap_lines(target.text))
        out.append(Pair(" ".join(test_words), positive, "test", target.path, target.hash))
    return out


def _identifier_pairs(firsts: Iterable[Chunk]) -> list[Pair]:
    """`parse_cookie_header` -> "parse cookie header" -> the definition, as the index holds it."""
    out = []
    for c in firsts:
        if c.kind not in ("function", "method", "class") or not c.embeddable or not c.symbol:
            continue
        if _is_test_path(c.path):
            continue
        words = _words(c.symbol.rsplit(".", 1)[-1])
        if len(words) >= 2:
            out.append(Pair(" ".join(words), c.embed_text, "identifier", c.path, c.hash))
    return out


# -- README and docs sections -> the symbols they name -------------------------------------

_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_BACKTICK = re.compile(r"`([A-Za-z_][\w.]*)(?:\(\))?`")


def _docs_pairs(texts: dict[str, str], definitions: list[Chunk]) -> list[Pair]:
    by_name: dict[str, list[Chunk]] = {}
    for c in definitions:
        if not c.symbol:
            continue
        for name in {c.symbol, c.symbol.rsplit(".", 1)[-1]}:
            by_name.setdefault(name, []).append(c)
    out = []
    for path, text in texts.items():
        if PurePosixPath(path).suffix.lower() not in (".md", ".rst", ".txt"):
            continue
        for heading, prose in _sections(text):
            names = [
                n for n in dict.fromkeys(_BACKTICK.findall(prose)) if len(by_name.get(n, [])) == 1
            ]
            if len(names) != 1:
                continue  # a section naming several symbols describes none of them alone
            description = clean_description(_strip_markdown(prose))
            if not description:
                continue
            anchor = f"{heading}: {description}" if heading else description
            target = by_name[names[0]][0]
            positive = embed_text_for(target.path, target.symbol, _cap_lines(target.text))
            out.append(Pair(anchor[:MAX_ANCHOR_CHARS], positive, "docs", target.path, target.hash))
    return out


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, first prose paragraph) of each Markdown section; code blocks skipped."""
    out = []
    heading = ""
    para: list[str] = []
    in_code = False

    def flush() -> None:
        if para:
            out.append((heading, "\n".join(para)))

    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        m = _HEADING.match(line)
        if m:
            flush()
            heading, para = m.group(1).strip(), []
        elif line.strip():
            para.append(line)
        elif para:
            flush()
            para = []
    flush()
    return out


def _strip_markdown(text: str) -> str:
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    return text.replace("`", "").replace("**", "").replace("__", "")


# -- commit messages -> hunks ------------------------------------------------------------

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@ ?(.*)$")
_TRAILER = re.compile(r"^[A-Z][\w-]+: .+$")
_BORING_MESSAGE = re.compile(
    r"^(merge|wip|bump|release|version|update changelog|initial commit|v?\d+(\.\d+)+)\b",
    re.IGNORECASE,
)


def _commit_pairs(root: Path, flt: FileFilter, max_commits: int) -> tuple[list[Pair], str | None]:
    """One pair per recent commit: its message -> the new side of its largest hunk."""
    try:
        inside = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return [], "git is not available: no commit pairs"
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return [], None
    cmd = [
        "git",
        "-C",
        str(root),
        "-c",
        "core.quotepath=off",
        "log",
        "--no-merges",
        f"-n{max_commits}",
        "--format=%x00%H %P%x01%B%x02",
        "-p",
        "--unified=3",
        "--no-color",
        "--no-ext-diff",
        "--relative",
        "--diff-filter=AM",
        "--",
        ".",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return [], "reading the git history took too long: no commit pairs"
    if proc.returncode != 0:
        return [], f"git log failed: {proc.stderr.decode('utf-8', 'replace').strip()[:200]}"
    out = []
    for record in proc.stdout.decode("utf-8", errors="replace").split("\x00")[1:]:
        header, _, diff = record.partition("\x02")
        shas, _, message = header.partition("\x01")
        anchor = _commit_message(message)
        if anchor is None or len(shas.split()) < 2:
            continue  # a root commit imports a project; its message describes no code
        hunks = [h for h in _parse_hunks(diff) if flt.reason_to_skip(h[0]) is None]
        files = {h[0] for h in hunks}
        if (
            not hunks
            or len(files) > MAX_FILES_PER_COMMIT
            or sum(h[3] for h in hunks) > MAX_ADDED_PER_COMMIT
        ):
            continue
        path, context, lines, added = max(hunks, key=lambda h: h[3])
        body = "\n".join(lines)
        if added < 2 or not meaningful(body):
            continue
        symbol = _hunk_symbol(context)
        positive = embed_text_for(path, symbol, _cap_lines(body))
        out.append(Pair(anchor, positive, "commit", path, None))
    return out, None


def _commit_message(message: str) -> str | None:
    lines = [ln for ln in message.strip().split("\n") if not _TRAILER.match(ln.strip())]
    if not lines or _BORING_MESSAGE.match(lines[0].strip()):
        return None
    # Subject plus the first paragraph of the body: the part written for people.
    paragraph = [lines[0].strip()]
    for ln in lines[1:]:
        if not ln.strip():
            if len(paragraph) > 1:
                break
            continue
        paragraph.append(ln.strip())
    text = " ".join(paragraph)
    text = re.sub(r"\s*\(#\d+\)$", "", text)
    if too_few_words(text):
        return None
    return text[:MAX_ANCHOR_CHARS]


def _parse_hunks(diff: str) -> list[tuple[str, str, list[str], int]]:
    """(path, function context, new-side lines, added line count) per hunk."""
    hunks: list[tuple[str, str, list[str], int]] = []
    path: str | None = None
    current: list[str] | None = None
    context = ""
    added = 0

    def flush() -> None:
        if path is not None and current is not None and added:
            hunks.append((path, context, current, added))

    for line in diff.split("\n"):
        if line.startswith("diff --git "):
            flush()
            path, current, added = None, None, 0
        elif line.startswith("+++ "):
            target = line[4:].strip()
            path = target[2:] if target.startswith("b/") else None
        elif line.startswith("@@"):
            flush()
            m = _HUNK.match(line)
            context = m.group(1) if m else ""
            current, added = [], 0
        elif current is not None and path is not None:
            if line.startswith("+"):
                current.append(line[1:])
                added += 1 if line[1:].strip() else 0
            elif line.startswith(" "):
                current.append(line[1:])
            elif line == "":
                current.append("")
    flush()
    return hunks


def _hunk_symbol(context: str) -> str | None:
    m = re.search(r"(?:def|class|func|fn|function)\s+([\w.]+)", context)
    return m.group(1) if m else None


def pairs_digest(pairs: Iterable[Pair]) -> str:
    """A short stable hash of a list of pairs (used to key resumable runs)."""
    h = hashlib.blake2b(digest_size=8)
    for p in pairs:
        h.update(p.kind.encode())
        h.update(b"\0")
        h.update(p.anchor.encode("utf-8", "replace"))
        h.update(b"\0")
        h.update(p.positive.encode("utf-8", "replace"))
        h.update(b"\1")
    return h.hexdigest()
