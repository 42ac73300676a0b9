"""Bring the index up to date with the workspace: discover -> chunk -> diff -> embed -> store.

Two passes, so that a fresh workspace answers at once:

1. *Lexical pass*: every new or changed file is read, chunked and written
   (files, chunks, full-text rows) in batches of files, each one transaction.
   After it, lexical search is complete.
2. *Embedding pass*: chunk texts that have no vector in the target generation
   yet are embedded in batches, each stored in one transaction. Identical
   texts share one vector, and an unchanged chunk keeps its vector, so editing
   one function re-embeds one chunk.

A crash at any point leaves whole batches only; the next run picks up from
the file records (pass 1) and the missing vectors (pass 2).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .chunking import chunk_file, language_of
from .discover import FileFilter, SourceFile, check_file, discover, read_text
from .embedder import Embedder
from .store import FileUpdate, Generation, Store

log = logging.getLogger(__name__)

FILES_PER_BATCH = 200
TEXTS_PER_COMMIT = 256
"""Chunk texts embedded per store transaction in a one-shot run (`kenning index`):
large enough for sentence-transformers' length sorting to group similar lengths,
small enough that a crash or a search waiting for fresh vectors never waits long.
(`batch_size`, a setting, is the texts per model call inside it.)"""
DAEMON_TEXTS_PER_COMMIT = 128
"""The same in the daemon: a stop request or a save waits for at most one such
transaction (a few seconds on a busy CPU)."""

RECENT_S = 7 * 24 * 3600
"""Files modified this recently are embedded before the rest of a first index."""

Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): phase is "scan" or "embed"."""


@dataclass
class IndexSummary:
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    """Chunk texts sent to the model in this run."""
    removed: int = 0
    """Chunks removed (deleted files and the old versions of changed ones)."""
    skipped: int = 0
    changed_files: int = 0
    took_s: float = 0.0
    lexical_ready_s: float = 0.0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "removed": self.removed,
            "skipped": self.skipped,
            "took_s": round(self.took_s, 3),
            "changed_files": self.changed_files,
            "lexical_ready_s": round(self.lexical_ready_s, 3),
            "skipped_by_reason": self.skipped_by_reason,
        }


class Indexer:
    """Keeps one workspace's store in step with its files."""

    def __init__(self, root: Path, store: Store, flt: FileFilter, max_file_bytes: int):
        self.root = root.resolve()
        self.store = store
        self.filter = flt
        self.max_file_bytes = max_file_bytes
        self.open_files: set[str] = set()
        """Files open in the editor (didOpen): embedded before every other file."""

    # -- pass 1 ----------------------------------------------------------------------

    def scan(self, progress: Progress | None = None) -> IndexSummary:
        """Discover the whole workspace and write every change (lexical pass)."""
        found = discover(self.root, self.filter, self.max_file_bytes)
        summary = IndexSummary(
            skipped=sum(found.skipped.values()), skipped_by_reason=dict(found.skipped)
        )
        known = self.store.file_records()
        current = {f.rel: f for f in found.files}
        removed = [p for p in known if p not in current]
        candidates = [f for f in found.files if _stat_changed(known.get(f.rel), f)]
        self._write(candidates, removed, summary, progress)
        return summary

    def scan_paths(self, rels: Iterable[str]) -> IndexSummary:
        """Re-check just these workspace-relative paths (saved, created, deleted)."""
        summary = IndexSummary()
        known = self.store.file_records()
        candidates: list[SourceFile] = []
        removed: list[str] = []
        for rel in dict.fromkeys(rels):
            entry = check_file(self.root, rel, self.filter, self.max_file_bytes)
            if isinstance(entry, SourceFile):
                if _stat_changed(known.get(rel), entry):
                    candidates.append(entry)
            else:
                if rel in known:
                    removed.append(rel)
                if entry not in ("ignored", "unreadable"):
                    summary.skipped += 1
        self._write(candidates, removed, summary, None)
        return summary

    def _write(
        self,
        candidates: list[SourceFile],
        removed: list[str],
        summary: IndexSummary,
        progress: Progress | None,
    ) -> None:
        known = self.store.file_records()
        total = len(candidates)
        if progress:
            progress("scan", 0, total)
        batch: list[FileUpdate] = []
        gone = list(removed)
        for done, f in enumerate(candidates, 1):
            text = read_text(f.path, self.max_file_bytes)
            if text is None:
                # Vanished or turned binary between discovery and reading: drop it.
                if f.rel in known:
                    gone.append(f.rel)
                continue
            content_hash = hashlib.blake2b(
                text.encode("utf-8", "surrogatepass"), digest_size=16
            ).hexdigest()
            old = known.get(f.rel)
            if old is not None and old.content_hash == content_hash:
                # Touched but unchanged: refresh the stat so we skip it next time.
                batch.append(
                    FileUpdate(f.rel, f.size, f.mtime_ns, content_hash, language_of(f.rel), None)
                )
            else:
                chunks = chunk_file(f.rel, text)
                batch.append(
                    FileUpdate(f.rel, f.size, f.mtime_ns, content_hash, language_of(f.rel), chunks)
                )
                summary.changed_files += 1
            if len(batch) >= FILES_PER_BATCH:
                summary.removed += self.store.apply_files(batch, gone)
                batch, gone = [], []
                if progress:
                    progress("scan", done, total)
        summary.removed += self.store.apply_files(batch, gone)
        if progress:
            progress("scan", total, total)

    # -- pass 2 ----------------------------------------------------------------------

    def embed_pending(
        self,
        gen: Generation,
        embedder: Embedder,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_batch: Callable[[int], None] | None = None,
        *,
        paths: Sequence[str] | None = None,
        batch_size: int = TEXTS_PER_COMMIT,
    ) -> int:
        """Embed every chunk text that has no vector in `gen`; returns how many.

        `should_stop` is polled between batches so shutdown can finish the batch
        in flight and leave the rest for the next start. `paths` limits the work
        to those files (a saved file, ahead of the rest); `batch_size` is chunk
        texts per transaction, and so also how long a stop request may wait.
        """
        if paths is not None and not paths:
            return 0
        pending = self.store.counts(gen.id).pending if progress else 0
        done = 0
        if progress:
            progress("embed", 0, pending)
        recent = time.time_ns() - RECENT_S * 10**9
        while not (should_stop and should_stop()):
            first = sorted(self.open_files)
            batch = self.store.pending_texts(
                gen.id, batch_size, paths, first=first, recent_since_ns=recent
            )
            if not batch:
                break
            hashes = [h for h, _ in batch]
            vectors = embedder.encode([t for _, t in batch])  # (batch, dim)
            self.store.add_embeddings(gen.id, hashes, vectors)
            done += len(batch)
            if progress:
                progress("embed", done, max(pending, done))
            if on_batch:
                on_batch(len(batch))
        return done


def _stat_changed(old, f: SourceFile) -> bool:
    return old is None or old.size != f.size or old.mtime_ns != f.mtime_ns


EmbedPass = Callable[[Generation, Progress | None], int]
"""embed(gen, progress) -> texts embedded: the embedding pass, in this process or elsewhere."""


def timed_index(
    indexer: Indexer,
    embedder: Embedder,
    gen_for: Callable[[], Generation],
    progress: Progress | None = None,
    embed: EmbedPass | None = None,
) -> IndexSummary:
    """A full run: both passes, with the summary the CLI prints. `embed` replaces
    this process's embedding pass (with Ray's, say)."""
    start = time.perf_counter()
    summary = indexer.scan(progress)
    summary.lexical_ready_s = time.perf_counter() - start
    if indexer.store.counts(None).chunks:
        gen = gen_for()
        summary.embedded = (
            embed(gen, progress) if embed else indexer.embed_pending(gen, embedder, progress)
        )
    totals = indexer.store.counts(None)
    summary.files, summary.chunks = totals.files, totals.chunks
    summary.took_s = time.perf_counter() - start
    return summary
