"""Checkpoints: safetensors plus a card, an atomic promotion pointer, refusal of
anything corrupt or pickled, and the engine picking the promoted model up."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from kenning.server.engine import Engine
from kenning.trainer import checkpoints as ckpt


@pytest.fixture
def tiny(tiny_model: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model), device="cpu", local_files_only=True)


def save(model, index_dir: Path, root: str = "tiny-bert") -> Path:
    card = {"root_model": root, "base_model": {"name": root, "version": "base", "location": "x"}}
    return ckpt.save_checkpoint(model, index_dir, card)


def test_a_checkpoint_is_safetensors_with_a_card_and_no_pickle(tiny, tmp_path):
    folder = save(tiny, tmp_path)
    assert folder.parent == tmp_path / "trainer" / "checkpoints"
    card = json.loads((folder / "card.json").read_text())
    assert set(card["files"]) == {"model.safetensors"}
    assert len(card["files"]["model.safetensors"]) == 64  # sha256
    assert card["root_model"] == "tiny-bert" and card["id"] == folder.name
    suffixes = {p.suffix for p in folder.rglob("*") if p.is_file()}
    assert not suffixes & set(ckpt.PICKLE_SUFFIXES)
    assert ckpt.verify_checkpoint(folder)["id"] == folder.name
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    assert {oct(p.stat().st_mode & 0o777) for p in [folder, *folder.rglob("*")]} <= {
        "0o700",
        "0o600",
    }


def test_promotion_switches_the_pointer_atomically_and_the_engine_follows(
    tiny, tiny_model, tmp_path, shopcart
):
    index_dir = tmp_path / "index"
    overrides = {"index_dir": str(index_dir), "model": str(tiny_model)}
    with Engine.open(shopcart, overrides) as engine:
        base_identity = engine.identity
        assert engine.model_ref.version == "base"
    first = save(tiny, index_dir)
    ckpt.promote(index_dir, first.name)
    ref = ckpt.promoted_model(index_dir, str(tiny_model))
    assert ref is not None and ref.version == first.name and ref.location == str(first.resolve())
    assert ref.name == "tiny-bert"
    with Engine.open(shopcart, overrides) as engine:
        assert engine.model_ref == ref
        assert engine.identity != base_identity  # so the index re-embeds
    second = save(tiny, index_dir)
    ckpt.promote(index_dir, second.name)
    pointer = json.loads((index_dir / "trainer" / "promoted.json").read_text())
    assert pointer["checkpoint"] == second.name and pointer["previous"] == [first.name]
    assert [p.name for p in (index_dir / "trainer").iterdir() if p.name.startswith(".")] == []


def test_a_corrupt_checkpoint_is_refused_and_the_previous_model_is_used(
    tiny, tiny_model, tmp_path, caplog
):
    first = save(tiny, tmp_path)
    ckpt.promote(tmp_path, first.name)
    second = save(tiny, tmp_path)
    ckpt.promote(tmp_path, second.name)
    weights = second / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        ref = ckpt.promoted_model(tmp_path, str(tiny_model))
    assert ref is not None and ref.version == first.name
    assert "does not match its checksum" in caplog.text and second.name in caplog.text
    # With every promoted checkpoint broken, the configured base model is used.
    (first / "card.json").write_text("{not json")
    assert ckpt.promoted_model(tmp_path, str(tiny_model)) is None


def test_a_checkpoint_holding_a_pickle_file_is_refused(tiny, tiny_model, tmp_path, caplog):
    folder = save(tiny, tmp_path)
    ckpt.promote(tmp_path, folder.name)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(ckpt.CheckpointError, match="pickle"):
        ckpt.verify_checkpoint(folder)
    with caplog.at_level(logging.WARNING):
        assert ckpt.promoted_model(tmp_path, str(tiny_model)) is None
    assert "pickle" in caplog.text


def test_missing_weights_or_card_are_refused(tiny, tmp_path):
    folder = save(tiny, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ckpt.CheckpointError, match="weight files differ"):
        ckpt.verify_checkpoint(folder)
    with pytest.raises(ckpt.CheckpointError, match="missing"):
        ckpt.verify_checkpoint(tmp_path / "nope")
    with pytest.raises(ckpt.CheckpointError):
        ckpt.promote(tmp_path, folder.name)
    assert ckpt.read_pointer(tmp_path) is None


def test_a_checkpoint_trained_from_another_base_is_not_used(tiny, tmp_path):
    folder = save(tiny, tmp_path, root="some-other-model")
    ckpt.promote(tmp_path, folder.name)
    assert ckpt.promoted_model(tmp_path, "all-MiniLM-L6-v2") is None


def test_discard_never_deletes_a_promoted_checkpoint(tiny, tmp_path):
    kept = save(tiny, tmp_path)
    ckpt.promote(tmp_path, kept.name)
    with pytest.raises(ckpt.CheckpointError):
        ckpt.discard(tmp_path, kept.name)
    loser = save(tiny, tmp_path)
    ckpt.discard(tmp_path, loser.name)
    assert kept.exists() and not loser.exists()


def test_history_keeps_every_run_and_survives_a_torn_line(tmp_path):
    ckpt.append_history(tmp_path, {"status": "promoted", "n": 1})
    ckpt.append_history(tmp_path, {"status": "rejected", "n": 2})
    with open(tmp_path / "trainer" / "history.jsonl", "a") as fh:
        fh.write('{"status": "prom')
    assert [r["n"] for r in ckpt.read_history(tmp_path)] == [1, 2]
    assert ckpt.read_history(tmp_path / "elsewhere") == []


def test_one_training_run_at_a_time_per_index(tmp_path):
    with ckpt.run_lock(tmp_path):
        with pytest.raises(ckpt.TrainingBusy, match=r"already in progress \(pid \d+\)"):
            with ckpt.run_lock(tmp_path):
                pass
    with ckpt.run_lock(tmp_path):  # released when the run ends
        pass


def test_leftovers_of_interrupted_runs_are_removed_and_promotions_kept(tiny, tmp_path):
    promoted = save(tiny, tmp_path)
    ckpt.promote(tmp_path, promoted.name)
    orphan = save(tiny, tmp_path)  # saved, then the run died before its gate
    work = tmp_path / "trainer" / "work"
    fresh, stale = work / "fresh", work / "stale"
    for folder in (fresh, stale):
        folder.mkdir(parents=True)
    old = 1_000_000_000
    import os

    os.utime(stale, (old, old))
    with ckpt.run_lock(tmp_path):
        removed = ckpt.remove_leftovers(tmp_path)
    assert removed == [f"checkpoints/{orphan.name}", "work/stale"]
    assert promoted.exists() and fresh.exists() and not orphan.exists()
