"""Render bench/RESULTS.md (and the quality chart) from whatever results exist.

Every number in RESULTS.md comes from a JSON file under bench/results/ written by
one of the benchmark commands (committed, so the report can be rendered again
without rerunning everything). A part whose results are not here is carried over
from the previous RESULTS.md, marked with the date and commit it was measured
at, or, if it never ran, says so instead of showing a number.
Run: `python -m bench.report`.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from bench.learning_report import learning_section
from bench.quality import (
    RESULTS_DIR,
    corpus_packages,
    markdown_table,
    methods_with_results,
    plot_quality,
    score_all,
)
from bench.report_scale import scale_section

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "RESULTS.md"
CHART = BENCH / "quality.png"
LATENCY_CHART = BENCH / "latency.png"


def _load(name: str) -> dict | None:
    path = RESULTS_DIR / name
    return json.loads(path.read_text()) if path.exists() else None


def _versions() -> str:
    names = [
        "torch",
        "sentence-transformers",
        "transformers",
        "usearch",
        "pygls",
        "tree-sitter",
        "numpy",
    ]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=BENCH,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _kv_table(rows: list[tuple[str, object]]) -> str:
    lines = ["| measure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def quality_section() -> str:
    every = methods_with_results()
    methods = [m for m in every if "@" not in m]  # variants such as `@trained` get their own table
    packages = corpus_packages()
    if not methods or not packages:
        return "## Quality\n\nNot run yet: `bench/run quality`.\n"
    # The macro average is only fair over packages every method answered.
    complete = [p for p in packages if all(score_all([m], [p])[0].answered for m in methods)]
    left_out = [p for p in packages if p not in complete]
    scores = score_all(methods, complete)
    plot_quality(scores, CHART)
    partial = ""
    if left_out:
        rows = [s for s in score_all(methods, left_out) if s.package != "macro" and s.answered]
        partial = (
            f"\n\nLeft out of the macro average because not every method ran on them: "
            f"{', '.join(left_out)} (see the notes). What did run there:\n\n{markdown_table(rows)}"
        )
    return (
        "## Quality: natural-language search over real packages\n\n"
        "CodeSearchNet method: a function whose docstring has at least six words becomes a query "
        "(its first sentence); that docstring is removed from the workspace; a hit is a result in "
        "the right file overlapping the function. Packages with `0/N` answered were not run for "
        "that method (see the notes below the table). Latency columns are per query inside one "
        "process.\n\n"
        "Command: `bench/run quality` (= `python -m bench.corpus && python -m "
        "bench.kenning_adapter && bash bench/peers/setup.sh && bench/.venvs/*/bin/python "
        "bench/peers/*_run.py && python -m bench.quality --plot`)\n\n"
        f"{markdown_table(scores)}{partial}\n\n![MRR@10 per package and method](quality.png)\n"
        f"{trained_quality(every)}{peer_index_times()}"
    )


def trained_quality(methods: list[str]) -> str:
    """Base model against the model `kenning train` ended with, on the packages it ran on."""
    trained = [m for m in methods if m.endswith("@trained")]
    if not trained:
        return ""
    pairs = [m for t in trained for m in (t.removesuffix("@trained"), t) if m in methods]
    done = [p for p in corpus_packages() if all(score_all([m], [p])[0].answered for m in trained)]
    if not done:
        return ""
    return (
        "\n### After `kenning train` on the package\n\n"
        "`@trained` rows search the index that `kenning train` (defaults, one seed) left behind: "
        "the promoted model where the gate promoted one, otherwise the base model (see the "
        "training section for each verdict). Training never sees the query functions' docstrings: "
        "they are removed from the workspace.\n\n"
        "Command: `python -m bench.train_quality --packages PKGS --bench-queries && python -m "
        "bench.quality`\n\n"
        f"{markdown_table(score_all(pairs, done))}\n"
    )


def peer_index_times() -> str:
    """Wall time to index each package from nothing, Kenning and peers, from their own records."""
    from bench.kenning_adapter import full_index_s, summary_path_for

    rows = []
    for pkg in corpus_packages():
        cells = []
        for tag in (None, "trained"):
            path = summary_path_for(pkg, tag)
            record = json.loads(path.read_text()) if path.exists() else {}
            seconds = record.get("full_index_s") or full_index_s(record)
            if seconds:
                cells.append(
                    f"{seconds:.1f} s ({record['index']['embedded']} chunks"
                    + (", trained model" if tag else "")
                    + ")"
                )
                break
        else:
            cells.append("not measured")
        for method in ("vectorcode", "semble-distilled-minilm"):
            timing = RESULTS_DIR / method / f"{pkg}.timing.json"
            cells.append(
                f"{json.loads(timing.read_text())['index_s']:.1f} s"
                if timing.exists()
                else "not run"
            )
        rows.append(f"| {pkg} | " + " | ".join(cells) + " |")
    return (
        "\n### Index time on the same workspaces\n\n"
        "Wall time from nothing to a searchable, fully embedded index, each tool through its own "
        "interface (Kenning: `Engine.index()` in the benchmark process, model load included; "
        "where only a run with the trained model embedded the whole workspace, that run is shown: "
        "same architecture and size). semble embeds with a static model, which is why it takes "
        "seconds.\n\n"
        "| package | Kenning (MiniLM, function-sized chunks) | VectorCode (MiniLM) "
        "| semble (static) |\n"
        "| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )


def index_section() -> str:
    r = _load("index_speed.json")
    if not r:
        return "## Indexing speed\n\nNot run yet: `bench/run index`.\n"
    full, eff, re = r["full"], r["efficiency"], r["reindex_one_function"]
    embedded = (
        f"{full['fully_embedded_s']} s (measured)"
        if "fully_embedded_s" in full
        else f"~{full.get('fully_embedded_s_projected')} s (projected from the measured rate)"
    )
    rows = [
        (
            "repository",
            f"{r['repo']}: {full['files']} files, {full['chunks']} chunks ({full['to_embed']} to "
            "embed)",
        ),
        ("first index, lexical-ready", f"{full['lexical_ready_s']} s"),
        ("first index, fully embedded", embedded),
        (
            "efficiency subset",
            f"{eff['files']} files, {eff['embedded']} chunks embedded, median "
            f"{eff['median_tokens']} tokens, {eff['over_limit_pct']}% over {eff['max_seq_length']}",
        ),
        ("pipeline (kenning index)", f"{eff['pipeline_chunks_per_s']} chunks/s"),
        ("raw SentenceTransformer.encode, same texts", f"{eff['raw_chunks_per_s']} chunks/s"),
        ("pipeline efficiency by wall time (target >= 0.85)", eff["efficiency"]),
        ("pipeline efficiency by CPU time", eff.get("efficiency_by_cpu_time", "not measured")),
        (
            "re-index after editing one function (target < 1 s)",
            f"median {re['median_s']} s, max {re['max_s']} s over {re['edits']} edits; embedded "
            f"per edit {re['embedded_per_edit']}",
        ),
    ]
    command = r.get("command", "python -m bench.index_speed --quick")
    return (
        f"## Indexing speed\n\nCommand: `{command.strip()}` ({r['date']}, {r['cpus']} CPUs)\n\n"
        f"{_kv_table(rows)}\n"
    )


def latency_section() -> str:
    r = _load("search_latency.json")
    if not r:
        return "## Search latency and memory\n\nNot run yet: `bench/run latency`.\n"
    s = r["search"]
    rows = []
    if "index" in r:
        i = r["index"]
        rows.append(
            (
                "index",
                f"{i['chunks']} chunks from {i['files']} files, {i['bytes_per_chunk_on_disk']} "
                "bytes/chunk on disk",
            )
        )
    rows += [
        (f"{m} p50 / p95", f"{s[m]['p50_ms']} / {s[m]['p95_ms']} ms (n={s[m]['n']})")
        for m in ("hybrid", "semantic", "lexical")
    ]
    rows += [
        ("query embedding alone, p50", f"{s['query_embedding_p50_ms']} ms"),
        ("index load (vector file + replay)", f"{s['index_load_s']} s"),
        (
            "RSS: start / model loaded / index loaded",
            f"{s['rss_mb']['start']} / {s['rss_mb']['model_loaded']} / "
            f"{s['rss_mb']['index_loaded']} MB",
        ),
        (
            "index memory beyond the model (target < 1.5 KB/chunk)",
            f"{s['index_memory_bytes_per_chunk']} bytes/chunk",
        ),
    ]
    st = r.get("startup", {})
    if st:
        rows.append(
            (
                "`kenning search` process start-up breakdown",
                ", ".join(f"{k} {v}" for k, v in st.items()),
            )
        )
    return (
        "## Search latency and memory (100k chunks)\n\n"
        "Real chunks of Django, SymPy and SQLAlchemy sdists; their vectors are random unit "
        "vectors (exact search costs the same whatever the values; embedding 10^5 chunks takes "
        "about an hour on this CPU). Every query is embedded by the real model.\n\n"
        f"Command: `python -m bench.search_latency` ({r['date']}, {r['cpus']} CPUs)\n\n"
        f"{_kv_table(rows)}\n"
    )


def cli_section() -> str:
    r, b = _load("cli_latency.json"), _load("build_check.json")
    if not r and not b:
        return "## Command line\n\nNot run yet: `bench/run cli build`.\n"
    parts = ["## Command line outside the editor\n"]
    if r:

        def med(x: dict) -> str:
            return (
                f"{x['median_s']} s median (min {x['min_s']}, max {x['max_s']}, n={x['runs']}); "
                f"`python -c pass` beside it {x['python_c_pass_median_s']} s"
            )

        rows = [
            ("workspace", f"{r['package']}: {r['index']['chunks']} chunks, index up to date"),
            ("`kenning search` with a daemon serving (target <= 150 ms)", med(r["daemon_search"])),
            (
                "`kenning search` in a fresh process, no daemon (target <= 1.5 s, <= 400 MB)",
                f"{med(r['fresh_search'])}; peak RSS {r['fresh_search']['peak_rss_mb']} MB",
            ),
            (
                "first fresh search (exports the model for the light path)",
                f"{r['first_fresh_search_s']} s",
            ),
        ]
        for name, p in r["cold_probes"].items():
            rows.append(
                (f"cold probe: one query via {name}", f"{med(p)}; peak RSS {p['peak_rss_mb']} MB")
            )
        rss, ix = r["daemon_rss_mb"], r["daemon_indexing"]
        rows += [
            (
                "daemon RSS: idle / peak while embedding / idle after (target idle <= 600 MB)",
                f"{rss['idle']} / {rss['peak_while_indexing']} / {rss['idle_after']} MB "
                f"({rss['chunks_after']} chunks after {ix['chunks_added']} were added and embedded "
                f"in {ix['settled_s']} s)",
            ),
            (
                "load average (1, 5, 15 min) at start / end",
                f"{r['load_avg']['start']} / {r['load_avg']['end']}",
            ),
        ]
        parts.append(
            f"Command: `{r['command'].strip()}` ({r['date']}, {r['cpus']} CPUs). Medians of fresh "
            "processes, each beside `python -c pass` in the same loop; compare the two, since the "
            f"machine was shared.\n\n{_kv_table(rows)}\n"
        )
    if b:
        w, s = b["wheel_install"], b["sdist_install"]
        rows = [
            (
                "`python -m build` (sdist + wheel)",
                f"{b['build_s']} s: "
                + ", ".join(f"{n} ({size / 1e6:.2f} MB)" for n, size in b["artifacts"].items()),
            ),
            (
                "fresh venv + `pip install torch==2.13.0` + the wheel",
                f"{w['venv_s']} + {w['torch_s']} + {w['kenning_s']} s",
            ),
            (
                "fresh venv + `pip install torch==2.13.0` + the sdist",
                f"{s['venv_s']} + {s['torch_s']} + {s['kenning_s']} s",
            ),
            (
                f"first answer on a fresh workspace ({b.get('workspace_parts', 'repository')}: "
                "read, embed, search)",
                f"{b['first_answer']['wall_s']} s for {b['workspace']['files']} files, "
                f"{b['workspace']['chunks']} chunks; top result {b['first_answer']['top']}; "
                f"{b['first_answer']['progress_lines']} progress lines on stderr",
            ),
            ("the same search again (index up to date)", f"{b['second_answer_s']} s"),
            (
                "load average (1, 5, 15 min) at start / end",
                f"{b['load_avg_start']} / {b['load_avg_end']}",
            ),
        ]
        parts.append(
            f"Install and first answer: `python -m bench.build_check` ({b['date']}; pip's cache "
            f"as this machine had it)\n\n{_kv_table(rows)}\n"
        )
    return "\n".join(parts)


def lsp_section() -> str:
    r = _load("lsp_latency.json")
    if not r:
        return "## Language server\n\nNot run yet: `bench/run lsp`.\n"
    st, sv = r["startup_s"], r["save_to_searchable"]
    rows = [
        (
            "workspace",
            f"{Path(r['workspace']).parent.name}: {r['index']['files']} files, "
            f"{r['index']['chunks']} chunks",
        ),
        (
            "start-up: initialize / first status / first results",
            f"{st['initialize']} / {st['first_status']} / {st['first_search_with_results']} s",
        ),
        ("first index (both passes)", f"{r['first_index_s']} s"),
    ]
    for key in ("search_while_model_loads", "search_during_indexing", "search_idle"):
        rows.append(
            (
                f"kenning/search round trip, {key.replace('_', ' ')}",
                f"p50 {r[key]['p50_ms']} ms, p95 {r[key]['p95_ms']} ms",
            )
        )
    rows += [
        (
            "save -> found by lexical search",
            f"p50 {sv['lexical']['p50_ms']} ms, p95 {sv['lexical']['p95_ms']} ms",
        ),
        (
            "save -> embedded",
            f"p50 {sv['embedded']['p50_ms']} ms, p95 {sv['embedded']['p95_ms']} ms",
        ),
        ("idle RSS (target < 600 MB)", f"{r['idle_rss_mb']} MB"),
        ("load average while measuring", r.get("load_avg_1m")),
    ]
    return (
        "## Language server\n\nCommand: `python -m bench.lsp_latency --json`\n\n"
        f"{_kv_table(rows)}\n"
    )


def lsp_scale_section() -> str:
    r = _load("lsp_scale.json")
    if not r:
        return "## Language server at 10k and 100k chunks\n\nNot run yet: `bench/run lsp-scale`.\n"
    ms = lambda x: f"p50 {x['p50_ms']} / p95 {x['p95_ms']} ms (n={x['n']})"  # noqa: E731
    lines = ["| measure | " + " | ".join(r["sizes"]) + " |", "| --- |" + " --- |" * len(r["sizes"])]
    sizes = list(r["sizes"].values())
    rows = [
        ("index", lambda x: f"{x['index']['chunks']} chunks, {x['index']['files']} files"),
        (
            "start-up: first answer / settled",
            lambda x: f"{x['startup_s']['first_answer']} / {x['startup_s']['settled']} s",
        ),
        ("hybrid, idle", lambda x: ms(x["idle_hybrid"])),
        ("semantic, idle", lambda x: ms(x["idle_semantic"])),
        ("lexical, idle", lambda x: ms(x["idle_lexical"])),
        ("hybrid, during background indexing", lambda x: ms(x["during_indexing_hybrid"])),
        (
            "background indexing: files / chunks added / settled",
            lambda x: (
                f"{x['burst']['files']} / {x['burst']['chunks_added']} / "
                f"{x['burst']['settled_s']} s"
            ),
        ),
        ("RSS idle / peak while indexing", lambda x: f"{x['idle_rss_mb']} / {x['peak_rss_mb']} MB"),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(x) for x in sizes) + " |")
    return (
        "## Language server at 10k and 100k chunks\n\n"
        "`kenning/search` round trips through a real `kenning serve` over stdio, on the Django + "
        "SymPy + SQLAlchemy workspace (100k) and a real subset of it (10k: `django/db`, "
        "SQLAlchemy's `orm` and `sql`). Their vectors are random unit vectors, as in the section "
        "above; queries and the files added during the run are embedded by the real model. "
        "*During background indexing* = werkzeug's sources are copied into the workspace and "
        "searches run back to back until the server has embedded them.\n\n"
        f"Command: `python -m bench.lsp_scale` ({r['date']}, {r['cpus']} CPUs, load average "
        f"{r.get('load_avg_1m')} at the end)\n\n" + "\n".join(lines) + "\n\n"
        "![Search round-trip distributions](latency.png)\n"
    )


def mcp_section() -> str:
    r = _load("mcp.json")
    title = "## MCP server for agents\n\n"
    if not r:
        return title + "Not run yet: `bench/run mcp`.\n"
    parts = [title]
    for key in sorted(k for k in r if k.startswith("latency")):
        lat = r[key]
        ms = lambda x: f"p50 {x['p50']} / p95 {x['p95']} ms (n={x['n']})"  # noqa: E731
        if lat.get("vectors", "random") == "random":
            where = (
                "the 10k-chunk workspace of the section above (real files, chunks and full-text "
                "rows; random vectors)"
            )
        else:
            pkg = lat.get("package") or lat["workspace"].split("/.corpus/")[-1].split("/")[0]
            kept = ", ".join(f"`{p}`" for p in lat.get("subset") or [])
            where = f"{pkg} ({kept} only)" if kept else pkg
            where += " with the bundled model's real vectors"
        parts.append(
            "`search_code` (hybrid, limit 10, default budget) through a real `kenning mcp` over "
            f"stdio, driven by the MCP SDK's own client, on {where}; every query embedded by the "
            f"real model; warm: after 5 calls. Load average {lat['load_average']:.1f} at the "
            "end.\n\n"
            f"| measure | {lat['chunks']} chunks |\n| --- | --- |\n"
            f"| round trip the agent sees | {ms(lat['round_trip_ms'])} |\n"
            f"| search time reported by the server | {ms(lat['in_server_ms'])} |\n"
            f"| answer tokens, max / mean | {lat['tokens']['max']} / {lat['tokens']['mean']} |\n\n"
        )
    budget = r.get("budget")
    if budget:
        rows = [
            "| package | queries | tokens max / mean | chars/4 max / mean | snippets cut | "
            "results dropped | over budget |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for pkg, b in budget["packages"].items():
            rows.append(
                f"| {pkg} | {b['queries']} | {b['tokens_max']} / {b['tokens_mean']} | "
                f"{b['chars_over_4_max']} / {b['chars_over_4_mean']} | {b['snippets_cut']} | "
                f"{b['results_dropped']} | {b['over_budget']} |"
            )
        parts.append(
            f"Token budget ({budget['max_tokens']} tokens, counted with the bundled model's "
            "WordPiece tokenizer) over every query of the bench corpus, through the same tool "
            "code in-process on each package's index (bundled model, real vectors). *chars/4* "
            "is the usual estimate, for comparison: the tokenizer counts about a quarter more, "
            "so the budget is conservative for agents' own tokenizers.\n\n" + "\n".join(rows) + "\n"
        )
    parts.append(f"\nCommand: `python -m bench.mcp_bench` ({r.get('date')})\n")
    return "".join(parts)


def plot_latency(path: Path = LATENCY_CHART) -> Path | None:
    """Box plots of every search-latency sample the LSP benchmarks kept."""
    series: list[tuple[str, list[float]]] = []
    flask = _load("lsp_latency.json") or {}
    for key, label in (
        ("search_idle", "flask 1.5k idle"),
        ("search_during_indexing", "flask 1.5k indexing"),
    ):
        if flask.get(key, {}).get("samples_ms"):
            series.append((label, flask[key]["samples_ms"]))
    for size, r in ((_load("lsp_scale.json") or {}).get("sizes") or {}).items():
        for key, label in (("idle_hybrid", "idle"), ("during_indexing_hybrid", "indexing")):
            if r.get(key, {}).get("samples_ms"):
                series.append((f"{size} {label}", r[key]["samples_ms"]))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.4 * len(series) + 2, 4.5))
    ax.boxplot([v for _, v in series], whis=(5, 95), showfliers=False)
    ax.set_xticks(range(1, len(series) + 1), [name for name, _ in series], rotation=20)
    ax.set_ylabel("kenning/search round trip, ms (hybrid)")
    ax.set_title("LSP search latency: box = p25-p75, whiskers = p5-p95")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def training_section() -> str:
    runs = _load("train_quality.json")
    if not runs:
        return "## Training\n\nNot run yet: `python -m bench.train_quality`.\n"
    lines = [
        "| package | pairs found (doc/comment/module/signature/test/docs/commit) | train / "
        "held-out pairs | held-out MRR@10 before -> after | verdict | steps, pairs/s | wall |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        p, t = r["pairs"], r["training"]
        kinds = "/".join(
            str(p.get(k, 0))
            for k in ("docstring", "comment", "module", "signature", "test", "docs", "commit")
        )
        lines.append(
            f"| {r['package']} | {kinds} | {r['train_pairs']} / {r['heldout_pairs']} | "
            f"{r['before']['mrr_at_10']:.3f} -> {r['after']['mrr_at_10']:.3f} | {r['status']}: "
            f"{r['reason']} | {t['steps']} steps of {t['batch_size']} at {t['max_seq_length']} "
            f"tokens on {t['device']}, {t['steps_per_s'] * t['batch_size']:.2f} pairs/s | "
            f"{r['wall_s']:.0f} s |"
        )
    return (
        "## Training on the workspace's own code\n\nCommand: `python -m bench.train_quality` (one "
        "seed; `kenning train` defaults). What the benchmark's own queries gain is in the quality "
        "section, under *After `kenning train`*.\n\n" + "\n".join(lines) + "\n"
    )


def _p50_p95_n(stats: dict) -> str:
    """One phase's search latency: `p50 / p95 ms (n=N)`."""
    return f"{stats['p50_ms']} / {stats['p95_ms']} ms (n={stats['n']})"


def swap_section() -> str:
    runs = [
        (label, r)
        for label, r in (
            ("re-embedding on half the cores", _load("swap_latency.json")),
            ("re-embedding on all cores (before)", _load("swap_latency_fullcores.json")),
        )
        if r
    ]
    if not runs:
        return "## Retraining in the daemon\n\nNot run yet: `bench/run swap`.\n"
    lines = [
        "| run | workspace | run outcome | cycle (train starts / re-embed starts) | search "
        "p50/p95 idle | while training | while re-embedding | after | swap p95 / idle p95 | "
        "failed / empty answers |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, r in runs:
        cell = {
            k: _p50_p95_n(r["search"][k]) for k in ("idle", "training", "re-embedding", "after")
        }
        phases = r.get("phases_start_s", {})
        lines.append(
            f"| {label} | {r['index']['files']} files, {r['index']['chunks']} chunks | "
            f"{r['run']['status']}: {r['run']['reason']} | {r['cycle_s']} s "
            f"({phases.get('training', '-')} / {phases.get('re-embedding', '-')} s) | "
            f"{cell['idle']} | {cell['training']} | {cell['re-embedding']} | {cell['after']} | "
            f"{r['swap_p95_ratio']}x | {len(r['failures'])} / {r['empty_answers']} |"
        )
    command = runs[0][1].get("command", "python -m bench.swap_latency")
    return (
        f"## Retraining in the daemon\n\nCommand: `{command}` "
        "(bundled model, CPU; target: swap p95 under 2x idle)\n\n" + "\n".join(lines) + "\n"
    )


def reliability_section() -> str:
    kill, burst = _load("kill_campaign.json"), _load("burst.json")
    rows: list[tuple[str, object]] = []
    if kill:
        rows += [
            (
                "kill -9 campaign: kills (full / incremental / switch)",
                f"{kill['kills']} ({kill['by_phase'].get('full', 0)} / "
                f"{kill['by_phase'].get('incremental', 0)} / {kill['by_phase'].get('switch', 0)})",
            ),
            ("consistency problems found after kills", len(kill["problems"])),
            (
                "complete-index checks (index matches the files on disk)",
                kill["complete_index_checks"],
            ),
        ]
    if burst:
        rows += [
            (
                "file-event burst",
                f"{burst['events']} events on {burst['files']} files, written in "
                f"{burst['written_s']} s, settled after {burst['settled_s']} s",
            ),
            (
                "search during the burst",
                f"p50 {burst['search_during_burst']['p50_ms']} ms, "
                f"p95 {burst['search_during_burst']['p95_ms']} ms",
            ),
            (
                "server RSS before / peak / after",
                f"{burst['rss_mib']['before']} / {burst['rss_mib']['max']} / "
                f"{burst['rss_mib']['after']} MiB",
            ),
            (
                "chunk texts embedded / final chunks",
                f"{burst['embedded_since_start']} / {burst['chunks']}",
            ),
        ]
    if not rows:
        return "## Reliability\n\nNot run yet: `pytest -m stress`.\n"
    return (
        "## Reliability campaigns\n\nCommands: `pytest -m stress tests/test_crash_safety.py "
        "tests/e2e/test_lsp_burst.py -s`\n\n" + _kv_table(rows) + "\n"
    )


NOT_RUN = "Not run yet"
CARRIED = "_Carried over from"


def previous_sections(text: str) -> tuple[str, dict[str, str]]:
    """An earlier RESULTS.md's stamp ("DATE, commit C") and its measured sections by title."""
    stamp = re.search(r"Generated by .*? on (\S+) at commit (\w+)", text)
    when = f"{stamp[1]}, commit {stamp[2]}" if stamp else "an earlier run"
    sections = {}
    for chunk in re.split(r"(?m)^(?=## )", text):
        if chunk.startswith("## ") and NOT_RUN not in chunk and not chunk.startswith("## Notes"):
            sections[chunk.splitlines()[0]] = chunk.rstrip("\n") + "\n"
    return when, sections


def carry_over(section: str, when: str, earlier: dict[str, str]) -> str:
    """`section` itself, or where it has no results, the earlier report's section of that title."""
    if NOT_RUN not in section:
        return section
    title = section.splitlines()[0]
    match = earlier.get(title) or next((v for k, v in earlier.items() if k.startswith(title)), None)
    if match is None:
        return section
    if CARRIED in match:  # carried before: keep its original date
        return match
    heading, _, body = match.partition("\n")
    return (
        f"{heading}\n\n{CARRIED} the report of {when}: not re-run since, and the raw "
        f"results of that run were not kept._\n{body}"
    )


def render(previous: str = "") -> str:
    head = (
        "# Kenning benchmark results\n\n"
        f"Generated by `python -m bench.report` on {time.strftime('%Y-%m-%d')} at commit "
        f"{_commit()}.\n\n"
        f"- machine: {_machine()}\n- versions: {_versions()}\n"
        "- load: the machine was shared while measuring (1-minute load average now "
        f"{os.getloadavg()[0]:.1f}); compare ratios within one run, not absolute times across "
        "runs.\n"
    )
    plot_latency()
    when, earlier = previous_sections(previous)
    from bench.ranking_report import ranking_section

    sections = [
        quality_section(),
        ranking_section(),
        index_section(),
        latency_section(),
        cli_section(),
        lsp_section(),
        lsp_scale_section(),
        mcp_section(),
        training_section(),
        learning_section(),
        swap_section(),
        scale_section(),
        reliability_section(),
    ]
    parts = [head, *(carry_over(s, when, earlier) for s in sections)]
    notes = BENCH / "NOTES.md"
    if notes.exists():
        parts.append(notes.read_text())
    return "\n".join(parts)


def main() -> int:
    OUT.write_text(render(OUT.read_text() if OUT.exists() else ""))
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
