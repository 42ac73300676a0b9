"""Retraining inside the running server (issue 5): `kenning/train` trains in a
child process, the gate decides, and a promoted model is switched in without a
single failed or empty search; a rejected one changes nothing; a crash of the
training process or of the server in the middle of a switch loses nothing.

Every test trains the tiny random BERT from tests/conftest.py on the shopcart
fixture workspace, which takes seconds on a CPU.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kenning_client import Session, kenning_server

pytestmark = pytest.mark.asyncio

SHOPCART = Path(__file__).resolve().parents[1] / "data" / "trainer" / "shopcart"
TRAIN_TIMEOUT_S = 240.0
QUERY = "add an item to the shopping cart"


def settings(tiny_model: Path, **train: Any) -> dict[str, Any]:
    # A high learning rate teaches the random model this vocabulary in a few
    # dozen steps, so the gate promotes it (measured: MRR@10 0.128 -> 0.166).
    return {
        "model": str(tiny_model),
        "device": "cpu",
        "maxSeqLength": 64,
        "train": {
            "schedule": "off",
            "epochs": 4,
            "batchSize": 16,
            "lr": 3e-3,
            "maxPairs": 200,
            **train,
        },
    }


@pytest.fixture
def shopcart(tmp_path: Path) -> Path:
    ws = tmp_path / "shopcart"
    shutil.copytree(SHOPCART, ws)
    return ws


class SearchLoop:
    """Searches back to back until stopped, recording every answer and error."""

    def __init__(self, session: Session):
        self.session = session
        self.answers: list[Any] = []
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        modes = ("semantic", "hybrid")
        i = 0
        while not self._stop.is_set():
            try:
                self.answers.append(await self.session.search(QUERY, mode=modes[i % 2], limit=5))
            except Exception as exc:  # noqa: BLE001 - the test reports every failure
                self.errors.append(f"{type(exc).__name__}: {exc}")
            i += 1
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._stop.set()
        await self._task


async def finished_run(session: Session, before: int) -> Any:
    """The status once the run that started after `before` history records is over."""

    async def done() -> Any:
        status = await session.status()
        last = getattr(status, "last_training", None)
        return (
            status
            if status.state == "idle"
            and getattr(status, "training", None) is None
            and last
            and last.time > before
            else None
        )

    return await session.eventually(
        done, what="the training run to finish", timeout=TRAIN_TIMEOUT_S
    )


async def test_a_promoted_model_is_switched_in_while_every_search_keeps_answering(
    shopcart: Path, tmp_path: Path, tiny_model: Path
):
    index_dir = tmp_path / "index"
    async with kenning_server(shopcart, index_dir, options=settings(tiny_model)) as kenning:
        before = await kenning.settled()
        assert before.model.version == "base" and getattr(before, "last_training", None) is None
        loop = SearchLoop(kenning)
        await kenning.eventually(lambda: len(loop.answers) >= 3, what="searches before training")

        answer = await kenning.request("kenning/train", {"force": True})
        assert answer.started is True, answer.reason
        training = await kenning.status()
        assert training.state == "training" and training.training.forced is True
        again = await kenning.request("kenning/train", {"force": True})
        assert again.started is False and "already in progress" in again.reason

        after = await finished_run(kenning, 0)
        await kenning.eventually(
            lambda: loop.answers[-1].generation == after.generation,
            what="a search answered by the new generation",
        )
        await loop.stop()

    assert loop.errors == []
    assert all(a.results for a in loop.answers), "a search came back empty during the switch"
    assert after.last_training.status == "promoted", after.last_training.reason
    assert after.generation > before.generation
    assert after.model.version == after.last_training.checkpoint != "base"
    assert after.pending == 0 and after.chunks == before.chunks
    answered_by = [a.generation for a in loop.answers]
    assert answered_by[0] == before.generation and answered_by[-1] == after.generation
    assert answered_by == sorted(answered_by), "an older generation answered after the switch"
    assert any(n.generation == after.generation for n in kenning.index_changes)
    assert not list(index_dir.glob(f"vectors-g{before.generation}.*")), (
        "the old generation's files remain"
    )
    with sqlite3.connect(index_dir / "index.sqlite") as db:
        assert db.execute("SELECT id, state FROM generations").fetchall() == [
            (after.generation, "active")
        ]


async def test_a_rejected_model_leaves_the_index_alone_and_says_why(
    shopcart: Path, tmp_path: Path, tiny_model: Path
):
    # At this learning rate Adam cannot move a float32 weight: the new model
    # ranks exactly as the old one, and "not better" is rejected.
    options = settings(tiny_model, lr=1e-12, epochs=1)
    async with kenning_server(shopcart, tmp_path / "index", options=options) as kenning:
        before = await kenning.settled()
        assert (await kenning.request("kenning/train", {"force": True})).started is True
        after = await finished_run(kenning, 0)
        answer = await kenning.search(QUERY)

    assert after.last_training.status == "rejected"
    assert "not better than the current model" in after.last_training.reason
    assert after.generation == before.generation and after.model.version == "base"
    assert answer.generation == before.generation and answer.results


async def test_without_force_a_run_waits_for_its_conditions_and_says_which(
    shopcart: Path, tmp_path: Path, tiny_model: Path
):
    options = settings(tiny_model, onCpu=False)
    async with kenning_server(shopcart, tmp_path / "index", options=options) as kenning:
        await kenning.settled()
        answer = await kenning.request("kenning/train", {})
        status = await kenning.status()

    assert answer.started is False
    assert "train.on_cpu is false" in answer.reason or "train.min_new_chunks" in answer.reason
    assert (
        getattr(status, "training", None) is None and getattr(status, "last_training", None) is None
    )


async def test_a_crash_of_the_training_process_is_reported_and_the_server_keeps_serving(
    shopcart: Path, tmp_path: Path, tiny_model: Path
):
    # Enough epochs that the run is still training when it is killed.
    options = settings(tiny_model, epochs=400, lr=1e-4)
    async with kenning_server(shopcart, tmp_path / "index", options=options) as kenning:
        before = await kenning.settled()
        assert (await kenning.request("kenning/train", {"force": True})).started is True

        async def training_pid() -> int | None:
            status = await kenning.status()
            run = getattr(status, "training", None)
            return getattr(run, "pid", None) if getattr(run, "step", None) else None

        pid = await kenning.eventually(
            training_pid, what="a training step", timeout=TRAIN_TIMEOUT_S
        )
        os.kill(pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
        after = await finished_run(kenning, 0)
        answer = await kenning.search(QUERY)

    assert after.last_training.status == "failed"
    assert "killed by SIGKILL" in after.last_training.reason
    assert after.generation == before.generation and after.model.version == "base"
    assert answer.results and answer.generation == before.generation


def big_workspace(shopcart: Path, modules: int = 60, functions: int = 50) -> int:
    """Shopcart plus enough generated functions that re-embedding takes many batches."""
    gen = shopcart / "generated"
    gen.mkdir()
    for m in range(modules):
        body = "\n\n".join(discount_rule(m, f) for f in range(functions))
        (gen / f"rules_{m:03d}.py").write_text(body)
    return modules * functions


def discount_rule(m: int, f: int) -> str:
    """Source of rule `f` of generated module `m`: a function with a docstring of its own."""
    doc = f"Discount rule {f} of table {m}: orders over {m * 7 + f} get {f % 9} percent off."
    return textwrap.dedent(f'''\
        def rule_{m}_{f}(order):
            """{doc}"""
            return order.total * {(f % 9) / 100!r} if order.total > {m * 7 + f} else 0
        ''')


def generation_rows(index_dir: Path) -> dict[int, tuple[str, int]]:
    with sqlite3.connect(index_dir / "index.sqlite") as db:
        rows = db.execute(
            "SELECT g.id, g.state, (SELECT COUNT(*) FROM embeddings e WHERE e.gen = g.id) "
            "FROM generations g"
        ).fetchall()
    return {gid: (state, n) for gid, state, n in rows}


async def test_a_server_killed_while_re_embedding_comes_back_serving_a_complete_generation(
    shopcart: Path, tmp_path: Path, tiny_model: Path
):
    big_workspace(shopcart)
    index_dir = tmp_path / "index"
    options = settings(tiny_model)

    async with kenning_server(shopcart, index_dir, options=options) as first:
        before = await first.settled()
        assert (await first.request("kenning/train", {"force": True})).started is True
        server = first.client._server
        deadline = asyncio.get_running_loop().time() + TRAIN_TIMEOUT_S
        while server.returncode is None:
            if reembedding_halfway(first.client.progress_reports):
                server.kill()  # SIGKILL, in the middle of the switch
                await server.wait()
                break
            assert asyncio.get_running_loop().time() < deadline, "no re-embedding progress was seen"
            await asyncio.sleep(0.002)

    rows = generation_rows(index_dir)
    old, new = before.generation, max(rows)
    assert new != old and rows[old][0] == "active"
    assert rows[new][0] == "building" and 0 < rows[new][1] < rows[old][1], rows

    async with kenning_server(shopcart, index_dir, options=options) as second:
        first_answer = await second.search(QUERY, mode="semantic")
        after = await second.eventually(
            lambda: _switched(second, new), what="the switch to finish", timeout=TRAIN_TIMEOUT_S
        )
        last_answer = await second.search(QUERY, mode="semantic")

    assert first_answer.results and first_answer.generation in (old, new)
    assert last_answer.results and last_answer.generation == new == after.generation
    assert after.pending == 0 and after.model.version != "base"
    assert generation_rows(index_dir) == {new: ("active", rows[old][1])}


def reembedding_halfway(progress_reports: dict[Any, list[Any]]) -> bool:
    """Whether some "re-embedding k/N chunks" report has 0 < k < N/2."""
    for reports in list(progress_reports.values()):
        for report in reports:
            match = re.match(
                r"re-embedding (\d+)/(\d+) chunks", getattr(report, "message", None) or ""
            )
            if match and 0 < int(match.group(1)) < int(match.group(2)) // 2:
                return True
    return False


async def _switched(session: Session, new: int) -> Any:
    status = await session.status()
    return (
        status
        if status.generation == new and status.state == "idle" and status.pending == 0
        else None
    )
