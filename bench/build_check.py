"""Publishing is one step away: `python -m build` makes an sdist and a wheel that install and
run in fresh virtual environments, and the first hour's first answer, timed.

1. `python -m build` in a scratch copy of the tree (git's tracked files only);
2. for the wheel and then the sdist: a fresh venv, `pip install torch==2.13.0` (the
   README's order: pip then picks a CPU build), then `pip install <artifact>`, each timed;
3. in the wheel's venv: `kenning --help`, then the README's first search on this
   repository (`--parts server,docs` for a part of it, quicker on a busy machine) with a
   fresh index, timed: the first answer includes reading, embedding and the ONNX export;
4. `kenning search` again on the now up-to-date index, timed (the light path).

Pip's cache is whatever this machine has (say so when quoting the install times).
Results go to bench/results/build_check.json.
Run: `python -m bench.build_check [--parts server,docs]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "build_check.json"
QUERY = "where are dense and lexical results fused"


def run(argv: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, **kwargs)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])} failed:\n{done.stdout[-1500:]}{done.stderr[-3000:]}"
        )
    return round(took, 1), done


def install(scratch: Path, name: str, artifact: Path) -> tuple[Path, dict]:
    venv = scratch / f"venv-{name}"
    took_venv, _ = run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    took_torch, _ = run([*pip, "torch==2.13.0"])
    took_kenning, _ = run([*pip, str(artifact)])
    return venv, {"venv_s": took_venv, "torch_s": took_torch, "kenning_s": took_kenning}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="", help="top-level folders to search (default: all)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kenning-build-"))
    result: dict = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    result["load_avg_start"] = [round(x, 2) for x in os.getloadavg()]
    try:
        tree = scratch / "tree"
        files = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout.split(b"\0")
        for rel in filter(None, files):
            src = ROOT / rel.decode()
            if src.is_file():
                (tree / rel.decode()).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, tree / rel.decode())
        took, _ = run([sys.executable, "-m", "build", "--outdir", str(scratch / "dist"), str(tree)])
        wheel = next((scratch / "dist").glob("kenning-*.whl"))
        sdist = next((scratch / "dist").glob("kenning-*.tar.gz"))
        result["build_s"] = took
        result["artifacts"] = {p.name: p.stat().st_size for p in (wheel, sdist)}

        venv, result["wheel_install"] = install(scratch, "wheel", wheel)
        kenning = str(venv / "bin" / "kenning")
        _, helped = run([kenning, "--help"])
        assert "serve" in helped.stdout and "search" in helped.stdout
        workspace = scratch / "workspace"
        if args.parts:
            for part in args.parts.split(","):
                shutil.copytree(tree / part, workspace / part)
        else:
            shutil.copytree(tree, workspace)
        result["workspace_parts"] = args.parts or "the whole repository"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KENNING_")}
        env["KENNING_INDEX_DIR"] = str(scratch / "index")
        search = [kenning, "search", QUERY, "--workspace", str(workspace), "--json"]
        took, first = run(search, env=env)
        answer = json.loads(first.stdout)
        result["first_answer"] = {
            "wall_s": took,
            "top": f"{answer['results'][0]['path']}:{answer['results'][0]['symbol']}",
            "progress_lines": sum("embedding" in line for line in first.stderr.splitlines()),
        }
        took, again = run(search, env=env)
        result["second_answer_s"] = took
        status = json.loads(run([kenning, "status", str(workspace), "--json"], env=env)[1].stdout)
        result["workspace"] = {"files": status["files"], "chunks": status["chunks"]}

        sdist_venv, result["sdist_install"] = install(scratch, "sdist", sdist)
        _, helped = run([str(sdist_venv / "bin" / "kenning"), "--help"])
        assert "serve" in helped.stdout
    finally:
        result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        shutil.rmtree(scratch, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
