"""`kenning mcp`: the workspace's index for coding agents, as an MCP server over stdio
(docs/protocol.md §5).

Built on the official `mcp` SDK's `MCPServer`. It serves the one workspace it
was started in, through the same `WorkspaceService` as the language server
(server/workspace_service.py): the same index, kept fresh by the same worker
and file watcher, and shared safely with a `kenning serve` on that workspace
(one of them writes, the other reads beside it). Tools:

- `search_code(query, limit, mode, paths, max_tokens)`: natural-language search;
- `find_related(path, line, limit, paths, max_tokens)`: code similar to the
  definition at a line, from its stored vector;
- `index_status()` and `reindex(paths)`.

Answers are compact text within a token budget (server/budget.py). Every bad
input is an MCP error result (`isError`) whose one line says what to do; no
argument can reach a path outside the workspace (server/agent_paths.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from pydantic import Field, ValidationError

from .agent_paths import workspace_file, workspace_globs
from .budget import fit
from .related import RelatedError
from .search import SearchError, SemanticUnavailable
from .workspace_service import LogListener, NotTheWriter, ServiceStatus, WorkspaceService
from .writer_lock import MCP

log = logging.getLogger(__name__)

VERSION = "0.1.0"
MAX_LIMIT = 100
DEFAULT_MAX_TOKENS = 2000
MIN_MAX_TOKENS = 200
MAX_MAX_TOKENS = 50_000

INSTRUCTIONS = """\
Kenning searches this workspace by meaning. Use search_code when you know what code does \
but not what it is called ("where are failed uploads retried?"); use grep when you know an \
exact name or string. find_related(path, line) lists code similar to the definition at that \
line: other implementations, near-duplicates, callers written alike. Paths in answers are \
relative to the workspace, lines 1-based and inclusive. index_status says how complete the \
index is; results marked partial come from what is indexed so far."""

Limit = Annotated[
    int, Field(ge=1, le=MAX_LIMIT, strict=True, description=f"results to return, 1 to {MAX_LIMIT}")
]
MaxTokens = Annotated[
    int | None,
    Field(
        ge=MIN_MAX_TOKENS,
        le=MAX_MAX_TOKENS,
        strict=True,
        description="token budget of the answer (default: the server's, about 2000); "
        "snippets are shortened first, then results dropped",
    ),
]
Globs = Annotated[
    list[Annotated[str, Field(strict=True)]],
    Field(description="gitignore-style globs relative to the workspace; only matching files"),
]


class KenningMCP(MCPServer[Any]):
    """The SDK's server, with errors for unknown tools and bad arguments that say what to do."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        if self._tool_manager.get_tool(name) is None:
            known = ", ".join(t.name for t in self._tool_manager.list_tools())
            raise ToolError(f"unknown tool {name!r}; Kenning's tools are {known}")
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise  # a bug: the SDK answers with a generic message and logs the traceback
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(f"{name}: {_argument_errors(cause)}") from cause
            message = str(exc).removeprefix(f"Error executing tool {name}: ")
            raise ToolError(f"{name}: {message}") from exc


def _argument_errors(exc: ValidationError) -> str:
    """Pydantic's errors as one line naming each argument: `limit: Input should be less
    than or equal to 100 (got 10000)`."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        parts.append(f"{where}: {err['msg']}{got}")
    return "; ".join(parts) + " - see the tool's input schema"


class Tools:
    """The tools, as plain methods over one workspace service (run on worker threads)."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.service: WorkspaceService | None = None
        self.startup_error: str | None = None

    def ready(self) -> WorkspaceService:
        if self.service is None:
            raise ToolError(self.startup_error or "Kenning is still opening the index; try again")
        return self.service

    def search_code(
        self,
        query: Annotated[str, Field(strict=True, description="what the code does, in words")],
        limit: Limit = 10,
        mode: Literal["hybrid", "semantic", "lexical"] = "hybrid",
        paths: Globs = [],  # noqa: B006 - pydantic copies defaults
        max_tokens: MaxTokens = None,
    ) -> str:
        """Search the workspace's code by what it does, in natural language ("retry failed
        uploads", "where is the session cookie signed"). Returns path:start-end, symbol, score
        and a snippet per result, best first. mode: hybrid (meaning and words, the default),
        semantic (meaning only) or lexical (words only)."""
        service = self.ready()
        globs = workspace_globs(service.named_root, service.root, paths)
        try:
            outcome = service.search(query, limit=limit, mode=mode, paths=globs)
        except (SearchError, SemanticUnavailable) as exc:
            raise ToolError(str(exc)) from exc
        header = [
            f"{len(outcome.results)} result{'' if len(outcome.results) == 1 else 's'} for "
            f"{query!r} ({mode}, {outcome.took_ms:.0f} ms, model {outcome.model})"
            + (" - partial" if outcome.partial else ""),
            *(f"note: {n}" for n in outcome.notes),
        ]
        return fit(header, outcome.results, max_tokens or self.max_tokens).text

    def find_related(
        self,
        path: Annotated[str, Field(strict=True, description="a file, relative to the workspace")],
        line: Annotated[int, Field(strict=True, description="a line in it, 1-based")],
        limit: Limit = 10,
        paths: Globs = [],  # noqa: B006 - pydantic copies defaults
        max_tokens: MaxTokens = None,
    ) -> str:
        """Find code similar to the definition at path:line (its function, method or class):
        other implementations of the same idea, near-duplicates, code written alike. Uses the
        index's stored vector of that code; the definition itself is left out."""
        service = self.ready()
        rel = workspace_file(service, path)
        globs = workspace_globs(service.named_root, service.root, paths)
        try:
            outcome = service.related(rel, line, limit=limit, paths=globs)
        except RelatedError as exc:
            raise ToolError(str(exc)) from exc
        source = outcome.source
        name = f" {source.symbol}" if source.symbol else ""
        header = [
            f"{len(outcome.results)} place{'' if len(outcome.results) == 1 else 's'} similar to "
            f"{source.path}:{source.start_line}-{source.end_line}{name} "
            f"({outcome.took_ms:.0f} ms, model {outcome.model})",
            *(f"note: {n}" for n in outcome.notes),
        ]
        return fit(header, outcome.results, max_tokens or self.max_tokens).text

    def index_status(self) -> str:
        """How complete the index is: state, files and chunks indexed, chunks still waiting
        for a vector, the model, and whether this server or another Kenning process writes it."""
        return describe_status(self.ready().status())

    def reindex(self, paths: Globs = []) -> str:  # noqa: B006 - pydantic copies defaults
        """Re-index these files or folders now (relative to the workspace); with no paths, rescan
        the whole workspace. Changes are picked up by themselves; use this after a bulk change
        you want searchable at once."""
        service = self.ready()
        rels = [workspace_file(service, p, where=f"paths[{i}]") for i, p in enumerate(paths)]
        try:
            queued = service.reindex(rels or None)
        except NotTheWriter as exc:
            raise ToolError(str(exc)) from exc
        what = f"{queued} path{'' if queued == 1 else 's'}" if rels else f"all {queued} files"
        return f"queued {what} for re-indexing; index_status shows when it is done"


def describe_status(s: ServiceStatus) -> str:
    index = s.index
    lines = [
        f"state: {s.state}",
        f"workspace: {index.workspace}",
        f"files: {index.files}, chunks: {index.chunks}, waiting for a vector: {index.pending}, "
        f"changes queued: {s.queued}",
        f"model: {index.model} (generation {index.generation})",
        "writer: this server" if s.writer else "writer: another Kenning process (see warnings)",
    ]
    if s.training:
        lines.append(f"training: {s.training.get('phase')}: {s.training.get('message', '')}")
    lines += [f"warning: {w}" for w in index.warnings]
    return "\n".join(lines)


def build_mcp_server(
    workspace: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> KenningMCP:
    """The MCP server for `workspace`; its index opens when a client connects (the lifespan)
    and closes, finishing the batch in flight, when the client goes."""
    tools = Tools(max_tokens)

    @asynccontextmanager
    async def lifespan(_app: MCPServer[Any]) -> AsyncIterator[None]:
        def open_service() -> WorkspaceService:
            service = WorkspaceService.open(workspace, overrides, listener=LogListener(), role=MCP)
            service.start()
            return service

        try:
            tools.service = await anyio.to_thread.run_sync(open_service)
            for warning in tools.service.engine.store.warnings:
                log.warning("%s", warning)
        except Exception as exc:  # noqa: BLE001 - stay up and say why in every answer
            log.exception("cannot open the index")
            tools.startup_error = f"Kenning cannot start: {exc}"
        try:
            yield None
        finally:
            if tools.service is not None:
                await anyio.to_thread.run_sync(tools.service.stop)

    server = KenningMCP(
        "kenning",
        title="Kenning code search",
        instructions=INSTRUCTIONS,
        version=VERSION,
        lifespan=lifespan,
        log_level="WARNING",
    )
    for fn in (tools.search_code, tools.find_related, tools.index_status, tools.reindex):
        server.add_tool(fn, structured_output=False)
    return server


def serve_mcp(
    workspace: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    verbose: bool = False,
) -> None:
    """Serve `workspace` over stdio until the client closes the connection."""
    logging.getLogger("kenning").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="kenning: %(levelname)s %(message)s")
    # MCP clients keep stderr as the server's log: warnings and worse unless -v.
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    build_mcp_server(workspace, overrides, max_tokens=max_tokens).run("stdio")
