"""The embedding model without sentence-transformers: transformers' `AutoModel`, the pooling
the model folder's sentence-transformers config names, and L2 normalisation.

Importing sentence-transformers also imports scikit-learn, scipy, datasets,
accelerate, pandas and pyarrow (about 260 MB of a daemon's memory, measured in
docs/design.md), none of which embedding needs. A local sentence-transformers
folder made of a Transformer, a Pooling and optionally a Normalize module (the
bundled model, and every checkpoint `kenning train` writes) is therefore run
here directly, with the same tokenizer (`tokenizers`, from the folder's
`tokenizer.json`), the same truncation, and the same arithmetic as
sentence-transformers: its vectors match to a cosine of 0.9999 or better
(tests/test_light_encoder.py). Any other model is run by sentence-transformers
(server/embedder.py decides).

`layout`, `ModelLayout` and `pooled_module` are shared with the ONNX export of the
light query path (server/light_encoder.py), so both compute one graph.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_POOLING_MODES = ("cls_token", "max_tokens", "mean_sqrt_len_tokens", "mean_tokens")
_NAMED_POOLING = {
    "mean": "mean_tokens",
    "cls": "cls_token",
    "max": "max_tokens",
    "mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
}
_SUPPORTED = {"Transformer", "Pooling", "Normalize"}


class UnsupportedModel(RuntimeError):
    """The folder holds more than a transformer and a pooling; use sentence-transformers."""


@dataclass(frozen=True)
class ModelLayout:
    """What the sentence-transformers folder says about the model."""

    root: Path
    transformer_dir: Path
    pooling: str
    """One of mean_tokens, cls_token, max_tokens, mean_sqrt_len_tokens."""
    max_seq_length: int | None
    do_lower_case: bool

    def prepare(self, text: str) -> str:
        """The text as sentence-transformers hands it to the tokenizer."""
        text = text.strip()
        return text.lower() if self.do_lower_case else text


def read_layout(location: str | Path) -> ModelLayout:
    """The transformer folder and pooling of a local sentence-transformers model folder."""
    root = Path(location)
    try:
        modules = json.loads((root / "modules.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UnsupportedModel(f"{root} has no readable modules.json ({exc})") from exc
    kinds = {m.get("type", "").rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    unsupported = set(kinds) - _SUPPORTED
    if unsupported or "Transformer" not in kinds or "Pooling" not in kinds:
        raise UnsupportedModel(
            f"{root.name} has modules {sorted(kinds)}; only Transformer, Pooling and "
            "Normalize are run without sentence-transformers"
        )
    transformer_dir = root / kinds["Transformer"].get("path", "")
    pooling_cfg = _read_json(root / kinds["Pooling"].get("path", "") / "config.json")
    named = _NAMED_POOLING.get(str(pooling_cfg.get("pooling_mode")))  # sentence-transformers 6
    flags = [m for m in _POOLING_MODES if pooling_cfg.get(f"pooling_mode_{m}")]
    modes = [named] if named else flags
    if len(modes) != 1:
        raise UnsupportedModel(f"{root.name} pools with {modes or 'nothing'}, not one mode")
    st_cfg = _read_json(transformer_dir / "sentence_bert_config.json") or _read_json(
        root / "sentence_bert_config.json"
    )
    if not (transformer_dir / "tokenizer.json").is_file():
        raise UnsupportedModel(f"{root.name} has no tokenizer.json (a fast tokenizer)")
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


def load_tokenizer(layout: ModelLayout, max_seq_length: int, *, padding: bool) -> Any:
    """The folder's fast tokenizer, truncating as sentence-transformers would."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(layout.transformer_dir / "tokenizer.json"))
    tokenizer.enable_truncation(min(max_seq_length, layout.max_seq_length or max_seq_length))
    if not padding:
        tokenizer.no_padding()
        return tokenizer
    # Pad each batch to its longest text, whatever padding the file was saved with.
    saved = tokenizer.padding or {}
    special = _read_json(layout.transformer_dir / "special_tokens_map.json")
    pad = saved.get("pad_token") or special.get("pad_token", "[PAD]")
    pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else str(pad)
    pad_id = saved.get("pad_id", tokenizer.token_to_id(pad) or 0)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad)
    return tokenizer


def pooled_module(layout: ModelLayout) -> Any:
    """A torch module: the transformer, the model's pooling, then L2 normalisation;
    inputs (input_ids, attention_mask[, token_type_ids]); `.takes_types` says which."""
    import torch
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(layout.transformer_dir), local_files_only=True).eval()
    takes_types = "token_type_ids" in model.forward.__code__.co_varnames

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.takes_types = takes_types
            self.dim = int(model.config.hidden_size)

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self.takes_types and token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.model(**kwargs).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            if layout.pooling == "cls_token":
                pooled = hidden[:, 0]
            elif layout.pooling == "max_tokens":
                pooled = (hidden + (mask - 1.0) * 1e9).max(dim=1).values
            else:
                summed = (hidden * mask).sum(dim=1)
                count = mask.sum(dim=1).clamp(min=1e-9)
                pooled = summed / (count if layout.pooling == "mean_tokens" else count.sqrt())
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Pooled()


class PooledModel:
    """A supported model folder, run by torch without sentence-transformers."""

    def __init__(self, location: str, *, device: str, max_seq_length: int):
        self.layout = read_layout(location)
        self.device = device
        self.module = pooled_module(self.layout).to(device)
        if device.startswith("cuda"):
            self.module.half()  # doubles GPU throughput; cosine ranking is unaffected
        self.tokenizer = load_tokenizer(self.layout, max_seq_length, padding=True)
        self._tokenize = threading.Lock()
        """A Rust tokenizer refuses two threads at once ("Already borrowed"); the forward
        pass in inference mode is safe to share."""

    @property
    def dim(self) -> int:
        return int(self.module.dim)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Unit-length float32 vectors; batches of similar lengths (longest first, as
        sentence-transformers sorts), so little compute goes to padding."""
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            with self._tokenize:
                encoded = self.tokenizer.encode_batch([self.layout.prepare(texts[i]) for i in rows])
            inputs = [
                torch.tensor([e.ids for e in encoded], device=self.device),
                torch.tensor([e.attention_mask for e in encoded], device=self.device),
            ]
            if self.module.takes_types:
                inputs.append(torch.tensor([e.type_ids for e in encoded], device=self.device))
            with torch.inference_mode():
                vectors = self.module(*inputs)
            out[rows] = vectors.float().cpu().numpy()
        return out
