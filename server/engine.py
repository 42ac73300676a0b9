"""One workspace's index and search, wired together without any LSP.

The CLI, the language server, the trainer and the benchmarks all go through
an Engine: it owns the settings, the store, the file filter, the indexer and
the (lazily loaded) embedder, and knows which model generation should answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .discover import FileFilter
from .embedder import Embedder, ModelRef, resolve_model
from .indexer import Indexer, IndexSummary, Progress, timed_index
from .search import SearchOutcome, SearchResult, search
from .settings import Settings, load_settings
from .store import Generation, Store

log = logging.getLogger(__name__)


class WorkspaceError(ValueError):
    """The workspace path is unusable (missing, not a folder)."""


@dataclass
class Status:
    workspace: str
    index_dir: str
    files: int
    chunks: int
    pending: int
    model: str
    generation: int | None
    index_bytes: int
    warnings: list[str]
    training: list[dict[str, Any]]
    """Every `kenning train` run, oldest first: outcome, reason, metrics, time."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Engine:
    def __init__(self, root: Path, settings: Settings):
        self.root = root
        self.settings = settings
        self.index_dir = settings.resolved_index_dir(root)
        self.store = Store.open(self.index_dir)
        self.store.cleanup_leftovers()
        self.filter = FileFilter(root, settings.include, settings.exclude)
        self.indexer = Indexer(root, self.store, self.filter, settings.max_file_bytes)
        self.model_ref = self._target_model()
        self._embedder: Embedder | None = None
        self._older_embedders: dict[str, Embedder] = {}
        # The daemon reaches for the embedder from the index worker and from
        # query threads at once: one lock so that the model is built once.
        self._embedder_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        workspace: str | Path,
        overrides: Mapping[str, Any] | None = None,
        *,
        init_options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Engine:
        root = Path(workspace).expanduser()
        if not root.exists():
            raise WorkspaceError(f"workspace {root} does not exist")
        if not root.is_dir():
            raise WorkspaceError(f"workspace {root} is not a directory")
        root = root.resolve()
        settings = load_settings(root, cli=overrides, init_options=init_options, environ=environ)
        return cls(root, settings)

    def _target_model(self) -> ModelRef:
        """The model that should answer: a promoted checkpoint, else the setting."""
        try:
            from trainer.checkpoints import promoted_model

            promoted = promoted_model(self.index_dir, self.settings.model)
        except ImportError:
            promoted = None
        return promoted or resolve_model(self.settings.model)

    @property
    def identity(self) -> str:
        """Everything the stored vectors depend on; a change means re-embedding."""
        return f"{self.model_ref.location}|{self.model_ref.version}|seq={self.settings.max_seq_length}"

    @property
    def embedder(self) -> Embedder:
        with self._embedder_lock:
            if self._embedder is None or self._embedder.ref != self.model_ref:
                self._embedder = Embedder(
                    self.model_ref,
                    device=self.settings.device,
                    max_seq_length=self.settings.max_seq_length,
                    batch_size=self.settings.batch_size,
                )
            return self._embedder

    @property
    def model_loaded(self) -> bool:
        """Whether the current model is in memory (loading it takes seconds)."""
        embedder = self._embedder
        return embedder is not None and embedder.ref == self.model_ref and embedder.loaded

    # -- generations -------------------------------------------------------------------

    def serving_generation(self) -> Generation | None:
        """The generation that answers searches now (possibly of an older model)."""
        return self.store.active_generation()

    def target_generation(self) -> Generation:
        """The generation for the current model: the active one if it matches,
        else a building one (resumed after a restart) or a new one."""
        identity = self.identity
        for gen in reversed(self.store.generations()):
            if gen.identity == identity and gen.state in ("active", "building"):
                return gen
        active = self.store.active_generation()
        return self.store.create_generation(
            self.model_ref.label, identity, self.model_ref.location, self.embedder.dim, active=active is None
        )

    def finish_generation(self, gen: Generation) -> None:
        """Switch to `gen` once it has every vector, then drop the older ones."""
        if gen.state == "active":
            return
        if self.store.counts(gen.id)[2]:
            return  # still missing vectors; the old generation keeps answering
        self.store.activate_generation(gen.id)
        for old in self.store.generations():
            if old.id != gen.id and old.state != "building":
                self.store.drop_generation(old.id)

    # -- the public operations -------------------------------------------------------------

    def index(self, progress: Progress | None = None) -> IndexSummary:
        """Bring the index fully up to date (both passes) and save the vector snapshot."""
        target: list[Generation] = []

        def gen_for() -> Generation:
            target.append(self.target_generation())
            return target[-1]

        summary = timed_index(self.indexer, self.embedder, gen_for, progress)
        if target:
            self.finish_generation(target[-1])
        self.store.save_snapshot()
        return summary

    def refresh_lexical(self) -> IndexSummary:
        """The lexical pass only: cheap, and enough for lexical search."""
        return self.indexer.scan()

    def search_outcome(self, query: str, *, limit: int = 10, mode: str = "hybrid",
                       paths: Sequence[str] = ()) -> SearchOutcome:
        gen = self.serving_generation()
        embedder = None
        label = self.model_ref.label
        if gen is not None and mode != "lexical":
            embedder = self.embedder if gen.identity == self.identity else self._embedder_for(gen)
            label = gen.model
        return search(self.store, embedder, gen, query, limit=limit, mode=mode, paths=paths, model_label=label)

    def search(self, query: str, limit: int = 10, mode: str = "hybrid", paths: Sequence[str] = ()) -> list[SearchResult]:
        return self.search_outcome(query, limit=limit, mode=mode, paths=paths).results

    def _embedder_for(self, gen: Generation) -> Embedder:
        # An older generation answers with the model it was built with, loaded
        # once and kept until the new generation takes over.
        with self._embedder_lock:
            embedder = self._older_embedders.get(gen.identity)
            if embedder is None:
                name, _, version = gen.model.partition("@")
                embedder = Embedder(ModelRef(name, version or "base", gen.location), device=self.settings.device,
                                    max_seq_length=self.settings.max_seq_length, batch_size=self.settings.batch_size)
                self._older_embedders = {gen.identity: embedder}
            return embedder

    def status(self) -> Status:
        gen = self.serving_generation()
        files, chunks, pending = self.store.counts(gen.id if gen else None)
        if gen is None:
            pending = self.store.conn.execute("SELECT COUNT(DISTINCT hash) FROM chunks WHERE embeddable = 1").fetchone()[0]
        size = sum(p.stat().st_size for p in self.index_dir.iterdir() if p.is_file())
        return Status(
            workspace=str(self.root), index_dir=str(self.index_dir), files=files, chunks=chunks,
            pending=pending, model=gen.model if gen else self.model_ref.label,
            generation=gen.id if gen else None, index_bytes=size, warnings=list(self.store.warnings),
            training=self.training_history(),
        )

    def training_history(self) -> list[dict[str, Any]]:
        from trainer.checkpoints import read_history

        return read_history(self.index_dir)

    def close(self) -> None:
        try:
            self.store.save_snapshot()
        except OSError as exc:
            log.warning("could not save the vector snapshot: %s", exc)
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


