"""Learning in the running server (issue 16): the results a user opens come back as
`kenning/feedback` picks, kept whatever the client sends; and a query adapter trained in
the background is swapped in while every search keeps answering, without re-embedding.

The adapter test trains with the bundled model on the shopcart fixture (its vectors are
real, so the gate has something to measure); the picks tests need no model quality and
use the tiny model.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from kenning_client import SearchLoop, Session, kenning_server

pytestmark = pytest.mark.asyncio

SHOPCART = Path(__file__).resolve().parents[1] / "data" / "trainer" / "shopcart"
TRAIN_TIMEOUT_S = 300.0
SECRET = "where do we compute the sales tax on an order"


@pytest.fixture
def shopcart(tmp_path: Path) -> Path:
    ws = tmp_path / "shopcart"
    shutil.copytree(SHOPCART, ws)
    return ws


def feedback(session: Session, query: Any, uri: Any, start: int, end: int, **extra: Any) -> None:
    params = {
        "query": query,
        "uri": uri,
        "range": {"start": {"line": start, "character": 0}, "end": {"line": end, "character": 0}},
        **extra,
    }
    session.client.protocol.notify("kenning/feedback", params)


async def test_opened_results_are_kept_as_picks_whatever_the_client_sends(
    shopcart: Path, tmp_path: Path, tiny_model: Path
):
    index_dir = tmp_path / "index"
    options = {"model": str(tiny_model), "device": "cpu", "train": {"schedule": "off"}}
    async with kenning_server(shopcart, index_dir, options=options) as kenning:
        await kenning.settled()
        answer = await kenning.search(SECRET)
        hit = answer.results[0]
        feedback(kenning, SECRET, hit.uri, hit.range.start.line, hit.range.end.line)
        # Clipped: a range past the end of the file, a 100 KB query.
        feedback(kenning, "x" * 100_000, kenning.uri("shopcart/tax.py"), 5, 90_000)
        # Dropped, each with a line in the log and nothing else: outside the workspace,
        # a deleted file, params that do not fit (notifications get no error answer).
        feedback(kenning, SECRET, "file:///etc/hostname", 0, 1)
        feedback(kenning, SECRET, kenning.uri("shopcart/gone.py"), 0, 1)
        feedback(kenning, "", hit.uri, 0, 1)
        feedback(kenning, SECRET, hit.uri, 9, 2)
        kenning.client.protocol.notify("kenning/feedback", {"query": SECRET, "uri": 7})
        status = await kenning.eventually(lambda: _with_picks(kenning, 2), what="two picks kept")
        assert (await kenning.search("sales tax")).results  # still answering

        # 10,000 picks in a burst: capped, the oldest dropped, the server unharmed.
        for i in range(10_000):
            feedback(kenning, f"burst query {i}", hit.uri, 0, 3)
        status = await kenning.eventually(
            lambda: _with_picks(kenning, 5000, last=b"burst query 9999"),
            what="the burst to be kept",
            timeout=120,
        )
        assert (await kenning.search("sales tax")).results
        logs = [m.message for m in kenning.client.log_messages]

    assert status.picks == 5000
    picks_file = index_dir / "picks.jsonl"
    assert stat.S_IMODE(picks_file.stat().st_mode) == 0o600
    kept = [json.loads(line) for line in picks_file.read_text().splitlines()]
    assert len(kept) <= 5000 + 1250 and kept[-1]["query"] == "burst query 9999"
    assert not any(SECRET in m or "xxxx" in m for m in logs), "a query reached the log"
    dropped = [m for m in logs if "kenning/feedback dropped" in m]
    assert any("not inside the workspace" in m for m in dropped)
    assert any("shopcart/gone.py is not a file in the workspace" in m for m in dropped)
    assert any("params.query is empty" in m for m in dropped)
    assert any("params.range.end must not come before params.range.start" in m for m in dropped)
    assert any("params.uri must be a string" in m for m in dropped)


async def _with_picks(session: Session, n: int, last: bytes | None = None) -> Any:
    status = await session.status()
    if status.picks < n:
        return None
    if last is not None and last not in (session.index_dir / "picks.jsonl").read_bytes():
        return None
    return status


async def test_learn_from_picks_false_keeps_nothing(shopcart: Path, tmp_path: Path, tiny_model):
    options = {"model": str(tiny_model), "device": "cpu", "learnFromPicks": False}
    async with kenning_server(shopcart, tmp_path / "index", options=options) as kenning:
        await kenning.settled()
        answer = await kenning.search(SECRET)
        hit = answer.results[0]
        feedback(kenning, SECRET, hit.uri, hit.range.start.line, hit.range.end.line)
        await asyncio.sleep(1)
        status = await kenning.status()
    assert status.picks == 0 and not (tmp_path / "index" / "picks.jsonl").exists()


async def test_an_adapter_trained_in_the_background_is_swapped_in_without_re_embedding(
    shopcart: Path, tmp_path: Path
):
    index_dir = tmp_path / "index"
    # No GPU and train.on_cpu false: the full model is not trained, the adapter is.
    options = {
        "device": "cpu",
        "train": {"schedule": "off", "onCpu": False, "adapter": True, "minNewChunks": 0},
    }
    async with kenning_server(shopcart, index_dir, options=options) as kenning:
        before = await kenning.settled()
        assert getattr(before, "adapter", None) is None
        loop = SearchLoop(kenning, SECRET, pause_s=0.01)
        await kenning.eventually(lambda: len(loop.answers) >= 3, what="searches before training")

        answer = await kenning.request("kenning/train", {})
        assert answer.started is True, answer.reason
        assert (await kenning.status()).training.parts == "adapter"

        async def trained() -> Any:
            status = await kenning.status()
            last = getattr(status, "last_training", None)
            return status if last and getattr(status, "training", None) is None else None

        after = await kenning.eventually(trained, what="the run to end", timeout=TRAIN_TIMEOUT_S)
        adapter = after.last_training.adapter
        assert after.last_training.parts == "adapter", after.last_training.reason
        assert adapter.status == "promoted", adapter.reason
        await kenning.eventually(
            lambda: getattr(loop.answers[-1], "adapter", None) == adapter.adapter,
            what="a search mapped by the new adapter",
        )
        await loop.stop()

    assert loop.errors == []
    assert all(a.results for a in loop.answers), "a search came back empty during the swap"
    used = [getattr(a, "adapter", None) for a in loop.answers]
    first = used.index(adapter.adapter)
    assert set(used[:first]) == {None} and set(used[first:]) == {adapter.adapter}
    # No chunk was re-embedded: same generation, nothing sent to the model since the first index.
    assert after.generation == before.generation and after.model.version == "base"
    assert after.embedded_since_start == before.embedded_since_start
    assert after.adapter == adapter.adapter and after.state == "idle"
