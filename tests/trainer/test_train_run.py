"""Whole retraining runs on CPU: a real (short) run with the bundled model, the
gate promoting and rejecting, resuming after an interruption, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from kenning.server.cli import main
from kenning.trainer import checkpoints as ckpt
from kenning.trainer import finetune as ft
from kenning.trainer.pairs import Pair
from kenning.trainer.run import DeviceUnavailable, TrainOptions, limit_kind, train_workspace
from transformers import TrainerCallback

# Small and quick: a handful of steps on a few pairs, short sequences. These tests are
# about the full fine-tune; the query adapter has its own (test_adapter.py).
QUICK = TrainOptions(
    parts="model", batch_size=8, max_pairs=24, min_steps=6, max_seq_length=32, save_steps=100
)


def settings(tmp_path: Path, model: Path | None = None) -> dict:
    out = {"index_dir": str(tmp_path / "index"), "device": "cpu", "max_seq_length": 64}
    if model is not None:
        out["model"] = str(model)
    return out


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_real_short_run_with_the_bundled_model(shopcart, tmp_path):
    index_dir = tmp_path / "index"
    result = train_workspace(
        shopcart,
        settings(tmp_path),
        QUICK.__class__(**{**QUICK.__dict__, "lr": 1e-4, "max_pairs": 16, "min_steps": 8}),
    )
    assert result.status in ("promoted", "rejected"), result.reason
    losses = [loss for _, loss in result.training["losses"]]
    assert len(losses) == 8 == result.training["steps"]
    assert sum(losses[-2:]) < sum(losses[:2])  # the same 16 pairs, four times over: loss falls
    assert result.before.queries == result.heldout_pairs >= 10
    assert result.pairs["docstring"] > 0 and result.train_pairs == 16
    history = ckpt.read_history(index_dir)
    assert [r["status"] for r in history] == [result.status]
    assert Path(result.chart_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = index_dir / "trainer" / "checkpoints" / result.checkpoint
    if result.promoted:
        card = ckpt.verify_checkpoint(folder)
        assert card["metrics"]["before"]["mrr_at_10"] == pytest.approx(result.before.mrr_at_10)
        assert card["metrics"]["after"]["mrr_at_10"] > card["metrics"]["before"]["mrr_at_10"]
        assert card["root_model"] == "all-MiniLM-L6-v2" and card["training"]["device"] == "cpu"
        assert card["versions"]["sentence-transformers"] and card["pairs"]["mined"]["docstring"] > 0
        assert not [f for f in files_under(folder) if f.endswith(ckpt.PICKLE_SUFFIXES)]
        assert ckpt.promoted_model(index_dir, "all-MiniLM-L6-v2").version == result.checkpoint
    else:
        assert not folder.exists() and ckpt.read_pointer(index_dir) is None
    assert not (index_dir / "trainer" / "work").exists() or not any(
        (index_dir / "trainer" / "work").iterdir()
    )


def test_the_gate_promotes_a_model_that_learned(shopcart, tmp_path, tiny_model):
    # A randomly initialised model starts near chance; a few hundred pairs'
    # worth of steps at a high rate teach it this vocabulary.
    options = TrainOptions(
        parts="model",
        batch_size=16,
        max_pairs=200,
        min_steps=40,
        max_seq_length=64,
        lr=3e-3,
        save_steps=1000,
    )
    result = train_workspace(shopcart, settings(tmp_path, tiny_model), options)
    assert result.status == "promoted", result.reason
    assert result.after.mrr_at_10 > result.before.mrr_at_10
    card = ckpt.verify_checkpoint(
        tmp_path / "index" / "trainer" / "checkpoints" / result.checkpoint
    )
    assert card["gate"] == {
        "passed": True,
        "bypassed": False,
        "no_gate": False,
        "reason": result.reason,
    }
    assert card["paired_test"]["queries"] == result.heldout_pairs
    assert result.model_after == f"tiny-bert@{result.checkpoint}"


CANNOT_WIN = TrainOptions(
    parts="model",
    batch_size=8,
    max_pairs=16,
    min_steps=2,
    max_seq_length=32,
    lr=1e-12,
    save_steps=100,
)


def frozen(location: str, device: str):
    """A model that cannot win: every gradient is zeroed (and the learning rate is too
    small for weight decay to move a float32), so training leaves each weight exactly
    as it was and the new model ranks every query as the old one did."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(location, device=device, local_files_only=True)
    for p in model.parameters():
        p.register_hook(torch.zeros_like)
    return model


def test_the_gate_rejects_a_model_that_cannot_win(shopcart, tmp_path, tiny_model):
    result = train_workspace(
        shopcart, settings(tmp_path, tiny_model), CANNOT_WIN, load_model=frozen
    )
    assert result.status == "rejected"
    assert result.after.ranks == result.before.ranks
    assert "not better than the current model" in result.reason
    index_dir = tmp_path / "index"
    assert ckpt.read_pointer(index_dir) is None
    assert not (index_dir / "trainer" / "checkpoints" / result.checkpoint).exists()
    [record] = ckpt.read_history(index_dir)
    assert record["status"] == "rejected" and record["reason"] == result.reason
    assert record["mrr_after"] == record["mrr_before"]


def test_no_gate_promotes_anyway_and_says_so_in_the_card(shopcart, tmp_path, tiny_model):
    options = TrainOptions(**{**CANNOT_WIN.__dict__, "no_gate": True})
    result = train_workspace(shopcart, settings(tmp_path, tiny_model), options, load_model=frozen)
    assert result.status == "promoted" and "--no-gate" in result.reason
    card = ckpt.verify_checkpoint(
        tmp_path / "index" / "trainer" / "checkpoints" / result.checkpoint
    )
    assert card["gate"]["bypassed"] is True and card["gate"]["passed"] is False
    assert ckpt.promoted_model(tmp_path / "index", str(tiny_model)).version == result.checkpoint


def test_too_few_pairs_means_one_clear_line_and_no_training(tmp_path, capsys):
    ws = tmp_path / "small"
    ws.mkdir()
    (ws / "util.py").write_text(
        'def add(a, b):\n    """Add two numbers together and return the sum."""\n'
        "    total = a + b\n    return total\n"
    )
    code = main(["train", str(ws), "--index-dir", str(tmp_path / "index"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    line = err[-1]
    assert line.startswith("kenning: not enough held-out pairs to measure a new model: 0 from")
    # What was found, by kind, and what would help.
    assert "Found 1 docstring, 1 signature. What would help" in line
    assert "docstrings or leading comments" in line and "opening search results" in line
    assert not (tmp_path / "index" / "trainer" / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_a_usage_error(shopcart, tmp_path, capsys):
    code = main(
        ["train", str(shopcart), "--index-dir", str(tmp_path / "index"), "--device", "cuda"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "no CUDA GPU is available" in err
    with pytest.raises(DeviceUnavailable):
        train_workspace(
            shopcart, {"index_dir": str(tmp_path / "index")}, TrainOptions(device="cuda")
        )


def test_out_of_memory_halves_the_batch_and_retries(monkeypatch, tmp_path):
    seen = []

    def fake_run(location, pairs, work_dir, config, batch_size, *rest):
        seen.append(batch_size)
        if batch_size > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "model", ft.FinetuneResult(
            steps=1, epochs=1.0, batch_size=batch_size, oom_retries=rest[-1]
        )

    monkeypatch.setattr(ft, "_run", fake_run)
    pairs = [object()] * 100
    model, result = ft.finetune(
        "m", pairs, tmp_path / "work", ft.FinetuneConfig(batch_size=32, device="cuda")
    )
    assert seen == [32, 16, 8] and result.batch_size == 8 and result.oom_retries == 2


def test_out_of_memory_at_the_smallest_batch_gives_up_and_keeps_the_model(
    monkeypatch, shopcart, tmp_path, tiny_model
):
    previous = train_workspace(
        shopcart,
        settings(tmp_path, tiny_model),
        TrainOptions(**{**CANNOT_WIN.__dict__, "no_gate": True}),
    )
    seen = []

    def always_oom(location, pairs, work_dir, config, batch_size, *rest):
        seen.append(batch_size)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ft, "_run", always_oom)
    result = train_workspace(
        shopcart, settings(tmp_path, tiny_model), TrainOptions(parts="model", batch_size=32)
    )
    assert seen == [32, 16, 8, 4]
    assert result.status == "failed" and "out of memory even at batch size 4" in result.reason
    assert ckpt.promoted_model(tmp_path / "index", str(tiny_model)).version == previous.checkpoint
    assert ckpt.read_history(tmp_path / "index")[-1]["status"] == "failed"


class StopAfterSave(TrainerCallback):
    """Simulates Ctrl-C right after the trainer saved step `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt


def test_an_interrupted_run_keeps_the_model_and_resumes(shopcart, tmp_path, tiny_model):
    index_dir = tmp_path / "index"
    first = train_workspace(
        shopcart,
        settings(tmp_path, tiny_model),
        TrainOptions(**{**CANNOT_WIN.__dict__, "no_gate": True}),
    )
    pointer = (index_dir / "trainer" / "promoted.json").read_bytes()
    options = TrainOptions(
        parts="model",
        batch_size=8,
        max_pairs=32,
        min_steps=6,
        max_seq_length=32,
        lr=1e-3,
        save_steps=2,
        no_gate=True,
    )
    with pytest.raises(KeyboardInterrupt):
        train_workspace(
            shopcart, settings(tmp_path, tiny_model), options, callbacks=[StopAfterSave(2)]
        )
    assert (index_dir / "trainer" / "promoted.json").read_bytes() == pointer
    assert ckpt.promoted_model(index_dir, str(tiny_model)).version == first.checkpoint
    [work] = list((index_dir / "trainer" / "work").iterdir())
    saved = files_under(work / "checkpoint-2")
    assert (
        "model.safetensors" in saved
        and "optimizer.safetensors" in saved
        and "rng_state.safetensors" in saved
    )
    assert not [
        f for f in saved if f.endswith(ckpt.PICKLE_SUFFIXES)
    ]  # no training_args.bin, optimizer.pt...

    resumed = train_workspace(shopcart, settings(tmp_path, tiny_model), options)
    assert resumed.training["resumed_from_step"] == 2
    assert resumed.training["steps"] == 6 and [s for s, _ in resumed.training["losses"]] == [
        3,
        4,
        5,
        6,
    ]
    assert resumed.status == "promoted" and resumed.checkpoint != first.checkpoint
    assert not work.exists()

    # The same run without interruption ends with the same weights: resuming
    # restored the optimizer, scheduler and random state, not just the model.
    fresh_dir = tmp_path / "fresh"
    straight = train_workspace(
        shopcart, {**settings(tmp_path, tiny_model), "index_dir": str(fresh_dir)}, options
    )
    assert [s for s, _ in straight.training["losses"]] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in straight.training["losses"][2:]] == pytest.approx(
        [v for _, v in resumed.training["losses"]], rel=1e-4
    )


def test_cli_train_eval_and_search_use_the_promoted_model(shopcart, tmp_path, tiny_model, capsys):
    common = ["--index-dir", str(tmp_path / "index"), "--model", str(tiny_model), "--device", "cpu"]
    assert main(["eval", str(shopcart), "--json", *common]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["model"] == "tiny-bert@base" and before["metrics"]["queries"] >= 10
    assert set(before["metrics"]) >= {"mrr_at_10", "recall_at_1", "recall_at_10", "by_kind"}

    code = main(
        [
            "train",
            str(shopcart),
            "--parts",
            "model",
            "--no-gate",
            "--max-pairs",
            "32",
            "--min-steps",
            "2",
            "--batch-size",
            "16",
            *common,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("promoted: held-out MRR@10")
    chart = [ln.split(None, 1)[1] for ln in out.splitlines() if ln.startswith("chart")]
    assert chart and Path(chart[0]).is_file()
    version = ckpt.read_pointer(tmp_path / "index")["checkpoint"]

    assert main(["eval", str(shopcart), "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == f"tiny-bert@{version}"
    assert (
        main(
            [
                "search",
                "parse a price typed by a person",
                "--workspace",
                str(shopcart),
                "--json",
                *common,
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert found["model"] == f"tiny-bert@{version}" and found["results"]


def test_a_workspace_copy_without_git_still_trains(tmp_path, shopcart, tiny_model):
    # Guard against the history miner requiring git: the fixture has no .git.
    assert not (shopcart / ".git").exists()
    shutil.rmtree(shopcart / "tests")
    result = train_workspace(
        shopcart, settings(tmp_path, tiny_model), CANNOT_WIN, load_model=frozen
    )
    assert result.pairs["commit"] == 0 and result.pairs["test"] == 0 and result.status == "rejected"


def test_signature_pairs_are_capped_in_training_and_never_held_out(shopcart, tmp_path, tiny_model):
    pairs = [Pair(f"def f{i}(x):", f"body {i}", "signature", f"{i}.py") for i in range(30)]
    pairs += [
        Pair(f"describe thing number {i}", f"code {i}", "docstring", f"{i}.py") for i in range(10)
    ]
    capped = limit_kind(pairs, "signature", 0.5)
    assert sum(p.kind == "signature" for p in capped) == 10 and len(capped) == 20
    assert (
        limit_kind(pairs, "signature", 0.5) == capped
        and limit_kind(pairs, "signature", 1.0) == pairs
    )
    result = train_workspace(
        shopcart, settings(tmp_path, tiny_model), CANNOT_WIN, load_model=frozen
    )
    assert "signature" not in result.before.by_kind


def test_cli_train_takes_its_defaults_from_the_train_settings(
    shopcart, tmp_path, tiny_model, capsys
):
    (shopcart / "kenning.toml").write_text("[train]\nmax_pairs = 24\nbatch_size = 8\nepochs = 2\n")
    common = ["--index-dir", str(tmp_path / "index"), "--model", str(tiny_model), "--device", "cpu"]
    assert (
        main(["train", str(shopcart), "--json", "--min-steps", "1", "--max-pairs", "16", *common])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["train_pairs"] == 16  # the flag wins
    assert (
        result["training"]["batch_size"] == 8 and result["training"]["epochs"] == 2
    )  # the settings fill in
