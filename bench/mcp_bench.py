"""The MCP server for agents: `search_code` latency on a warm 10k-chunk index, and the
token budget over every query of the bench corpus.

* **latency**: a real `kenning mcp` process on the 10k-chunk workspace of
  `bench.lsp_scale` (real files, chunks and full-text rows, random vectors; queries
  embedded by the real model), or with `--latency-package` on a bench package's
  own index (real vectors), driven over stdio by the MCP SDK's own client.
  After a warm-up, `search_code` is called back to back; the bench records the
  round trip the agent sees and the search time the server reports, p50/p95.
* **budget**: for each bench package (its prebuilt index with the bundled model's
  real vectors, copied), every query of its `queries.jsonl` goes through the same
  tool code in-process (`Tools.search_code`, default limit and budget); the bench
  records each answer's tokens by the bundled tokenizer (what the budget counts)
  and by the chars/4 estimate, and how often snippets were cut or results dropped.
  The budget holds when no answer exceeds it.

Run: `python -m bench.mcp_bench [--parts latency,budget] [--queries 200]`;
results in bench/results/mcp.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "results" / "mcp.json"
PACKAGES = ["flask", "marshmallow", "more-itertools", "tqdm", "werkzeug", "sqlalchemy"]
PREBUILT = [BENCH / ".work" / "index", Path("/work/main/bench/.work/index")]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": pct(values, 0.5), "p95": pct(values, 0.95), "n": len(values)}


def built_with(index_dir: Path) -> str | None:
    """The model folder the index's active vectors were made with, when it is on this
    machine: serving with it keeps the copied index as it is (the index knows its model by
    location, so the bundled model of another virtual environment would re-embed it all)."""
    import sqlite3

    with sqlite3.connect(f"file:{index_dir / 'index.sqlite'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT location FROM generations WHERE state = 'active'").fetchone()
    return row[0] if row and Path(row[0]).is_dir() else None


def prebuilt_index(pkg: str) -> Path | None:
    """A bench package's index built with the bundled model (bench.kenning_adapter)."""
    return next((p / pkg for p in PREBUILT if (p / pkg / "index.sqlite").exists()), None)


async def latency(
    n_queries: int, package: str | None = None, subset: list[str] | None = None
) -> dict[str, Any]:
    """`search_code` round trips; on the 10k-chunk workspace, or on a bench package's own
    index (real vectors) when `package` is given, cut down to the folders `subset` (the
    index copy drops the rest at start, keeping the vectors of what stays)."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from bench.search_latency import queries

    if package is None:
        from bench.lsp_scale import workspace_and_index

        ws, prebuilt = workspace_and_index("10k")
    else:
        found = prebuilt_index(package)
        if found is None:
            raise SystemExit(f"no prebuilt index of {package}; run python -m bench.kenning_adapter")
        ws, prebuilt = BENCH / ".corpus" / package / "workspace", found
    tmp = Path(tempfile.mkdtemp(prefix="kenning-mcp-bench-"))
    try:
        shutil.copytree(prebuilt, tmp / "index")
        if subset:
            for rel in subset:  # copy2 keeps mtimes: the start-up scan reads none of them
                shutil.copytree(ws / rel, tmp / "ws" / rel)
            ws = tmp / "ws"
            (tmp / "index" / "workspace.path").unlink(missing_ok=True)  # the copy is this one's
        model = built_with(tmp / "index")
        params = StdioServerParameters(
            command=sys.executable,
            args=[
                "-m",
                "kenning.server.cli",
                "mcp",
                "--workspace",
                str(ws),
                *(["--model", model] if model else []),
            ],
            env={"KENNING_INDEX_DIR": str(tmp / "index"), "HF_HUB_OFFLINE": "1"},
        )
        async with Client(params, read_timeout_seconds=600) as client:

            async def call(name: str, args: dict[str, Any]) -> str:
                result = await client.call_tool(name, args)
                text = "\n".join(getattr(c, "text", "") for c in result.content)
                if result.is_error:
                    raise RuntimeError(text)
                return text

            deadline = time.monotonic() + 1800
            while True:
                status = await call("index_status", {})
                if "state: idle" in status and "waiting for a vector: 0," in status:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the index did not settle: {status}")
                await asyncio.sleep(1)
            chunks = int(status.split("chunks: ")[1].split(",")[0])
            for _ in range(5):
                await call("search_code", {"query": "warm up the query path"})
            round_trip: list[float] = []
            in_server: list[float] = []
            tokens: list[int] = []
            from kenning.server.budget import count_tokens

            for query in queries(n_queries):
                start = time.perf_counter()
                text = await call("search_code", {"query": query})
                round_trip.append((time.perf_counter() - start) * 1000)
                took = re.findall(r"\((?:hybrid|semantic|lexical), ([\d.]+) ms, model ", text)
                in_server.append(float(took[-1]))
                tokens.append(count_tokens(text))
        return {
            "workspace": str(ws),
            "package": package,
            "vectors": "random" if package is None else "bundled model",
            "subset": subset or [],
            "chunks": chunks,
            "round_trip_ms": summary(round_trip),
            "in_server_ms": summary(in_server),
            "tokens": {"max": max(tokens), "mean": round(statistics.mean(tokens), 1)},
            "load_average": os.getloadavg()[0],
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def budget(
    packages: list[str], max_queries: int | None, save: Any = lambda _: None
) -> dict[str, Any]:
    from kenning.server.budget import count_tokens, estimate_tokens
    from kenning.server.mcp_server import DEFAULT_MAX_TOKENS, Tools
    from kenning.server.workspace_service import LogListener, WorkspaceService
    from kenning.server.writer_lock import MCP

    out: dict[str, Any] = {"max_tokens": DEFAULT_MAX_TOKENS, "packages": {}}
    for pkg in packages:
        root = BENCH / ".corpus" / pkg
        prebuilt = prebuilt_index(pkg)
        if prebuilt is None:
            print(f"{pkg}: no prebuilt index; run python -m bench.kenning_adapter", flush=True)
            continue
        lines = (root / "queries.jsonl").read_text().splitlines()
        qs = [json.loads(line)["query"] for line in lines][:max_queries]
        tmp = Path(tempfile.mkdtemp(prefix=f"kenning-budget-{pkg}-"))
        try:
            shutil.copytree(prebuilt, tmp / "index")
            model = built_with(tmp / "index")
            service = WorkspaceService.open(
                root / "workspace",
                {"index_dir": str(tmp / "index"), **({"model": model} if model else {})},
                listener=LogListener(),
                role=MCP,
            )
            service.start()
            assert service.worker is not None
            service.worker.first_index_done.wait(1800)
            while not service.engine.model_loaded:
                time.sleep(0.2)
            tools = Tools(DEFAULT_MAX_TOKENS)
            tools.service = service
            counted, estimated, cut, dropped = [], [], 0, 0
            for query in qs:
                text = tools.search_code(query)
                counted.append(count_tokens(text))
                estimated.append(estimate_tokens(text))
                tail = text.splitlines()[-1]
                cut += tail.startswith("(snippets cut")
                dropped += "left out to stay within" in tail
            service.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        out["packages"][pkg] = {
            "queries": len(qs),
            "tokens_max": max(counted),
            "tokens_mean": round(statistics.mean(counted), 1),
            "chars_over_4_max": max(estimated),
            "chars_over_4_mean": round(statistics.mean(estimated), 1),
            "snippets_cut": cut,
            "results_dropped": dropped,
            "over_budget": sum(t > DEFAULT_MAX_TOKENS for t in counted),
        }
        print(f"{pkg}: {out['packages'][pkg]}", flush=True)
        save(out)  # a long run keeps each package's figures as it goes
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="latency,budget")
    parser.add_argument("--queries", type=int, default=200, help="latency queries")
    parser.add_argument(
        "--latency-subset",
        default="",
        help="comma-separated folders of --latency-package to keep (a smaller index)",
    )
    parser.add_argument(
        "--latency-package",
        default=None,
        help="measure latency on this bench package's index instead of the 10k workspace",
    )
    parser.add_argument("--packages", default=",".join(PACKAGES))
    parser.add_argument("--max-queries", type=int, default=None, help="budget queries a package")
    args = parser.parse_args()
    parts = args.parts.split(",")

    def save(key: str, part: dict[str, Any]) -> None:
        """Merge one part into the results file as it is now (another part may be running)."""
        result: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
        if key == "budget" and "budget" in result:
            part = {**part, "packages": {**result["budget"]["packages"], **part["packages"]}}
        result[key] = part
        result["date"] = time.strftime("%Y-%m-%d")
        OUT.write_text(json.dumps(result, indent=2) + "\n")

    if "latency" in parts:
        subset = [p for p in args.latency_subset.split(",") if p]
        measured = asyncio.run(latency(args.queries, args.latency_package, subset))
        print(json.dumps(measured), flush=True)
        save("latency", measured)
    if "budget" in parts:
        save(
            "budget",
            budget(args.packages.split(","), args.max_queries, lambda b: save("budget", b)),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
