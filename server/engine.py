"""One workspace's index and search, wired together without any LSP.

The CLI, the language server, the trainer and the benchmarks all go through
an Engine: it owns the settings, the store, the file filter, the indexer and
the (lazily loaded) embedder, and knows which model generation should answer.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .adapters import QueryAdapter, adapter_pointer_path, foreign_note, promoted_adapter
from .discover import FileFilter
from .embedder import Embedder
from .indexer import Indexer, IndexSummary, Progress, timed_index
from .light_encoder import LightEncoder, LightPathUnavailable
from .models import ModelRef, read_history, split_label, target_model, vector_identity
from .picks import PickStore, make_pick
from .related import FileContext, RelatedOutcome, find_related
from .search import QueryEncoder, SearchOutcome, SearchResult, search
from .settings import Settings, claim_index_dir, load_settings, resolve_workspace
from .store import Generation, Store, StoreError

if TYPE_CHECKING:
    from .ray_embed import RayOptions, ReplicaSpec

log = logging.getLogger(__name__)


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
    adapter: str | None = None
    """The query adapter searches apply (its id), or None."""
    picks: int = 0
    """Opened search results kept to learn from (`kenning/feedback`)."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, None when it is missing: tells that a pointer changed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def write_failure(index_dir: Path, exc: BaseException) -> str:
    """One line for a failed write to the index, saying what to do next."""
    text = str(exc) or type(exc).__name__
    hint = (
        "free some space or set `index_dir` to another disk"
        if any(w in text.lower() for w in ("full", "space", "too large", "quota", "i/o"))
        else "check the folder"
    )
    return (
        f"could not write the index at {index_dir} ({text}); {hint}. "
        "The last complete index is kept"
    )


class Engine:
    def __init__(self, root: Path, settings: Settings):
        self.root = root
        self.settings = settings
        self.index_dir = claim_index_dir(settings.resolved_index_dir(root), root)
        self.store = Store.open(self.index_dir)
        self.store.use_vector_index(settings.vector_index)
        self.store.cleanup_leftovers()
        self.filter = FileFilter(root, settings.include, settings.exclude)
        self.indexer = Indexer(root, self.store, self.filter, settings.max_file_bytes)
        self.model_ref = self._target_model()
        self._embedder: Embedder | None = None
        self._older_embedders: dict[str, Embedder] = {}
        # The daemon reaches for the embedder from the index worker and from
        # query threads at once: one lock so that the model is built once.
        self._embedder_lock = threading.Lock()
        self._pins: dict[int, int] = {}
        """Searches in flight per generation: a retired generation is dropped only
        once none is still reading it."""
        self._pins_cond = threading.Condition()
        self.picks = PickStore(self.index_dir)
        self._adapter: QueryAdapter | None = None
        self._adapter_problem: str | None = None
        self._adapter_stamp: tuple[int, int] | None = None
        self._adapter_lock = threading.Lock()
        self.reload_adapter()
        self.light_queries = False
        """Read queries through the light path (ONNX Runtime) while the full model is not
        loaded: a one-shot command line process then never imports torch."""
        self._light: dict[str, LightEncoder | None] = {}
        """Light encoders by model location; None where the light path is unavailable."""
        if not self.store.read_only and not self.store.open_elsewhere():
            # Only when alone: what looks abandoned may be another process's
            # work in progress (a server re-embedding for a new model).
            self.cleanup_generations()

    @classmethod
    def open(
        cls,
        workspace: str | Path,
        overrides: Mapping[str, Any] | None = None,
        *,
        init_options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Engine:
        root = resolve_workspace(workspace)
        settings = load_settings(root, cli=overrides, init_options=init_options, environ=environ)
        return cls(root, settings)

    def _target_model(self) -> ModelRef:
        return target_model(self.index_dir, self.settings)

    @property
    def identity(self) -> str:
        """Everything the stored vectors depend on; a change means re-embedding."""
        return vector_identity(self.model_ref, self.settings.max_seq_length)

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
        """Whether the model that answers searches now is in memory (loading takes seconds)."""
        gen = self.serving_generation()
        light = self._light.get(gen.location) if gen is not None and self.light_queries else None
        if light is not None and light.loaded:
            return True
        if gen is not None and gen.identity != self.identity:
            older = self._older_embedders.get(gen.identity)
            return older is not None and older.loaded
        embedder = self._embedder
        return embedder is not None and embedder.ref == self.model_ref and embedder.loaded

    def reload_model(self) -> bool:
        """Follow the promotion pointer; True when the target model changed.

        The old embedder is kept (already loaded) to answer queries against the
        old generation until the new one is complete and switched in.
        """
        new_ref = self._target_model()
        with self._embedder_lock:
            if new_ref == self.model_ref:
                return False
            log.info("model %s -> %s", self.model_ref.label, new_ref.label)
            self._retarget(self.settings, new_ref, None)
        # The old model's adapter was retired with it; one for the new model may wait.
        self.reload_adapter()
        return True

    def reload_adapter(self) -> bool:
        """Follow the adapter pointer; True when the adapter searches apply changed.

        This is the whole swap after an adapter is promoted: one reference
        changes, and the next search maps its query with the new matrix (a
        search under way keeps the one it started with). A refused adapter
        (corrupt, or trained for other vectors) is reported once in status.
        """
        with self._adapter_lock:
            self._adapter_stamp = _stamp(adapter_pointer_path(self.index_dir))
            return self._load_adapter()

    def _load_adapter(self) -> bool:
        adapter, problem = promoted_adapter(self.index_dir)
        warnings = self.store.warnings
        if problem != self._adapter_problem:
            if self._adapter_problem in warnings:
                warnings.remove(self._adapter_problem)
            if problem:
                log.warning("%s", problem)
                warnings.append(problem)
            self._adapter_problem = problem
        old, self._adapter = self._adapter, adapter
        return (old.id if old else None) != (adapter.id if adapter else None)

    def adapter_for(self, gen: Generation | None) -> QueryAdapter | None:
        """The adapter for searches answered by `gen`: only one trained against its vectors.

        The pointer is looked at on every call (one stat), so an adapter promoted by
        the daemon's run or by `kenning train` in a terminal is used by the very
        next search.
        """
        if _stamp(adapter_pointer_path(self.index_dir)) != self._adapter_stamp:
            self.reload_adapter()
        adapter = self._adapter
        if adapter is None or gen is None or adapter.identity != gen.identity:
            return None
        return adapter

    def use_settings(self, settings: Settings, embedder: Embedder | None = None) -> bool:
        """Take new settings while running (server/live_settings.py says what follows).

        The file filter and the indexer follow `include`, `exclude` and
        `max_file_bytes` from the next scan; new chunks are embedded with
        `embedder` (already loaded with the new model, device and lengths), or
        with one built for them on first use. The generation that answers keeps
        its own model until a switch replaces it. Returns whether the vectors
        must be rebuilt (the model or `max_seq_length` changed). Raises
        ModelError, changing nothing, when the new model cannot be found.
        """
        new_ref = embedder.ref if embedder is not None else target_model(self.index_dir, settings)
        with self._embedder_lock:
            before = self.identity
            self._retarget(settings, new_ref, embedder)
            rebuild = self.identity != before
        self.filter = FileFilter(self.root, settings.include, settings.exclude)
        self.indexer = Indexer(self.root, self.store, self.filter, settings.max_file_bytes)
        return rebuild

    def _retarget(self, settings: Settings, ref: ModelRef, embedder: Embedder | None) -> None:
        """Embed new chunks with `ref` under `settings` from now on; the current embedder
        stays (already loaded) for the generation built with it. Under the embedder lock."""
        current, before = self._embedder, self.identity
        self.settings = settings
        self.model_ref = ref
        self._embedder = embedder
        if current is not None and self.identity != before:
            self._older_embedders[before] = current

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
            self.model_ref.label,
            identity,
            self.model_ref.location,
            self.embedder.dim,
            active=active is None,
        )

    def finish_generation(self, gen: Generation) -> bool:
        """Switch to `gen` once it has every vector, then drop the older ones.

        Returns whether `gen` answers now. The switch is one SQLite transaction
        (and the new vectors are in memory before it), so every search is
        answered by one complete generation, old or new; the old one is
        dropped once no search still reads it.
        """
        if gen.state == "active":
            return True
        if self.store.counts(gen.id).pending:
            return False  # still missing vectors; the old generation keeps answering
        self.store.activate_generation(gen.id)
        for old in self.store.generations():
            if old.id != gen.id and old.state != "building":
                self._wait_unpinned(old.id)
                self.store.drop_generation(old.id)
        with self._embedder_lock:
            self._older_embedders = {}
        return True

    def cleanup_generations(self) -> None:
        """Drop what an interrupted switch left: retired generations (the switch
        committed, the drop did not happen) and vector files of generations
        that no longer exist."""
        gens = self.store.generations()
        active = self.store.active_generation()
        for gen in gens:
            if gen.state == "retired" and active is not None:
                log.info("dropping generation %d, retired by an interrupted switch", gen.id)
                self.store.drop_generation(gen.id)
            elif gen.state == "building" and gen.identity != self.identity:
                # Built for a model that is no longer the target (its checkpoint
                # was refused, or the setting changed): it would never finish.
                log.info(
                    "dropping generation %d, built for %s which is no longer in use",
                    gen.id,
                    gen.model,
                )
                self.store.drop_generation(gen.id)
        self.store.remove_orphan_snapshots()

    def _pin(self, gen_id: int) -> None:
        with self._pins_cond:
            self._pins[gen_id] = self._pins.get(gen_id, 0) + 1

    def _unpin(self, gen_id: int) -> None:
        with self._pins_cond:
            self._pins[gen_id] -= 1
            if not self._pins[gen_id]:
                del self._pins[gen_id]
                self._pins_cond.notify_all()

    def _wait_unpinned(self, gen_id: int, timeout: float = 30.0) -> None:
        with self._pins_cond:
            if not self._pins_cond.wait_for(lambda: gen_id not in self._pins, timeout):
                log.warning(
                    "searches still read generation %d after %.0fs; dropping it anyway",
                    gen_id,
                    timeout,
                )

    # -- the public operations -------------------------------------------------------------

    def index(
        self, progress: Progress | None = None, *, ray: RayOptions | None = None
    ) -> IndexSummary:
        """Bring the index fully up to date (both passes) and save the vector snapshot.

        With `ray`, the embedding pass runs on a Ray cluster (`ray_embed.py`).
        Raises StoreError when the index cannot be written (a read-only folder,
        a full disk); every batch that committed before stays, and so does the
        last complete index.
        """
        with self._writing():
            return self._index(progress, ray)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write into a StoreError that says what to do."""
        if self.store.read_only:
            raise StoreError(
                f"the index at {self.index_dir} is read-only, so it cannot be updated; "
                "search still works from it (or set `index_dir` to a writable folder)"
            )
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StoreError(write_failure(self.index_dir, exc)) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT):
                raise StoreError(write_failure(self.index_dir, exc)) from exc
            raise

    def _index(self, progress: Progress | None, ray: RayOptions | None) -> IndexSummary:
        target: list[Generation] = []

        def gen_for() -> Generation:
            target.append(self.target_generation())
            return target[-1]

        embed = functools.partial(self._embed_on_ray, ray) if ray is not None else None
        summary = timed_index(self.indexer, self.embedder, gen_for, progress, embed)
        if target:
            self.finish_generation(target[-1])
        self.store.save_snapshot()
        return summary

    def refresh_lexical(self) -> IndexSummary:
        """The lexical pass only: cheap, and enough for lexical search."""
        with self._writing():
            return self.indexer.scan()

    @contextlib.contextmanager
    def _serving(self) -> Iterator[Generation | None]:
        """The generation that answers, pinned (not dropped by a switch) while in use."""
        gen = self.serving_generation()
        if gen is None:
            yield None
            return
        self._pin(gen.id)
        try:
            yield gen
        finally:
            self._unpin(gen.id)

    def search_outcome(
        self,
        query: str,
        *,
        limit: int = 10,
        mode: str = "hybrid",
        paths: Sequence[str] = (),
        explain: bool = False,
    ) -> SearchOutcome:
        with self._serving() as gen:
            encoder, load_ms = None, 0.0
            if gen is not None and mode != "lexical":
                # Loading the model is timed apart, so took_ms says what the search cost.
                start = time.perf_counter()
                encoder = self.query_encoder_for(gen)
                load_ms = (time.perf_counter() - start) * 1000
            outcome = search(
                self.store,
                encoder,
                gen,
                query,
                limit=limit,
                mode=mode,
                paths=paths,
                model_label=gen.model if gen is not None else self.model_ref.label,
                adapter=self.adapter_for(gen),
                explain=explain,
            )
            outcome.load_ms = load_ms
            return outcome

    def related(
        self, rel: str, line: int, *, limit: int = 10, paths: Sequence[str] = ()
    ) -> RelatedOutcome:
        """Code most similar to the chunk at 1-based `line` of workspace file `rel`, found
        with that chunk's stored vector; RelatedError says why when there is no answer."""
        where = FileContext(self.root, rel, self.filter, self.settings.max_file_bytes)
        with self._serving() as gen:
            return find_related(self.store, gen, where, line, limit=limit, paths=paths)

    def query_encoder_for(self, gen: Generation) -> QueryEncoder:
        """What reads a query for `gen`, loaded: the full model when it is loaded (or
        the light path is off or unavailable), else the light path."""
        full = self.embedder_for(gen)
        if full.loaded and self._light.get(gen.location) is not None:
            with self._embedder_lock:  # one copy of each model: the light one has done its job
                del self._light[gen.location]
        if full.loaded or not self.light_queries or self.settings.device not in ("auto", "cpu"):
            full.load()
            return full
        light = self.light_encoder(gen.location)
        if light is None:
            full.load()
            return full
        return light

    def prepare_light_path(self) -> None:
        """Export the serving model for the light path while it is loaded anyway (after
        `kenning index` embedded something), so the next search starts fast."""
        gen = self.serving_generation()
        full = self._embedder
        if gen is None or full is None or not full.loaded:
            return  # nothing was embedded here: the first search that needs it exports
        if self.settings.device in ("auto", "cpu"):
            self.light_encoder(gen.location)

    def light_encoder(self, location: str) -> LightEncoder | None:
        """The loaded light encoder of the model at `location`; None (once logged) when
        that model cannot take the light path."""
        with self._embedder_lock:
            if location in self._light:
                return self._light[location]
            encoder = LightEncoder(
                location, self.index_dir, max_seq_length=self.settings.max_seq_length
            )
            found: LightEncoder | None = encoder
            try:
                encoder.load()
            except LightPathUnavailable as exc:
                log.info("queries use sentence-transformers: %s", exc)
                found = None
            self._light[location] = found
            return found

    def search(
        self, query: str, limit: int = 10, mode: str = "hybrid", paths: Sequence[str] = ()
    ) -> list[SearchResult]:
        return self.search_outcome(query, limit=limit, mode=mode, paths=paths).results

    def _embed_on_ray(self, ray: RayOptions, gen: Generation, progress: Progress | None) -> int:
        from .ray_embed import embed_with_ray

        return embed_with_ray(self.store, gen, self.replica_spec(), ray, progress)

    def replica_spec(self) -> ReplicaSpec:
        """How a model replica elsewhere (a Ray actor) loads the current model."""
        from .ray_embed import ReplicaSpec

        ref = self.model_ref
        return ReplicaSpec(
            ref.name,
            ref.version,
            ref.location,
            self.settings.max_seq_length,
            self.settings.batch_size,
            self.settings.device,
        )

    def embedder_for(self, gen: Generation) -> Embedder:
        """The model that reads queries (and new chunks) for `gen`.

        An older generation answers with the model it was built with, loaded
        once and kept until the new generation takes over.
        """
        if gen.identity == self.identity:
            return self.embedder
        with self._embedder_lock:
            embedder = self._older_embedders.get(gen.identity)
            if embedder is None:
                name, version = split_label(gen.model)
                embedder = Embedder(
                    ModelRef(name, version, gen.location),
                    device=self.settings.device,
                    max_seq_length=self.settings.max_seq_length,
                    batch_size=self.settings.batch_size,
                )
                self._older_embedders = {gen.identity: embedder}
            return embedder

    def status(self) -> Status:
        gen = self.serving_generation()
        totals = self.store.counts(gen.id if gen else None)
        # With no generation yet, every chunk text is still to be embedded.
        pending = totals.pending if gen else self.store.embeddable_texts()
        size = sum(p.stat().st_size for p in self.index_dir.iterdir() if p.is_file())
        status = Status(
            workspace=str(self.root),
            index_dir=str(self.index_dir),
            files=totals.files,
            chunks=totals.chunks,
            pending=pending,
            model=gen.model if gen else self.model_ref.label,
            generation=gen.id if gen else None,
            index_bytes=size,
            warnings=list(self.store.warnings),
            training=self.training_history(),
            adapter=adapter.id if (adapter := self.adapter_for(gen)) else None,
            picks=self.picks.count(),
        )
        loaded = self._adapter
        if (
            loaded is not None
            and gen is not None
            and loaded.identity
            not in (
                gen.identity,
                self.identity,
            )
        ):
            status.warnings.append(foreign_note(loaded))
        return status

    def record_pick(self, rel: str, start_line: int, end_line: int, query: str) -> str | None:
        """Keep a result the user opened (1-based lines of workspace file `rel`) as a pick;
        returns why it was dropped, or None when it was kept."""
        pick, why = make_pick(
            self.root, rel, start_line, end_line, query, self.settings.max_file_bytes
        )
        if pick is None:
            return why
        try:
            self.picks.add(pick)
        except OSError as exc:
            return f"the pick could not be written ({exc.strerror or exc})"
        return None

    def training_history(self) -> list[dict[str, Any]]:
        return read_history(self.index_dir)

    def close(self, *, save_snapshot: bool = True) -> None:
        """Save the vector snapshot (unless another process writes this index) and close."""
        if save_snapshot:
            try:
                self.store.save_snapshot()
            except OSError as exc:
                log.warning("could not save the vector snapshot: %s", exc)
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
