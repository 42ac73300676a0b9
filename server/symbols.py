"""`workspace/symbol` answers: search results as workspace symbols (docs/protocol.md §2).

A definition is named and kinded as itself. A span of lines without a symbol
(a line window) is named by its file and lines, `uploads.py lines 1-40`, never
by whatever its first line happens to say, with the kind Module (code) or File
(prose).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from lsprotocol import types

from .protocol import SearchHit
from .ranking import PROSE_LANGUAGES

_SYMBOL_KINDS = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "class": types.SymbolKind.Class,
    "header": types.SymbolKind.Class,
    "type": types.SymbolKind.Interface,
}


def symbols_for(hits: list[SearchHit]) -> list[types.WorkspaceSymbol]:
    return [
        types.WorkspaceSymbol(
            name=symbol_name(hit),
            kind=symbol_kind(hit),
            container_name=hit.path,
            location=types.Location(uri=hit.uri, range=hit.range),
        )
        for hit in hits
    ]


def symbol_name(hit: SearchHit) -> str:
    """The definition's name; a span of lines without one is named by its file and lines
    (`uploads.py lines 1-40`), never by whatever its first line says."""
    if hit.symbol:
        return hit.symbol
    first, last = hit.range.start.line + 1, hit.range.end.line
    return f"{PurePosixPath(hit.path).name} lines {first}-{last}"


def symbol_kind(hit: SearchHit) -> types.SymbolKind:
    """A definition's own kind; a span of lines is part of a module, or of a document."""
    if hit.kind in _SYMBOL_KINDS:
        return _SYMBOL_KINDS[hit.kind]
    if hit.symbol:  # a window of a long definition keeps its name
        return types.SymbolKind.Function
    return types.SymbolKind.File if hit.language in PROSE_LANGUAGES else types.SymbolKind.Module
