"""The light cold path: one query embedded with ONNX Runtime and `tokenizers`, no torch.

A fresh `kenning search` process spends seconds importing sentence-transformers,
transformers and torch before it embeds one query (about 15 s on a busy 2-core
machine). This module embeds the query with the same model exported once to
ONNX: importing onnxruntime and tokenizers, opening the session and encoding
takes about a second and under 200 MB. Measured against transformers'
`AutoModel` with the same pooling (bench/cli_latency.py, bench/RESULTS.md),
ONNX Runtime was an order of magnitude faster to start, so it is the one kept.

What the model folder's sentence-transformers config says is done in the
exported graph: the transformer, then the pooling named in the Pooling
module's config (mean, CLS, max or mean-sqrt-len), then L2 normalisation, which
search always applies. The query vector matches sentence-transformers' to a
cosine of 0.9999 or better (tests/test_light_encoder.py). A folder with any
other module (a Dense layer, a custom module) is not exported; the caller then
uses sentence-transformers.

The export needs torch and the `onnx` package and runs once per model: the
file lives in the index folder under `onnx/<fingerprint>/`, owner-only, and
the fingerprint covers the model folder's weights, config and tokenizer (size
and modification time) and the pooling, so a promoted checkpoint or a changed
model gets a new export and the old one is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .transformer_model import (
    ModelLayout,
    UnsupportedModel,
    load_tokenizer,
    pooled_module,
    read_layout,
)

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
"""Bumped when the exported graph changes shape or meaning: old exports are redone."""
ONNX_DIR = "onnx"


class LightPathUnavailable(RuntimeError):
    """This model cannot take the light path; use the full model."""


def fingerprint(layout: ModelLayout) -> str:
    """Changes whenever the weights, config or tokenizer of the model change."""
    h = hashlib.sha256(f"{EXPORT_FORMAT}|{layout.root.resolve()}|{layout.pooling}".encode())
    for path in sorted(layout.transformer_dir.iterdir()):
        if path.suffix in (".safetensors", ".json", ".txt") and path.is_file():
            st = path.stat()
            h.update(f"|{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def export_onnx(layout: ModelLayout, target: Path) -> None:
    """Write the model, pooling and normalisation as one ONNX graph (needs torch and onnx)."""
    import torch

    graph = pooled_module(layout)
    length = 8
    inputs = [torch.ones((1, length), dtype=torch.long), torch.ones((1, length), dtype=torch.long)]
    names = ["input_ids", "attention_mask"]
    if graph.takes_types:
        inputs.append(torch.zeros((1, length), dtype=torch.long))
        names.append("token_type_ids")
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes["embedding"] = {0: "batch"}
    partial = target.with_name(target.name + ".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on opsets are not the user's
        torch.onnx.export(
            graph,
            tuple(inputs),
            str(partial),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    os.chmod(partial, 0o600)
    partial.replace(target)


class LightEncoder:
    """Embeds queries through an exported ONNX graph; loads lazily, once, under a lock."""

    def __init__(self, location: str, index_dir: Path, *, max_seq_length: int = 256):
        self.location = location
        self.index_dir = Path(index_dir)
        self.max_seq_length = max_seq_length
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: list[str] = []
        self._layout: ModelLayout | None = None
        self.exported = False
        """Whether loading had to export the model first (once per model)."""

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        with self._lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise LightPathUnavailable(f"{exc.name} is not installed") from exc
        try:
            layout = read_layout(self.location)
        except UnsupportedModel as exc:
            raise LightPathUnavailable(str(exc)) from exc
        path = self.ensure_export(layout)
        options = ort.SessionOptions()
        # One query gains nothing from threads, and the machine may be busy.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._tokenizer = load_tokenizer(layout, self.max_seq_length, padding=False)
        self._layout = layout

    def ensure_export(self, layout: ModelLayout) -> Path:
        """The model's ONNX file, exported now if this model has none yet."""
        folder = self.index_dir / ONNX_DIR
        key = fingerprint(layout)
        path = folder / key / "model.onnx"
        if path.is_file():
            return path
        try:
            import onnx  # noqa: F401 - torch's exporter needs it; say so before importing torch
        except ImportError as exc:
            raise LightPathUnavailable("the onnx package is not installed") from exc
        log.info("exporting %s to ONNX for fast queries (once per model)", layout.root.name)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / key).mkdir(mode=0o700, exist_ok=True)
        try:
            export_onnx(layout, path)
        except Exception as exc:  # noqa: BLE001 - any exporter failure means: use the full model
            shutil.rmtree(folder / key, ignore_errors=True)
            raise LightPathUnavailable(
                f"exporting {layout.root.name} to ONNX failed: {exc}"
            ) from exc
        for old in folder.iterdir():  # exports of models no longer in use
            if old.name != key:
                shutil.rmtree(old, ignore_errors=True)
        self.exported = True
        return path

    def encode_query(self, query: str) -> np.ndarray:
        """One unit-length float32 query vector, shape (dim,)."""
        self.load()
        assert self._layout is not None  # set by load()
        encoding = self._tokenizer.encode(self._layout.prepare(query))
        feed = {
            "input_ids": np.asarray([encoding.ids], dtype=np.int64),
            "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
        }
        (vectors,) = self._session.run(["embedding"], {k: feed[k] for k in self._inputs})
        return np.asarray(vectors[0], dtype=np.float32)
