"""`kenning export` / `kenning import` through the command line, with the tiny
test model: a prebuilt index moves to another checkout at another path, which
then embeds only what differs; a damaged, foreign or hostile archive is
refused with one line and leaves nothing behind."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest
from kenning.server.cli import main


def kenning(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def exported(capsys, core_workspace, tiny_model, tmp_path) -> Path:
    """The fixture workspace indexed and exported by 'CI'."""
    model = ("--model", str(tiny_model), "--index-dir", str(tmp_path / "ci-index"))
    code, _, err = kenning(capsys, "index", str(core_workspace), *model)
    assert code == 0, err
    archive = tmp_path / "index.tar"
    code, out, err = kenning(capsys, "export", str(archive), str(core_workspace), "--json", *model)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["vectors"] > 0 and summary["pending"] == 0
    return archive


def checkout_elsewhere(core_workspace: Path, tmp_path: Path) -> Path:
    """A developer's checkout: another path, fresh modification times, one edit."""
    mine = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(core_workspace, mine)
    with open(mine / "app" / "uploads.py", "a") as fh:
        fh.write('\n\ndef resume_upload(token):\n    """Continue a paused upload."""\n')
        fh.write("    return token.offset\n")
    return mine


def test_import_starts_a_fresh_index_that_embeds_only_what_differs(
    capsys, exported, core_workspace, tiny_model, tmp_path
):
    mine = checkout_elsewhere(core_workspace, tmp_path)
    opts = ("--model", str(tiny_model), "--index-dir", str(tmp_path / "my-index"))
    code, out, err = kenning(capsys, "import", str(exported), str(mine), "--json", *opts)
    assert code == 0, err
    imported = json.loads(out)

    code, out, err = kenning(capsys, "index", str(mine), "--json", *opts)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["changed_files"] == 1  # every other file matched its record's content hash
    assert 1 <= summary["embedded"] <= 3  # the new function (and the window around it)
    assert summary["chunks"] > imported["chunks"]

    code, out, err = kenning(
        capsys, "search", "continue a paused upload", "--workspace", str(mine), "--json", *opts
    )
    assert code == 0, err
    assert "resume_upload" in {r["symbol"] for r in json.loads(out)["results"]}
    with sqlite3.connect(tmp_path / "my-index" / "index.sqlite") as db:
        paths = [p for (p,) in db.execute("SELECT path FROM files")]
        (location,) = db.execute("SELECT location FROM generations").fetchone()
    assert paths and not any(p.startswith("/") for p in paths)  # workspace-relative
    assert location == str(tiny_model)  # this machine's model, not the exporter's


def flip_a_byte(archive: Path, member: str) -> None:
    with tarfile.open(archive) as tar:
        offset = tar.getmember(member).offset_data
    with open(archive, "r+b") as fh:
        fh.seek(offset + 200)
        byte = fh.read(1)
        fh.seek(offset + 200)
        fh.write(bytes([byte[0] ^ 0xFF]))


def assert_refused(capsys, archive: Path, workspace: Path, index_dir: Path, *opts: str) -> str:
    code, out, err = kenning(
        capsys, "import", str(archive), str(workspace), "--index-dir", str(index_dir), *opts
    )
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert not (index_dir / "index.sqlite").exists()
    assert not [p for p in index_dir.parent.iterdir() if ".import-" in p.name]  # no staging left
    return err


def test_a_tampered_archive_is_refused(capsys, exported, core_workspace, tiny_model, tmp_path):
    flip_a_byte(exported, "index.sqlite")
    err = assert_refused(
        capsys, exported, core_workspace, tmp_path / "fresh", "--model", str(tiny_model)
    )
    assert "index.sqlite does not match its checksum" in err


def test_an_archive_of_another_model_is_refused(capsys, exported, core_workspace, tmp_path):
    err = assert_refused(capsys, exported, core_workspace, tmp_path / "fresh")  # bundled model
    assert "was built with model tiny-bert@base" in err and "all-MiniLM-L6-v2@base" in err


def rewrite(archive: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]], manifest=None):
    """The archive with members added (and the manifest changed), as an attacker would."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(archive, "w") as tar:
        for info, data in members:
            if info.name == "manifest.json" and manifest is not None:
                data = json.dumps(manifest(json.loads(data))).encode()
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def test_links_and_paths_outside_the_index_are_refused(
    capsys, exported, core_workspace, tiny_model, tmp_path
):
    outside = tmp_path / "evil.txt"
    escape = tarfile.TarInfo("../evil.txt")
    escape.size = 5

    def list_escape(manifest):
        manifest["members"]["../evil.txt"] = {"sha256": "0" * 64, "bytes": 5}
        return manifest

    rewrite(exported, [(escape, b"owned")], list_escape)
    err = assert_refused(
        capsys, exported, core_workspace, tmp_path / "a" / "idx", "--model", str(tiny_model)
    )
    assert "unexpected members" in err and not outside.exists()

    link = tarfile.TarInfo("vectors-g1.npy")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    rewrite(exported, [(link, None)], lambda m: m)
    assert_refused(
        capsys, exported, core_workspace, tmp_path / "b" / "idx", "--model", str(tiny_model)
    )


def test_an_existing_index_is_replaced_only_with_force(
    capsys, exported, core_workspace, tiny_model, tmp_path
):
    opts = ("--model", str(tiny_model), "--index-dir", str(tmp_path / "ci-index"))
    code, _, err = kenning(capsys, "import", str(exported), str(core_workspace), *opts)
    assert code == 1 and "pass --force" in err
    code, out, err = kenning(capsys, "import", str(exported), str(core_workspace), "--force", *opts)
    assert code == 0, err
    code, out, _ = kenning(capsys, "index", str(core_workspace), "--json", *opts)
    assert json.loads(out)["embedded"] == 0
