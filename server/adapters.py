"""The query adapter: a small linear map applied to a query's vector before the vector search.

Training (`kenning.trainer.adapter`) fits a square matrix W on the workspace's
own (query, code) pairs against the chunk vectors already in the index, so
that `W @ query` lands nearer the code it describes. Only the query side
moves: no chunk is re-embedded, and switching to a new adapter is a pointer
change. An adapter belongs to the vectors it was trained against (the
generation identity: model location, version and sequence length) and is
applied only to searches answered by a generation with that identity.

Layout under the index directory, beside the checkpoints::

    trainer/
      adapters/<id>/adapter.safetensors   the matrix, float32 (dim, dim), no pickle
      adapters/<id>/card.json             identity, dim, metrics, pair counts, sha256; written last
      adapter.json                        {"adapter": id, "previous": [...]}: the adapter in use

This module is the read side (what the engine loads at every start and after a
promotion); writing, promoting and clearing are in `kenning.trainer.checkpoints`.
Loading verifies the card, the checksum, the shape and the identity; an
adapter that fails any check is refused with one warning and the model alone
answers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .models import file_sha256, read_card, trainer_dir

log = logging.getLogger(__name__)

ADAPTER_FORMAT = 1
ADAPTERS_DIR = "adapters"
ADAPTER_POINTER = "adapter.json"
WEIGHTS_NAME = "adapter.safetensors"
MATRIX_KEY = "matrix"
_REQUIRED_CARD_FIELDS = ("format", "id", "identity", "model", "dim", "files", "created_at")


class AdapterError(RuntimeError):
    """An adapter is missing, incomplete, corrupt or belongs to other vectors."""


@dataclass(frozen=True)
class QueryAdapter:
    """A verified adapter, ready to map query vectors."""

    id: str
    identity: str
    """The generation identity (see `models.vector_identity`) it was trained against."""
    model: str
    """`name@version` of that model, for messages."""
    matrix: np.ndarray
    """(dim, dim) float32: a query vector q becomes matrix @ q."""

    def apply(self, vector: np.ndarray) -> np.ndarray:
        """The mapped query, unit length like every stored vector; shape (dim,)."""
        mapped = self.matrix @ np.asarray(vector, dtype=np.float32)  # (dim,)
        norm = float(np.linalg.norm(mapped))
        return mapped / norm if norm > 0 else np.asarray(vector, dtype=np.float32)

    def apply_many(self, vectors: np.ndarray) -> np.ndarray:
        """Row-wise `apply`; shape (n, dim) -> (n, dim)."""
        mapped = np.asarray(vectors, dtype=np.float32) @ self.matrix.T  # (n, dim)
        norms = np.linalg.norm(mapped, axis=1, keepdims=True)  # (n, 1)
        return mapped / np.where(norms > 0, norms, 1.0)


def adapters_dir(index_dir: Path) -> Path:
    return trainer_dir(index_dir) / ADAPTERS_DIR


def adapter_pointer_path(index_dir: Path) -> Path:
    """The adapter pointer: its mtime tells a running server that an adapter was promoted."""
    return trainer_dir(index_dir) / ADAPTER_POINTER


def verify_adapter(folder: Path) -> dict[str, Any]:
    """The card of an adapter folder whose files are complete and untouched."""
    folder = Path(folder)
    card = read_card(folder, "adapter", _REQUIRED_CARD_FIELDS, ADAPTER_FORMAT, AdapterError)
    files = card["files"]
    if not isinstance(files, dict) or set(files) != {WEIGHTS_NAME}:
        raise AdapterError(f"adapter {folder.name} lists no {WEIGHTS_NAME} in its card")
    try:
        digest = file_sha256(folder / WEIGHTS_NAME)
    except OSError as exc:
        raise AdapterError(f"adapter {folder.name}: cannot read {WEIGHTS_NAME} ({exc})") from exc
    if digest != files[WEIGHTS_NAME]:
        raise AdapterError(f"adapter {folder.name}: {WEIGHTS_NAME} does not match its checksum")
    return card


def load_adapter(folder: Path) -> QueryAdapter:
    """Verify and load one adapter folder; AdapterError says what is wrong."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    card = verify_adapter(folder)
    try:
        matrix = load_file(str(Path(folder) / WEIGHTS_NAME)).get(MATRIX_KEY)
    except (OSError, SafetensorError, ValueError) as exc:
        raise AdapterError(f"adapter {card['id']}: unreadable weights ({exc})") from exc
    dim = card["dim"]
    if matrix is None or not isinstance(dim, int) or matrix.shape != (dim, dim):
        shape = None if matrix is None else matrix.shape
        raise AdapterError(f"adapter {card['id']}: matrix shape {shape} does not match dim {dim}")
    if not np.isfinite(matrix).all():
        raise AdapterError(f"adapter {card['id']}: the matrix holds non-finite values")
    return QueryAdapter(
        id=str(card["id"]),
        identity=str(card["identity"]),
        model=str(card["model"]),
        matrix=np.ascontiguousarray(matrix, dtype=np.float32),
    )


def read_adapter_pointer(index_dir: Path) -> dict[str, Any] | None:
    path = adapter_pointer_path(index_dir)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("the adapter pointer %s is unreadable (%s); searching without one", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("adapter"), str):
        return None
    return data


def promoted_adapter(index_dir: Path) -> tuple[QueryAdapter | None, str | None]:
    """(the adapter the pointer names, None) or (None, why it is refused).

    No pointer is no adapter and no complaint. An adapter that is corrupt is
    refused; the caller warns once. Whether it fits the vectors that answer is
    the caller's check (`QueryAdapter.identity`): an adapter trained for a newly
    promoted model waits, loaded, until that model's vectors answer.
    """
    pointer = read_adapter_pointer(index_dir)
    if pointer is None:
        return None, None
    try:
        return load_adapter(adapters_dir(index_dir) / pointer["adapter"]), None
    except AdapterError as exc:
        return None, f"{exc}; searching with the model alone"


def adapter_for_identity(index_dir: Path, identity: str) -> QueryAdapter | None:
    """The promoted adapter when it was trained for the vectors of `identity`, else None."""
    adapter, _ = promoted_adapter(index_dir)
    return adapter if adapter is not None and adapter.identity == identity else None


def foreign_note(adapter: QueryAdapter) -> str:
    """What status says about an adapter trained for vectors no generation holds any more."""
    return (
        f"adapter {adapter.id} was trained for {adapter.model} with other settings than the "
        "model in use; searching with the model alone until an adapter is trained for it"
    )
