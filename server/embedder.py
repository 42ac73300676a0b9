"""The embedding model: where it comes from, which device it runs on, how it is fed.

Models load from local files only (a directory, the bundled all-MiniLM-L6-v2,
or the local Hugging Face cache): nothing is fetched at run time. A local
sentence-transformers folder of a transformer and a pooling (the bundled model,
every checkpoint `kenning train` writes) runs through transformers directly
(server/transformer_model.py), so the daemon never imports sentence-transformers
and the training stack it brings along; any other model runs through
sentence-transformers. Either way the model loads on first use, not at import,
and a lexical-only search never pays for it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .models import ModelError, ModelRef, pick_device
from .transformer_model import PooledModel, UnsupportedModel

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class EmbeddingModel(Protocol):
    """A loaded model: unit-length float32 vectors for texts."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...


# Offline before any Hugging Face module is imported: a missing model must fail
# at once with a clear message, not hang on a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


QUERY_THREADS = 1
"""Torch threads for embedding one query (see Embedder.encode_query)."""


class Embedder:
    """The embedding model, loaded lazily (once, under a lock), and safe to encode with
    from several threads at once."""

    def __init__(
        self,
        ref: ModelRef,
        *,
        device: str = "auto",
        max_seq_length: int = 256,
        batch_size: int = 32,
    ):
        self.ref = ref
        self.device_setting = device
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self._model: EmbeddingModel | None = None
        self._lock = threading.Lock()
        self.device = "unloaded"

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> EmbeddingModel:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> EmbeddingModel:
        device = pick_device(self.device_setting)
        try:
            model: EmbeddingModel = PooledModel(
                self.ref.location, device=device, max_seq_length=self.max_seq_length
            )
        except UnsupportedModel:
            model = _SentenceTransformers(self.ref.location, device, self.max_seq_length)
        except Exception as exc:  # noqa: BLE001 - any load failure gets the same advice
            raise ModelError(
                f"cannot load model {self.ref.location!r} offline ({type(exc).__name__}: {exc}); "
                "set `model` to a local sentence-transformers directory"
            ) from exc
        self.device = device
        return model

    @property
    def dim(self) -> int:
        return self.load().dim

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        """Unit-length float32 vectors, shape (len(texts), dim).

        sentence-transformers sorts the texts by length before batching, so
        each batch pads to similar lengths and little compute is wasted. Safe
        to call from several threads at once (see `_share_between_threads`).
        """
        model = self.load()
        if not texts:
            return np.zeros((0, model.dim), dtype=np.float32)
        return model.encode(texts, batch_size or self.batch_size)

    def encode_query(self, query: str) -> np.ndarray:
        """One query vector, shape (dim,). Runs alongside a bulk `encode` on
        another thread rather than waiting for it to finish.

        One short text gains nothing from intra-op parallelism, and on a busy
        CPU the second thread's synchronisation costs more than it saves
        (measured on 2 loaded cores: p50 70 ms / max 545 ms with two threads,
        27 ms / 38 ms with one). OpenMP's thread count is per calling thread,
        so this leaves the indexer's bulk encoding at full width.
        """
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(QUERY_THREADS)
        try:
            return self.encode([query])[0]
        finally:
            torch.set_num_threads(previous)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, where the OS has one)."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def background_thread_count() -> int:
    """Threads for work that is not urgent: half the cores, so searches keep the rest."""
    return max(1, usable_cores() // 2)


@contextlib.contextmanager
def background_threads() -> Iterator[None]:
    """Limit the calling thread's torch CPU threads to half the cores for bulk work
    that is not urgent (re-embedding for a new model), so that searches keep the
    rest. OpenMP thread counts are per thread: other threads are unaffected."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, background_thread_count()))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _SentenceTransformers:
    """A model folder that needs sentence-transformers itself (a Dense layer, a custom
    module, an id in the Hugging Face cache)."""

    def __init__(self, location: str, device: str, max_seq_length: int):
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            model = SentenceTransformer(location, device=device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure gets the same advice
            raise ModelError(
                f"cannot load model {location!r} offline ({type(exc).__name__}: {exc}); "
                "set `model` to a local sentence-transformers directory"
            ) from exc
        if device.startswith("cuda"):
            model.half()  # doubles GPU throughput; cosine ranking is unaffected
        model.max_seq_length = min(max_seq_length, model.max_seq_length or max_seq_length)
        _share_between_threads(model)
        self.model = model
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise ModelError(f"model {location!r} does not say its embedding size")
        self._dim = int(dim)

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _share_between_threads(model: SentenceTransformer) -> None:
    """Let several threads encode with one model at once.

    The forward pass in inference mode is safe to share, but a Rust tokenizer
    raises "Already borrowed" when two threads tokenize at the same moment. So
    tokenizing alone is serialised (milliseconds), and a search's query is
    embedded while the indexer's batch of hundreds of chunks is still running,
    instead of queueing behind it for seconds.
    """
    lock = threading.RLock()  # re-entrant: tokenize() may call preprocess()
    for name in ("preprocess", "tokenize"):
        method = getattr(model, name, None)
        if method is None:
            continue

        def serialised(*args, _method=method, **kwargs):
            with lock:
                return _method(*args, **kwargs)

        setattr(model, name, serialised)
