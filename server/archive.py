"""A prebuilt index a team shares: `kenning export OUT.tar` and `kenning import IN.tar`.

A CI job indexes the repository once (on a Ray cluster if need be) and
exports it; each developer imports the archive, and their daemon or
`kenning index` then embeds only what differs in their checkout: a file whose
content hash matches its record keeps its chunks and vectors, whatever its
modification time.

The archive is a tar (`.tar.gz` compresses it) of plain files: `manifest.json`
first, then `index.sqlite` (a consistent copy taken with SQLite's backup API,
holding only the active generation) and that generation's vector file. Paths
inside the index are workspace-relative already; the copy drops the absolute
model location, which the importer fills in with its own. The manifest names
the model (name, version, sequence length, width and a sha256 over its weight
files) and the sha256 and size of every member.

Import refuses, with one line, an archive made with another model, a member
that does not match its checksum, and anything but the expected regular files
(no links, no folders, no paths): members are streamed into a private staging
folder beside the index folder, never unpacked by the tar module, and the
staging folder is renamed into place only once everything checked out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .database import DB_NAME
from .models import ModelRef, identity_of
from .store import Generation, Store
from .vector_index import VectorFiles

FORMAT = 1
MANIFEST = "manifest.json"
_VECTOR_FILE = re.compile(r"vectors-g(\d+)\.(npy|json|usearch|usearch\.json)")
_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """The archive cannot be written or read as asked; the message says what to do."""


@dataclass(frozen=True)
class ArchiveSummary:
    path: str
    model: str
    files: int
    chunks: int
    vectors: int
    pending: int
    """Chunk texts the exported index had not embedded yet."""
    bytes: int
    took_s: float

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["took_s"] = round(self.took_s, 3)
        return data


def model_fingerprint(location: str) -> str | None:
    """sha256 over a model folder's weight files (names and bytes); None when the
    model is not a local folder (an id in the Hugging Face cache)."""
    folder = Path(location)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as fh:
            while block := fh.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def _model_manifest(ref: ModelRef, max_seq_length: int, dim: int) -> dict[str, Any]:
    return {
        "label": ref.label,
        "name": ref.name,
        "version": ref.version,
        "max_seq_length": max_seq_length,
        "dim": dim,
        "fingerprint": model_fingerprint(ref.location),
    }


# -- export ---------------------------------------------------------------------------


def export_index(store: Store, ref: ModelRef, max_seq_length: int, out: Path) -> ArchiveSummary:
    """Write the index of `store` (its active generation, built with `ref`) to `out`."""
    start = time.perf_counter()
    gen = store.active_generation()
    if gen is None:
        raise ArchiveError("the index has no vectors yet: run `kenning index` first, then export")
    if gen.model != ref.label:
        raise ArchiveError(
            f"the index is still being re-embedded for {ref.label} (it answers with "
            f"{gen.model}): run `kenning index` to finish, then export"
        )
    out = out.expanduser().resolve()
    if not out.parent.is_dir():
        raise ArchiveError(f"cannot write {out}: folder {out.parent} does not exist")
    totals = store.counts(gen.id)
    with tempfile.TemporaryDirectory(prefix=".kenning-export-", dir=out.parent) as tmp:
        folder = Path(tmp)
        vectors = _copy_database(store, folder / DB_NAME, gen.id)
        _copy_vector_file(store, gen, folder)
        members = [DB_NAME, *sorted(p.name for p in folder.glob(f"vectors-g{gen.id}.*"))]
        manifest = {
            "format": FORMAT,
            "created_at": time.time(),
            "model": _model_manifest(ref, max_seq_length, gen.dim),
            "generation": gen.id,
            "files": totals.files,
            "chunks": totals.chunks,
            "vectors": vectors,
            "pending": totals.pending,
            "members": {name: _checksum(folder / name) for name in members},
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
        partial = out.with_name(f".{out.name}.tmp")
        gz = out.name.endswith((".tar.gz", ".tgz"))
        tar_file = tarfile.open(partial, "w:gz") if gz else tarfile.open(partial, "w")
        with tar_file as tar:
            for name in [MANIFEST, *members]:
                info = tar.gettarinfo(str(folder / name), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(folder / name, "rb") as fh:
                    tar.addfile(info, fh)
        os.replace(partial, out)
    return ArchiveSummary(
        str(out),
        ref.label,
        totals.files,
        totals.chunks,
        vectors,
        totals.pending,
        out.stat().st_size,
        time.perf_counter() - start,
    )


def _copy_database(store: Store, target: Path, gen_id: int) -> int:
    """A consistent copy of the database with only generation `gen_id`'s vectors,
    and no absolute paths (the importer sets its own model location); returns
    how many vectors it holds."""
    dst = sqlite3.connect(target)
    try:
        store.conn.backup(dst)
        with dst:
            dst.execute("DELETE FROM embeddings WHERE gen != ?", (gen_id,))
            dst.execute("DELETE FROM generations WHERE id != ?", (gen_id,))
            dst.execute(
                "UPDATE generations SET location = '', identity = '' WHERE id = ?", (gen_id,)
            )
        dst.execute("VACUUM")
        vectors = dst.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    finally:
        dst.close()
    os.chmod(target, 0o600)
    return vectors


def _copy_vector_file(store: Store, gen: Generation, folder: Path) -> None:
    """The store's in-memory vectors of `gen` (exact or HNSW) written into `folder`,
    so the importer starts without a rebuild. The copy keeps the embedding ids,
    and anything that changed since the database copy is replayed at import."""
    index = store.matrix(gen)
    changes = index.changes  # the store's own file is not the one written here
    try:
        VectorFiles(folder, [], store.vector_index).write(gen.id, index)
    finally:
        index.changes = changes


def _checksum(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


# -- import ---------------------------------------------------------------------------


def import_index(
    archive: Path, index_dir: Path, ref: ModelRef, max_seq_length: int, *, replace: bool
) -> ArchiveSummary:
    """Unpack `archive` as the index in `index_dir`, for the model `ref`.

    Raises ArchiveError when the archive is damaged or was made with another
    model, or when `index_dir` already holds an index and `replace` is false.
    """
    start = time.perf_counter()
    archive = archive.expanduser().resolve()
    index_dir = index_dir.expanduser().resolve()
    if (index_dir / DB_NAME).exists():
        if not replace:
            raise ArchiveError(
                f"{index_dir} already holds an index; pass --force to replace it "
                "(the whole folder, fine-tuned checkpoints included)"
            )
        from . import markers

        if markers.open_elsewhere(index_dir):
            raise ArchiveError(
                f"another process (a server?) has the index at {index_dir} open; stop it first"
            )
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with _open_archive(archive) as tar, _staging(index_dir) as staging:
        manifest = _read_manifest(tar, archive)
        _check_model(manifest["model"], ref, max_seq_length, archive)
        _unpack(tar, manifest, staging, archive)
        _adopt(staging, manifest, ref, max_seq_length)
        _swap_in(staging, index_dir)
    return ArchiveSummary(
        str(archive),
        ref.label,
        manifest["files"],
        manifest["chunks"],
        manifest["vectors"],
        manifest["pending"],
        archive.stat().st_size,
        time.perf_counter() - start,
    )


@contextmanager
def _open_archive(archive: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(archive, "r:*")
    except FileNotFoundError:
        raise ArchiveError(f"{archive} does not exist") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{archive} is not a Kenning index archive ({exc})") from None
    with tar:
        yield tar


@contextmanager
def _staging(index_dir: Path) -> Iterator[Path]:
    """A private folder beside the index folder (same file system, so the final
    rename is atomic), removed whatever happens."""
    staging = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.import-", dir=index_dir.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _damaged(archive: Path, why: str) -> ArchiveError:
    return ArchiveError(f"{archive.name} is damaged or not a Kenning index archive: {why}")


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, Any]:
    try:
        member = tar.getmember(MANIFEST)
        fh = tar.extractfile(member) if member.isreg() else None
        if fh is None:
            raise _damaged(archive, "its manifest is not a regular file")
        manifest = json.loads(fh.read(1 << 20))
    except KeyError:
        raise _damaged(archive, "it has no manifest.json") from None
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise _damaged(archive, f"its manifest cannot be read ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(
            f"{archive.name} has archive format {manifest.get('format')!r}, this Kenning reads "
            f"{FORMAT}: export it again with this version"
        )
    members = manifest.get("members")
    names = set(members) if isinstance(members, dict) else set()
    gen = manifest.get("generation")
    allowed = {DB_NAME} | {
        n for n in names if (m := _VECTOR_FILE.fullmatch(n)) and int(m.group(1)) == gen
    }
    if DB_NAME not in names or not names <= allowed:
        raise _damaged(archive, f"its manifest lists unexpected members {sorted(names - allowed)}")
    return manifest


def _check_model(model: dict[str, Any], ref: ModelRef, max_seq_length: int, archive: Path) -> None:
    ours = _model_manifest(ref, max_seq_length, model.get("dim", 0))
    same = (
        model.get("label") == ours["label"]
        and model.get("max_seq_length") == max_seq_length
        and (
            model.get("fingerprint") is None
            or ours["fingerprint"] is None
            or model.get("fingerprint") == ours["fingerprint"]
        )
    )
    if not same:
        theirs = f"{model.get('label')} (max_seq_length {model.get('max_seq_length')})"
        raise ArchiveError(
            f"{archive.name} was built with model {theirs}, but this workspace uses "
            f"{ref.label} (max_seq_length {max_seq_length}); set `model` to the same model "
            "or build the index here with `kenning index`"
        )


def _unpack(tar: tarfile.TarFile, manifest: dict[str, Any], staging: Path, archive: Path) -> None:
    """Stream every listed member into `staging`, checking its size and sha256."""
    expected: dict[str, dict[str, Any]] = manifest["members"]
    seen: set[str] = set()
    for member in tar:
        if member.name == MANIFEST:
            continue
        if member.name not in expected or member.name in seen:
            raise _damaged(archive, f"unexpected member {member.name!r}")
        if not member.isreg():
            raise _damaged(archive, f"{member.name} is not a regular file")
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has contents
        _copy_checked(source, staging / member.name, expected[member.name], archive)
        seen.add(member.name)
    if missing := sorted(set(expected) - seen):
        raise _damaged(archive, f"members {missing} are missing")


def _copy_checked(source: IO[bytes], target: Path, want: dict[str, Any], archive: Path) -> None:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        try:
            while block := source.read(_CHUNK):
                digest.update(block)
                size += len(block)
                out.write(block)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _damaged(archive, f"{target.name} cannot be read ({exc})") from None
    if size != want.get("bytes") or digest.hexdigest() != want.get("sha256"):
        raise _damaged(archive, f"{target.name} does not match its checksum")


def _adopt(staging: Path, manifest: dict[str, Any], ref: ModelRef, max_seq_length: int) -> None:
    """Point the imported generation at this machine's copy of the model."""
    store = Store.open(staging)
    try:
        if store.warnings:
            raise ArchiveError(f"the archive's index cannot be opened: {store.warnings[0]}")
        with store.conn as conn:
            conn.execute(
                "UPDATE generations SET model = ?, location = ?, identity = ? WHERE id = ?",
                (
                    ref.label,
                    ref.location,
                    identity_of(ref, max_seq_length),
                    manifest["generation"],
                ),
            )
    finally:
        store.close()


def _swap_in(staging: Path, index_dir: Path) -> None:
    """Rename the checked staging folder into place; an old index goes only after."""
    old = None
    if index_dir.exists():
        old = index_dir.with_name(f".{index_dir.name}.replaced-{os.getpid()}")
        os.replace(index_dir, old)
    os.replace(staging, index_dir)
    os.chmod(index_dir, 0o700)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
