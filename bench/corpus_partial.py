"""The partly documented variant of the benchmark corpus: half the query functions keep
their docstrings.

The full protocol (`bench.corpus`) removes the docstring of every function that
becomes a query, so a trainer mining the workspace sees only the short
docstrings, comments and signatures left: unlike a real repository, where
most documented functions stay documented. In this variant a stable half of
those functions (chosen by a hash of package, file and name, so every run and
every machine picks the same ones) keep their docstrings: they are training
signal and never asked. The other half lose them and are the queries. The
rules for finding candidates and removing docstrings are `bench.corpus`'s own.

Outputs, per package ``<pkg>`` (beside the other benchmark work, not in the
shared corpus folder)::

    bench/.work/corpus/<pkg>/partial/workspace/      the workspace to index and train on
    bench/.work/corpus/<pkg>/partial/queries.jsonl   the queries (the stripped half)
    bench/.work/corpus/<pkg>/partial/build.json      the build stamp

Usage (from the repository root; needs the sdists `python -m bench.corpus` downloaded)::

    python -m bench.corpus_partial [--packages flask,tqdm] [--force]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench.corpus import (
    FORMAT_VERSION,
    PACKAGES_BY_NAME,
    SDIST_DIR,
    BuildStats,
    PackageSpec,
    Query,
    _Found,
    extract_sdist,
    find_candidates,
    find_sdist,
    read_jsonl,
    read_source,
    sha256_of,
    source_files,
    strip_file,
    write_jsonl,
)

BENCH_DIR = Path(__file__).resolve().parent
VARIANTS_DIR = BENCH_DIR / ".work" / "corpus"
VARIANT = "partial"


def variant_dir(pkg: str) -> Path:
    return VARIANTS_DIR / pkg / VARIANT


def workspace_dir(pkg: str) -> Path:
    return variant_dir(pkg) / "workspace"


def queries_path(pkg: str) -> Path:
    return variant_dir(pkg) / "queries.jsonl"


def keeps_docstring(pkg: str, path: str, symbol: str) -> bool:
    """The stable half: whether this query function keeps its docstring (never asked)."""
    digest = hashlib.sha256(f"{pkg}:{path}:{symbol}".encode()).digest()
    return digest[0] % 2 == 0


def load_queries(pkg: str) -> list[Query]:
    path = queries_path(pkg)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; build it with: python -m bench.corpus_partial")
    return [Query.from_json(row) for row in read_jsonl(path)]


def build_package(spec: PackageSpec, *, force: bool = False) -> dict[str, int]:
    out = variant_dir(spec.name)
    stamp_path = out / "build.json"
    wanted = {"format_version": FORMAT_VERSION, "version": spec.version, "sha256": spec.sha256}
    if (
        not force
        and stamp_path.exists()
        and json.loads(stamp_path.read_text()).get("wanted") == wanted
    ):
        return json.loads(stamp_path.read_text())["counts"]
    archive = find_sdist(spec, SDIST_DIR)
    if archive is None or sha256_of(archive) != spec.sha256:
        raise SystemExit(f"no pinned sdist for {spec.name}: run `python -m bench.corpus` first")
    stamp_path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    workspace = out / "workspace"
    extract_sdist(archive, workspace)

    stats = BuildStats()
    per_file: dict[Path, list[_Found]] = {}
    for path in source_files(workspace, spec):
        rel = path.relative_to(workspace).as_posix()
        try:
            text, _ = read_source(path)
            per_file[path] = find_candidates(ast.parse(text, filename=rel), stats)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
    # The same candidates as the full protocol (duplicated query texts dropped), then
    # only the half that does not keep its docstring is stripped and asked.
    counts = Counter(f.query for found in per_file.values() for f in found)
    queries: list[Query] = []
    kept = 0
    for path, found in sorted(per_file.items()):
        rel = path.relative_to(workspace).as_posix()
        usable = [f for f in found if counts[f.query] == 1]
        strip = [f for f in usable if not keeps_docstring(spec.name, rel, f.symbol)]
        kept += len(usable) - len(strip)
        if not strip:
            continue
        located = strip_file(path, rel, strip)
        for text, symbol, start, end in located.entries:
            queries.append(
                Query(f"{spec.name}:{VARIANT}:{len(queries)}", text, rel, start, end, symbol)
            )
    write_jsonl(queries_path(spec.name), [asdict(q) for q in queries])
    result = {"queries": len(queries), "kept_docstrings": kept}
    stamp_path.write_text(json.dumps({"wanted": wanted, "counts": result}, indent=2) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus_partial", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--packages", default=",".join(PACKAGES_BY_NAME))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    for name in [n.strip() for n in args.packages.split(",") if n.strip()]:
        if name not in PACKAGES_BY_NAME:
            parser.error(f"unknown package {name}")
        counts = build_package(PACKAGES_BY_NAME[name], force=args.force)
        print(
            f"{name}: {counts['queries']} queries, {counts['kept_docstrings']} documented "
            "query functions kept as training signal",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
