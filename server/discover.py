"""Which files of a workspace get indexed.

Walks the workspace honouring every `.gitignore` on the way (pathspec's git
semantics, nested files relative to their own folder), the user's `exclude`,
and the built-in excludes: version-control and build output, vendored
dependencies, lock files, binaries, oversized files and secrets. A link is
followed only when its target is a file inside the workspace; directory links
are never followed, so a loop or a link out of the tree cannot be walked into.

Every skip is counted by reason, so status can say what was left out and why.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

# Folders never worth indexing: version control, caches, build output and
# vendored dependencies. Matched by name at any depth.
EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".jj",
        ".bzr",
        "node_modules",
        "bower_components",
        "vendor",
        "third_party",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".eggs",
        "site-packages",
        "build",
        "dist",
        "target",
        "out",
        ".next",
        ".nuxt",
        ".gradle",
        ".idea",
        ".vscode-test",
        ".terraform",
        ".cache",
    }
)

# Secrets are excluded by default; `include` can bring a pattern back on purpose.
SECRET_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    "credentials",
    "credentials.*",
    "*.credentials",
    ".git-credentials",
    "secrets.*",
    "*.kdbx",
    ".htpasswd",
)

# Generated or binary content: lock files, minified bundles, media, archives,
# compiled objects, data dumps.
GENERATED_PATTERNS = (
    "*.lock",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Cargo.lock",
    "go.sum",
    "composer.lock",
    "Gemfile.lock",
    "uv.lock",
    "*.min.js",
    "*.min.css",
    "*.map",
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.bmp",
    "*.ico",
    "*.webp",
    "*.svg",
    "*.tif",
    "*.tiff",
    "*.pdf",
    "*.psd",
    "*.mp3",
    "*.mp4",
    "*.wav",
    "*.ogg",
    "*.mov",
    "*.avi",
    "*.webm",
    "*.flac",
    "*.zip",
    "*.tar",
    "*.gz",
    "*.tgz",
    "*.bz2",
    "*.xz",
    "*.7z",
    "*.rar",
    "*.whl",
    "*.jar",
    "*.war",
    "*.egg",
    "*.deb",
    "*.rpm",
    "*.dmg",
    "*.iso",
    "*.so",
    "*.dylib",
    "*.dll",
    "*.exe",
    "*.o",
    "*.a",
    "*.lib",
    "*.obj",
    "*.class",
    "*.pyc",
    "*.pyo",
    "*.wasm",
    "*.bin",
    "*.dat",
    "*.db",
    "*.sqlite",
    "*.sqlite3",
    "*.parquet",
    "*.pkl",
    "*.pickle",
    "*.npy",
    "*.npz",
    "*.pt",
    "*.pth",
    "*.safetensors",
    "*.onnx",
    "*.h5",
    "*.woff",
    "*.woff2",
    "*.ttf",
    "*.otf",
    "*.eot",
    "*.ipynb_checkpoints",
    "*.po",
    "*.pot",  # translation catalogs: thousands of windows of msgid/msgstr noise
    ".DS_Store",
)

BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    """A file chosen for indexing."""

    rel: str
    """Path relative to the workspace, with `/` separators."""
    path: Path
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    """Skipped files by reason: ignored, secret, generated, too_large, binary,
    unreadable, outside_workspace, special, bad_name."""


class FileFilter:
    """Decides, for one workspace, whether a relative path is indexable by name.

    Built once and reused by the watcher, so a single changed path can be judged
    without walking the tree.
    """

    def __init__(self, root: Path, include: Iterable[str] = (), exclude: Iterable[str] = ()):
        self.root = root
        self.include = pathspec.GitIgnoreSpec.from_lines(list(include)) if include else None
        self.exclude = pathspec.GitIgnoreSpec.from_lines(list(exclude))
        self.secrets = pathspec.GitIgnoreSpec.from_lines(SECRET_PATTERNS)
        self.generated = pathspec.GitIgnoreSpec.from_lines(GENERATED_PATTERNS)
        self._gitignores: dict[str, pathspec.GitIgnoreSpec | None] = {}

    def reason_to_skip(self, rel: str) -> str | None:
        """Why `rel` (a file path relative to the root) is not indexed, or None."""
        parts = rel.split("/")
        included = self.include is not None and self.include.match_file(rel)
        if self.include is not None and not included:
            return "ignored"
        if any(p in EXCLUDED_DIRS for p in parts[:-1]):
            return "ignored"
        if not included:
            if self.secrets.match_file(rel):
                return "secret"
            if self.generated.match_file(rel):
                return "generated"
        if self.exclude.match_file(rel) or self._gitignored(parts):
            return "ignored"
        return None

    def dir_is_pruned(self, rel_dir: str) -> bool:
        """Whether a whole directory can be skipped without looking inside."""
        parts = rel_dir.split("/")
        if parts[-1] in EXCLUDED_DIRS:
            return True
        if self.include is not None:
            return False  # an include pattern may reach into any folder
        return self.exclude.match_file(rel_dir + "/") or self._gitignored(parts, is_dir=True)

    def _gitignored(self, parts: list[str], is_dir: bool = False) -> bool:
        # Each .gitignore applies to paths below its own folder; a deeper file
        # is consulted last so that its negations win, as git does.
        ignored = False
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            spec = self._gitignore_at(base)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(sub)
            if result.include is not None:
                ignored = bool(result.include)
        return ignored

    def _gitignore_at(self, base: str) -> pathspec.GitIgnoreSpec | None:
        if base not in self._gitignores:
            path = self.root / base / ".gitignore" if base else self.root / ".gitignore"
            try:
                lines = path.read_text("utf-8", errors="replace").splitlines()
                self._gitignores[base] = pathspec.GitIgnoreSpec.from_lines(lines)
            except OSError:
                self._gitignores[base] = None
        return self._gitignores[base]

    def forget_gitignore(self, base: str) -> None:
        """Drop a cached .gitignore after it changed on disk."""
        self._gitignores.pop(base, None)


def discover(root: Path, flt: FileFilter, max_file_bytes: int) -> Discovery:
    """Walk `root` and return the indexable files plus counted skips."""
    result = Discovery()
    root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=None):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        keep = []
        for name in dirnames:
            full = os.path.join(dirpath, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if os.path.islink(full):
                result.skipped["link_dir"] += 1
            elif flt.dir_is_pruned(rel):
                continue
            else:
                keep.append(name)
        dirnames[:] = sorted(keep)
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            entry = check_file(root, rel, flt, max_file_bytes)
            if isinstance(entry, SourceFile):
                result.files.append(entry)
            elif entry != "ignored":
                result.skipped[entry] += 1
    return result


def check_file(root: Path, rel: str, flt: FileFilter, max_file_bytes: int) -> SourceFile | str:
    """The SourceFile for `rel`, or the reason it is skipped."""
    if not _is_clean_name(rel):
        return "bad_name"
    reason = flt.reason_to_skip(rel)
    if reason == "generated" and _is_binary(root / rel):
        return "binary"  # `*.bin`, `*.dat`: named like generated output, but binary content
    if reason:
        return reason
    path = root / rel
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            target = path.resolve(strict=True)
            if not target.is_relative_to(root):
                return "outside_workspace"
            st = target.stat()
        if not stat.S_ISREG(st.st_mode):
            return "special"  # FIFOs, sockets and devices would block or never end
        if st.st_size > max_file_bytes:
            return "too_large"
        with open(path, "rb") as fh:
            if b"\0" in fh.read(BINARY_SNIFF_BYTES):
                return "binary"
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop on older Pythons
        return "unreadable"
    return SourceFile(rel=rel, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)


def _is_binary(path: Path) -> bool:
    """A NUL byte in the first few KiB (False when the file cannot be read)."""
    try:
        with open(path, "rb") as fh:
            return b"\0" in fh.read(BINARY_SNIFF_BYTES)
    except OSError:
        return False


def _is_clean_name(rel: str) -> bool:
    # Names with newlines or undecodable bytes (surrogate escapes) cannot be
    # shown or sent over JSON-RPC faithfully; they are skipped and counted.
    if "\n" in rel or "\r" in rel:
        return False
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_text(path: Path, max_bytes: int) -> str | None:
    """The file's text, decoded leniently; None if it vanished or became unreadable.

    Invalid UTF-8 is replaced rather than fatal: a Latin-1 comment should not
    hide the code around it.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError:
        return None
    if len(data) > max_bytes or b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")
