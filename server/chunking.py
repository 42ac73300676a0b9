"""Split a file into search-sized chunks.

Code in a supported language is parsed with tree-sitter (the per-language
grammar wheels, which work offline) and cut at definitions: functions,
methods, classes and other named types, each with its leading comments and
docstring. A container (a class, an impl block, a namespace) yields its own
chunk for the header up to its first member, and one chunk per member, named
`Container.member`. Whatever no definition covers (module-level code,
constants, a script's body) becomes line windows; so does every file in a
language without a grammar. A definition longer than `MAX_DEF_LINES` is cut
into overlapping windows that all keep its name, so a search can land on any
part of it.

Chunks carry a content hash of the exact text the model sees; the indexer
embeds only hashes it has not stored yet.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

from tree_sitter import Language, Node, Parser

WINDOW_LINES = 40
WINDOW_OVERLAP = 8
MAX_DEF_LINES = 120
DEF_WINDOW_LINES = 60
DEF_WINDOW_OVERLAP = 12
MIN_EMBED_CHARS = 24
"""Chunks with less non-blank text than this are kept for lexical search but
not embedded: a bare `pass` or a closing brace tells the model nothing."""


@dataclass(frozen=True)
class Chunk:
    path: str
    start_line: int
    """1-based, inclusive."""
    end_line: int
    """1-based, inclusive."""
    language: str
    symbol: str | None
    kind: str
    """function, method, class, type, header (a container's opening lines) or window."""
    text: str
    embed_text: str
    """What the model reads: a line of context (path and symbol) and the text."""
    hash: str
    embeddable: bool


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    loader: str
    """`module:function` returning the grammar's language pointer."""
    definitions: frozenset[str]
    containers: frozenset[str] = frozenset()
    """Definition types whose members become chunks of their own."""
    wrappers: frozenset[str] = frozenset()
    """Nodes that wrap one definition and belong to its span (decorators, export)."""


_PY = LanguageSpec(
    "python",
    "tree_sitter_python:language",
    frozenset({"function_definition", "class_definition"}),
    frozenset({"class_definition"}),
    frozenset({"decorated_definition"}),
)
_JS_DEFS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "class_declaration",
        "method_definition",
        "lexical_declaration",
        "variable_declaration",
    }
)
_TS_DEFS = _JS_DEFS | {
    "interface_declaration",
    "type_alias_declaration",
    "enum_declaration",
    "abstract_class_declaration",
    "module",
    "internal_module",
    "function_signature",
    "abstract_method_signature",
}
_JS_CONTAINERS = frozenset({"class_declaration", "abstract_class_declaration", "class"})
_JS = LanguageSpec(
    "javascript",
    "tree_sitter_javascript:language",
    _JS_DEFS,
    _JS_CONTAINERS,
    frozenset({"export_statement"}),
)
_TS = LanguageSpec(
    "typescript",
    "tree_sitter_typescript:language_typescript",
    _TS_DEFS,
    _JS_CONTAINERS | {"module", "internal_module"},
    frozenset({"export_statement"}),
)
_TSX = LanguageSpec(
    "tsx",
    "tree_sitter_typescript:language_tsx",
    _TS_DEFS,
    _JS_CONTAINERS | {"module", "internal_module"},
    frozenset({"export_statement"}),
)
_GO = LanguageSpec(
    "go",
    "tree_sitter_go:language",
    frozenset({"function_declaration", "method_declaration", "type_declaration"}),
)
_RUST = LanguageSpec(
    "rust",
    "tree_sitter_rust:language",
    frozenset(
        {
            "function_item",
            "struct_item",
            "enum_item",
            "trait_item",
            "impl_item",
            "mod_item",
            "macro_definition",
            "union_item",
            "type_item",
            "function_signature_item",
        }
    ),
    frozenset({"impl_item", "trait_item", "mod_item"}),
)
_JAVA = LanguageSpec(
    "java",
    "tree_sitter_java:language",
    frozenset(
        {
            "class_declaration",
            "interface_declaration",
            "enum_declaration",
            "record_declaration",
            "annotation_type_declaration",
            "method_declaration",
            "constructor_declaration",
        }
    ),
    frozenset(
        {"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"}
    ),
)
_C_DEFS = frozenset(
    {
        "function_definition",
        "struct_specifier",
        "enum_specifier",
        "type_definition",
        "union_specifier",
    }
)
_C = LanguageSpec("c", "tree_sitter_c:language", _C_DEFS)
_CPP = LanguageSpec(
    "cpp",
    "tree_sitter_cpp:language",
    _C_DEFS | {"class_specifier", "namespace_definition"},
    frozenset({"class_specifier", "struct_specifier", "namespace_definition"}),
    frozenset({"template_declaration"}),
)

_BY_SUFFIX: dict[str, LanguageSpec] = {
    ".py": _PY,
    ".pyi": _PY,
    ".js": _JS,
    ".mjs": _JS,
    ".cjs": _JS,
    ".jsx": _JS,
    ".ts": _TS,
    ".mts": _TS,
    ".cts": _TS,
    ".tsx": _TSX,
    ".go": _GO,
    ".rs": _RUST,
    ".java": _JAVA,
    ".c": _C,
    ".h": _C,
    ".cc": _CPP,
    ".cpp": _CPP,
    ".cxx": _CPP,
    ".hpp": _CPP,
    ".hh": _CPP,
    ".hxx": _CPP,
}

# Languages without a grammar here are still named, for results and filters.
_PLAIN_LANGUAGES = {
    ".md": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".rb": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".cs": "csharp",
    ".lua": "lua",
    ".sql": "sql",
    ".html": "html",
    ".css": "css",
    ".scss": "scss",
    ".vue": "vue",
    ".svelte": "svelte",
    ".r": "r",
    ".jl": "julia",
    ".ex": "elixir",
    ".exs": "elixir",
    ".erl": "erlang",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".cfg": "ini",
    ".ini": "ini",
    ".xml": "xml",
    ".proto": "protobuf",
    ".tf": "terraform",
    ".dockerfile": "dockerfile",
    ".vim": "vim",
    ".el": "elisp",
    ".clj": "clojure",
}


def language_of(path: str) -> str:
    p = PurePosixPath(path)
    suffix = p.suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix].name
    if p.name in ("Dockerfile", "Makefile", "CMakeLists.txt"):
        return p.name.lower().split(".")[0]
    return _PLAIN_LANGUAGES.get(suffix, "text")


@cache
def _parser(spec: LanguageSpec) -> Parser:
    module_name, func = spec.loader.split(":")
    module = __import__(module_name)
    return Parser(Language(getattr(module, func)()))


def chunk_file(path: str, text: str) -> list[Chunk]:
    """All chunks of one file, in line order. `path` is workspace-relative."""
    if not text.strip():
        return []
    lines = text.splitlines()
    spec = _BY_SUFFIX.get(PurePosixPath(path).suffix.lower())
    spans: list[_Span] = []
    if spec is not None:
        source = text.encode("utf-8", errors="surrogatepass")
        tree = _parser(spec).parse(source)
        _collect(tree.root_node, spec, None, spans)
    language = spec.name if spec else language_of(path)
    chunks: list[Chunk] = []
    covered = [False] * (len(lines) + 2)
    for span in spans:
        for line in range(span.start, span.end + 1):
            covered[line] = True
        chunks.extend(_definition_chunks(path, language, lines, span))
    chunks.extend(_gap_windows(path, language, lines, covered))
    chunks.sort(key=lambda c: (c.start_line, c.end_line))
    return chunks


@dataclass
class _Span:
    start: int  # 1-based inclusive
    end: int
    symbol: str | None
    kind: str


def _collect(node: Node, spec: LanguageSpec, parent: str | None, out: list[_Span]) -> None:
    """Find definitions below `node`; members of containers are qualified."""
    for child in node.named_children:
        target = child
        if child.type in spec.wrappers:
            inner = [c for c in child.named_children if c.type in spec.definitions]
            if not inner:
                _collect(child, spec, parent, out)
                continue
            target = inner[-1]
        if target.type not in spec.definitions:
            # Definitions also hide inside `if __name__ == ...`, `#ifdef`,
            # namespaces' bodies and the like; only definitions stop the walk.
            if child.named_child_count:
                _collect(child, spec, parent, out)
            continue
        if target.type in (
            "lexical_declaration",
            "variable_declaration",
        ) and not _declares_function(target):
            continue
        name = _name_of(target)
        if target.type == "method_declaration" and spec.name == "go":
            parent_type = _go_receiver(target)
            name = f"{parent_type}.{name}" if parent_type else name
        symbol = f"{parent}.{name}" if parent and name else name or parent
        start = _leading_comment_start(child)
        end = child.end_point.row + 1
        if target.type in spec.containers:
            members: list[_Span] = []
            body = target.child_by_field_name("body") or target
            _collect(body, spec, symbol, members)
            header_end = (members[0].start - 1) if members else end
            out.append(
                _Span(start, max(start, header_end), symbol, "header" if members else "class")
            )
            out.extend(members)
        else:
            kind = _kind_of(target.type, parent)
            out.append(_Span(start, end, symbol, kind))


def _declares_function(node: Node) -> bool:
    # `const handler = async (req) => {...}` is a function in all but syntax.
    for decl in node.named_children:
        value = decl.child_by_field_name("value")
        if value is not None and value.type in (
            "arrow_function",
            "function_expression",
            "function",
            "class",
        ):
            return True
    return False


def _go_receiver(node: Node) -> str | None:
    receiver = node.child_by_field_name("receiver")
    stack = [receiver] if receiver is not None else []
    while stack:
        current = stack.pop()
        if current.type == "type_identifier":
            return _text(current)
        stack.extend(reversed(current.named_children))
    return None


def _name_of(node: Node) -> str | None:
    if node.type == "impl_item":
        trait = node.child_by_field_name("trait")
        typ = node.child_by_field_name("type")
        if typ is not None:
            name = _text(typ)
            return f"{_text(trait)} for {name}" if trait is not None else name
    if node.type in ("lexical_declaration", "variable_declaration"):
        for decl in node.named_children:
            named = decl.child_by_field_name("name")
            if named is not None:
                return _text(named)
    if node.type == "type_declaration":
        for spec in node.named_children:
            named = spec.child_by_field_name("name")
            if named is not None:
                return _text(named)
    named = node.child_by_field_name("name")
    if named is not None:
        return _text(named)
    declarator = node.child_by_field_name("declarator")
    while declarator is not None:  # C/C++: int *(*f)(void) -> f
        if declarator.type in (
            "identifier",
            "field_identifier",
            "qualified_identifier",
            "destructor_name",
            "operator_name",
            "type_identifier",
        ):
            return _text(declarator)
        declarator = declarator.child_by_field_name("declarator") or (
            declarator.named_children[0] if declarator.named_children else None
        )
    return None


def _text(node: Node) -> str:
    return node.text.decode("utf-8", errors="replace") if node.text else ""


def _kind_of(node_type: str, parent: str | None) -> str:
    if "class" in node_type or node_type in (
        "struct_item",
        "struct_specifier",
        "record_declaration",
    ):
        return "class"
    if any(
        t in node_type
        for t in ("interface", "enum", "type", "trait", "union", "module", "mod_item", "namespace")
    ):
        return "type"
    return "method" if parent else "function"


def _leading_comment_start(node: Node) -> int:
    """First line of the comments directly above `node` (no blank line between)."""
    start = node.start_point.row
    prev = node.prev_named_sibling
    while prev is not None and "comment" in prev.type and prev.end_point.row >= start - 1:
        start = prev.start_point.row
        prev = prev.prev_named_sibling
    return start + 1


def _definition_chunks(path: str, language: str, lines: list[str], span: _Span) -> list[Chunk]:
    length = span.end - span.start + 1
    if length <= MAX_DEF_LINES:
        return [_make(path, language, lines, span.start, span.end, span.symbol, span.kind)]
    # A long definition: overlapping windows; the first carries the signature
    # and docstring, the rest keep the symbol in their context line.
    return [
        _make(path, language, lines, s, e, span.symbol, span.kind)
        for s, e in _windows(span.start, span.end, DEF_WINDOW_LINES, DEF_WINDOW_OVERLAP)
    ]


def _gap_windows(path: str, language: str, lines: list[str], covered: list[bool]) -> list[Chunk]:
    chunks = []
    line = 1
    n = len(lines)
    while line <= n:
        if covered[line]:
            line += 1
            continue
        start = line
        while line <= n and not covered[line]:
            line += 1
        for s, e in _windows(start, line - 1, WINDOW_LINES, WINDOW_OVERLAP):
            s, e = _trim_blank(lines, s, e)
            if s <= e and not _is_trivial(lines[s - 1 : e]):
                chunks.append(_make(path, language, lines, s, e, None, "window"))
    return chunks


def _windows(start: int, end: int, size: int, overlap: int) -> list[tuple[int, int]]:
    out = []
    s = start
    while True:
        e = min(end, s + size - 1)
        out.append((s, e))
        if e >= end:
            return out
        s = e - overlap + 1


def _trim_blank(lines: list[str], s: int, e: int) -> tuple[int, int]:
    while s <= e and not lines[s - 1].strip():
        s += 1
    while e >= s and not lines[e - 1].strip():
        e -= 1
    return s, e


_IMPORT_LINE = re.compile(r"^\s*(import|from\s+\S+\s+import|#include|use|package|using|require)\b")


def _is_trivial(block: list[str]) -> bool:
    """Blank lines, lone braces and import blocks carry nothing a query asks for."""
    meaningful = [
        ln
        for ln in block
        if ln.strip()
        and ln.strip() not in ("}", "};", ")", "]", "end")
        and not _IMPORT_LINE.match(ln)
    ]
    return sum(len(ln.strip()) for ln in meaningful) < MIN_EMBED_CHARS


def embed_text_for(path: str, symbol: str | None, text: str) -> str:
    """What the model reads for a chunk: a context line naming where it lives,
    then the code. The path and symbol often carry the words a query uses."""
    context = f"{path} {symbol}" if symbol else path
    return f"{context}\n{text}"


def _make(
    path: str, language: str, lines: list[str], s: int, e: int, symbol: str | None, kind: str
) -> Chunk:
    text = "\n".join(lines[s - 1 : e])
    embed_text = embed_text_for(path, symbol, text)
    digest = hashlib.blake2b(
        embed_text.encode("utf-8", errors="replace"), digest_size=16
    ).hexdigest()
    return Chunk(
        path=path,
        start_line=s,
        end_line=e,
        language=language,
        symbol=symbol,
        kind=kind,
        text=text,
        embed_text=embed_text,
        hash=digest,
        embeddable=not _is_trivial(lines[s - 1 : e]),
    )
