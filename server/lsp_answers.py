"""The language server's answers, made from the workspace services' plain ones.

Each function runs on the query pool (never the event loop): it asks the
services of the folders a request names (server/folders.py picks them), merges
what they say, and maps it to the protocol types of server/protocol.py. A
folder-less request (one folder, as most clients have) gets exactly the
answer a single-folder server gave.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import from_fs_path

from .folders import Folder, FolderMap, Target, merge_results
from .models import split_label
from .protocol import (
    FolderStatus,
    ModelInfo,
    RelatedResponse,
    SearchHit,
    SearchParams,
    SearchResponse,
    StatusResponse,
)
from .related import RelatedOutcome
from .search import SearchOutcome, SearchResult

if TYPE_CHECKING:
    from .workspace_service import ServiceStatus, WorkspaceService

Folders = FolderMap["WorkspaceService"]


def hit(folder: Folder, r: SearchResult) -> SearchHit:
    """One result as the protocol carries it, its URI under the folder as the client named it."""
    return SearchHit(
        uri=from_fs_path(str(folder.path / r.path)) or "",
        range=types.Range(
            start=types.Position(line=r.start_line - 1, character=0),
            end=types.Position(line=r.end_line, character=0),
        ),
        score=round(r.score, 4),
        snippet=r.snippet,
        path=r.path,
        symbol=r.symbol,
        language=r.language,
        kind=r.kind or None,
        folder=folder.uri,
        explain=r.explanation,
    )


def search_one(target: Target[WorkspaceService], params: SearchParams) -> SearchOutcome:
    """One folder's search (on the query pool). A target restricted to nested folders asks
    its index for more results, since those outside them are dropped when merging.
    Raises what the service raises (SearchError, SemanticUnavailable)."""
    limit = params.limit * (4 if target.prefixes else 1)
    return target.service.search(
        params.query, limit=limit, mode=params.mode, paths=params.paths, explain=params.explain
    )


def merge_search(
    targets: Sequence[Target[WorkspaceService]],
    outcomes: Sequence[SearchOutcome],
    limit: int,
    explain: bool = False,
) -> SearchResponse:
    """The folders' answers as one, merged by score; model, generation and (with
    `explain`) the fusion's weights are the first folder's."""
    merged = merge_results([(t, o.results) for t, o in zip(targets, outcomes, strict=True)], limit)
    first = outcomes[0] if outcomes else None
    return SearchResponse(
        results=[hit(t.folder, r) for t, r in merged],
        took_ms=round(max((o.took_ms for o in outcomes), default=0.0), 2),
        model=first.model if first else "",
        generation=first.generation if first else None,
        partial=any(o.partial for o in outcomes),
        notes=list(dict.fromkeys(n for o in outcomes for n in o.notes)),
        weights=first.weights if first and explain else None,
        adapter=first.adapter if first else None,
    )


def answer_related(folder: Folder, outcome: RelatedOutcome) -> RelatedResponse:
    return RelatedResponse(
        source=hit(folder, outcome.source),
        results=[hit(folder, r) for r in outcome.results],
        took_ms=round(outcome.took_ms, 2),
        model=outcome.model,
        generation=outcome.generation,
        notes=outcome.notes,
    )


def _model(label: str) -> ModelInfo:
    name, version = split_label(label)
    return ModelInfo(name=name, version=version)


def _figures(status: ServiceStatus) -> dict[str, Any]:
    """What a folder's entry and the top level of `kenning/status` have in common."""
    index = status.index
    return {
        "state": status.state,
        "files": index.files,
        "chunks": index.chunks,
        "pending": index.pending,
        "queued": status.queued,
        "model": _model(index.model),
        "generation": index.generation,
        "index_dir": index.index_dir,
        "writer": status.writer,
    }


def folder_status(
    folder: Folder,
    home: Folder,
    status: ServiceStatus | None,
    error: str | None,
    closing: bool = False,
) -> FolderStatus:
    names: dict[str, Any] = {"name": folder.name, "uri": folder.uri, "indexed_in": home.uri}
    if status is None:  # failed to open, still opening, or closing
        state: Any = "failed" if error else "stopping" if closing else "starting"
        return FolderStatus(**names, state=state, error=error)
    return FolderStatus(**names, **_figures(status))


def answer_status(folders: Folders, statuses: dict[str, ServiceStatus]) -> StatusResponse:
    """The first indexed folder's status at the top level (what single-folder clients
    read), and every folder's in `folders`; `statuses` are by indexed folder URI."""
    # A folder may have closed, or opened, while the statuses were read.
    first = next(
        (statuses[f.uri] for f, _ in folders.running() if f.uri in statuses),
        next(iter(statuses.values())),
    )
    per_folder = [
        folder_status(
            folder,
            home,
            statuses.get(home.uri),
            folders.failures.get(home.uri),
            closing=home.uri in folders.closing,
        )
        for folder in folders.folders
        for home in [folders.home(folder)]
    ]
    return StatusResponse(
        **_figures(first),
        workspace=first.index.workspace,
        embedded_since_start=first.embedded_since_start,
        index_bytes=first.index.index_bytes,
        warnings=first.index.warnings,
        last_training=first.last_training,
        training=first.training,
        adapter=first.index.adapter,
        picks=first.index.picks,
        folders=per_folder,
    )
