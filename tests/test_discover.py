import os
from pathlib import Path

import pytest
from kenning.server.discover import FileFilter, discover, read_text


def rels(root: Path, **kw) -> set[str]:
    flt = FileFilter(root, kw.pop("include", ()), kw.pop("exclude", ()))
    return {f.rel for f in discover(root, flt, kw.pop("max_file_bytes", 1 << 20)).files}


def skipped(root: Path, max_file_bytes=1 << 20):
    return discover(root, FileFilter(root), max_file_bytes).skipped


def write(root: Path, rel: str, content: str | bytes = "x = 1\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_gitignore_nested_and_negated(tmp_path):
    write(tmp_path, ".gitignore", "*.log\nbuild-out/\n")
    write(tmp_path, "pkg/.gitignore", "local_*.py\n!local_keep.py\n")
    for rel in [
        "a.py",
        "x.log",
        "build-out/gen.py",
        "pkg/local_tmp.py",
        "pkg/local_keep.py",
        "pkg/b.py",
    ]:
        write(tmp_path, rel)
    assert rels(tmp_path) == {
        ".gitignore",
        "a.py",
        "pkg/.gitignore",
        "pkg/local_keep.py",
        "pkg/b.py",
    }


def test_builtin_excludes_vendored_build_and_lock_files(tmp_path):
    for rel in [
        "src/main.py",
        "node_modules/lib/index.js",
        ".git/config",
        "dist/bundle.js",
        "package-lock.json",
        "poetry.lock",
        "app.min.js",
        "logo.png",
        ".venv/lib/x.py",
        "locale/de/LC_MESSAGES/django.po",
    ]:
        write(tmp_path, rel)
    assert rels(tmp_path) == {"src/main.py"}


def test_secrets_are_excluded_unless_included_on_purpose(tmp_path):
    for rel in [
        ".env",
        ".env.production",
        "certs/server.pem",
        "deploy.key",
        "home/id_rsa",
        "home/id_rsa.pub",
        "aws/credentials",
        "main.py",
    ]:
        write(tmp_path, rel)
    assert rels(tmp_path) == {"main.py"}
    assert skipped(tmp_path)["secret"] == 7
    assert rels(tmp_path, include=["*.py", ".env"]) == {"main.py", ".env"}


def test_user_exclude(tmp_path):
    write(tmp_path, "a.py")
    write(tmp_path, "fixtures/big.py")
    assert rels(tmp_path, exclude=["fixtures/"]) == {"a.py"}


def test_large_and_binary_files_are_skipped_and_counted(tmp_path):
    write(tmp_path, "small.py")
    write(tmp_path, "huge.py", "x" * 2000)
    write(tmp_path, "blob.data", b"\x00\x01\x02binary")
    assert rels(tmp_path, max_file_bytes=1000) == {"small.py"}
    counts = skipped(tmp_path, max_file_bytes=1000)
    assert counts["too_large"] == 1 and counts["binary"] == 1


def test_binary_content_named_like_generated_output_counts_as_binary(tmp_path):
    write(tmp_path, "blob.bin", bytes(range(256)) * 4)  # random bytes, NULs included
    write(tmp_path, "icon.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    write(tmp_path, "package-lock.json", "{}")
    assert skipped(tmp_path) == {"binary": 2, "generated": 1}


def test_links_out_of_the_workspace_and_loops_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    write(outside, "secret_code.py")
    ws = tmp_path / "ws"
    write(ws, "real.py")
    os.symlink(outside / "secret_code.py", ws / "escape.py")
    os.symlink(outside, ws / "escape_dir")
    os.symlink(ws, ws / "loop")
    os.symlink(ws / "real.py", ws / "alias.py")
    os.symlink(ws / "missing.py", ws / "dangling.py")
    found = rels(ws)
    assert found == {"real.py", "alias.py"}
    counts = skipped(ws)
    assert counts["outside_workspace"] == 1 and counts["unreadable"] == 1


def test_fifos_and_odd_names_are_skipped(tmp_path):
    write(tmp_path, "ok.py")
    os.mkfifo(tmp_path / "pipe.py")
    write(tmp_path, "new\nline.py")
    bad = os.fsencode(tmp_path) + b"/bad\xff.py"
    with open(bad, "wb") as fh:
        fh.write(b"x = 1\n")
    assert rels(tmp_path) == {"ok.py"}
    counts = skipped(tmp_path)
    assert counts["special"] == 1 and counts["bad_name"] == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_files_are_counted(tmp_path):
    path = write(tmp_path, "locked.py")
    path.chmod(0)
    assert skipped(tmp_path)["unreadable"] == 1


def test_invalid_utf8_is_decoded_with_replacement(tmp_path):
    path = write(tmp_path, "latin.py", "# caf\xe9\nx = 1\n".encode("latin-1"))
    text = read_text(path, 1 << 20)
    assert text is not None and "x = 1" in text and "\ufffd" in text


def test_a_file_deleted_before_reading_reads_as_none(tmp_path):
    path = write(tmp_path, "gone.py")
    path.unlink()
    assert read_text(path, 1 << 20) is None
