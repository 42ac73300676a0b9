"""Fine-tuned models on disk: checkpoints, their cards, the promotion pointer, the history.

Layout under the workspace's index directory::

    trainer/
      checkpoints/<id>/     a sentence-transformers model folder (weights only as
                            *.safetensors) plus card.json, written last
      work/<key>/           the resumable state of a run in progress
      promoted.json         {"checkpoint": id, "previous": [...]}: the model in use
      history.jsonl         one JSON object per run, promoted or not
      training.png          loss and held-out MRR across runs
      adapters/<id>/        a query adapter: adapter.safetensors plus card.json, written last
      adapter.json          {"adapter": id, "previous": [...]}: the adapter in use

Nothing here is saved or loaded with pickle: a checkpoint folder that holds a
pickle-format file (`*.bin`, `*.pt`, `*.pkl`, ...) is refused, and so is one
whose safetensors files do not match the sha256 sums in its card. Promotion
writes promoted.json to a temporary name and renames it over the old one, so
a crash leaves either the old pointer or the new one. A refused checkpoint is
reported once and the one promoted before it (or the configured base model)
is used instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kenning.server.adapters import (
    ADAPTER_FORMAT,
    ADAPTER_POINTER,
    MATRIX_KEY,
    WEIGHTS_NAME,
    adapters_dir,
    load_adapter,
    read_adapter_pointer,
)

# The read side (pointer, cards, history) lives in the core, where the engine
# and the daemon read it; re-exported here for the trainer's callers.
from kenning.server.models import (
    CARD_FORMAT,
    CARD_NAME,
    CHART_NAME,
    HISTORY_NAME,
    PICKLE_SUFFIXES,
    POINTER_NAME,
    CheckpointError,
    append_history,
    checkpoints_dir,
    file_sha256,
    pickle_files,
    pointer_path,
    promoted_checkpoint,
    promoted_model,
    read_history,
    read_pointer,
    trainer_dir,
    verify_checkpoint,
)

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

__all__ = [
    "CARD_FORMAT",
    "CARD_NAME",
    "CHART_NAME",
    "HISTORY_NAME",
    "PICKLE_SUFFIXES",
    "POINTER_NAME",
    "CheckpointError",
    "TrainingBusy",
    "append_history",
    "checkpoints_dir",
    "discard",
    "file_sha256",
    "new_checkpoint_id",
    "pickle_files",
    "pointer_path",
    "promote",
    "promote_adapter",
    "retire_adapter",
    "save_adapter",
    "promoted_checkpoint",
    "promoted_model",
    "read_history",
    "read_pointer",
    "remove_leftovers",
    "run_lock",
    "save_checkpoint",
    "trainer_dir",
    "update_card",
    "verify_checkpoint",
    "write_json_atomic",
]

log = logging.getLogger(__name__)


def new_checkpoint_id() -> str:
    """Sortable and unique: UTC time plus random hex, e.g. 20250101-120000-3f9a1c."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + os.urandom(3).hex()


def save_checkpoint(
    model: SentenceTransformer,
    index_dir: Path,
    card: Mapping[str, Any],
    checkpoint_id: str | None = None,
) -> Path:
    """Write `model` as a new checkpoint folder with `card`; returns the folder.

    The model is saved with safetensors into a temporary folder, checked for
    stray pickle files, its weight files hashed into the card, the card written
    last, and the folder renamed into place: a half-written checkpoint never
    has a final name.
    """

    def write(tmp: Path) -> list[Path]:
        model.save(str(tmp), safe_serialization=True, create_model_card=False)
        stray = pickle_files(tmp)
        if stray:
            raise CheckpointError(
                f"saving wrote pickle-format files {stray}; refusing to keep them"
            )
        weights = sorted(p for p in tmp.rglob("*.safetensors"))
        if not weights:
            raise CheckpointError("saving wrote no safetensors weights")
        return weights

    return _write_folder(checkpoints_dir(index_dir), checkpoint_id, write, card, CARD_FORMAT)


def _write_folder(
    root: Path,
    folder_id: str | None,
    write: Callable[[Path], list[Path]],
    card: Mapping[str, Any],
    card_format: int,
) -> Path:
    """A new owner-only folder under `root`: `write(tmp)` puts the weights in a temporary
    folder and returns them, their sha256 sums go into the card, written last, and the
    folder is renamed into place (a half-written one never has a final name)."""
    fid = folder_id or new_checkpoint_id()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{fid}-", dir=root))
    try:
        weights = write(tmp)
        full = dict(card)
        full.update(
            format=card_format,
            id=fid,
            files={str(p.relative_to(tmp)): file_sha256(p) for p in weights},
            created_at=full.get("created_at") or time.time(),
        )
        write_json_atomic(tmp / CARD_NAME, full)
        _make_private(tmp)
        final = root / fid
        os.replace(tmp, final)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _make_private(folder: Path) -> None:
    """Owner-only, like the rest of the index: weights can reveal the code they learned."""
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


def update_card(folder: Path, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `changes` into a checkpoint's card (atomically); returns the new card."""
    card = json.loads((folder / CARD_NAME).read_text("utf-8"))
    card.update(changes)
    write_json_atomic(folder / CARD_NAME, card)
    return card


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, fsync it, rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- promotion ----------------------------------------------------------------------


def promote(index_dir: Path, checkpoint_id: str) -> None:
    """Make `checkpoint_id` the model in use, in one atomic rename.

    The ids promoted before it are kept, newest first, so a checkpoint found
    corrupt later falls back to its predecessor rather than to the base model.
    """
    verify_checkpoint(checkpoints_dir(index_dir) / checkpoint_id)
    old = read_pointer(index_dir)
    previous = []
    if old is not None:
        previous = [old["checkpoint"], *[p for p in old.get("previous", []) if isinstance(p, str)]]
    write_json_atomic(
        trainer_dir(index_dir) / POINTER_NAME,
        {
            "checkpoint": checkpoint_id,
            "previous": [p for p in previous if p != checkpoint_id][:10],
            "promoted_at": time.time(),
        },
    )


def discard(index_dir: Path, checkpoint_id: str) -> None:
    """Delete a checkpoint that was not promoted (its card lives on in the history)."""
    pointer = read_pointer(index_dir) or {}
    if checkpoint_id == pointer.get("checkpoint") or checkpoint_id in pointer.get("previous", []):
        raise CheckpointError(f"checkpoint {checkpoint_id} is or was promoted; not deleting it")
    shutil.rmtree(checkpoints_dir(index_dir) / checkpoint_id, ignore_errors=True)


# -- query adapters --------------------------------------------------------------------


def save_adapter(index_dir: Path, matrix: np.ndarray, card: Mapping[str, Any]) -> Path:
    """Write a new adapter folder (matrix as safetensors, then its card); returns it.

    `card` must name the `identity`, `model` and `dim` it was trained for. Like a
    checkpoint, it is written into a temporary folder and renamed into place.
    """
    from safetensors.numpy import save_file

    def write(tmp: Path) -> list[Path]:
        save_file({MATRIX_KEY: matrix}, str(tmp / WEIGHTS_NAME))
        return [tmp / WEIGHTS_NAME]

    return _write_folder(adapters_dir(index_dir), None, write, card, ADAPTER_FORMAT)


def promote_adapter(index_dir: Path, adapter_id: str) -> None:
    """Make `adapter_id` the adapter in use, in one atomic rename (after checking it loads)."""
    load_adapter(adapters_dir(index_dir) / adapter_id)
    old = read_adapter_pointer(index_dir)
    write_json_atomic(
        trainer_dir(index_dir) / ADAPTER_POINTER,
        {
            "adapter": adapter_id,
            "replaced": old["adapter"] if old else None,
            "promoted_at": time.time(),
        },
    )
    # An adapter is a few hundred kilobytes and retrains in seconds: the history
    # keeps the record of the replaced one, the folder goes.
    _keep_adapters(index_dir, {adapter_id})


def retire_adapter(index_dir: Path) -> str | None:
    """Stop using the current adapter (a new model was promoted: the adapter belongs to the
    old model's vectors). Returns its id; its folder goes with the next cleanup."""
    old = read_adapter_pointer(index_dir)
    (trainer_dir(index_dir) / ADAPTER_POINTER).unlink(missing_ok=True)
    return old["adapter"] if old else None


def _keep_adapters(index_dir: Path, keep: set[str]) -> None:
    root = adapters_dir(index_dir)
    for folder in root.iterdir() if root.is_dir() else []:
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


# -- one run at a time ----------------------------------------------------------------

LOCK_NAME = "run.lock"
STALE_WORK_S = 7 * 24 * 3600
"""Resumable state of a run nobody resumed for a week is deleted."""


class TrainingBusy(RuntimeError):
    """Another training run holds this index's trainer lock."""


@contextlib.contextmanager
def run_lock(index_dir: Path) -> Iterator[None]:
    """Hold the trainer lock of `index_dir` for one run (the CLI's and the daemon's
    runs must not write checkpoints and the pointer at once).

    An OS file lock, so a killed run never leaves it held.
    """
    folder = trainer_dir(index_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise TrainingBusy(f"a training run is already in progress (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_leftovers(index_dir: Path) -> list[str]:
    """Delete what interrupted runs left behind; call while holding `run_lock`.

    A checkpoint folder that was never promoted (the run died between saving
    and the gate) and resumable state untouched for a week go; the promoted
    checkpoint and those it fell back on stay. Returns what was removed.
    """
    pointer = read_pointer(index_dir) or {}
    keep = {pointer.get("checkpoint"), *pointer.get("previous", [])}
    removed = []
    ckdir = checkpoints_dir(index_dir)
    for folder in sorted(ckdir.iterdir()) if ckdir.is_dir() else []:
        if folder.is_dir() and folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"checkpoints/{folder.name}")
    work = trainer_dir(index_dir) / "work"
    now = time.time()
    for folder in sorted(work.iterdir()) if work.is_dir() else []:
        try:
            stale = now - folder.stat().st_mtime > STALE_WORK_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"work/{folder.name}")
    in_use = (read_adapter_pointer(index_dir) or {}).get("adapter")
    adir = adapters_dir(index_dir)
    for folder in sorted(adir.iterdir()) if adir.is_dir() else []:
        if folder.name != in_use:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"adapters/{folder.name}")
    for tmp in [
        *trainer_dir(index_dir).glob(f".{POINTER_NAME}-*"),
        *trainer_dir(index_dir).glob(f".{ADAPTER_POINTER}-*"),
    ]:
        tmp.unlink(missing_ok=True)
        removed.append(tmp.name)
    return removed
