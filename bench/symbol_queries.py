"""The second query set: names, as people type them to jump to a definition.

For every function of a package's own source (the same files the natural-language
queries come from, read in the stripped workspace), the query is its name; for a
method it is ``Class.method`` (the innermost class). The answer is the definition's
span, decorators included, exactly as for the natural-language set.

Names that cannot have one right answer are left out: a typing ``@overload`` stub
(the implementation after it is the answer), a property's ``@x.setter`` or
``@x.deleter`` (the getter is), and any name still defined more than once in the
package (two modules each with their own ``_compat``). A fixed-seed sample of at
most ``MAX_QUERIES`` per package keeps sqlalchemy's thousands of methods from
dominating the run time.

The set is built on first use into ``bench/.work/queries/<pkg>.symbols.jsonl``
(the corpus folder is shared and read-only) and rebuilt when the corpus build
stamp changes. Query ids are ``<pkg>:sym:<n>``.

Usage (from the repository root)::

    python -m bench.symbol_queries [--packages flask,tqdm]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench.corpus import (
    DEFAULT_SEED,
    PACKAGES_BY_NAME,
    FunctionNode,
    Query,
    iter_functions,
    read_jsonl,
    read_source,
    sample_queries,
    source_files,
    stamp_path,
    workspace_dir,
    write_jsonl,
)

BENCH_DIR = Path(__file__).resolve().parent
QUERIES_DIR = BENCH_DIR / ".work" / "queries"
MAX_QUERIES = 400


def symbols_path(pkg: str) -> Path:
    return QUERIES_DIR / f"{pkg}.symbols.jsonl"


def _stamp(pkg: str) -> str:
    path = stamp_path(pkg)
    return path.read_text() if path.exists() else ""


def _is_overload_or_accessor(func: FunctionNode) -> bool:
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Name) and target.id == "overload":
            return True
        if isinstance(target, ast.Attribute) and target.attr in ("overload", "setter", "deleter"):
            return True
    return False


def query_text(qualified: str) -> str:
    """`Class.method` for a method (the innermost class), the bare name for a function."""
    parts = qualified.split(".")
    return ".".join(parts[-2:])


def build(pkg: str) -> list[Query]:
    """Every usable name query of `pkg`, sampled to at most MAX_QUERIES, ids in order."""
    spec = PACKAGES_BY_NAME[pkg]
    workspace = workspace_dir(pkg)
    found: dict[str, list[tuple[str, int, int, str]]] = defaultdict(list)
    for path in source_files(workspace, spec):
        rel = path.relative_to(workspace).as_posix()
        text, _ = read_source(path)
        try:
            tree = ast.parse(text, filename=rel)
        except SyntaxError:
            continue
        for qualified, func in iter_functions(tree.body):
            if _is_overload_or_accessor(func):
                continue
            start = min([func.lineno, *(d.lineno for d in func.decorator_list)])
            end = func.end_lineno or func.lineno
            found[query_text(qualified)].append((rel, start, end, qualified))
    unique = [(text, spans[0]) for text, spans in found.items() if len(spans) == 1]
    unique.sort(key=lambda item: (item[1][0], item[1][1]))
    queries = [
        Query(f"{pkg}:sym:{i}", text, rel, start, end, qualified)
        for i, (text, (rel, start, end, qualified)) in enumerate(unique)
    ]
    return sample_queries(queries, MAX_QUERIES, DEFAULT_SEED, f"{pkg}:symbols")


def load(pkg: str) -> list[Query]:
    """The symbol queries of `pkg`, built on first use and again when the corpus changed."""
    path = symbols_path(pkg)
    stamp = _stamp(pkg)
    if path.exists():
        rows = read_jsonl(path)
        if rows and rows[0].get("stamp") == stamp:
            return [Query.from_json(row) for row in rows[1:]]
    if not workspace_dir(pkg).is_dir():
        raise FileNotFoundError(
            f"{workspace_dir(pkg)} is missing; build the corpus with: python -m bench.corpus"
        )
    queries = build(pkg)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, [{"stamp": stamp}, *(q.__dict__ for q in queries)])
    return queries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.symbol_queries", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--packages", default="", help="comma-separated (default: all)")
    args = parser.parse_args(argv)
    packages = [p for p in args.packages.split(",") if p] or list(PACKAGES_BY_NAME)
    for pkg in packages:
        queries = load(pkg)
        print(f"{pkg}: {len(queries)} symbol queries -> {symbols_path(pkg)}", file=sys.stderr)
        print(json.dumps([q.query for q in queries[:5]]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
