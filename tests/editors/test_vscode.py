"""The VS Code extension (editors/vscode): its own build and tests, and the .vsix.

`npm ci && npm run build && npm test` runs the extension's unit tests and its
language-client test against the real `kenning serve` (node's test runner);
`npx @vscode/vsce package` must then produce an installable .vsix. The
end-to-end test in a real VS Code (code-server) is a separate command:
`bash editors/vscode/scripts/e2e.sh`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"


def npm_env() -> dict[str, str]:
    """The test environment, with the server the extension's tests should start:
    this interpreter's `kenning` (the repository's .venv when run from CI)."""
    env = dict(os.environ)
    kenning = Path(sys.executable).parent / "kenning"
    if "KENNING_SERVER" not in env and kenning.exists():
        env["KENNING_SERVER"] = f"{kenning} serve"
    return env


def run(args: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    """Run a command in editors/vscode; fail the test with its output when it fails."""
    try:
        proc = subprocess.run(
            args,
            cwd=EXTENSION,
            env=npm_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"`{' '.join(args)}` took more than {timeout} s:\n{out[-6000:]}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(args)}` exited with {proc.returncode}:\n"
            f"--- stdout ---\n{proc.stdout[-10000:]}\n"
            f"--- stderr ---\n{proc.stderr[-6000:]}",
            pytrace=False,
        )
    return proc


@pytest.fixture(scope="module")
def built() -> None:
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail(
                "npm is not on the PATH: the VS Code extension cannot be built", pytrace=False
            )
        pytest.skip("needs Node.js and npm")
    run(["npm", "ci", "--no-audit", "--no-fund"], timeout=600)
    run(["npm", "run", "build"], timeout=300)


@pytest.mark.timeout(1200)
def test_extension_unit_and_server_tests_pass(built):
    proc = run(["npm", "test"], timeout=900)
    assert "# fail 0" in proc.stdout or "ℹ fail 0" in proc.stdout, proc.stdout[-4000:]


@pytest.mark.timeout(900)
def test_vsce_packages_an_installable_vsix(built, tmp_path):
    out = tmp_path / "kenning.vsix"
    run(
        [
            "npx",
            "--no-install",
            "@vscode/vsce",
            "package",
            "--no-dependencies",
            "--allow-missing-repository",
            "--out",
            str(out),
        ],
        timeout=600,
    )
    with zipfile.ZipFile(out) as vsix:
        names = set(vsix.namelist())
    wanted = {"extension.vsixmanifest", "extension/package.json", "extension/dist/extension.js"}
    assert wanted <= names, sorted(names)
    leaked = ("extension/node_modules/", "extension/src/", "extension/test/")
    assert not any(n.startswith(leaked) for n in names), sorted(names)
