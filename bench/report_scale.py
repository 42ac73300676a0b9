"""The "Beyond one machine" section of bench/RESULTS.md (issue 19), from
bench/results/ray_overhead.json, ann_scale.json and import_speed.json."""

from __future__ import annotations

import json
from pathlib import Path

from kenning.server.hnsw import EXPANSION_SEARCH

RESULTS = Path(__file__).resolve().parent / "results"
TITLE = "## Beyond one machine"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def ray_table(r: dict) -> str:
    ws = r["workspace"]
    lines = [
        f"Ray overhead (`python -m bench.ray_overhead`, {r['date']}): the first "
        f"{r['single']['chunks']} pending chunk texts of a {ws['files']}-file workspace "
        f"({ws['chunks']} chunks; the six bench packages side by side), bundled model, "
        f"{r['cores']} cores, load average before each run {r['load_average_before']['single']} / "
        f"{r['load_average_before']['ray']}. Target: ratio >= 0.8.",
        "",
        "| run | chunks/s end to end | steady chunks/s | first batch stored after | wall |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, label in (
        ("single", "single process"),
        ("ray", f"Ray, {r['replicas']} CPU replicas"),
    ):
        x = r[name]
        lines.append(
            f"| {label} | {x['chunks_per_s']} | {x['steady_chunks_per_s']} | "
            f"{x['first_batch_s']} s | {x['wall_s']} s |"
        )
    lines.append(f"| **ratio Ray / single** | **{r['ratio']}** | **{r['steady_ratio']}** | | |")
    lines.append(
        "\nSteady is from the first stored batch to the last. Ray's replicas finish their "
        "blocks close together, so its steady rate overstates what they sustain: compare "
        "end to end."
    )
    lines.append("\nOn a GPU machine, replicas 1 against N: not measured (no GPU available).")
    return "\n".join(lines)


def ann_table(r: dict) -> str:
    h = r["hnsw"]
    lines = [
        f"Exact against HNSW (`python -m bench.ann_scale`, {r['date']}): {r['real_vectors']} real "
        f"vectors sampled with noise ({r['noise_per_dim']} per dimension), {r['queries']} real "
        f"queries, one at a time in process; HNSW connectivity {h['connectivity']}, expansion "
        f"{h['expansion_add']} when adding, {h['expansion_search']} when searching in this run "
        f"(Kenning now searches {EXPANSION_SEARCH} wide: that column of the last cell); "
        f"load average {r['load_average']} on {r['cores']} cores. Targets at 10^6: "
        "recall@10 >= 0.98, p95 <= 20 ms.",
        "",
        "| vectors | exact p50 / p95 | HNSW f16 p50 / p95 | recall@10 | build "
        "| bytes/vector memory / file | recall@10 by search expansion |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["rows"]:
        f = row["f16"]
        by = ", ".join(
            f"{ef}: {v['recall_at_10']} ({v['p95_ms']} ms p95)"
            for ef, v in f["by_expansion_search"].items()
        )
        lines.append(
            f"| {row['vectors']:,} | {row['exact_p50_ms']} / {row['exact_p95_ms']} ms | "
            f"{f['p50_ms']} / {f['p95_ms']} ms | {f['recall_at_10']} | {f['build_s']} s | "
            f"{f['memory_bytes_per_vector']:.0f} / {f['file_bytes_per_vector']:.0f} | {by} |"
        )
    largest = max(row["vectors"] for row in r["rows"])
    if largest < 1_000_000:
        lines.append(
            f"\n10^6 vectors: not measured. The largest run is {largest:,} vectors; its HNSW "
            "build alone took "
            f"{next(row['f16']['build_s'] for row in r['rows'] if row['vectors'] == largest)} s "
            "on this shared 2-core machine, so 10^6 does not fit a benchmark slot here. "
            "docs/scale.md gives a projection, labelled as one."
        )
    for row in r["rows"]:
        if "i8" in row:
            i = row["i8"]
            lines.append(
                f"\ni8 at {row['vectors']:,}: recall@10 {i['recall_at_10']} (best "
                f"{max(v['recall_at_10'] for v in i['by_expansion_search'].values())}), "
                f"{i['memory_bytes_per_vector']:.0f} / {i['file_bytes_per_vector']:.0f} bytes a "
                "vector: recall does not hold, so the index stores f16."
            )
    return "\n".join(lines)


def import_table(r: dict) -> str:
    idx = r["index"]
    first = r["first_answer"]
    return "\n".join(
        [
            f"Prebuilt index import (`python -m bench.import_speed`, {r['date']}): "
            f"{idx['files']} files, {idx['chunks']} chunks, {idx['vectors']} vectors (random), "
            f"archive {r['archive_bytes'] / 1e6:.0f} MB; load average {r['load_average']}. "
            "Target: first answer <= 10 s.",
            "",
            "| step | time |",
            "| --- | --- |",
            f"| `kenning export` | {r['export_s']} s |",
            f"| `kenning import` into an empty folder | {r['import_s']} s |",
            f"| first answer from the imported index (fresh process: open {first['open_s']} s, "
            f"model and search {first['search_s']} s) | {r['first_answer_process_s']} s |",
            "| **time to first answer (import + first answer)** | "
            f"**{r['time_to_first_answer_s']} s** |",
            f"| `kenning index` afterwards (every file re-read; {r['reindex']['embedded']} chunks "
            f"embedded, {r['reindex']['changed_files']} files changed) | {r['reindex_s']} s |",
        ]
    )


def scale_section() -> str:
    parts = [
        (f, _load(name))
        for f, name in (
            (ray_table, "ray_overhead.json"),
            (ann_table, "ann_scale.json"),
            (import_table, "import_speed.json"),
        )
    ]
    found = [f(r) for f, r in parts if r]
    if not found:
        return (
            f"{TITLE}\n\nNot run yet: `python -m bench.ray_overhead`, `bench.ann_scale`, "
            "`bench.import_speed`.\n"
        )
    return f"{TITLE}\n\n" + "\n\n".join(found) + "\n"
