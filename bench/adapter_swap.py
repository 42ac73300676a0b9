"""The swap after a query adapter is promoted, measured through a real `kenning serve`.

The server starts on a benchmark package with its index already built (a copy of
`bench/.work/index/<pkg>`, so nothing is embedded first) and with a CPU-only
training policy: `train.on_cpu` false, `train.adapter` true, so `kenning/train`
trains the adapter alone. Searches run back to back (hybrid and semantic,
alternating) from before the run starts until well after it ends, each
stamped with the time its answer arrived. Reported:

- **swap**: from the adapter's promotion (the pointer file's modification time)
  to the first answer that says it was mapped by the new adapter; the target is
  at most one second;
- failed searches and empty answers during the whole run (the target is none);
- search round trips (p50/p95) before, during and after the run;
- the run itself (status, held-out MRR@10 before/after, seconds), and whether
  anything was re-embedded (the generation and `embedded_since_start`).

Run: `python -m bench.adapter_swap [--package flask] [--json]`; the result goes to
`bench/results/adapter_swap.json`.
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

from .lsp_latency import QUERIES, summary
from .swap_latency import start_server

BENCH = Path(__file__).resolve().parent
RESULT = BENCH / "results" / "adapter_swap.json"


async def run(workspace: Path, index_dir: Path) -> dict[str, Any]:
    settings = {"train": {"schedule": "off", "onCpu": False, "adapter": True, "minNewChunks": 0}}
    client, request = await start_server(workspace, index_dir, settings)
    while True:
        before = await request("kenning/status", {})
        if before.state == "idle" and before.pending == 0 and before.queued == 0:
            break
        await asyncio.sleep(0.5)

    answers: list[tuple[float, str, float, Any]] = []  # (arrived, phase, seconds, answer)
    failures: list[str] = []
    phase = "before"
    stop = asyncio.Event()

    async def loop() -> None:
        i = 0
        while not stop.is_set():
            query = QUERIES[i % len(QUERIES)]
            mode = ("hybrid", "semantic")[i % 2]
            i += 1
            start = time.perf_counter()
            try:
                answer = await request("kenning/search", {"query": query, "mode": mode})
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            answers.append((time.time(), phase, time.perf_counter() - start, answer))
            await asyncio.sleep(0.005)

    searching = asyncio.get_running_loop().create_task(loop())
    await asyncio.sleep(10)
    phase = "training"
    started = await request("kenning/train", {})
    if not started.started:
        raise SystemExit(f"the run did not start: {started.reason}")
    while True:
        status = await request("kenning/status", {})
        if getattr(status, "training", None) is None and getattr(status, "last_training", None):
            break
        await asyncio.sleep(0.2)
    adapter = status.last_training.adapter
    if adapter is None or adapter.status != "promoted":
        stop.set()
        await searching
        raise SystemExit(f"no adapter was promoted: {status.last_training.reason}")
    phase = "after"
    await asyncio.sleep(10)
    stop.set()
    await searching
    after = await request("kenning/status", {})
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()

    promoted_at = (index_dir / "trainer" / "adapter.json").stat().st_mtime
    first = next(
        (t for t, _, _, a in answers if getattr(a, "adapter", None) == adapter.adapter), None
    )
    return {
        "workspace": {"files": before.files, "chunks": before.chunks},
        "run": {
            "status": adapter.status,
            "reason": adapter.reason,
            "took_s": adapter.took_s,
            "heldout_mrr": [adapter.mrr_before, adapter.mrr_after],
            "train_pairs": adapter.train_pairs,
        },
        "swap_s": round(first - promoted_at, 3) if first is not None else None,
        "searches": len(answers),
        "failures": failures,
        "empty_answers": sum(1 for _, _, _, a in answers if not a.results),
        "search": {
            p: {
                k: v
                for k, v in summary([s for _, ph, s, _ in answers if ph == p]).items()
                if k != "samples_ms"
            }
            for p in ("before", "training", "after")
        },
        "generation": [before.generation, after.generation],
        "embedded_since_start": [before.embedded_since_start, after.embedded_since_start],
        "adapter_in_status": getattr(after, "adapter", None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="flask")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from bench.corpus import workspace_dir

    source = BENCH / ".work" / "index" / args.package
    if not (source / "index.sqlite").is_file():
        raise SystemExit(f"no index for {args.package}: python -m bench.kenning_adapter first")
    tmp = Path(tempfile.mkdtemp(prefix="kenning-adapter-swap-"))
    try:
        shutil.copytree(source, tmp / "index")
        result = asyncio.run(run(workspace_dir(args.package), tmp / "index"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.update(
        package=args.package,
        command=" ".join(["python -m bench.adapter_swap", *sys.argv[1:]]),
        date=time.strftime("%Y-%m-%d"),
        cpu_count=os.cpu_count(),
        load_avg_1m=round(os.getloadavg()[0], 2),
    )
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
