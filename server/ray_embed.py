"""The embedding pass on a Ray cluster (`kenning index --ray [ADDRESS]`).

Discovery, chunking and the content-hash diff stay on this machine (the
driver): only the chunk texts still missing a vector in the target generation
go to Ray, as `ray.data.from_items(...).map_batches(EmbedReplica, ...)` over
a fixed pool of actors, each holding one model replica loaded once in its
constructor (one GPU each when the cluster has GPUs, else one CPU each).
Vectors stream back block by block and the driver, the one writer, stores
each batch in one transaction as it arrives: a crash loses at most the
batches in flight, and a rerun finds the stored ones and skips them. Ray
retries a task whose actor died (the actor is restarted), so a lost worker
costs only its batch.

Ray is an optional dependency (`pip install 'kenning[ray]'`), imported only
here and only when asked for. Workers need kenning installed and the model
folder at the same path (the bundled model is part of the package); see
docs/scale.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .embedder import Embedder, usable_cores
from .models import ModelRef
from .settings import ScaleSettings
from .store import Generation, Store

log = logging.getLogger(__name__)

WINDOW = 50_000
"""Chunk texts handed to Ray per dataset: bounds the driver's and the object
store's memory on a huge first index (the pool restarts between windows)."""

Progress = Callable[[str, int, int], None]


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached; the message says what to do."""


@dataclass(frozen=True)
class RayOptions:
    address: str = ""
    """`auto`, `host:port`, `ray://host:10001`, or empty for a local runtime."""
    replicas: int = 0
    """Model replicas; 0: one per GPU of the cluster, or one per CPU without GPUs."""
    batch_size: int = 256
    """Chunk texts per Ray batch."""

    @classmethod
    def from_settings(
        cls, scale: ScaleSettings, address: str | None = None, replicas: int | None = None
    ) -> RayOptions:
        """The `[scale]` settings, with the command line's ADDRESS and replicas winning."""
        return cls(
            address=address or scale.ray_address,
            replicas=scale.ray_replicas if replicas is None else replicas,
            batch_size=scale.ray_batch_size,
        )


@dataclass(frozen=True)
class ReplicaSpec:
    """What each actor needs to load the same model the driver would."""

    name: str
    version: str
    location: str
    max_seq_length: int
    batch_size: int
    device: str


class EmbedReplica:
    """One model replica in a Ray actor: loaded once, then fed batches of texts."""

    spec: ReplicaSpec
    """Set on a subclass per run (see `_embed_window`)."""

    def __init__(self) -> None:
        spec = self.spec
        if not os.path.exists(spec.location) and os.sep in spec.location:
            raise RayUnavailable(
                f"model folder {spec.location} does not exist on Ray worker "
                f"{os.uname().nodename}; put it on a path every worker shares"
            )
        self.embedder = Embedder(
            ModelRef(spec.name, spec.version, spec.location),
            device=spec.device,
            max_seq_length=spec.max_seq_length,
            batch_size=spec.batch_size,
        )
        self.embedder.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.encode([str(t) for t in batch["text"]])
        return {"hash": batch["hash"], "vector": vectors.astype(np.float16)}


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is an extra of its own
    except ImportError as exc:
        raise RayUnavailable(
            f"--ray needs Ray Data ({exc.name or exc}); install it with pip install 'kenning[ray]'"
        ) from None
    return ray


def connect(ray: Any, address: str) -> bool:
    """Join the cluster at `address`, or start a local runtime; True when started here."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(
                address="local",
                num_cpus=usable_cores(),
                include_dashboard=False,
                **quiet,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local runtime"
        raise RayUnavailable(
            f"cannot start Ray at {where} ({str(exc).splitlines()[0] if str(exc) else exc}); "
            "check the address (`ray status` on the head node) or drop --ray"
        ) from exc
    return True


def _quiet(ray: Any) -> None:
    """Keep Ray's own chatter off the terminal: the CLI draws its progress bar and
    says what went wrong in one line; Ray's logs stay in its session folder."""
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False


def _plan(ray: Any, options: RayOptions) -> tuple[int, dict[str, float]]:
    """(replicas, resources per replica) for the cluster joined."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return options.replicas or gpus, {"num_gpus": 1}
    cpus = max(1, int(resources.get("CPU", 1)))
    return options.replicas or cpus, {"num_cpus": 1}


def embed_with_ray(
    store: Store,
    gen: Generation,
    spec: ReplicaSpec,
    options: RayOptions,
    progress: Progress | None = None,
) -> int:
    """Embed every chunk text of `gen` still without a vector on Ray; returns how many."""
    ray = import_ray()
    total = store.counts(gen.id).pending
    if progress:
        progress("embed", 0, total)
    if not total:
        return 0  # nothing missing: no cluster to start or join
    _quiet(ray)
    started = connect(ray, options.address)
    try:
        replicas, per_replica = _plan(ray, options)
        log.info("embedding on Ray with %d replicas (%s each)", replicas, per_replica)
        done = 0
        while batch := store.pending_texts(gen.id, WINDOW):
            before = done
            for hashes, vectors in _embed_window(ray, batch, spec, options, replicas, per_replica):
                store.add_embeddings(gen.id, hashes, vectors)
                done += len(hashes)
                if progress:
                    progress("embed", done, max(total, done))
            if done == before:
                raise RuntimeError("Ray returned no vectors for a window of chunks")
        return done
    finally:
        if started:
            ray.shutdown()


def _embed_window(
    ray: Any,
    batch: list[tuple[str, str]],
    spec: ReplicaSpec,
    options: RayOptions,
    replicas: int,
    per_replica: dict[str, float],
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Yield (hashes, vectors) as Ray finishes each block of this window."""
    items = [{"hash": h, "text": t} for h, t in batch]
    blocks = max(replicas, len(items) // options.batch_size)
    # The spec travels inside the class rather than as constructor arguments,
    # which Ray would keep in its object store for restarts (and warn about).
    replica = type("EmbedReplica", (EmbedReplica,), {"spec": spec})
    dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        replica,
        batch_size=options.batch_size,
        compute=ray.data.ActorPoolStrategy(size=replicas),
        batch_format="numpy",
        **per_replica,
    )
    for out in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        yield [str(h) for h in out["hash"]], np.asarray(out["vector"])
