"""`kenning train --nproc 2`: the same run in two DDP processes over gloo on the
CPU, with the tiny test model. It promotes or rejects as a single-process run
does, and only process 0 writes checkpoints, history and the promotion."""

from __future__ import annotations

import json

from kenning.server.cli import main
from kenning.trainer import checkpoints as ckpt
from kenning.trainer.distributed import launch
from kenning.trainer.options import TrainOptions
from kenning.trainer.run import train_workspace

LEARNS = TrainOptions(
    parts="model",
    batch_size=16,
    max_pairs=200,
    min_steps=40,
    max_seq_length=64,
    lr=3e-3,
    save_steps=1000,
    max_signature_share=0.0,
)
"""A randomly initialised model learns this vocabulary (see test_train_run.py). Without the
weak kinds (signatures, bare identifiers): with them the tiny model's gain is within noise, and
two processes' different float sums then land on either side of the gate."""


def settings(index_dir, tiny_model) -> dict:
    return {"index_dir": str(index_dir), "model": str(tiny_model), "device": "cpu"}


def test_two_processes_promote_as_one_process_does(shopcart, tmp_path, tiny_model):
    alone = train_workspace(shopcart, settings(tmp_path / "one", tiny_model), LEARNS)
    index_dir = tmp_path / "two"
    both = launch(shopcart, settings(index_dir, tiny_model), LEARNS, 2)
    assert both is not None and "error" not in both
    assert alone.status == both["status"] == "promoted", both["reason"]
    assert both["after"]["mrr_at_10"] > both["before"]["mrr_at_10"]
    assert both["training"]["processes"] == 2 and alone.training["processes"] == 1
    assert both["training"]["steps"] == alone.training["steps"]  # the batch is split, not doubled
    # One process wrote: one checkpoint, one history record, one pointer.
    [folder] = (index_dir / "trainer" / "checkpoints").iterdir()
    assert ckpt.verify_checkpoint(folder)["gate"]["passed"] is True
    assert ckpt.read_pointer(index_dir)["checkpoint"] == folder.name == both["checkpoint"]
    assert len(ckpt.read_history(index_dir)) == 1


def test_cli_nproc_2_rejects_a_model_that_cannot_win(shopcart, tmp_path, tiny_model, capsys):
    # A learning rate too small to move any float32 weight: the new model ranks
    # every held-out query as the old one did, so the gate must refuse it.
    code = main(
        [
            "train",
            str(shopcart),
            "--parts",
            "model",
            "--nproc",
            "2",
            "--lr",
            "1e-12",
            "--batch-size",
            "8",
            "--max-pairs",
            "16",
            "--min-steps",
            "2",
            "--json",
            "--index-dir",
            str(tmp_path / "index"),
            "--model",
            str(tiny_model),
            "--device",
            "cpu",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "rejected" and "not better" in result["reason"]
    assert result["training"]["processes"] == 2
    assert ckpt.read_pointer(tmp_path / "index") is None
    assert not any((tmp_path / "index" / "trainer" / "checkpoints").iterdir())
    [record] = ckpt.read_history(tmp_path / "index")
    assert record["status"] == "rejected" and record["training"]["processes"] == 2


def test_nproc_below_one_is_a_usage_error(shopcart, tmp_path, capsys):
    code = main(["train", str(shopcart), "--nproc", "0", "--index-dir", str(tmp_path / "i")])
    assert code == 2 and "--nproc must be at least 1" in capsys.readouterr().err
