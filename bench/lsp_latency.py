"""Language-server latency (issue 3): what an editor user waits for.

Drives a real `kenning serve` process over stdio, as an editor does, on a copy
of a real workspace with a fresh index, and reports:

* start-up: process spawn -> `initialize` answered -> first `kenning/status`
  answered -> first search answered with results (lexical, from the first pass);
* `kenning/search` round trip (p50/p95, hybrid mode) *during* the first
  index's background embedding and again when idle;
* save-to-searchable: append a new function, send `didSave`, then the time until
  a lexical search finds it and until its vectors are stored (p50/p95);
* idle RSS of the server process once the index has settled.

Default workspace: the flask sdist of the benchmark corpus (`python -m
bench.corpus --packages flask`), else the small e2e fixture workspace.
Run: `python -m bench.lsp_latency [--workspace DIR] [--queries N] [--saves N] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKSPACES = [
    ROOT / "bench" / ".corpus" / "flask" / "workspace",
    ROOT / "tests" / "data" / "lsp" / "workspace",
]
QUERIES = [
    "open a file relative to the application folder",
    "register a function to run before each request",
    "parse a url and split it into parts",
    "retry a failed request with exponential backoff",
    "render a template with the given context",
    "convert a value to json",
    "load configuration from environment variables",
    "handle an http error and return a response",
]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 1),
        "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else float("nan"),
        "samples_ms": [round(v * 1000, 1) for v in values],  # for the latency chart
    }


class Bench:
    def __init__(self, workspace: Path, index_dir: Path):
        self.workspace = workspace
        self.index_dir = index_dir
        self.client = LanguageClient("kenning-bench", "1")
        self.index_changes = 0

        @self.client.feature("kenning/indexChanged")
        def _changed(ls: LanguageClient, params: Any) -> None:
            self.index_changes += 1

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def _log(ls: LanguageClient, params: Any) -> None:
            pass

    async def start(self, env: dict[str, str] | None = None) -> psutil.Process:
        """Spawn `kenning serve` on the workspace and initialize it, as an editor does."""
        server_env = {**os.environ, "KENNING_INDEX_DIR": str(self.index_dir), **(env or {})}
        await self.client.start_io(
            sys.executable, "-m", "kenning.server.cli", "serve", env=server_env
        )
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                root_uri=from_fs_path(str(self.workspace)),
                process_id=os.getpid(),
            )
        )
        self.client.initialized(types.InitializedParams())
        return psutil.Process(self.client._server.pid)  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    async def request(self, method: str, params: Any) -> Any:
        return await self.client.protocol.send_request_async(method, params)

    async def timed_search(self, query: str, **options: Any) -> tuple[float, Any]:
        start = time.perf_counter()
        answer = await self.request("kenning/search", {"query": query, **options})
        return time.perf_counter() - start, answer

    async def wait(self, check, timeout: float, interval: float = 0.02) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if await check():
                return time.perf_counter() - start
            await asyncio.sleep(interval)
        raise TimeoutError(f"condition not met within {timeout}s")

    async def settled(self) -> bool:
        status = await self.request("kenning/status", {})
        return status.state == "idle" and status.queued == 0 and status.pending == 0


async def run(workspace_src: Path, n_queries: int, n_saves: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="kenning-lsp-bench-"))
    try:
        workspace = tmp / "workspace"
        shutil.copytree(workspace_src, workspace)
        bench = Bench(workspace, tmp / "index")
        out: dict[str, Any] = {"workspace": str(workspace_src)}

        t0 = time.perf_counter()
        server = await bench.start()
        t_init = time.perf_counter() - t0
        await bench.request("kenning/status", {})
        t_status = time.perf_counter() - t0

        # A word the first (lexical) pass is sure to know: the name of a file.
        probe = next(p for p in sorted(workspace.rglob("*.py")) if p.stem.isidentifier()).stem

        async def has_results() -> bool:
            answer = await bench.request("kenning/search", {"query": probe})
            return bool(answer.results)

        await bench.wait(has_results, timeout=600)
        t_first_results = time.perf_counter() - t0
        out["startup_s"] = {
            "initialize": round(t_init, 3),
            "first_status": round(t_status, 3),
            "first_search_with_results": round(t_first_results, 3),
        }

        # Searches while the worker embeds: hybrid once the model is loaded.
        during: list[float] = []
        lexical_only: list[float] = []
        i = 0
        while not await bench.settled() and len(during) < n_queries:
            took, answer = await bench.timed_search(QUERIES[i % len(QUERIES)])
            i += 1
            if any("model is still loading" in note for note in answer.notes):
                lexical_only.append(took)
            elif answer.partial:
                during.append(took)
        out["search_while_model_loads"] = summary(lexical_only)
        out["search_during_indexing"] = summary(during)

        await bench.wait(bench.settled, timeout=3600, interval=0.5)
        out["first_index_s"] = round(time.perf_counter() - t0, 1)
        status = await bench.request("kenning/status", {})
        out["index"] = {"files": status.files, "chunks": status.chunks}

        idle = []
        for i in range(n_queries):
            took, _ = await bench.timed_search(QUERIES[i % len(QUERIES)])
            idle.append(took)
        out["search_idle"] = summary(idle)
        out["idle_rss_mb"] = round(server.memory_info().rss / 2**20, 1)

        target = next(p for p in sorted(workspace.rglob("*.py")) if p.stat().st_size < 20_000)
        rel = target.relative_to(workspace).as_posix()
        lexical_s, embedded_s = [], []
        for n in range(n_saves):
            name = f"kenning_bench_probe_{n}_{os.getpid()}"
            with target.open("a") as fh:
                fh.write(
                    f'\n\ndef {name}(value):\n    """Probe {n}: double the value."""\n'
                    "    return value * 2\n"
                )
            start = time.perf_counter()
            bench.client.text_document_did_save(
                types.DidSaveTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=from_fs_path(str(target)))
                )
            )

            async def found(name: str = name) -> bool:
                answer = await bench.request(
                    "kenning/search", {"query": name, "mode": "lexical", "limit": 3}
                )
                return any(getattr(h, "symbol", None) == name for h in answer.results)

            await bench.wait(found, timeout=60)
            lexical_s.append(time.perf_counter() - start)
            await bench.wait(bench.settled, timeout=120)
            embedded_s.append(time.perf_counter() - start)
        out["save_to_searchable"] = {
            "file": rel,
            "lexical": summary(lexical_s),
            "embedded": summary(embedded_s),
        }

        await bench.stop()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="workspace to copy and index")
    parser.add_argument("--queries", type=int, default=40, help="searches per phase")
    parser.add_argument("--saves", type=int, default=10, help="save-to-searchable samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    workspace = args.workspace or next(p for p in DEFAULT_WORKSPACES if p.is_dir())
    result = asyncio.run(run(workspace.resolve(), args.queries, args.saves))
    result["cpu_count"] = os.cpu_count()
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"workspace       {result['workspace']} ({result['index']['files']} files, "
        f"{result['index']['chunks']} chunks; first index {result['first_index_s']} s)"
    )
    s = result["startup_s"]
    print(
        f"start-up        initialize {s['initialize']} s, first status {s['first_status']} s, "
        f"first results {s['first_search_with_results']} s"
    )
    for key in ("search_while_model_loads", "search_during_indexing", "search_idle"):
        r = result[key]
        print(f"{key:<28} p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  (n={r['n']})")
    sv = result["save_to_searchable"]
    print(f"save->lexical   p50 {sv['lexical']['p50_ms']} ms  p95 {sv['lexical']['p95_ms']} ms")
    print(f"save->embedded  p50 {sv['embedded']['p50_ms']} ms  p95 {sv['embedded']['p95_ms']} ms")
    print(
        f"idle RSS        {result['idle_rss_mb']} MB   (load average {result['load_avg_1m']} "
        f"on {result['cpu_count']} cores)"
    )


if __name__ == "__main__":
    main()
