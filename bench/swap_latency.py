"""Background retraining through the language server (issue 5), measured.

Drives a real `kenning serve` over stdio on a copy of a workspace with a fresh
index, lets the first index settle, then asks for `kenning/train {force: true}`
and searches back to back until the run is over, reporting:

* `kenning/search` round trip p50/p95 (hybrid) when idle, while the child
  process trains, and while the promoted model re-embeds every chunk into
  the new generation (the old one answering) — the swap should cost < 2x p95;
* the wall time of the whole cycle (mine, train, gate, re-embed, switch) and
  of its parts; whether any search failed or came back empty.

If the gate rejects the new model there is no swap to measure; `--force-swap`
then promotes one with `kenning train --no-gate` (marked so in its card) and
the server, which follows promotions made outside it, switches to that.

Workspaces: `--workspace DIR`, or `--corpus NAMES` to merge benchmark corpus
packages into one folder (`--corpus all` is about 1,900 files).
Run: `python -m bench.swap_latency [--workspace DIR | --corpus flask] [--max-pairs N] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from .lsp_latency import QUERIES, summary

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / ".corpus"
ALL = ["flask", "werkzeug", "marshmallow", "more-itertools", "tqdm", "sqlalchemy"]


def merged_workspace(names: list[str], dest: Path) -> Path:
    for name in names:
        src = CORPUS / name / "workspace"
        if not src.is_dir():
            raise SystemExit(
                f"bench corpus {name} is missing: run `python -m bench.corpus --packages {name}`"
            )
        shutil.copytree(src, dest / name)
    return dest


async def start_server(
    workspace: Path, index_dir: Path, settings: dict[str, Any]
) -> tuple[LanguageClient, Callable[[str, Any], Awaitable[Any]]]:
    """A `kenning serve` on `workspace`, initialized with `settings`, its log ignored;
    (the client, `request(method, params)`)."""
    client = LanguageClient("kenning-bench", "1")

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def _log(ls: LanguageClient, params: Any) -> None:
        pass

    async def request(method: str, params: Any) -> Any:
        return await client.protocol.send_request_async(method, params)

    env = {**os.environ, "KENNING_INDEX_DIR": str(index_dir)}
    await client.start_io(sys.executable, "-m", "kenning.server.cli", "serve", env=env)
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=from_fs_path(str(workspace)),
            process_id=os.getpid(),
            initialization_options=settings,
        )
    )
    client.initialized(types.InitializedParams())
    return client, request


async def run(
    workspace: Path, index_dir: Path, settings: dict[str, Any], force_swap: bool
) -> dict[str, Any]:
    client, request = await start_server(workspace, index_dir, settings)
    out: dict[str, Any] = {"workspace": str(workspace)}

    t0 = time.perf_counter()
    while True:
        status = await request("kenning/status", {})
        if status.state == "idle" and status.pending == 0 and status.queued == 0:
            break
        await asyncio.sleep(1)
    out["first_index_s"] = round(time.perf_counter() - t0, 1)
    out["index"] = {"files": status.files, "chunks": status.chunks, "generation": status.generation}
    first_generation = status.generation

    samples: dict[str, list[float]] = {"idle": [], "training": [], "re-embedding": [], "after": []}
    failures: list[str] = []
    empty = 0
    i = 0

    async def search(phase: str) -> Any:
        nonlocal i, empty
        query = QUERIES[i % len(QUERIES)]
        i += 1
        start = time.perf_counter()
        try:
            answer = await request("kenning/search", {"query": query, "limit": 10})
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(f"{type(exc).__name__}: {exc}")
            return None
        samples[phase].append(time.perf_counter() - start)
        empty += not answer.results
        return answer

    for _ in range(60):
        await search("idle")

    cycle_start = time.perf_counter()
    started = await request("kenning/train", {"force": True})
    if not started.started:
        raise SystemExit(f"training did not start: {started.reason}")
    phase_times: dict[str, float] = {}
    forced = False
    while True:
        status = await request("kenning/status", {})
        run_state = getattr(status, "training", None)
        phase = getattr(run_state, "phase", None) if run_state else None
        if phase:
            phase_times.setdefault(phase, time.perf_counter() - cycle_start)
            for _ in range(5):
                await search(phase)
                await asyncio.sleep(0.05)
            continue
        last = getattr(status, "last_training", None)
        if status.state == "idle" and last is not None:
            if status.generation != first_generation:
                break
            if last.status != "promoted" and force_swap and not forced:
                forced = True
                out["gate"] = {"status": last.status, "reason": last.reason}
                await asyncio.to_thread(promote_without_gate, workspace, index_dir, settings)
                cycle_start = time.perf_counter()  # the swap alone, from here
                phase_times = {}
                continue
            if not forced:
                break
        await asyncio.sleep(0.2)
    out["cycle_s"] = round(time.perf_counter() - cycle_start, 1)
    out["phases_start_s"] = {k: round(v, 1) for k, v in phase_times.items()}
    last = status.last_training
    out["run"] = {
        "status": last.status,
        "reason": last.reason,
        "took_s": last.took_s,
        "train_pairs": getattr(last, "train_pairs", None),
    }
    out["generation_after"] = status.generation
    out["swapped"] = status.generation != first_generation
    for _ in range(60):
        await search("after")
    out["search"] = {k: summary(v) for k, v in samples.items()}
    out["failures"] = failures
    out["empty_answers"] = empty
    idle95 = out["search"]["idle"]["p95_ms"]
    out["swap_p95_ratio"] = (
        round(out["search"]["re-embedding"]["p95_ms"] / idle95, 2) if idle95 else None
    )
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return out


def promote_without_gate(workspace: Path, index_dir: Path, settings: dict[str, Any]) -> None:
    """Promote a model the gate turned down, so that there is a swap to measure."""
    train = settings.get("train", {})
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kenning.server.cli",
            "train",
            str(workspace),
            "--no-gate",
            "--max-pairs",
            str(train.get("maxPairs", 200)),
            "--epochs",
            "1",
        ],
        env={**os.environ, "KENNING_INDEX_DIR": str(index_dir)},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path)
    parser.add_argument(
        "--corpus", default="flask", help="comma-separated corpus packages, or 'all'"
    )
    parser.add_argument("--max-pairs", type=int, default=500, help="train.max_pairs for the run")
    parser.add_argument(
        "--force-swap", action="store_true", help="promote with --no-gate if the gate rejects"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kenning-swap-bench-"))
    try:
        if args.workspace:
            workspace = tmp / "workspace"
            shutil.copytree(args.workspace, workspace)
        else:
            names = ALL if args.corpus == "all" else args.corpus.split(",")
            workspace = merged_workspace(names, tmp / "workspace")
        settings = {"train": {"schedule": "off", "maxPairs": args.max_pairs}}
        result = asyncio.run(run(workspace, tmp / "index", settings, args.force_swap))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["command"] = " ".join(["python -m bench.swap_latency", *sys.argv[1:]])
    result["cpu_count"] = os.cpu_count()
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
