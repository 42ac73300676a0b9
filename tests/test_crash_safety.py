"""kill -9 at random moments never leaves an inconsistent index (issue 9).

Each round runs the real `kenning index` in a process of its own and kills it
with SIGKILL at a random moment after it opened the index: during the first
full index, during incremental batches (files edited, added and deleted
between rounds), and during a switch of model generation (a different
checkpoint is promoted before some rounds, so the run re-embeds everything
into a new generation and switches). After every kill the index is opened
as the next start would open it and checked: every row points at something,
no duplicates, the lexical index matches the chunks, one active generation
whose vectors in memory match the stored ones. Some rounds then index to
completion and check that the index matches the files on disk exactly.

CI runs a few kills; the campaign (`pytest -m stress tests/test_crash_safety.py -s`)
runs 60 and writes its figures to bench/results/kill_campaign.json.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kenning.server.discover import FileFilter, discover
from kenning.server.store import Store

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def generated_workspace(root: Path, modules: int, functions: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for m in range(modules):
        write_module(root, m, functions, variant=0)
    return root


def write_module(root: Path, m: int, functions: int, variant: int) -> None:
    body = "\n\n".join(
        textwrap.dedent(f'''\
            def handler_{m}_{f}(request):
                """Handle request kind {f} of service {m} (revision {variant})."""
                return request.payload.get("{m}-{f}", {variant})
            ''')
        for f in range(functions)
    )
    (root / f"service_{m:03d}.py").write_text(body)


@dataclass
class Campaign:
    workspace: Path
    index_dir: Path
    model: Path
    rng: random.Random
    modules: int
    functions: int
    checkpoints: list[str] = field(default_factory=list)
    kills: int = 0
    kills_by_phase: dict[str, int] = field(default_factory=dict)
    completed_checks: int = 0
    problems: list[str] = field(default_factory=list)
    next_module: int = 10_000
    work_s: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KENNING_INDEX_DIR": str(self.index_dir),
            "KENNING_MODEL": str(self.model),
            "KENNING_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
            "KENNING_MAX_SEQ_LENGTH": "64",
        }

    def index(self, kill_after: float | None) -> tuple[bool, float]:
        """Run `kenning index`; with `kill_after`, SIGKILL it that many seconds after
        it opened the index. Returns whether it was killed before finishing, and
        how long it ran after opening the index."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "kenning.server.cli", "index", str(self.workspace)],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        marker = self.index_dir / f"open-{proc.pid}"
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        opened = time.monotonic()
        if kill_after is None:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
            return False, time.monotonic() - opened
        while proc.poll() is None and time.monotonic() - opened < kill_after:
            time.sleep(0.002)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
        return killed, time.monotonic() - opened

    def check(self, complete: bool) -> None:
        store = Store.open(self.index_dir)
        try:
            found = store.consistency_problems()
            if complete:
                files, _, pending = store.counts(store.active_generation().id)
                on_disk = {
                    d.rel
                    for d in discover(
                        self.workspace, FileFilter(self.workspace, (), ()), 1 << 20
                    ).files
                }
                if set(store.file_records()) != on_disk:
                    found.append(
                        f"index holds {sorted(set(store.file_records()) ^ on_disk)[:5]}... not "
                        "the files on disk"
                    )
                if pending:
                    found.append(f"{pending} chunks without a vector after a complete index")
                if len(store.generations()) != 1:
                    found.append(f"{len(store.generations())} generations after a complete index")
                self.completed_checks += 1
            self.problems.extend(f"round {self.kills}: {p}" for p in found)
        finally:
            store.close()

    def mutate(self) -> None:
        """What happens between two editor sessions: edits, new files, deleted files."""
        files = sorted(self.workspace.glob("service_*.py"))
        for path in self.rng.sample(files, min(8, len(files))):
            m = int(path.stem.split("_")[1])
            write_module(self.workspace, m, self.functions, variant=self.rng.randrange(1000))
        for path in self.rng.sample(files, min(2, len(files))):
            path.unlink(missing_ok=True)
        for _ in range(2):
            write_module(self.workspace, self.next_module, self.functions, variant=0)
            self.next_module += 1

    def promote_other(self) -> None:
        from kenning.trainer import checkpoints as ckpt

        current = (ckpt.read_pointer(self.index_dir) or {}).get("checkpoint")
        ckpt.promote(self.index_dir, next(c for c in self.checkpoints if c != current))

    def round(self, phase: str) -> None:
        if phase == "incremental":
            self.mutate()
        elif phase == "switch":
            self.promote_other()
        # Kill somewhere within how long this kind of run took when it was not killed.
        killed, ran = self.index(kill_after=self.rng.uniform(0, self.work_s[phase]))
        if killed:
            self.kills += 1
            self.kills_by_phase[phase] = self.kills_by_phase.get(phase, 0) + 1
        else:
            self.work_s[phase] = ran
        self.check(complete=False)
        if self.rng.random() < 0.25:
            self.index(kill_after=None)
            self.check(complete=True)


def save_checkpoints(model_dir: Path, index_dir: Path) -> list[str]:
    """Two checkpoints of the tiny model with different weights, to switch between."""
    import torch
    from kenning.trainer import checkpoints as ckpt
    from sentence_transformers import SentenceTransformer

    out = []
    for seed in (1, 2):
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        card = {
            "root_model": "tiny-bert",
            "base_model": {"name": "tiny-bert", "version": "base", "location": str(model_dir)},
        }
        out.append(ckpt.save_checkpoint(model, index_dir, card).name)
    return out


def run_campaign(
    tmp_path: Path, model: Path, kills: int, seed: int = 7, modules: int = 20, functions: int = 20
) -> Campaign:
    campaign = Campaign(
        generated_workspace(tmp_path / "ws", modules, functions),
        tmp_path / "index",
        model,
        random.Random(seed),
        modules,
        functions,
    )
    _, full_s = campaign.index(
        kill_after=None
    )  # a baseline: how long indexing takes after the open
    campaign.work_s = {"full": full_s, "incremental": full_s, "switch": full_s}
    campaign.check(complete=True)
    campaign.checkpoints = save_checkpoints(model, campaign.index_dir)
    # Rounds cycle through the three situations; a full index starts from nothing.
    phases = ["full", "incremental", "switch"]
    i = 0
    while campaign.kills < kills:
        phase = phases[i % 3]
        i += 1
        if phase == "full":
            for path in campaign.index_dir.glob("index.sqlite*"):
                path.unlink()
            for path in campaign.index_dir.glob("vectors-*"):
                path.unlink()
        campaign.round(phase)
    campaign.index(kill_after=None)
    campaign.check(complete=True)
    campaign.full_index_s = full_s  # type: ignore[attr-defined]
    return campaign


def test_kills_during_indexing_and_switching_leave_a_consistent_index(tmp_path, tiny_model):
    campaign = run_campaign(tmp_path, tiny_model, kills=4)
    assert campaign.problems == []
    assert campaign.kills >= 4 and campaign.completed_checks >= 2


@pytest.mark.stress
def test_kill_campaign(tmp_path, tiny_model):
    started = time.perf_counter()
    campaign = run_campaign(
        tmp_path, tiny_model, kills=60, seed=int(time.time()), modules=60, functions=40
    )
    figures = {
        "kills": campaign.kills,
        "by_phase": campaign.kills_by_phase,
        "complete_index_checks": campaign.completed_checks,
        "problems": campaign.problems,
        "uninterrupted_index_s": round(campaign.full_index_s, 1),  # type: ignore[attr-defined]
        "took_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kill_campaign.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    assert campaign.problems == []
