"""The learning section of bench/RESULTS.md, from `bench/results/learning.json` (written by
`python -m bench.learning`) and `bench/results/adapter_swap.json` (`python -m
bench.adapter_swap`). Paired tests and the picks' baselines are computed from the
per-query ranks (`bench/results/learning/`, committed) when every run they need left
them, else taken from the figures kept for runs whose ranks are gone (`KEPT`).

Keeping what a rendered report says before its ranks are lost (run from the repository
root)::

    python -m bench.learning_report --keep-from bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import fusion_weight
from bench.learning import SUMMARY, paired

RESULTS = Path(__file__).resolve().parent / "results"
TUNED = ("tqdm", "marshmallow", "flask")
"""Ranking (and the adapter's knobs) were tuned on these; the others are untouched."""
ORDER = ("tqdm", "marshmallow", "flask", "werkzeug", "more-itertools", "sqlalchemy")
SYSTEMS = ("adapter", "model", "both")
QUALITY_SYSTEMS = {
    "partial": ("adapter", "model-s60", "both-s60"),
    "full": ("adapter", "model-s60", "both-s60"),
}
"""The rows behind the main tables' adapter, fine-tune and `both` columns: the fine-tune as
it is now (at least 60 steps, held-out files counted by the pairs that measure). The
full protocol's 20-step rows (`model`, `both`) are compared with these below."""
MODE = "hybrid"
KEPT = RESULTS / "learning_kept.json"
"""Figures derived from per-query ranks that are no longer here: the paired tests and the
picks' subset means of runs made before the ranks were committed, restored from the
RESULTS.md those ranks rendered (`kept_from_report`). A figure is computed from the ranks
whenever every run it needs left them, and taken from here otherwise."""


def _rows() -> list[dict[str, Any]]:
    return json.loads(SUMMARY.read_text()) if SUMMARY.exists() else []


def _runs(rows: Sequence[dict[str, Any]], pkg: str, protocol: str, system: str) -> list[dict]:
    return [
        r for r in rows if (r["package"], r["protocol"], r["system"]) == (pkg, protocol, system)
    ]


def _cell(base: float | None, runs: Sequence[dict[str, Any]], test: dict | None) -> str:
    if not runs or base is None:
        return "-"
    values = [r["mrr"][MODE] for r in runs]
    mean = statistics.fmean(values)
    spread = f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else " (1 seed)"
    tested = ""
    if test:
        tested = f", {test['better']}/{test['worse']}, p={test['wilcoxon_p']:.2g}"
    return f"{mean:.3f}{spread} **{mean - base:+.3f}**{tested}"


def quality_table(rows: Sequence[dict[str, Any]], protocol: str) -> tuple[str, dict]:
    lines = [
        "| package | queries | base | adapter | full fine-tune | both |",
        "| --- | ---: | ---: | --- | --- | --- |",
    ]
    deltas: dict[str, dict[str, list[float]]] = {"tuned": {}, "untouched": {}}
    for pkg in ORDER:
        base_runs = _runs(rows, pkg, protocol, "base")
        if not base_runs:
            continue
        base = base_runs[0]["mrr"][MODE]
        cells = []
        group = "tuned" if pkg in TUNED else "untouched"
        for column, system in zip(SYSTEMS, QUALITY_SYSTEMS[protocol], strict=True):
            runs = _runs(rows, pkg, protocol, system)
            seeds = [r["seed"] for r in runs]
            test = _paired(pkg, protocol, system, seeds) if runs else None
            cells.append(_cell(base, runs, test))
            if runs:
                mean = statistics.fmean(r["mrr"][MODE] for r in runs)
                deltas[group].setdefault(column, []).append(mean - base)
        mark = "" if pkg in TUNED else " (untouched)"
        lines.append(
            f"| {pkg}{mark} | {base_runs[0]['queries']} | {base:.3f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines), deltas


FUSION_NOW = {"adapter": "adapter-testsmeasured", "both": "both-testsmeasured"}
"""The rows that differ from `<system>-w1.5` by the fusion weight alone: the adapters
of the same runs, before their cross-fit stopped measuring tests' own code."""


def weight_sweep_table(rows: Sequence[dict[str, Any]]) -> str:
    """`bench.fusion_weight`'s sweep: each trained system's change from base at every
    weight, and the mean change per group of packages, protocol and system."""
    sweep = fusion_weight.load()
    weights = [str(w) for w in fusion_weight.WEIGHTS]
    lines: list[str] = []
    groups: dict[tuple[str, str, str], list[list[float]]] = {}
    for pkg in ORDER:
        for protocol in ("partial", "full"):
            base_runs = _runs(rows, pkg, protocol, "base")
            for system in fusion_weight.SYSTEMS:
                found = [
                    r
                    for r in sweep
                    if (r["package"], r["protocol"], r["system"]) == (pkg, protocol, system)
                ]
                if not found or not base_runs:
                    continue
                base = base_runs[0]["mrr"][MODE]
                changes = [found[0]["mrr"][w] - base for w in weights]
                group = "tuning" if pkg in TUNED else "untouched"
                groups.setdefault((group, protocol, system), []).append(changes)
                mark = "" if pkg in TUNED else " (untouched)"
                lines.append(
                    f"| {pkg}{mark} | {protocol} | {system} | {len(found[0]['seeds'])} | "
                    f"{base:.3f} | " + " | ".join(f"{c:+.3f}" for c in changes) + " |"
                )
    for (group, protocol, system), per_pkg in sorted(groups.items()):
        means = [statistics.fmean(c[i] for c in per_pkg) for i in range(len(weights))]
        lines.append(
            f"| mean of {len(per_pkg)} ({group}) | {protocol} | {system} | | | "
            + " | ".join(f"**{m:+.3f}**" for m in means)
            + " |"
        )
    columns = ["package", "protocol", "system", "seeds:", "base:"]
    columns += [f"{float(w):g}:" for w in weights]
    return _table(columns, lines)


def fusion_table(rows: Sequence[dict[str, Any]]) -> str:
    """Each trained system with the model weighed `trained_dense_weight` in fusion against
    the same index measured when it weighed 1.5 (rows `<system>-w1.5`)."""
    lines: list[str] = []
    for pkg in ORDER:
        for protocol in ("partial", "full"):
            base_runs = _runs(rows, pkg, protocol, "base")
            for system in SYSTEMS:
                now_system = FUSION_NOW.get(system, system)
                before = _runs(rows, pkg, protocol, f"{system}-w1.5")
                now = _runs(rows, pkg, protocol, now_system)
                seeds = sorted({r["seed"] for r in before} & {r["seed"] for r in now})
                if not seeds or not base_runs:
                    continue
                old = statistics.fmean(r["mrr"][MODE] for r in before if r["seed"] in seeds)
                new = statistics.fmean(r["mrr"][MODE] for r in now if r["seed"] in seeds)
                test = _paired(pkg, protocol, now_system, seeds, against=f"{system}-w1.5")
                tested = (
                    f"{test['better']}/{test['worse']}, p={test['wilcoxon_p']:.2g}" if test else "-"
                )
                mark = "" if pkg in TUNED else " (untouched)"
                lines.append(
                    f"| {pkg}{mark} | {protocol} | {system} | {len(seeds)} | "
                    f"{base_runs[0]['mrr'][MODE]:.3f} | {old:.3f} | {new:.3f} | "
                    f"**{new - old:+.3f}** | {tested} |"
                )
    columns = ["package", "protocol", "system", "seeds:", "base:", "model weighed 1.5 (before):"]
    columns += ["weighed 2.5 (now):", "change:", "better/worse, p"]
    return _table(columns, lines)


def _table(columns: Sequence[str], body: Sequence[str]) -> str:
    """A Markdown table of `body` rows under `columns` (a trailing colon aligns a column
    right), or "" without rows."""
    if not body:
        return ""
    titles = [c.removesuffix(":") for c in columns]
    rule = ["---:" if c.endswith(":") else "---" for c in columns]
    return "\n".join(["| " + " | ".join(titles) + " |", "| " + " | ".join(rule) + " |", *body])


ABLATION_COLUMNS = (
    ("adapter-w1.5", "the model weighed 1.5 in fusion (before)"),
    ("adapter-split", "one held-out split (before cross-fitting)"),
    ("adapter-minibatch", "minibatches of 512 pairs (before full batches)"),
    ("adapter-bychunk", "folds by chunk, not by file"),
    ("adapter-docchoice", "penalty chosen on docstring and pick pairs"),
    ("adapter-halfsteps", "half the steps per penalty"),
    ("adapter-notests", "without pairs into tests' own code"),
    ("adapter-testsmeasured", "measured on pairs into tests' own code too (before)"),
    ("adapter-allfit", "kept adapter fitted on the held-out files too"),
    ("adapter-nohard", "without hard negatives"),
    ("adapter-noid", "without identifier pairs"),
)
"""Variants of the adapter shown beside it, when they were measured."""
WEAK_COLUMNS = (
    ("adapter-weak25", "signature and identifier pairs at most a quarter"),
    ("adapter-noweak", "no signature or identifier pairs"),
)
"""The adapter with fewer of the weak pair kinds (`TrainOptions.max_signature_share`)."""


def ablation_table(
    rows: Sequence[dict[str, Any]],
    variants: Sequence[tuple[str, str]] = ABLATION_COLUMNS,
) -> str:
    """The adapter beside each of `variants` (system, title) that was measured."""
    columns = [(s, title) for s, title in variants if any(r["system"] == s for r in rows)]
    if not columns:
        return ""
    lines = [
        "| package | protocol | base | adapter | " + " | ".join(t for _, t in columns) + " |",
        "| --- | --- | ---: | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for pkg in ORDER:
        for protocol in ("partial", "full"):
            ablations = [_runs(rows, pkg, protocol, s) for s, _ in columns]
            base_runs = _runs(rows, pkg, protocol, "base")
            if not any(ablations) or not base_runs:
                continue
            base = base_runs[0]["mrr"][MODE]
            adapter = _runs(rows, pkg, protocol, "adapter")
            cells = [_cell(base, adapter, _test(pkg, protocol, "adapter", adapter))]
            cells += [
                _cell(base, runs, _test(pkg, protocol, s, runs))
                for (s, _), runs in zip(columns, ablations, strict=True)
            ]
            lines.append(f"| {pkg} | {protocol} | {base:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


FINETUNE_COLUMNS = (
    ("model", "full fine-tune, at least 20 steps (before)"),
    ("model-e3", "3 epochs"),
    ("model-lr1e4", "learning rate 1e-4"),
    ("model-s60-splitall", "at least 60 steps (now)"),
    ("both", "both, at least 20 steps (before)"),
    ("both-e3", "both, 3 epochs"),
    ("both-lr1e4", "both, learning rate 1e-4"),
    ("both-s60-splitall", "both, at least 60 steps (now)"),
)
"""The fine-tune with one `train.*` setting changed, beside it, when measured."""


def finetune_table(rows: Sequence[dict[str, Any]]) -> str:
    """The fine-tune and `both` with the settings of FINETUNE_COLUMNS, on the seeds every
    column a package ran shares (so the columns compare like with like)."""
    variants = {s for s, _ in FINETUNE_COLUMNS if s not in ("model", "both")}
    return _compared_table(rows, [FINETUNE_COLUMNS], variants)


SPLIT_COLUMNS = (
    ("adapter-splitall", "adapter, before"),
    ("adapter", "adapter, now"),
    ("model-s60-splitall", "full fine-tune, before"),
    ("model-s60", "full fine-tune, now"),
    ("both-s60-splitall", "both, before"),
    ("both-s60", "both, now"),
)
"""Training with the held-out files counted by every pair (before) and by the pairs that
measure (now)."""


def split_table(rows: Sequence[dict[str, Any]]) -> str:
    """Each system of SPLIT_COLUMNS before and after the held-out side changed, on the
    seeds both sides of a pair of columns ran."""
    pairs = [SPLIT_COLUMNS[i : i + 2] for i in range(0, len(SPLIT_COLUMNS), 2)]
    return _compared_table(rows, pairs, {SPLIT_COLUMNS[0][0]})


FULL_COLUMNS = (
    ("model", "full fine-tune, before"),
    ("model-s60", "full fine-tune, now"),
    ("both", "both, before"),
    ("both-s60", "both, now"),
)
"""The full protocol's fine-tune before (at least 20 steps, held-out files counted by every
pair) and now (at least 60, counted by the pairs that measure)."""


def full_protocol_table(rows: Sequence[dict[str, Any]]) -> str:
    """FULL_COLUMNS on the full protocol, each pair of columns on the seeds both ran."""
    full = [r for r in rows if r["protocol"] == "full"]
    return _compared_table(full, [FULL_COLUMNS[:2], FULL_COLUMNS[2:]], {"model-s60"})


def _compared_table(
    rows: Sequence[dict[str, Any]],
    groups: Sequence[Sequence[tuple[str, str]]],
    shown_if: set[str],
) -> str:
    """A row per package and protocol where any system of `shown_if` ran: one cell per
    (system, title) of `groups`, each group's cells on the seeds its columns that ran share."""
    lines: list[str] = []
    for pkg in ORDER:
        for protocol in ("partial", "full"):
            base_runs = _runs(rows, pkg, protocol, "base")
            if not base_runs or not any(_runs(rows, pkg, protocol, s) for s in shown_if):
                continue
            base = base_runs[0]["mrr"][MODE]
            cells = []
            for group in groups:
                ran = [{r["seed"] for r in _runs(rows, pkg, protocol, s)} for s, _ in group]
                seeds = set.intersection(*[r for r in ran if r] or [set()])
                for system, _ in group:
                    runs = [r for r in _runs(rows, pkg, protocol, system) if r["seed"] in seeds]
                    cells.append(_cell(base, runs, _test(pkg, protocol, system, runs)))
            mark = "" if pkg in TUNED else " (untouched)"
            lines.append(f"| {pkg}{mark} | {protocol} | {base:.3f} | " + " | ".join(cells) + " |")
    titles = [title for group in groups for _, title in group]
    return _table(["package", "protocol", "base:", *titles], lines)


def _test(pkg: str, protocol: str, system: str, runs: Sequence[dict[str, Any]]) -> dict | None:
    return _paired(pkg, protocol, system, [r["seed"] for r in runs]) if runs else None


def _kept() -> list[dict[str, Any]]:
    return json.loads(KEPT.read_text()) if KEPT.exists() else []


def _kept_entry(
    kind: str, pkg: str, protocol: str, system: str, seeds: Sequence[Any], **extra: Any
) -> dict[str, Any] | None:
    for entry in _kept():
        key = (entry["kind"], entry["package"], entry["protocol"], entry["system"])
        if key == (kind, pkg, protocol, system) and sorted(entry["seeds"]) == sorted(seeds):
            if all(entry.get(k) == v for k, v in extra.items()):
                return entry
    return None


def _paired(
    pkg: str, protocol: str, system: str, seeds: Sequence[int], against: str = "base"
) -> dict | None:
    """The paired test of `system` against `against` over `seeds`: from the ranks when
    every run left them, else as kept (`KEPT`), else None."""
    test = paired(pkg, protocol, system, seeds, MODE, against=against)
    if test is None:
        test = _kept_entry("paired", pkg, protocol, system, seeds, against=against)
    return test


def picks_table(rows: Sequence[dict[str, Any]]) -> str:
    lines: list[str] = []
    for pkg in ORDER:
        for protocol in ("full", "partial"):
            runs = _runs(rows, pkg, protocol, "picks")
            if not runs:
                continue
            heavy_runs = _runs(rows, pkg, protocol, "picks-heavy")
            f = _picks_figures(pkg, protocol, runs, heavy_runs)
            heavy = "-" if f["heavy"] is None else f"{f['heavy']:+.3f} ({len(heavy_runs)} seeds)"
            lines.append(
                f"| {pkg} | {protocol} | {runs[0]['picks']} | {runs[0]['queries']} | "
                f"{_fmt(f['base'])} | {_fmt(f['adapter'])} | {f['mean']:.3f} | "
                f"**{_signed(f['lift'])}** | {_signed(f['over'])} | {heavy} |"
            )
    columns = ["package", "protocol", "picks played:", "queries measured:", "base:"]
    columns += ["adapter, no picks:", "adapter + picks:", "picks' lift over the adapter:"]
    columns += ["over base:", "picks weighing 5, not 2: over base:"]
    return _table(columns, lines)


def _measured_at(rows: Sequence[dict[str, Any]]) -> str:
    """Which code measured each package: ranking changes move base and trained rows alike,
    so lifts compare only within a package measured at one commit."""
    by_commit: dict[str, list[str]] = {}
    for pkg in ORDER:
        commits = sorted({r.get("commit") or "before" for r in rows if r["package"] == pkg})
        if commits:
            by_commit.setdefault(", ".join(commits), []).append(pkg)
    said = [
        f"{', '.join(pkgs)}: "
        + (
            "the ranking before issue 15's (rows without a commit)"
            if key == "before"
            else f"commit {key}"
        )
        for key, pkgs in by_commit.items()
    ]
    return "Measured at: " + "; ".join(said) + "."


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _picks_figures(
    pkg: str,
    protocol: str,
    runs: Sequence[dict[str, Any]],
    heavy_runs: Sequence[dict[str, Any]],
) -> dict[str, float | None]:
    """The picks table's figures: the runs' `mean`; `base` and `adapter` (same seeds) on the
    queries the picks runs measured; the picks' `lift` over the adapter, the runs' change
    `over` base and that of `heavy_runs`. Base and the adapter come from the ranks when
    they are all here, else every figure that needs them is as kept (`KEPT`)."""
    seeds = [r["seed"] for r in runs]
    mean = statistics.fmean(r["mrr"][MODE] for r in runs)
    ids = _measured_ids(pkg, protocol, runs)
    base = _mean_on(pkg, protocol, "base", [None], ids)
    adapter = _mean_on(pkg, protocol, "adapter", seeds, ids)
    heavy = statistics.fmean(r["mrr"][MODE] for r in heavy_runs) if heavy_runs else None
    kept = _kept_entry("picks", pkg, protocol, "picks", seeds)
    if (base is None or adapter is None) and kept is not None:
        figures = {k: kept[k] for k in ("base", "adapter", "lift", "over")}
        return {"mean": mean, **figures, "heavy": kept.get("heavy") if heavy_runs else None}
    return {
        "mean": mean,
        "base": base,
        "adapter": adapter,
        "lift": None if adapter is None else mean - adapter,
        "over": None if base is None else mean - base,
        "heavy": None if heavy is None or base is None else heavy - base,
    }


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _measured_ids(pkg: str, protocol: str, runs: Sequence[dict[str, Any]]) -> list[str]:
    from bench.learning import load_ranks, ranks_path

    path = ranks_path(pkg, protocol, "picks", runs[0]["seed"])
    return sorted(load_ranks(path)[MODE]) if path.exists() else []


def _mean_on(
    pkg: str, protocol: str, system: str, seeds: Sequence[int | None], ids: Sequence[str]
) -> float | None:
    """Mean MRR@10 of `system` over `seeds`, on the queries `ids` only."""
    from bench.learning import load_ranks, ranks_path

    paths = [ranks_path(pkg, protocol, system, s) for s in seeds]
    if not ids or not all(p.exists() for p in paths):
        return None
    return statistics.fmean(statistics.fmean(load_ranks(p)[MODE][i] for i in ids) for p in paths)


def timing_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| package | protocol | chunks | adapter run, wall (s) | CPU (s) | of which fitting, "
        "wall (s) | pairs | promoted (seeds) | cross-fitted MRR@10 before -> after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for pkg in ORDER:
        for protocol in ("full", "partial"):
            runs = [r for r in _runs(rows, pkg, protocol, "adapter") if r.get("train")]
            if not runs:
                continue
            t = [r["train"] for r in runs]
            took = statistics.fmean(x["adapter_s"] for x in t if x.get("adapter_s") is not None)
            fit = statistics.fmean(x["adapter_fit_s"] for x in t if x.get("adapter_fit_s"))
            cpu = [x["train_cpu_s"] for x in t if x.get("train_cpu_s") is not None]
            cpu_s = f"{statistics.fmean(cpu):.0f}" if cpu else "-"
            promoted = sum(x["adapter_status"] == "promoted" for x in t)
            held = ", ".join(
                f"{x['adapter_heldout'][0]:.3f} -> {x['adapter_heldout'][1]:.3f}"
                for x in t
                if x["adapter_heldout"][0] is not None
            )
            lines.append(
                f"| {pkg} | {protocol} | {runs[0].get('chunks', '-')} | {took:.0f} | {cpu_s} | "
                f"{fit:.0f} | "
                f"{t[0].get('adapter_train_pairs', '-')} | {promoted}/{len(t)} | {held} |"
            )
    return "\n".join(lines)


def swap_lines() -> str:
    path = RESULTS / "adapter_swap.json"
    if not path.exists():
        return "The adapter swap through the server: not run yet (`python -m bench.adapter_swap`)."
    r = json.loads(path.read_text())
    s = r["search"]
    return (
        f"The adapter swap through a real `kenning serve` ({r['package']}, "
        f"{r['workspace']['chunks']} chunks; `{r['command']}`, {r['date']}, load average "
        f"{r['load_avg_1m']}): the run ({r['run']['took_s']} s) promoted adapter "
        f"with held-out MRR@10 {r['run']['heldout_mrr'][0]:.3f} -> "
        f"{r['run']['heldout_mrr'][1]:.3f}; the first search mapped by it came "
        f"**{r['swap_s']} s** after its promotion (target <= 1 s). {r['searches']} searches, "
        f"{len(r['failures'])} failed, {r['empty_answers']} empty; round trip p50/p95 "
        f"{s['before']['p50_ms']}/{s['before']['p95_ms']} ms before, "
        f"{s['training']['p50_ms']}/{s['training']['p95_ms']} ms while it trained, "
        f"{s['after']['p50_ms']}/{s['after']['p95_ms']} ms after; generation "
        f"{r['generation'][0]} -> {r['generation'][1]} and chunk texts embedded since start "
        f"{r['embedded_since_start'][0]} -> {r['embedded_since_start'][1]} (nothing re-embedded)."
    )


def learning_section() -> str:
    rows = _rows()
    if not rows:
        return "## Learning\n\nNot run yet: `python -m bench.learning`.\n"
    parts = [
        "## Learning: query adapter, full fine-tune, picks\n",
        "Command: `python -m bench.learning` (see its docstring; per-query ranks in "
        "`bench/results/learning/`). Hybrid MRR@10 on the benchmark queries, which training "
        "never sees. Each trained cell: the mean over seeds (min-max), **the change from "
        "base**, queries better/worse and the Wilcoxon p of the per-query reciprocal ranks "
        "(averaged over seeds) against base. A cell with a spread ran several seeds (the "
        "adapter and picks 42, 43, 44; the fine-tune and `both` 42, 43 and 44 on the partly "
        "documented protocol, 42 and 43 on the full one), one that says 1 seed ran seed 42 "
        "alone. The fine-tune and "
        "`both` columns are the fine-tune as it is now (at least 60 steps, held-out files "
        "chosen by the pairs that measure; both changes are below). `both` = the "
        "fine-tuned index plus an adapter trained on it. The adapter's knobs were chosen on "
        "tqdm, marshmallow and flask; the packages marked untouched were not looked at while "
        "choosing. " + _measured_at(rows) + "\n",
    ]
    for protocol, title in (
        ("partial", "Partly documented protocol (half the query functions keep their docstrings)"),
        ("full", "Full protocol (every query function's docstring removed)"),
    ):
        table, deltas = quality_table(rows, protocol)
        if table.count("\n") <= 1:
            continue
        parts.append(f"### {title}\n\n{table}\n")
        macro = []
        for group, by_system in deltas.items():
            for system, values in by_system.items():
                macro.append(f"{system} {statistics.fmean(values):+.3f} ({group}, {len(values)})")
        if macro:
            parts.append("Mean change from base: " + "; ".join(macro) + ".\n")
    fusion = fusion_table(rows)
    if fusion:
        parts.append(
            "### Fusion once the model is trained\n\nA query adapter or a fine-tuned checkpoint "
            "knows the workspace's own words, so hybrid search gives its ranking more of the "
            "say: it weighs `Ranking.trained_dense_weight` (2.5) in the fusion instead of the "
            "bundled model's 1.5. The same trained indexes, measured with each weight "
            "(`bench.learning --remeasure`), before the adapter's cross-fit stopped measuring "
            "pairs into tests' own code (the `*-testsmeasured` rows); the change is paired per "
            "query where both sides' ranks were kept. The weight was "
            "chosen on the tuning packages' indexes (1.5 to 6 tried: 2.5 best on their mean); "
            "werkzeug and more-itertools were measured after it was chosen.\n\n" + fusion + "\n"
        )
    sweep = weight_sweep_table(rows)
    if sweep:
        parts.append(
            "### The trained model's weight, swept\n\nThe weight above again, on today's "
            "trained indexes (`python -m bench.fusion_weight`): "
            "hybrid MRR@10's change from base with the trained model weighing each weight, "
            "the mean over the seeds each system ran (the full protocol's adapter indexes "
            "were not kept, so it has no rows). Nothing else in the ranking changes. On the "
            "tuning packages 2 to 3 are within 0.003 of each other in every row of means and "
            "higher weights lose (6: -0.008 for the adapter, partly documented), so the weight "
            "stays 2.5. The untouched packages' partly documented indexes gain more at 6 to 10 "
            "(`both` +0.055 at 10 against +0.041), their full ones do not. Choosing the weight "
            "per workspace would need hybrid search measured on held-out pairs, and the "
            "trainer cannot measure the words' side fairly: the index still holds each pair's "
            "own description, which the words would match.\n\n" + sweep + "\n"
        )
    ablations = ablation_table(rows)
    if ablations:
        parts.append(
            "### Ablations of the adapter\n\nThe same packages, protocols and seeds with "
            "the adapter changed in one way: *one held-out split* is the adapter as it was "
            "before cross-fitting (the penalty chosen on a validation split of the training "
            "files, the gate on one held-out fifth of the files; measured at the commits the "
            "header lists for these packages, on the same ranking); *minibatches of 512 "
            "pairs* is the fit as it was before every pair went into every step (only "
            "werkzeug has enough pairs for it to differ; its ranks were not kept, so no "
            "paired test); *folds by chunk* keeps "
            "the pairs of one chunk together in cross-fitting instead of those of one file "
            "(the kept adapter is the same whenever the same penalty wins); *penalty chosen on "
            "docstring and pick pairs* lets only those kinds choose it (the gate still "
            "measures every kind); the others take "
            "one ingredient out (hard negatives and file siblings replaced by as many random "
            "chunks, or no identifier pairs mined); *without pairs into tests' own code* drops "
            "the pairs whose answer is a test (its docstring, comment, signature) from training "
            "and measuring; *measured on pairs into tests' own code too* is the adapter as it "
            "was before those pairs only trained (copied rows, same indexes and ranking): the "
            "other ablations were run with that rule, so compare them with that column; "
            "*kept adapter fitted on the held-out files too* keeps the same cross-fit and "
            "verdict but fits the adapter that searches use on every pair, not on the run's "
            "training side alone (so `kenning eval` and the next fine-tune's gate would "
            "measure it on pairs it saw). "
            "*One held-out split* and *minibatches of "
            "512 pairs* were measured while a trained model weighed 1.5 in fusion: compare them "
            "with the column beside the adapter, measured the same way. The adapter column is "
            "the adapter now; the ablations before *kept adapter fitted on the held-out "
            "files too* ran before the fine-tune's held-out files were chosen by the pairs "
            "that measure (*adapter, before* in the table after next).\n\n" + ablations + "\n"
        )
    weak = ablation_table(rows, WEAK_COLUMNS)
    if weak:
        parts.append(
            "### The adapter's weak pairs\n\nSignature and identifier pairs (a definition's "
            "signature or its name split into words, each to its code) are most of what a "
            "workspace offers, and no one searches that way: they train but never measure, "
            "and `TrainOptions.max_signature_share` (0.5) keeps them to at most half of the "
            "training pairs. Here the adapter ran with that share at 0.25 and at 0, same seeds and "
            "ranking, the partly documented protocol only. Without them the tuning packages "
            "gain +0.036 on average against the adapter's +0.028, all of it tqdm's (25 "
            "queries); the untouched ones gain the same either way (+0.027), so the share "
            "stays at 0.5.\n\n" + weak + "\n"
        )
    finetune = finetune_table(rows)
    if finetune:
        parts.append(
            "### The fine-tune's budget\n\nThe full fine-tune makes one pass over its "
            "training pairs (`train.epochs` 1) in optimizer steps of 32 pairs, and repeats small "
            "data until the run has at least `--min-steps` steps. That floor was 20: 20 steps on "
            "these packages (23 on werkzeug), the full protocol's *before* columns below. "
            "It is 60 now, chosen on tqdm, marshmallow and flask with this table (werkzeug and "
            "more-itertools measured after): about five minutes of steps on this CPU (the "
            "whole run six to eight), seconds on a GPU. Beside "
            "them, three passes (24 steps on tqdm, 33 on marshmallow, 42 on flask, 69 on "
            "werkzeug; more-itertools, with the fewest pairs, stays at 20) and a learning rate "
            "of 1e-4 instead of 3e-5 (same steps, same time); `both` stacks the adapter on "
            "each. One seed, 42, the one every column ran; the 20-step columns' ranks were "
            "lost with an earlier checkout, so they have no paired test. All of them ran "
            "before the held-out files were chosen by the pairs that measure (next table)."
            "\n\n" + finetune + "\n"
        )
    split = split_table(rows)
    if split:
        parts.append(
            "### The fine-tune's held-out files\n\nThe fine-tune's gate measures it on whole "
            "held-out files. They were drawn in a seeded order until they held a fifth of all "
            "the pairs, signatures and tests' own code included, so one large test file could "
            "be the whole held-out side (with seed 43, tqdm and more-itertools held out only "
            "tests) and the gate judged a fine-tune on tests' docstrings. Now they are drawn, "
            "and counted, by the pairs that measure (`pairs.is_measured`, the adapter's rule), "
            "and a file without one stays on the training side. The adapter moves only "
            "through the pairs its kept fit leaves out. *Before*: the rows of the tables "
            "above as they were (copied as the `*-splitall` systems); *now*: run again "
            "after the change, the fine-tune at least 60 steps, on the seeds both ran."
            "\n\n" + split + "\n"
        )
    full = full_protocol_table(rows)
    if full:
        parts.append(
            "### The fine-tune on the full protocol\n\nThe tables above measured the two "
            "changes to the fine-tune on the partly documented protocol. On the full one it "
            "ran before them (at least 20 steps, held-out files counted by every pair) and "
            "again after both (at least 60 steps, counted by the pairs that measure: the main "
            "table's columns), on the seeds both ran.\n\n" + full + "\n"
        )
    picks = picks_table(rows)
    if picks:
        parts.append(
            "### Picks\n\nHalf of a package's queries (a stable half) are played as picks "
            "through the store the server writes for `kenning/feedback`, up to the number "
            "shown; the adapter is then trained (mined pairs plus picks) and only the other "
            "half is measured, next to base and to the adapter without picks (same seeds, "
            "same queries). The last column is an ablation: each pick weighs 5 in the "
            "adapter's loss instead of 2 (`bench.learning` system `picks-heavy`; run while "
            "pairs into tests' own code were still measured).\n\n" + picks + "\n"
        )
    parts.append(
        "### Training time\n\n`kenning train --parts adapter` in the benchmark process, mean "
        "over seeds, on this shared 2-core CPU (load average in the header; the fit runs on "
        "one thread when the other cores are busy). The run includes mining the workspace, "
        "loading the model and embedding the queries and the cut positives.\n\n"
        + timing_table(rows)
        + "\n"
    )
    parts.append("### The swap\n\n" + swap_lines() + "\n")
    return "\n".join(parts)


_TESTED = re.compile(r"(\d+)/(\d+), p=([0-9.e+-]+)")
_QUALITY_HEADINGS = {"### Partly documented protocol": "partial", "### Full protocol": "full"}


def kept_from_report(text: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The figures in `text` (a RESULTS.md this module rendered) that only per-query ranks
    can give: every paired test (better/worse, p) and the picks table's baselines, keyed
    by the runs of `rows` (the summary) they were computed over."""
    kept: list[dict[str, Any]] = []
    titles = {title: system for system, title in (*ABLATION_COLUMNS, *WEAK_COLUMNS)}
    heading, columns = "", []
    for line in text.splitlines():
        if line.startswith(("## ", "### ")):
            heading, columns = line, []
            continue
        if not line.startswith("| ") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if cells[0] == "package":
            columns = cells
            continue
        pkg = cells[0].removesuffix(" (untouched)")
        protocol = next((v for k, v in _QUALITY_HEADINGS.items() if heading.startswith(k)), "")
        found: list[tuple[str, str, str, str]] = []  # (protocol, system, against, cell)
        if protocol:
            systems = QUALITY_SYSTEMS[protocol]
            found = [(protocol, s, "base", c) for s, c in zip(systems, cells[3:], strict=False)]
        elif heading.startswith("### Fusion"):
            system = cells[2]
            found = [(cells[1], FUSION_NOW.get(system, system), f"{system}-w1.5", cells[-1])]
        elif heading.startswith(("### Ablations", "### The adapter's weak pairs")):
            for title, cell in zip(columns[3:], cells[3:], strict=False):
                system = "adapter" if title == "adapter" else titles.get(title, "")
                if system:
                    found.append((cells[1], system, "base", cell))
        elif heading.startswith("### Picks") and "-" not in (cells[4], cells[5]):
            heavy = cells[9].split(" ", 1)[0]
            kept.append(
                {
                    "kind": "picks",
                    "package": pkg,
                    "protocol": cells[1],
                    "system": "picks",
                    "seeds": _seeds(rows, pkg, cells[1], "picks"),
                    "base": float(cells[4]),
                    "adapter": float(cells[5]),
                    "lift": float(cells[7].strip("*")),
                    "over": float(cells[8]),
                    "heavy": None if heavy == "-" else float(heavy),
                }
            )
        for protocol, system, against, cell in found:
            tested = _TESTED.search(cell)
            seeds = _seeds(rows, pkg, protocol, system)
            if against != "base":  # the fusion table pairs the seeds both sides ran
                seeds = sorted(set(seeds) & set(_seeds(rows, pkg, protocol, against)))
            if tested and seeds:
                kept.append(
                    {
                        "kind": "paired",
                        "package": pkg,
                        "protocol": protocol,
                        "system": system,
                        "against": against,
                        "seeds": seeds,
                        "better": int(tested[1]),
                        "worse": int(tested[2]),
                        "wilcoxon_p": float(tested[3]),
                    }
                )
    # The adapter's column appears in two tables: keep each figure once.
    figures = ("better", "worse", "wilcoxon_p", "base", "adapter", "lift", "over", "heavy")
    unique = {
        json.dumps({k: v for k, v in e.items() if k not in figures}, sort_keys=True): e
        for e in kept
    }
    return list(unique.values())


def _seeds(rows: Sequence[dict[str, Any]], pkg: str, protocol: str, system: str) -> list[Any]:
    return sorted(r["seed"] for r in _runs(rows, pkg, protocol, system))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.learning_report", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--keep-from",
        type=Path,
        required=True,
        help="a RESULTS.md rendered from ranks that are about to be lost (or are gone)",
    )
    args = parser.parse_args(argv)
    kept = kept_from_report(args.keep_from.read_text(), _rows())
    KEPT.write_text(json.dumps(kept, indent=1) + "\n")
    print(f"kept {len(kept)} figures in {KEPT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
