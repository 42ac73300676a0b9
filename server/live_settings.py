"""Settings changed while a server runs, applied without a restart.

The client sends new settings (`workspace/didChangeConfiguration`, or the
server pulls them with `workspace/configuration`); they take the place of the
`initializationOptions` layer and are merged with the other sources as at
start. What a change needs depends on the setting:

- `model`, `max_seq_length`: every chunk is re-embedded into a new generation,
  as after a promotion; the old one answers until then;
- `include`, `exclude`, `max_file_bytes`: the whole workspace is rescanned:
  files now left out are dropped, files now let in are indexed;
- `device`, `batch_size`: new chunks (and queries) use a model loaded with them;
- `index_dir`: the folder's index is closed and the one in the new folder opened;
- `train.*`: the next schedule check uses them.

A new model is loaded before anything changes, so a model that cannot be
found or loaded, like an invalid value, is refused with one message naming
the field, and the old settings stay in force.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from .embedder import Embedder
from .models import ModelError, target_model
from .settings import Settings, SettingsError
from .workspace_service import WorkspaceService

log = logging.getLogger(__name__)

REEMBED = frozenset({"model", "max_seq_length"})
RESCAN = frozenset({"include", "exclude", "max_file_bytes"})
NEW_MODEL = REEMBED | {"device", "batch_size"}
REOPEN = frozenset({"index_dir"})


@dataclass(frozen=True)
class SettingsChange:
    """What changed between two sets of settings, and what that asks for."""

    fields: tuple[str, ...]
    """Dotted names of the settings that changed (`train.schedule`)."""

    @property
    def reembed(self) -> bool:
        return bool(REEMBED.intersection(self.fields))

    @property
    def rescan(self) -> bool:
        return bool(RESCAN.intersection(self.fields))

    @property
    def new_model(self) -> bool:
        return bool(NEW_MODEL.intersection(self.fields))

    @property
    def reopen(self) -> bool:
        return bool(REOPEN.intersection(self.fields))

    def message(self, where: str, writing: bool = True) -> str | None:
        """What the user should be told, or None when nothing visible follows."""
        names = ", ".join(self.fields)
        if self.reopen:
            return f"Kenning: index_dir changed for {where}: opening the index in the new folder"
        if not (self.reembed or self.rescan):
            return None
        if not writing:
            return (
                f"Kenning: {names} changed for {where}; another Kenning process writes this "
                "index, so it re-indexes when its own settings change"
            )
        if self.reembed:
            return (
                f"Kenning: {names} changed for {where}: re-embedding the index; search keeps "
                "using the current vectors until that is done"
            )
        return f"Kenning: {names} changed for {where}: re-indexing the workspace"


def diff_settings(old: Settings, new: Settings) -> SettingsChange:
    def flat(settings: Settings) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(settings):
            value = getattr(settings, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                out.update({f"{f.name}.{k}": v for k, v in dataclasses.asdict(value).items()})
            else:
                out[f.name] = value
        return out

    before, after = flat(old), flat(new)
    return SettingsChange(tuple(k for k in after if before.get(k) != after[k]))


def apply_settings(service: WorkspaceService, new: Settings) -> SettingsChange:
    """Put `new` in force for one running workspace and start what it asks for.

    Returns the change; when it moves the index (`reopen`) nothing is applied
    here: the caller reopens the folder. Raises SettingsError naming the field
    when the new model cannot be loaded; then nothing changed.
    """
    engine = service.engine
    change = diff_settings(engine.settings, new)
    if not change.fields or change.reopen:
        return change
    embedder = None
    if change.new_model:
        try:
            embedder = Embedder(
                target_model(engine.index_dir, new),
                device=new.device,
                max_seq_length=new.max_seq_length,
                batch_size=new.batch_size,
            )
            embedder.load()
        except (ModelError, OSError, ValueError, RuntimeError) as exc:
            names = ("model", "device", "max_seq_length", "batch_size")
            field = next((f for f in names if f in change.fields), "model")
            raise SettingsError(f"setting '{field}' cannot be used: {exc}") from exc
    rebuild = engine.use_settings(new, embedder)
    log.info("settings changed for %s: %s", engine.root, ", ".join(change.fields))
    if service.writing:
        if change.rescan:
            service.changes.request_rescan()
        if rebuild and service.worker is not None:
            service.worker.request_swap()
    return change
