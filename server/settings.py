"""Kenning's settings: one typed object, merged from every source.

Precedence, highest first (docs/protocol.md §3): CLI flags, LSP
``initializationOptions``, ``KENNING_*`` environment variables, ``kenning.toml``
or ``[tool.kenning]`` in ``pyproject.toml`` at the workspace root, then the
defaults below. Every source is a plain nested dict; they are merged first and
validated once, so an error names the field and the source it came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cattrs

ENV_PREFIX = "KENNING_"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
NOT_SETTINGS = frozenset({"VERBOSE", "SERVER", "FUZZ_EXAMPLES"})
"""`KENNING_*` environment variables that are not settings (nor are `KENNING_TEST_*`)."""

log = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A setting has the wrong type or value; the message names the field.

    `field` is the dotted setting name (`train.lr`) and `source` where its value
    came from, when known: a language server drops just that field of its
    client's options and keeps the rest.
    """

    def __init__(self, message: str, field: str | None = None, source: str | None = None):
        super().__init__(message)
        self.field = field
        self.source = source


class WorkspaceError(ValueError):
    """The workspace path is unusable (missing, not a folder)."""


def resolve_workspace(workspace: str | Path) -> Path:
    """The workspace folder as an absolute path; WorkspaceError when unusable."""
    root = Path(workspace).expanduser()
    if not root.exists():
        raise WorkspaceError(f"workspace {root} does not exist")
    if not root.is_dir():
        raise WorkspaceError(f"workspace {root} is not a directory")
    return root.resolve()


@dataclass(frozen=True)
class TrainSettings:
    schedule: str = "daily"
    """`off`, `daily`, `hourly`, or an interval in minutes."""
    on_cpu: bool = False
    """Whether background retraining may run without a GPU."""
    min_new_chunks: int = 200
    """Retraining waits until this many chunks changed since the last run."""
    epochs: int = 1
    """Passes over the mined training pairs in one run."""
    batch_size: int = 32
    """Pairs per optimizer step (in-batch negatives: larger is better, up to memory)."""
    lr: float = 3e-5
    """Learning rate of a run."""
    max_pairs: int = 2000
    """Training pairs kept per run (a seeded sample): bounds the run's length."""
    adapter: bool = True
    """Whether runs also train a query adapter (seconds on a CPU, swapped in instantly);
    the daemon trains one on schedule even without a GPU."""

    @property
    def interval_s(self) -> float | None:
        """Seconds between scheduled runs; None when the schedule is off."""
        if self.schedule == "off":
            return None
        minutes = {"daily": 24 * 60, "hourly": 60}.get(self.schedule) or int(self.schedule)
        return minutes * 60.0


@dataclass(frozen=True)
class ScaleSettings:
    """Going beyond one process: Ray for bulk embedding (docs/scale.md)."""

    ray_address: str = ""
    """Cluster `kenning index --ray` uses when the flag names none: `auto` joins
    the running one, `ray://host:10001` or `host:6379` a given one; empty starts
    a local Ray runtime for the run."""
    ray_replicas: int = 0
    """Model replicas (Ray actors); 0 means one per GPU, or on CPUs one per core."""
    ray_batch_size: int = 256
    """Chunk texts per Ray batch: what each replica embeds per call, and what a
    crash can lose per replica."""


@dataclass(frozen=True)
class DaemonSettings:
    idle_minutes: float = 30.0
    """A background daemon (`kenning serve --background`) exits after this long without requests."""
    auto_start: bool = False
    """Whether `kenning search` starts a background daemon when none answers."""


@dataclass(frozen=True)
class Settings:
    model: str = DEFAULT_MODEL
    """Hugging Face id or local directory of a sentence-transformers model."""
    device: str = "auto"
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps`."""
    index_dir: str = ""
    """Where the index and checkpoints live; empty means the per-user cache dir."""
    include: tuple[str, ...] = ()
    """Gitignore-style globs; when set, only matching files are indexed (and they
    override the built-in excludes, secrets included, per pattern)."""
    exclude: tuple[str, ...] = ()
    """Gitignore-style globs excluded on top of `.gitignore` and the built-ins."""
    max_file_bytes: int = 1 << 20
    """Larger files are skipped and counted in status."""
    max_seq_length: int = 256
    """Tokens of each chunk the model reads; longer text is truncated."""
    batch_size: int = 32
    """Chunks per model call when embedding."""
    vector_index: str = "auto"
    """`exact`, `hnsw` (approximate, for millions of chunks) or `auto` (HNSW from
    `vector_index.HNSW_MIN_VECTORS` vectors on)."""
    learn_from_picks: bool = True
    """Keep the search results people open (`kenning/feedback`) and train on them."""
    train: TrainSettings = field(default_factory=TrainSettings)
    scale: ScaleSettings = field(default_factory=ScaleSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)

    def resolved_index_dir(self, workspace: Path) -> Path:
        """The folder for this workspace's index: the setting, or one per workspace
        under the user's cache dir (named after the folder plus a hash of its path,
        so two checkouts called `app` never share an index).

        One index folder holds one workspace's index: when the `index_dir` setting
        names a folder that already holds another workspace's (its owner file says
        whose), this workspace's index goes to `<index_dir>/folders/<key>` inside it.
        So one setting for several workspaces, or for every folder of a multi-root
        workspace, gives each its own index."""
        if not self.index_dir:
            from platformdirs import user_cache_dir

            return Path(user_cache_dir("kenning")) / workspace_key(workspace)
        chosen = Path(self.index_dir).expanduser().resolve()
        owner = index_owner(chosen)
        if owner is None or owner == workspace.resolve():
            return chosen
        return chosen / "folders" / workspace_key(workspace)


OWNER_FILE = "workspace.path"
"""In an index folder: the absolute path of the workspace whose index it holds."""


def index_owner(index_dir: Path) -> Path | None:
    """The workspace whose index `index_dir` holds, as its owner file says; None when unsaid."""
    try:
        text = (index_dir / OWNER_FILE).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(text) if text else None


def claim_index_dir(index_dir: Path, workspace: Path) -> Path:
    """The folder `workspace`'s index goes in, claimed for it: `index_dir` when it is
    unclaimed or already this workspace's, else this workspace's folder inside it.

    The owner file is created with a hard link, which fails when the file exists, so of
    two servers that resolved the same unclaimed folder at once exactly one gets it and
    the other moves to its own subfolder. A folder that cannot be written is used as is
    (nothing else will be written there either)."""
    root = workspace.resolve()
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{OWNER_FILE}.", dir=index_dir)
        staged = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(str(root) + "\n")
        try:
            os.link(staged, index_dir / OWNER_FILE)
        except FileExistsError:
            pass
        finally:
            staged.unlink(missing_ok=True)
    except OSError:
        return index_dir
    owner = index_owner(index_dir)
    if owner is None or owner == root:
        return index_dir
    return claim_index_dir(index_dir / "folders" / workspace_key(workspace), workspace)


def workspace_key(workspace: Path) -> str:
    """A folder name for a workspace's index: its name plus a hash of its path."""
    root = workspace.resolve()
    return f"{root.name}-{hashlib.sha1(str(root).encode()).hexdigest()[:10]}"


_SCHEDULES = {"off", "daily", "hourly"}
_DEVICE_PREFIXES = ("auto", "cpu", "cuda", "mps")


def load_settings(
    workspace: Path,
    *,
    cli: Mapping[str, Any] | None = None,
    init_options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    client_source: str = "initializationOptions",
) -> Settings:
    """Merge every source for `workspace` and validate the result; `init_options` are
    the client's settings, named `client_source` in messages.

    Raises SettingsError naming the field and its source when a value is wrong.
    """
    layers: list[tuple[str, Mapping[str, Any]]] = [
        ("workspace config", _read_workspace_file(workspace)),
        ("environment", _read_environment(os.environ if environ is None else environ)),
        (client_source, normalise_keys(dict(init_options or {}))),
        ("command line", normalise_keys(dict(cli or {}))),
    ]
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, layer in layers:
        _deep_merge(merged, layer, origin, source)
    return _build(merged, origin)


_FOLDER_KEYS = ("workspace", "workspaceFolder", "workspace_folder", "uri", "scopeUri")


def options_for_workspace(options: Any, workspace: Path) -> dict[str, Any]:
    """The settings inside LSP ``initializationOptions``, whichever shape the client sends.

    - The settings dict itself, as Neovim sends it: ``{"indexDir": "..."}``.
    - The same wrapped in the client's config section: ``{"kenning": {...}}``.
    - A per-folder list, as a VS Code extension sends it: ``[{"workspace":
      "file:///repo", ...settings}, ...]``, bare or as ``{"settings": [...],
      "globalSettings": {...}}``. The global settings apply first, then the
      entry for `workspace` (or the only entry, when there is just one).

    Raises SettingsError when the options are neither an object nor a list.
    """
    if options is None:
        return {}
    if (
        isinstance(options, Mapping)
        and set(options) == {"kenning"}
        and isinstance(options["kenning"], Mapping)
    ):
        options = options["kenning"]
    merged: dict[str, Any] = {}
    if isinstance(options, Mapping) and isinstance(options.get("settings"), list):
        merged.update(options.get("globalSettings") or {})
        options = options["settings"]
    if isinstance(options, Mapping):
        merged.update(options)
        return merged
    if not isinstance(options, list) or not all(isinstance(e, Mapping) for e in options):
        raise SettingsError(
            "initializationOptions must be an object of settings or a list of per-folder "
            f"settings, got {options!r}"
        )
    entry = next((e for e in options if _folder_of(e) == workspace.resolve()), None)
    if entry is None and len(options) == 1:
        entry = options[0]
    merged.update({k: v for k, v in (entry or {}).items() if k not in _FOLDER_KEYS})
    return merged


def _folder_of(entry: Mapping[str, Any]) -> Path | None:
    from urllib.parse import unquote, urlparse

    for key in _FOLDER_KEYS:
        value = entry.get(key)
        if isinstance(value, Mapping):  # {"workspaceFolder": {"uri": ..., "name": ...}}
            value = value.get("uri")
        if isinstance(value, str) and value:
            path = unquote(urlparse(value).path) if value.startswith("file:") else value
            return Path(path).expanduser().resolve()
    return None


def drop_setting(options: dict[str, Any], dotted: str) -> None:
    """Remove one (normalised, dotted) setting from the client's options."""
    *tables, last = dotted.split(".")
    node: Any = options
    for table in tables:
        node = node.get(table) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """Plain JSON-ready dict of the settings (for status output and child processes)."""
    data = dataclasses.asdict(settings)
    data["include"] = list(settings.include)
    data["exclude"] = list(settings.exclude)
    return data


def _read_workspace_file(workspace: Path) -> dict[str, Any]:
    kenning_toml = workspace / "kenning.toml"
    pyproject = workspace / "pyproject.toml"
    try:
        if kenning_toml.is_file():
            return normalise_keys(tomllib.loads(kenning_toml.read_text("utf-8")))
        if pyproject.is_file():
            data = tomllib.loads(pyproject.read_text("utf-8"))
            return normalise_keys(data.get("tool", {}).get("kenning", {}))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read settings from {workspace}: {exc}") from exc
    return {}


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """KENNING_TRAIN__ON_CPU=1 -> {"train": {"on_cpu": "1"}}; values stay strings
    and are converted by the field's type later."""
    out: dict[str, Any] = {}
    for key, value in environ.items():
        name = key[len(ENV_PREFIX) :]
        if not key.startswith(ENV_PREFIX) or name in NOT_SETTINGS or name.startswith("TEST_"):
            continue
        parts = name.lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def normalise_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """Accept camelCase (VS Code sends it) and dotted keys (`train.on_cpu`); a dotted
    key and a table of the same name in one source merge key by key."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        parts = [_snake(p) for p in str(key).split(".")]
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            node = child if isinstance(child, dict) else node.setdefault(part, {})
        last = parts[-1]
        if isinstance(value, Mapping):
            table = node.get(last)
            node[last] = table if isinstance(table, dict) else {}
            _deep_merge(node[last], normalise_keys(value), {}, "")
        else:
            node[last] = value
    return out


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _deep_merge(
    into: dict[str, Any], layer: Mapping[str, Any], origin: dict[str, str], source: str, path=""
) -> None:
    for key, value in layer.items():
        dotted = f"{path}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value, origin, source, dotted + ".")
        elif isinstance(value, Mapping):
            into[key] = {}
            _deep_merge(into[key], value, origin, source, dotted + ".")
        else:
            into[key] = value
            origin[dotted] = source


class _Wrong(ValueError):
    """One value that does not fit its field; says what was expected."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _strict(expected: str, convert: Callable[[Any], Any]) -> Callable[[Any, type], Any]:
    def hook(value: Any, _type: type) -> Any:
        try:
            return convert(value)
        except (TypeError, ValueError):
            raise _Wrong(f"must be {expected}, got {value!r}") from None

    return hook


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return float(value)
    raise ValueError


def _to_str(value: Any) -> str:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ValueError


def _to_globs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        # Environment variables carry lists as comma-separated globs.
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError


def _table_hook(structure: Callable[[Any, type], Any]) -> Callable[[Any, type], Any]:
    def hook(value: Any, cls: type) -> Any:
        if not isinstance(value, Mapping):
            raise _Wrong("must be a table of settings")
        return structure(value, cls)

    return hook


def _make_converter() -> cattrs.Converter:
    """Structures the merged settings dict into `Settings`, converting the strings
    that environment variables and TOML may carry, and nothing looser."""
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(bool, _strict("true or false", _to_bool))
    conv.register_structure_hook(int, _strict("a whole number", _to_int))
    conv.register_structure_hook(float, _strict("a number", _to_float))
    conv.register_structure_hook(str, _strict("a string", _to_str))
    conv.register_structure_hook_func(
        lambda t: t == tuple[str, ...], _strict("a list of glob strings", _to_globs)
    )
    for table in (TrainSettings, DaemonSettings, ScaleSettings):
        conv.register_structure_hook(table, _table_hook(conv.get_structure_hook(table)))
    return conv


_CONVERTER = _make_converter()


def _build(data: Mapping[str, Any], origin: dict[str, str]) -> Settings:
    try:
        settings = _CONVERTER.structure(dict(data), Settings)
    except cattrs.BaseValidationError as exc:
        dotted, message = _first_error(exc)
        where = origin.get(dotted, "settings")
        raise SettingsError(
            f"setting '{dotted}' ({where}) {message}", field=dotted, source=origin.get(dotted)
        ) from None
    try:
        _validate(settings.train, "train.")
        _validate(settings.daemon, "daemon.")
        _validate(settings, "")
    except SettingsError as exc:
        exc.source = origin.get(exc.field or "")
        raise
    for dotted in unknown_settings(data):
        log.warning(
            "unknown setting '%s' (%s) is ignored; the settings are listed in docs/protocol.md",
            dotted,
            origin.get(dotted, "settings"),
        )
    return settings


def unknown_settings(data: Mapping[str, Any], cls: type = Settings, prefix: str = "") -> list[str]:
    """Dotted names in `data` that are no setting (a typo such as `train.schedueL`)."""
    names = {f.name for f in dataclasses.fields(cls)}
    out = []
    for key, value in data.items():
        if key not in names:
            out.append(f"{prefix}{key}")
        elif cls is Settings and key in _TABLES and isinstance(value, Mapping):
            out += unknown_settings(value, _TABLES[key], f"{key}.")
    return out


_TABLES: dict[str, type] = {
    "train": TrainSettings,
    "daemon": DaemonSettings,
    "scale": ScaleSettings,
}


def _first_error(exc: BaseException, path: str = "") -> tuple[str, str]:
    """The dotted field name and the message of the first bad value in a cattrs error."""
    if isinstance(exc, cattrs.BaseValidationError) and exc.exceptions:
        inner = exc.exceptions[0]
        name = next((n.name for n in getattr(inner, "__notes__", []) if hasattr(n, "name")), None)
        return _first_error(inner, f"{path}{name}." if name is not None else path)
    return path.rstrip("."), str(exc) if isinstance(exc, _Wrong) else f"is invalid ({exc})"


def _bad(name: str, rule: str) -> SettingsError:
    return SettingsError(f"setting '{name}' {rule}", field=name)


def _validate(obj: Any, prefix: str) -> None:
    if isinstance(obj, TrainSettings):
        schedule = obj.schedule
        if schedule not in _SCHEDULES and not (schedule.isdigit() and int(schedule) > 0):
            raise _bad(
                f"{prefix}schedule", f"must be off, daily, hourly or minutes, got {schedule!r}"
            )
        if obj.min_new_chunks < 0:
            raise _bad(f"{prefix}min_new_chunks", "must be 0 or more")
        if obj.epochs <= 0:
            raise _bad(f"{prefix}epochs", "must be positive")
        # In-batch negatives need a second pair in the batch, and the split two pairs.
        for name in ("batch_size", "max_pairs"):
            if getattr(obj, name) < 2:
                raise _bad(f"{prefix}{name}", f"must be at least 2, got {getattr(obj, name)}")
        if not 0 < obj.lr < 1:
            raise _bad(f"{prefix}lr", f"must be between 0 and 1, got {obj.lr!r}")
        return
    if isinstance(obj, DaemonSettings):
        if not obj.idle_minutes > 0:
            raise _bad(f"{prefix}idle_minutes", f"must be positive, got {obj.idle_minutes!r}")
        return
    if not obj.device.startswith(_DEVICE_PREFIXES):
        raise _bad("device", f"must be auto, cpu, cuda, cuda:N or mps, got {obj.device!r}")
    if obj.max_file_bytes <= 0:
        raise _bad("max_file_bytes", "must be a positive number of bytes")
    if not 16 <= obj.max_seq_length <= 8192:
        raise _bad("max_seq_length", "must be between 16 and 8192 tokens")
    if obj.batch_size <= 0:
        raise _bad("batch_size", "must be positive")
    if not obj.model.strip():
        raise _bad("model", "must name a model id or a local directory")
    if obj.vector_index not in ("auto", "exact", "hnsw"):
        raise _bad("vector_index", f"must be auto, exact or hnsw, got {obj.vector_index!r}")
    if obj.scale.ray_replicas < 0:
        raise _bad("scale.ray_replicas", "must be 0 (automatic) or more")
    if obj.scale.ray_batch_size <= 0:
        raise _bad("scale.ray_batch_size", "must be positive")
