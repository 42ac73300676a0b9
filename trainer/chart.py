"""The training chart: loss and held-out MRR@10 across every run, redrawn after each."""

from __future__ import annotations

from pathlib import Path

from . import checkpoints as ckpt


def write_chart(index_dir: Path) -> str:
    """Redraw the PNG of training loss and held-out MRR@10 across all runs; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in ckpt.read_history(index_dir) if r.get("training")]
    path = ckpt.trainer_dir(index_dir) / ckpt.CHART_NAME
    fig, (ax_loss, ax_mrr) = plt.subplots(1, 2, figsize=(11, 4))
    for i, r in enumerate(runs, 1):
        losses = r["training"].get("losses") or []
        if losses:
            steps, values = zip(*losses, strict=True)
            ax_loss.plot(steps, values, label=f"run {i} ({_model_status(r)})", linewidth=1)
    ax_loss.set(title="training loss (MNRL)", xlabel="optimizer step", ylabel="loss")
    if runs:
        ax_loss.legend(fontsize="small")
    xs = list(range(1, len(runs) + 1))
    before = [r.get("mrr_before") for r in runs]
    after = [r.get("mrr_after") for r in runs]
    ax_mrr.plot(xs, before, "o--", color="grey", label="current model")
    ax_mrr.plot(xs, after, "s-", color="tab:blue", label="new checkpoint")
    for x, r, y in zip(xs, runs, after, strict=True):
        if _model_status(r) == "promoted" and y is not None:
            ax_mrr.annotate(
                "promoted",
                (x, y),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize="small",
            )
    ax_mrr.set(title="held-out MRR@10", xlabel="run", ylabel="MRR@10")
    ax_mrr.margins(x=0.1, y=0.15)
    ax_mrr.set_xticks(xs)
    ax_mrr.legend(fontsize="small")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return str(path)


def _model_status(record: dict) -> str:
    """The fine-tune's own outcome (a run may also have promoted an adapter)."""
    return record.get("model_status") or record["status"]
