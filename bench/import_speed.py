"""A prebuilt index of ~10^5 chunks, exported by "CI" and imported by a developer:
how long until the first answer (issue 19; target <= 10 s).

The index is search_latency's: the real chunks of the Django, SymPy and
SQLAlchemy sdists (real files, chunking and full-text rows) with random unit
vectors, since embedding 10^5 chunks takes hours on this CPU and export and
import never look at the values. Measured, each in a fresh process:

1. `kenning export` of the built index (what a CI job runs);
2. `kenning import` of the archive into an empty index folder, for a checkout
   of the same code at another path (fresh modification times);
3. the first answer from the imported index, as the server gives it while its
   worker re-checks the files: `Engine.open`, the vectors loaded from the
   archive's snapshot, the model loaded, one hybrid search;
4. `kenning index` on the checkout afterwards: every file is read and hashed,
   none re-embedded (the content hashes match the archive's records).

Run: `nice -n 10 python -m bench.import_speed`. Writes bench/results/import_speed.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.search_latency import build_index, build_workspace, describe_index

BENCH = Path(__file__).parent
WORK = BENCH / ".work" / "import"
OUT = BENCH / "results" / "import_speed.json"

FIRST_ANSWER = """
import json, sys, time
t0 = time.perf_counter()
from kenning.server.engine import Engine
e = Engine.open(sys.argv[1], {"index_dir": sys.argv[2]})
gen = e.serving_generation()
e.store.matrix(gen)
t1 = time.perf_counter()
out = e.search_outcome("parse a date string from a form field", mode="hybrid")
t2 = time.perf_counter()
print(json.dumps({"open_s": t1 - t0, "search_s": t2 - t1, "results": len(out.results),
                  "generation": out.generation, "model": out.model}))
"""


def kenning(*argv: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kenning.server.cli", *argv],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, done.stdout


def main() -> int:
    source_ws = build_workspace()
    built = BENCH / ".work" / "latency" / "index"
    sizes = (
        describe_index(source_ws, built)
        if (built / "index.sqlite").exists()
        else build_index(source_ws, built)
    )
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    archive = WORK / "index.tar"
    loads = {"start": round(os.getloadavg()[0], 2)}

    export_s, out = kenning(
        "export", str(archive), str(source_ws), "--index-dir", str(built), "--json"
    )
    exported = json.loads(out)

    checkout = WORK / "checkout"
    shutil.copytree(source_ws, checkout)  # another path, fresh modification times
    fresh = WORK / "index"
    loads["import"] = round(os.getloadavg()[0], 2)
    import_s, _ = kenning("import", str(archive), str(checkout), "--index-dir", str(fresh))
    start = time.perf_counter()
    answer = subprocess.run(
        [sys.executable, "-c", FIRST_ANSWER, str(checkout), str(fresh)],
        check=True,
        capture_output=True,
        text=True,
    )
    first_answer_s = time.perf_counter() - start
    first = json.loads(answer.stdout.strip().splitlines()[-1])
    loads["reindex"] = round(os.getloadavg()[0], 2)
    reindex_s, out = kenning("index", str(checkout), "--index-dir", str(fresh), "--json")
    reindex = json.loads(out)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "load_average": loads,
        "index": sizes,
        "archive_bytes": exported["bytes"],
        "export_s": round(export_s, 2),
        "import_s": round(import_s, 2),
        "first_answer_process_s": round(first_answer_s, 2),
        "first_answer": {k: round(v, 3) if isinstance(v, float) else v for k, v in first.items()},
        "time_to_first_answer_s": round(import_s + first_answer_s, 2),
        "reindex_s": round(reindex_s, 2),
        "reindex": {k: reindex[k] for k in ("files", "chunks", "embedded", "changed_files")},
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
