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
import json
import logging
import os
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
"""Bumped when the exported graph changes shape or meaning: old exports are redone."""
ONNX_DIR = "onnx"
_POOLING_MODES = ("cls_token", "max_tokens", "mean_sqrt_len_tokens", "mean_tokens")
_NAMED_POOLING = {
    "mean": "mean_tokens",
    "cls": "cls_token",
    "max": "max_tokens",
    "mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
}
_SUPPORTED = {"Transformer", "Pooling", "Normalize"}


class LightPathUnavailable(RuntimeError):
    """This model cannot take the light path; use sentence-transformers."""


@dataclass(frozen=True)
class ModelLayout:
    """What the sentence-transformers folder says about the model."""

    root: Path
    transformer_dir: Path
    pooling: str
    """One of mean_tokens, cls_token, max_tokens, mean_sqrt_len_tokens."""
    max_seq_length: int | None
    do_lower_case: bool


def read_layout(location: str | Path) -> ModelLayout:
    """The transformer folder and pooling of a local sentence-transformers model folder."""
    root = Path(location)
    try:
        modules = json.loads((root / "modules.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise LightPathUnavailable(f"{root} has no readable modules.json ({exc})") from exc
    kinds = {m.get("type", "").rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    unsupported = set(kinds) - _SUPPORTED
    if unsupported or "Transformer" not in kinds or "Pooling" not in kinds:
        raise LightPathUnavailable(
            f"{root.name} has modules {sorted(kinds)}; the light path handles "
            "Transformer, Pooling and Normalize only"
        )
    transformer_dir = root / kinds["Transformer"].get("path", "")
    pooling_cfg = _read_json(root / kinds["Pooling"].get("path", "") / "config.json")
    named = _NAMED_POOLING.get(str(pooling_cfg.get("pooling_mode")))  # sentence-transformers 6
    modes = (
        [named] if named else [m for m in _POOLING_MODES if pooling_cfg.get(f"pooling_mode_{m}")]
    )
    if len(modes) != 1:
        raise LightPathUnavailable(
            f"{root.name} pools with {modes or 'nothing'}; expected one mode"
        )
    st_cfg = _read_json(transformer_dir / "sentence_bert_config.json") or _read_json(
        root / "sentence_bert_config.json"
    )
    if not (transformer_dir / "tokenizer.json").is_file():
        raise LightPathUnavailable(f"{root.name} has no tokenizer.json (a fast tokenizer)")
    return ModelLayout(
        root=root,
        transformer_dir=transformer_dir,
        pooling=modes[0],
        max_seq_length=st_cfg.get("max_seq_length"),
        do_lower_case=bool(st_cfg.get("do_lower_case", False)),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(layout.transformer_dir), local_files_only=True).eval()
    takes_types = "token_type_ids" in model.forward.__code__.co_varnames
    graph = _pooled_model(model, layout.pooling, takes_types)
    length = 8
    inputs = [torch.ones((1, length), dtype=torch.long), torch.ones((1, length), dtype=torch.long)]
    names = ["input_ids", "attention_mask"]
    if takes_types:
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


def _pooled_class() -> type:
    import torch

    class Pooled(torch.nn.Module):
        """The transformer, the model's pooling, then L2 normalisation."""

        def __init__(self, model: Any, pooling: str, takes_types: bool):
            super().__init__()
            self.model = model
            self.pooling = pooling
            self.takes_types = takes_types

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self.takes_types:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.model(**kwargs).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            if self.pooling == "cls_token":
                pooled = hidden[:, 0]
            elif self.pooling == "max_tokens":
                pooled = (hidden + (mask - 1.0) * 1e9).max(dim=1).values
            else:
                summed = (hidden * mask).sum(dim=1)
                count = mask.sum(dim=1).clamp(min=1e-9)
                pooled = summed / (count if self.pooling == "mean_tokens" else count.sqrt())
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Pooled


def _pooled_model(model: Any, pooling: str, takes_types: bool) -> Any:
    return _pooled_class()(model, pooling, takes_types)


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
        self._lower = False
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
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise LightPathUnavailable(f"{exc.name} is not installed") from exc
        layout = read_layout(self.location)
        path = self.ensure_export(layout)
        options = ort.SessionOptions()
        # One query gains nothing from threads, and the machine may be busy.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        tokenizer = Tokenizer.from_file(str(layout.transformer_dir / "tokenizer.json"))
        limit = min(self.max_seq_length, layout.max_seq_length or self.max_seq_length)
        tokenizer.enable_truncation(limit)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._lower = layout.do_lower_case

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
        text = query.strip()
        encoding = self._tokenizer.encode(text.lower() if self._lower else text)
        feed = {
            "input_ids": np.asarray([encoding.ids], dtype=np.int64),
            "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
        }
        (vectors,) = self._session.run(["embedding"], {k: feed[k] for k in self._inputs})
        return np.asarray(vectors[0], dtype=np.float32)
