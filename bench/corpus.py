"""Build the code-search benchmark corpus (CodeSearchNet method) into ``bench/.corpus/``.

For each pinned package we download its source distribution with pip, extract it
as a *workspace* (source, tests and docs as shipped), and turn the docstrings of the
library's own functions into queries:

* Candidates are functions and methods in the package's ``.py`` files (not the
  tests, docs or examples around it): module-level functions and methods of
  classes, including classes nested in classes and definitions under ``if`` / ``try``
  blocks. Functions nested inside functions are not candidates (closures have no
  stable name to report).
* A candidate becomes a query when its docstring has at least six words. The query
  text is the docstring's first sentence: the first paragraph, cut after the first
  ``". "`` (not after "e.g."/"i.e."), whitespace-normalised.
* Queries that say little are dropped: fewer than three words (a docstring that
  opens with a numpydoc section such as "Parameters / ----------" has no sentence),
  or a first paragraph that is reST markup (``..``, ``:param``) or a doctest (``>>>``).
* Queries whose text occurs on two or more functions in the same package are
  dropped (sqlalchemy's generated proxies copy whole docstrings): only one span
  could count as right, so the question would be unanswerable.
* In the workspace the docstrings of the query functions, and only those, are
  removed; a body left empty becomes ``pass``. The query's span is then computed in
  the stripped file: 1-based, inclusive, *including* decorators (they belong to
  the definition a reader would jump to), ending at the function's last line.

Outputs, per package ``<pkg>``:

* ``bench/.corpus/<pkg>/workspace/``        the stripped workspace to index;
* ``bench/.corpus/<pkg>/queries_all.jsonl`` every query;
* ``bench/.corpus/<pkg>/queries.jsonl``     the queries to run: all of them, or a
  deterministic sample when ``--max-queries`` is given. The workspace is the same
  either way (every query function is stripped), so indexes stay reusable;
* ``bench/.corpus/<pkg>/build.json``        the build stamp that makes reruns no-ops;
* ``bench/.corpus/manifest.json``           versions, sdist hashes, counts, query files.

Usage (from the repository root)::

    python -m bench.corpus [--packages flask,tqdm] [--force] [--max-queries N] [--seed S]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tokenize
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
CORPUS_DIR = BENCH_DIR / ".corpus"
SDIST_DIR = CORPUS_DIR / "sdists"
MANIFEST_PATH = CORPUS_DIR / "manifest.json"

# Bump when the query extraction or stripping rules change: stale builds are redone.
FORMAT_VERSION = 2

MIN_DOCSTRING_WORDS = 6
MIN_QUERY_WORDS = 3
DEFAULT_SEED = 8


@dataclass(frozen=True)
class PackageSpec:
    """One pinned package of the corpus."""

    name: str  # key used in paths and query ids
    pip_name: str  # what pip downloads
    version: str
    sha256: str  # of the sdist, so a re-upload or a mirror cannot change the corpus silently
    source_dir: str  # the library's own package directory, relative to the sdist root


# Latest stable releases on PyPI when the corpus was pinned.
PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec(
        "flask",
        "flask",
        "3.1.3",
        "0ef0e52b8a9cd932855379197dd8f94047b359ca0a78695144304cb45f87c9eb",
        "src/flask",
    ),
    PackageSpec(
        "werkzeug",
        "werkzeug",
        "3.1.9",
        "55ca7c70a75689be937aa27f8ff4b018f06ff4838fc73045560bf0f5a1291060",
        "src/werkzeug",
    ),
    PackageSpec(
        "marshmallow",
        "marshmallow",
        "4.4.0",
        "9e6ffa8511012ca89732324c1c253efd7b4d35632dcbdf80aa793fe01804af3e",
        "src/marshmallow",
    ),
    PackageSpec(
        "more-itertools",
        "more-itertools",
        "11.2.1",
        "cbf08fd0af284dc69718b9b76a8e6203df624d70209ea511e4219d350c856f63",
        "more_itertools",
    ),
    PackageSpec(
        "tqdm",
        "tqdm",
        "4.70.1",
        "cefd0eca11b2a37a3aee776544d4f4ae913f02688135b5556b8788dfa474afc4",
        "tqdm",
    ),
    PackageSpec(
        "sqlalchemy",
        "sqlalchemy",
        "2.1.9",
        "d700a8b2edfb26282a470333d6bc4a454c4acda4d201a3bea7b72fa76c217d28",
        "lib/sqlalchemy",
    ),
)
PACKAGES_BY_NAME = {spec.name: spec for spec in PACKAGES}


@dataclass
class Query:
    """One benchmark question and where its answer lives in the stripped workspace."""

    id: str
    query: str
    path: str  # workspace-relative, '/' separators
    start_line: int  # 1-based, inclusive, first decorator line if decorated
    end_line: int  # 1-based, inclusive
    symbol: str  # qualified name, e.g. "Flask.route"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Query:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass
class BuildStats:
    """What happened while extracting queries from one package (for the manifest)."""

    source_files: int = 0
    candidates: int = 0  # functions whose docstring has enough words
    dropped_short: int = 0
    dropped_markup: int = 0
    dropped_duplicate: int = 0
    parse_errors: list[str] = field(default_factory=list)


@dataclass
class _Found:
    """A candidate function found in one file, before the file is stripped."""

    order: int  # position in the deterministic walk of the file
    symbol: str
    query: str
    doc: str  # the cleaned docstring, to check it is really gone afterwards
    doc_stmt: ast.Expr


# -- package paths ------------------------------------------------------------------


def package_dir(name: str) -> Path:
    return CORPUS_DIR / name


def workspace_dir(name: str) -> Path:
    return package_dir(name) / "workspace"


def queries_path(name: str) -> Path:
    return package_dir(name) / "queries.jsonl"


def all_queries_path(name: str) -> Path:
    return package_dir(name) / "queries_all.jsonl"


def stamp_path(name: str) -> Path:
    return package_dir(name) / "build.json"


# -- download and extraction --------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_sdist(spec: PackageSpec, directory: Path) -> Path | None:
    """The downloaded sdist of `spec` in `directory`, whatever its name normalisation."""
    stem = re.sub(r"[-_.]+", "_", spec.pip_name).lower()
    for path in sorted(directory.glob("*")):
        name = path.name.lower()
        if re.sub(r"[-_.]+", "_", name).startswith(f"{stem}_{spec.version.replace('.', '_')}") and (
            name.endswith((".tar.gz", ".zip"))
        ):
            return path
    return None


def download_sdist(spec: PackageSpec) -> Path:
    """Fetch the pinned sdist once and check its hash; later calls reuse the file."""
    SDIST_DIR.mkdir(parents=True, exist_ok=True)
    existing = find_sdist(spec, SDIST_DIR)
    if existing is None or sha256_of(existing) != spec.sha256:
        if existing is not None:
            existing.unlink()
        # `--no-binary <pkg>` rather than `:all:`: the sdist is the same, but pip may
        # then use wheels for the *build backends* it runs to read metadata, which
        # takes seconds instead of minutes (sqlalchemy's Cython build needs are big).
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                spec.pip_name,
                f"{spec.pip_name}=={spec.version}",
                "-d",
                str(SDIST_DIR),
            ],
            check=True,
        )
        existing = find_sdist(spec, SDIST_DIR)
    if existing is None:
        raise RuntimeError(f"pip did not produce an sdist for {spec.pip_name}=={spec.version}")
    actual = sha256_of(existing)
    if actual != spec.sha256:
        raise RuntimeError(
            f"{existing.name}: sha256 {actual} does not match the pinned {spec.sha256}"
        )
    return existing


def extract_sdist(archive: Path, dest: Path) -> None:
    """Unpack `archive` into `dest`, dropping the single top-level folder sdists have."""
    staging = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(
                staging, filter="data"
            )  # the 'data' filter refuses links out and odd modes
    entries = list(staging.iterdir())
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
    shutil.rmtree(dest, ignore_errors=True)
    root.rename(dest)
    shutil.rmtree(staging, ignore_errors=True)


# -- query extraction ------------------------------------------------------------------------

_UNDERLINE = re.compile(r"[-=~^]{3,}")
_ABBREVIATION_END = re.compile(r"(?:\be\.g|\bi\.e|\bcf|\bvs)\.$", re.IGNORECASE)


def first_sentence(docstring: str) -> str:
    """The docstring's first paragraph up to the first '. ' (kept), whitespace-normalised."""
    paragraph: list[str] = []
    lines = [line.strip() for line in docstring.strip().splitlines()]
    for i, line in enumerate(lines):
        # A numpydoc section ("Parameters" over "----------") is not prose: stop before it.
        if not line or (i + 1 < len(lines) and _UNDERLINE.fullmatch(lines[i + 1])):
            break
        paragraph.append(line)
    text = " ".join(" ".join(paragraph).split())
    for match in re.finditer(r"\. ", text):
        head = text[: match.start() + 1]
        if not _ABBREVIATION_END.search(head):
            return head
    return text


def is_markup(text: str) -> bool:
    """reST directives/fields and doctests are not a description of the function."""
    return text.startswith(("..", ":", ">>>"))


FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def iter_functions(
    body: Sequence[ast.stmt], scope: tuple[str, ...] = ()
) -> Iterator[tuple[str, FunctionNode]]:
    """Module- and class-level functions in source order, with their qualified names.

    Descends into classes and compound statements (``if TYPE_CHECKING:``, ``try:``),
    but not into function bodies. The order is stable under docstring removal, which
    is how a function is found again in the stripped file.
    """
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield ".".join((*scope, node.name)), node
        elif isinstance(node, ast.ClassDef):
            yield from iter_functions(node.body, (*scope, node.name))
        else:
            for child_body in _statement_bodies(node):
                yield from iter_functions(child_body, scope)


def _statement_bodies(node: ast.stmt) -> Iterator[list[ast.stmt]]:
    for name in ("body", "orelse", "finalbody"):
        value = getattr(node, name, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield value
    for handler in getattr(node, "handlers", []) or []:
        yield handler.body
    for case in getattr(node, "cases", []) or []:
        yield case.body


def docstring_statement(func: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.Expr | None:
    first = func.body[0] if func.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None


def find_candidates(tree: ast.Module, stats: BuildStats) -> list[_Found]:
    """Functions whose docstring makes a usable query, before de-duplication."""
    found: list[_Found] = []
    for order, (symbol, func) in enumerate(iter_functions(tree.body)):
        stmt = docstring_statement(func)
        if stmt is None:
            continue
        doc = ast.get_docstring(func, clean=True) or ""
        if len(doc.split()) < MIN_DOCSTRING_WORDS:
            continue
        stats.candidates += 1
        query = first_sentence(doc)
        if is_markup(query):
            stats.dropped_markup += 1
        elif len(query.split()) < MIN_QUERY_WORDS:
            stats.dropped_short += 1
        else:
            found.append(_Found(order, symbol, query, doc, stmt))
    return found


# -- docstring removal ---------------------------------------------------------------------

_LINE_SPLIT = re.compile(r"(?<=\r\n)|(?<=\n)|(?<=\r)(?!\n)")


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split only where Python's tokenizer ends a line.

    ``str.splitlines`` would also split on form feeds and other separators that
    Python treats as whitespace, shifting every line number after them.
    """
    return [line for line in _LINE_SPLIT.split(text) if line]


def _char_col(line: str, byte_col: int) -> int:
    # ast reports columns as UTF-8 byte offsets.
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _line_ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]


def remove_docstring(lines: list[str], stmt: ast.Expr, body_has_more: bool) -> None:
    """Remove the docstring statement `stmt` from `lines` in place.

    A docstring alone on its lines is deleted with them (a trailing comment stays);
    if it was the whole body, a ``pass`` at its indentation takes its place. A
    docstring sharing a line with code (``def f(): "doc"``) is replaced by ``pass``
    in the line itself, which is valid wherever an expression statement was.
    """
    first, last = stmt.lineno - 1, (stmt.end_lineno or stmt.lineno) - 1
    start = _char_col(lines[first], stmt.col_offset)
    end = _char_col(lines[last], stmt.end_col_offset or 0)
    prefix, suffix = lines[first][:start], lines[last][end:]
    rest = suffix.rstrip("\r\n").strip()
    if prefix.strip() == "" and (rest == "" or rest.startswith("#")):
        comment = f"  {rest}" if rest else ""
        if body_has_more:
            replacement = [f"{prefix}{rest}{_line_ending(suffix)}"] if rest else []
        else:
            replacement = [f"{prefix}pass{comment}{_line_ending(suffix) or chr(10)}"]
    else:
        replacement = [f"{prefix}pass{suffix}"]
    lines[first : last + 1] = replacement


def read_source(path: Path) -> tuple[str, str]:
    """The file's text and encoding (PEP 263 cookie or BOM honoured)."""
    raw = path.read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    return raw.decode(encoding), encoding


def _span(func: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    start = min([func.lineno, *(d.lineno for d in func.decorator_list)])
    return start, func.end_lineno or func.lineno


@dataclass
class _FileQueries:
    """Queries located in one stripped file (ids are assigned later, package-wide)."""

    path: str
    entries: list[tuple[str, str, int, int]]  # (query, symbol, start_line, end_line)


def strip_file(path: Path, rel: str, keep: list[_Found]) -> _FileQueries:
    """Remove the docstrings of `keep` from `path` and locate them in the result."""
    text, encoding = read_source(path)
    lines = split_lines(text)
    tree = ast.parse(text, filename=rel)
    functions = list(iter_functions(tree.body))
    # Bottom-up, so earlier line numbers stay valid while we edit.
    for item in sorted(keep, key=lambda f: f.doc_stmt.lineno, reverse=True):
        _, func = functions[item.order]
        remove_docstring(lines, item.doc_stmt, body_has_more=len(func.body) > 1)
    stripped = "".join(lines)
    new_tree = ast.parse(stripped, filename=rel)  # raises if stripping broke the file
    new_functions = list(iter_functions(new_tree.body))
    entries = []
    for item in sorted(keep, key=lambda f: f.order):
        symbol, func = new_functions[item.order]
        if symbol != item.symbol or ast.get_docstring(func, clean=True) == item.doc:
            raise RuntimeError(f"{rel}: stripping {item.symbol} went wrong")
        start, end = _span(func)
        entries.append((item.query, symbol, start, end))
    path.write_bytes(stripped.encode(encoding))
    return _FileQueries(rel, entries)


def source_files(workspace: Path, spec: PackageSpec) -> list[Path]:
    """The library's own ``.py`` files, sorted; tests/docs/examples are outside this dir."""
    return sorted(p for p in (workspace / spec.source_dir).rglob("*.py") if p.is_file())


def build_queries(spec: PackageSpec, workspace: Path) -> tuple[list[Query], BuildStats]:
    """Find the queries, strip their docstrings in `workspace`, return them with ids."""
    stats = BuildStats()
    per_file: dict[Path, list[_Found]] = {}
    for path in source_files(workspace, spec):
        stats.source_files += 1
        rel = path.relative_to(workspace).as_posix()
        try:
            text, _ = read_source(path)
            tree = ast.parse(text, filename=rel)
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            stats.parse_errors.append(f"{rel}: {exc}")
            continue
        per_file[path] = find_candidates(tree, stats)

    # A query text found on several functions of the package has no single answer.
    counts = Counter(f.query for found in per_file.values() for f in found)
    stats.dropped_duplicate = sum(n for n in counts.values() if n > 1)

    located: list[_FileQueries] = []
    for path, found in per_file.items():
        keep = [f for f in found if counts[f.query] == 1]
        if keep:
            located.append(strip_file(path, path.relative_to(workspace).as_posix(), keep))

    queries = []
    for file_queries in sorted(located, key=lambda fq: fq.path):
        for text, symbol, start, end in file_queries.entries:
            queries.append(
                Query(f"{spec.name}:{len(queries)}", text, file_queries.path, start, end, symbol)
            )
    return queries, stats


# -- writing ---------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sample_queries(
    queries: list[Query], max_queries: int | None, seed: int, package: str
) -> list[Query]:
    """All queries, or a fixed-seed sample of `max_queries` kept in id order."""
    if max_queries is None or len(queries) <= max_queries:
        return list(queries)
    rng = random.Random(f"{seed}:{package}")  # string seeds hash deterministically
    picked = sorted(rng.sample(range(len(queries)), max_queries))
    return [queries[i] for i in picked]


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def build_package(
    spec: PackageSpec, *, force: bool, max_queries: int | None, seed: int
) -> dict[str, Any]:
    """Build (or reuse) one package and return its manifest entry."""
    pkg_dir = package_dir(spec.name)
    stamp_file = stamp_path(spec.name)
    wanted = {"format_version": FORMAT_VERSION, "version": spec.version, "sha256": spec.sha256}
    stamp = json.loads(stamp_file.read_text()) if stamp_file.exists() else None
    fresh = (
        not force
        and stamp is not None
        and all(stamp.get(k) == v for k, v in wanted.items())
        and workspace_dir(spec.name).is_dir()
        and all_queries_path(spec.name).exists()
    )
    if not fresh:
        stamp_file.unlink(missing_ok=True)  # a half-finished build must never look done
        archive = download_sdist(spec)
        pkg_dir.mkdir(parents=True, exist_ok=True)
        extract_sdist(archive, workspace_dir(spec.name))
        queries, stats = build_queries(spec, workspace_dir(spec.name))
        write_jsonl(all_queries_path(spec.name), [asdict(q) for q in queries])
        stamp = {
            **wanted,
            "sdist": archive.name,
            "source_dir": spec.source_dir,
            "files": count_files(workspace_dir(spec.name)),
            "stats": asdict(stats),
            "queries_all": len(queries),
            "query_files": sorted({q.path for q in queries}),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        stamp_file.write_text(json.dumps(stamp, indent=2) + "\n")

    queries = [Query.from_json(row) for row in read_jsonl(all_queries_path(spec.name))]
    chosen = sample_queries(queries, max_queries, seed, spec.name)
    write_jsonl(queries_path(spec.name), [asdict(q) for q in chosen])
    return {
        **{k: stamp[k] for k in ("version", "sdist", "sha256", "source_dir", "files", "built_at")},
        "queries": len(chosen),
        "queries_all": stamp["queries_all"],
        "max_queries": max_queries,
        "seed": seed if max_queries is not None else None,
        "stats": stamp["stats"],
        "query_files": stamp["query_files"],
    }


def update_manifest(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge `entries` into the manifest, keeping packages not rebuilt this time."""
    manifest: dict[str, Any] = {"format_version": FORMAT_VERSION, "packages": {}}
    if MANIFEST_PATH.exists():
        old = json.loads(MANIFEST_PATH.read_text())
        if old.get("format_version") == FORMAT_VERSION:
            manifest["packages"].update(old.get("packages", {}))
    manifest["packages"].update(entries)
    manifest["packages"] = dict(sorted(manifest["packages"].items()))
    MANIFEST_PATH.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build(
    names: Sequence[str],
    *,
    force: bool = False,
    max_queries: int | None = None,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Build the named packages (all by default) and update the manifest."""
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name in names:
        started = time.perf_counter()
        entries[name] = build_package(
            PACKAGES_BY_NAME[name], force=force, max_queries=max_queries, seed=seed
        )
        entry = entries[name]
        print(
            f"{name} {entry['version']}: {entry['files']} files, {entry['stats']['source_files']} "
            f"source files, {entry['queries']}/{entry['queries_all']} queries, "
            f"{len(entry['query_files'])} query files ({time.perf_counter() - started:.1f}s)",
            file=sys.stderr,
        )
        for problem in entry["stats"]["parse_errors"]:
            print(f"  parse problem: {problem}", file=sys.stderr)
    return update_manifest(entries)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--packages",
        default=",".join(PACKAGES_BY_NAME),
        help="comma-separated subset of: " + ", ".join(PACKAGES_BY_NAME),
    )
    parser.add_argument(
        "--force", action="store_true", help="re-extract and re-strip even if up to date"
    )
    parser.add_argument(
        "--max-queries",
        type=int,
        default=None,
        metavar="N",
        help="run at most N queries per package (fixed-seed sample; workspace unchanged)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the --max-queries sample"
    )
    args = parser.parse_args(argv)
    args.names = [n.strip() for n in args.packages.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in PACKAGES_BY_NAME]
    if unknown:
        parser.error(f"unknown package(s): {', '.join(unknown)}")
    if args.max_queries is not None and args.max_queries < 1:
        parser.error("--max-queries must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    build(args.names, force=args.force, max_queries=args.max_queries, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
