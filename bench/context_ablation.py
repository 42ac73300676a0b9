"""What the model reads around a chunk: the document prefix and max_seq_length.

For each variant the chunks of a package's index (``bench/.work/index/<pkg>``) are
embedded again with a different context line in front of the code, or a different
``max_seq_length``, into a copy of the index (``bench/.work/index/<pkg>@ctx-<variant>``),
and the benchmark queries are searched there with the product's own ranking
(semantic and hybrid). Everything but the vectors stays the same, so the variants
differ only in what the model read. Embedding time is measured per variant (wall
and CPU seconds; the machine may be shared, so compare within one run).

Variants (see ``PREFIXES``):

* ``path+symbol`` — what Kenning ships: ``src/flask/app.py Flask.open_resource``;
* ``none`` — the code alone;
* ``path`` — the path alone;
* ``header`` — a docstring-style comment header: ``# file: src/flask/app.py`` then
  ``# in: Flask`` for a member (the signature is the code's own first line);
* ``words`` — the path and symbol as plain words: ``flask app: Flask open resource``;
* ``path+symbol@128`` — the shipped prefix, read up to 128 tokens instead of 256.

Usage (from the repository root; heavy: run under ``nice``, one at a time)::

    python -m bench.context_ablation [--packages flask,tqdm] [--variants none,path]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

from bench.kenning_adapter import index_dir_for
from bench.quality import RESULTS_DIR, corpus_packages

OUT = RESULTS_DIR / "context_ablation.json"
DEFAULT_PACKAGES = ("flask", "werkzeug", "marshmallow", "more-itertools", "tqdm")


def _path_words(path: str) -> str:
    from kenning.server.lexical import split_words

    p = PurePosixPath(path)
    folders = [w for part in p.parent.parts for w in split_words(part) if w not in ("src", "lib")]
    return " ".join([*folders, *split_words(p.stem)])


def _symbol_words(symbol: str | None) -> str:
    if not symbol:
        return ""
    from kenning.server.lexical import split_words

    parts = symbol.split(".")
    return " ".join([*parts[:-1], *split_words(parts[-1])])


def _header(path: str, symbol: str | None, text: str) -> str:
    owner = symbol.rsplit(".", 1)[0] if symbol and "." in symbol else None
    lines = [f"# file: {path}"] + ([f"# in: {owner}"] if owner else [])
    return "\n".join([*lines, text])


PREFIXES: dict[str, Callable[[str, str | None, str], str]] = {
    "none": lambda path, symbol, text: text,
    "path": lambda path, symbol, text: f"{path}\n{text}",
    "header": _header,
    "words": lambda path, symbol, text: f"{_path_words(path)}: {_symbol_words(symbol)}\n{text}",
}
VARIANTS: dict[str, tuple[str, int]] = {
    "none": ("none", 256),
    "path": ("path", 256),
    "header": ("header", 256),
    "words": ("words", 256),
    "path+symbol@128": ("path+symbol", 128),
}
"""variant -> (prefix, max_seq_length); ``path+symbol`` at 256 is the stored index itself."""


def build_variant(pkg: str, variant: str) -> dict[str, Any]:
    """Embed `pkg`'s chunks as `variant` says into a copy of its index; return timings."""
    import resource

    from kenning.server.chunking import embed_text_for
    from kenning.server.embedder import Embedder
    from kenning.server.models import DEFAULT_MODEL, resolve_model
    from kenning.server.store import Store

    prefix, seq = VARIANTS[variant]
    source = index_dir_for(pkg)
    target = index_dir_for(pkg, f"ctx-{variant}")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("open-*", "vectors-*"))
    store = Store.open(target)
    rows = store.conn.execute(
        "SELECT c.hash, f.path, c.symbol, c.text FROM chunks c JOIN files f ON f.id = c.file_id "
        "WHERE c.embeddable = 1 GROUP BY c.hash"
    ).fetchall()
    make = PREFIXES.get(prefix, embed_text_for)
    texts = [make(path, symbol, text) for _, path, symbol, text in rows]
    old = store.active_generation()
    assert old is not None, f"{source} has no vectors"
    embedder = Embedder(resolve_model(DEFAULT_MODEL), max_seq_length=seq)
    embedder.load()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    vectors = embedder.encode(texts)
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    gen = store.create_generation(
        old.model, f"{old.identity}|ctx={variant}", old.location, old.dim, active=False
    )
    store.add_embeddings(gen.id, [h for h, *_ in rows], vectors)
    store.activate_generation(gen.id)
    store.drop_generation(old.id)
    store.save_snapshot(force=True)
    store.close()
    return {
        "texts": len(texts),
        "embed_wall_s": round(wall, 1),
        "embed_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from bench.ranking_lab import Variant, run

    parser = argparse.ArgumentParser(
        prog="python -m bench.context_ablation", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--packages", default=",".join(DEFAULT_PACKAGES))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    packages = [p for p in args.packages.split(",") if p in corpus_packages()]
    variants = [v for v in args.variants.split(",") if v]
    if bad := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variant(s): {', '.join(bad)}; known: {', '.join(VARIANTS)}")
    report: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
    report.setdefault("variants", {})
    from kenning.server.ranking import DEFAULT

    modes = {"semantic": Variant("semantic", DEFAULT), "hybrid": Variant("hybrid", DEFAULT)}
    for variant in ["path+symbol", *variants]:
        entry = report["variants"].setdefault(variant, {})
        for pkg in packages:
            tag = None if variant == "path+symbol" else f"ctx-{variant}"
            if tag is not None and pkg not in entry.get("embedded", {}):
                timing = build_variant(pkg, variant)
                entry.setdefault("embedded", {})[pkg] = timing
                print(f"{pkg} {variant}: {timing}", file=sys.stderr, flush=True)
            rows = run([pkg], ["nl"], modes, tag=tag)
            entry.setdefault("mrr10", {})[pkg] = {r.variant: round(r.mrr10, 4) for r in rows}
            OUT.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
