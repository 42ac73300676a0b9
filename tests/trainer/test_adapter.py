"""The query adapter: the fit itself on vectors whose answer is known, then whole runs with
the bundled model on the shopcart fixture (index, train the adapter, search with it), its
files, its gate, and what happens to a corrupt or foreign adapter."""

from __future__ import annotations

import json
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from kenning.server.adapters import (
    WEIGHTS_NAME,
    adapter_pointer_path,
    adapters_dir,
)
from kenning.server.answers import search_json
from kenning.server.engine import Engine
from kenning.server.models import CARD_NAME
from kenning.server.picks import PickStore, make_pick
from kenning.server.ranking import DEFAULT
from kenning.trainer import adapter as fitting
from kenning.trainer.cross_fit import FOLDS, IDENTITY, cross_fit, deal_folds, fold_count
from kenning.trainer.options import TrainOptions
from kenning.trainer.pairs import Pair, is_measured
from kenning.trainer.run import train_workspace

# -- the fit, on vectors whose right answer is known ---------------------------------------


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def distorted_pairs(n: int, seed: int = 0):
    """Chunks, and queries that are their chunk seen through a fixed distortion plus noise:
    the model ranks them poorly, and a linear map can undo it."""
    rng = np.random.default_rng(seed)
    dim, total = 24, 300
    chunks = unit(rng.normal(size=(total, dim))).astype(np.float32)
    files = np.repeat(np.arange(total // 10), 10)
    distortion = np.eye(dim) + 0.9 * rng.normal(size=(dim, dim))
    targets = rng.choice(total, n, replace=False)
    queries = unit(chunks[targets] @ distortion.T + 0.05 * rng.normal(size=(n, dim)))
    data = fitting.FitData(
        queries=queries.astype(np.float32),
        positives=chunks[targets],
        own_rows=targets.astype(np.int64),
        files=files[targets].astype(np.int64),
        weights=np.ones(n, np.float32),
    )
    return data, chunks, files


def pairs_for(data: fitting.FitData) -> list[Pair]:
    """One docstring pair per row, in the file of its positive (what folds group by)."""
    return [
        Pair(f"query {i}", f"code {i}", "docstring", f"f{int(code)}.py")
        for i, code in enumerate(data.files)
    ]


def rank_score(data: fitting.FitData, chunks: np.ndarray):
    """The `cross_fit` scorer on plain vectors: each positive's rank among all chunks."""

    def score(rows, matrix):
        held = data.subset(list(rows))
        q = held.queries if matrix is None else held.queries @ matrix.T
        own = np.einsum("ij,ij->i", q, held.positives)
        sims = q @ chunks.T
        sims[np.arange(len(held)), held.own_rows] = -np.inf
        return (sims > own[:, None]).sum(axis=1) + 1

    return score


def mrr(ranks: np.ndarray) -> float:
    return float(np.where(ranks <= 10, 1 / ranks, 0).mean())


def test_the_adapter_learns_to_undo_what_the_model_gets_wrong():
    data, chunks, files = distorted_pairs(200)
    pairs = pairs_for(data)
    fitted = cross_fit(pairs, data, chunks, files, rank_score(data, chunks), seed=1)
    before, after = mrr(fitted.identity_ranks), mrr(fitted.ranks)
    # Every pair was measured once, by adapters fitted without its file.
    assert fitted.folds == FOLDS and sorted(fitted.scored) == list(range(200))
    assert sorted(i for rows in fitted.fold_rows for i in rows) == list(range(200))
    assert after > before + 0.2, (before, after)
    assert fitted.penalty in fitting.PENALTIES and fitted.scores["identity"] == round(before, 4)
    # The kept adapter is the path on every pair: it maps unseen distorted queries home.
    fresh, _, _ = distorted_pairs(100, seed=0)
    ranked = rank_score(fresh, chunks)
    assert mrr(ranked(range(100), fitted.matrix)) > mrr(ranked(range(100), None))


@pytest.mark.parametrize("one_batch", [True, False], ids=["every pair each step", "minibatches"])
def test_a_fit_learns_the_map_whether_its_pairs_fit_in_one_batch_or_not(monkeypatch, one_batch):
    data, chunks, files = distorted_pairs(200)
    negatives = fitting.candidate_negatives(data, chunks, files, seed=0)
    if not one_batch:  # as a workspace whose negatives would not fit in memory at once
        monkeypatch.setattr(fitting, "FULL_BATCH_FLOATS", 1000)
        monkeypatch.setattr(fitting, "BATCH", 64)
    matrix = fitting.fit(data, chunks, negatives, 0.01, seed=0)
    fresh, _, _ = distorted_pairs(100, seed=0)
    ranked = rank_score(fresh, chunks)
    assert mrr(ranked(range(100), matrix)) > mrr(ranked(range(100), None)) + 0.2


def test_folds_keep_a_file_together_and_hold_about_as_many_queries_each():
    data, _, _ = distorted_pairs(200)
    pairs = pairs_for(data)
    fold = deal_folds(pairs, FOLDS, seed=3)
    for path in {p.path for p in pairs}:
        assert len({int(fold[i]) for i, p in enumerate(pairs) if p.path == path}) == 1
    sizes = np.bincount(fold, minlength=FOLDS)
    assert sizes.max() - sizes.min() <= 10  # a file holds at most 10 of these pairs
    assert fold_count(pairs[:1]) == 1  # one file: nothing to cross-fit


def test_pairs_into_a_tests_own_code_train_the_adapter_but_are_not_measured():
    data, chunks, files = distorted_pairs(120)
    pairs = pairs_for(data)
    # A third of the described code lives in tests; a person's pick of a test still counts.
    pairs = [
        replace(p, path=f"tests/test_{p.path}") if i % 3 == 0 else p for i, p in enumerate(pairs)
    ]
    pairs[0] = replace(pairs[0], kind="pick")
    fitted = cross_fit(pairs, data, chunks, files, rank_score(data, chunks), seed=0)
    measured = {i for i, p in enumerate(pairs) if not p.path.startswith("tests/")} | {0}
    assert set(fitted.scored) == measured
    assert [is_measured(p) for p in pairs[:4]] == [True, True, True, False]
    assert not is_measured(Pair("parse url", "def parse_url(): ...", "identifier", "u.py"))


def test_a_strong_penalty_keeps_the_identity_and_weak_data_keeps_the_model_as_it_is():
    data, chunks, files = distorted_pairs(60)
    negatives = fitting.candidate_negatives(data, chunks, files, seed=0)
    held = fitting.fit(data, chunks, negatives, penalty=1e6, steps=30)
    assert np.abs(held - np.eye(chunks.shape[1])).max() < 1e-2
    # Queries that already sit on their chunks: nothing to learn, the identity wins.
    exact = fitting.FitData(data.positives, data.positives, data.own_rows, data.files, data.weights)
    fitted = cross_fit(pairs_for(exact), exact, chunks, files, rank_score(exact, chunks), seed=0)
    assert fitted.penalty == IDENTITY
    assert np.array_equal(fitted.matrix, np.eye(chunks.shape[1], dtype=np.float32))
    assert np.array_equal(fitted.ranks, fitted.identity_ranks)


def test_negatives_are_the_nearest_chunks_and_file_siblings_never_the_own_chunk():
    data, chunks, files = distorted_pairs(20)
    negatives = fitting.candidate_negatives(data, chunks, files, seed=0, hard=5, siblings=3)
    for i in range(len(data)):
        sims = chunks @ data.queries[i]
        sims[data.own_rows[i]] = -np.inf
        nearest = set(np.argsort(-sims)[:5])
        assert set(negatives[i, :5]) == nearest
        assert data.own_rows[i] not in negatives[i, :8]
        assert (files[negatives[i, 5:8]] == data.files[i]).all()


# -- whole runs with the bundled model --------------------------------------------------------


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path]:
    """Shopcart indexed once with the bundled model; tests copy it."""
    root = tmp_path_factory.mktemp("adapter")
    ws, index_dir = root / "shopcart", root / "index"
    shutil.copytree(SHOPCART, ws)
    with Engine.open(ws, {"index_dir": str(index_dir), "device": "cpu"}) as engine:
        engine.index()
    return ws, index_dir


@pytest.fixture
def workspace(indexed, tmp_path) -> tuple[Path, dict]:
    ws, index_dir = indexed
    shutil.copytree(index_dir, tmp_path / "index")
    return ws, {"index_dir": str(tmp_path / "index"), "device": "cpu"}


SHOPCART = Path(__file__).resolve().parents[1] / "data" / "trainer" / "shopcart"
ADAPTER = TrainOptions(parts="adapter", max_commits=0)


def test_an_adapter_is_trained_on_the_index_vectors_and_searches_use_it(workspace):
    ws, settings = workspace
    index_dir = Path(settings["index_dir"])
    result = train_workspace(ws, settings, TrainOptions(**{**ADAPTER.__dict__, "no_gate": True}))
    run = result.adapter
    assert result.parts == "adapter" and result.checkpoint is None and result.training is None
    assert run.status == "promoted" and result.status == "promoted", run.reason
    # No chunk re-embedded: only the queries, and positives that are not chunks as indexed.
    assert run.chunk_vectors == "index" and run.chunks_embedded == 0
    assert run.embedded <= 2 * (run.train_pairs + run.heldout_pairs)
    assert run.before.queries == run.heldout_pairs >= 10 and run.paired.queries == run.heldout_pairs

    folder = adapters_dir(index_dir) / run.adapter
    assert sorted(p.name for p in folder.iterdir()) == [WEIGHTS_NAME, CARD_NAME]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    card = json.loads((folder / CARD_NAME).read_text())
    assert card["model"] == "all-MiniLM-L6-v2@base" and card["dim"] == 384
    assert card["pairs"] == {"train": run.train_pairs, "heldout": run.heldout_pairs, "folds": 4}
    assert card["gain"] == pytest.approx(run.after.mrr_at_10 - run.before.mrr_at_10, abs=1e-6)
    assert card["metrics"]["after"]["mrr_at_10"] == pytest.approx(run.after.mrr_at_10)
    [record] = json.loads(f"[{_history(index_dir)}]")
    assert record["parts"] == "adapter" and record["adapter"]["adapter"] == run.adapter

    with Engine.open(ws, settings) as engine:
        assert engine.status().adapter == run.adapter
        mapped = engine.search_outcome("add an item to the shopping cart", mode="semantic")
        lexical = engine.search_outcome("add an item to the shopping cart", mode="lexical")
        hybrid = engine.search_outcome("add an item to the shopping cart")
    assert mapped.adapter == run.adapter and mapped.results
    # A model that learnt the workspace's words gets more of the say in hybrid fusion.
    assert hybrid.adapter == run.adapter and hybrid.weights is not None
    assert hybrid.weights.dense == DEFAULT.trained_dense_weight > DEFAULT.dense_weight
    assert "trained on this workspace" in hybrid.weights.why
    assert search_json(mapped)["adapter"] == run.adapter  # what `kenning search --json` prints
    assert lexical.adapter is None  # the words alone need no query vector


def _history(index_dir: Path) -> str:
    return ",".join((index_dir / "trainer" / "history.jsonl").read_text().splitlines())


def test_a_new_adapter_must_gain_as_much_as_the_one_in_use(workspace):
    ws, settings = workspace
    index_dir = Path(settings["index_dir"])
    first = train_workspace(ws, settings, TrainOptions(**{**ADAPTER.__dict__, "no_gate": True}))
    assert first.adapter.status == "promoted", first.reason
    # The card of the adapter in use says it gained more than any adapter can.
    card_path = adapters_dir(index_dir) / first.adapter.adapter / CARD_NAME
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "gain": 1.0}))
    again = train_workspace(ws, settings, ADAPTER)
    assert again.adapter.status == "rejected" and again.status == "rejected"
    # On its own it would pass: it gains over the model, just less than the card claims.
    assert 0 < again.adapter.gain < 1.0 and again.adapter.penalty is not None
    assert f"adapter {first.adapter.adapter}, in use, gained +1.000" in again.reason
    # Measured against the model as it is, as the first one was: same pairs, same folds.
    assert again.adapter.before.mrr_at_10 == pytest.approx(first.adapter.before.mrr_at_10)
    pointer = json.loads(adapter_pointer_path(index_dir).read_text())
    assert pointer["adapter"] == first.adapter.adapter
    assert [p.name for p in adapters_dir(index_dir).iterdir()] == [first.adapter.adapter]


def test_a_recorded_gain_stops_counting_once_the_workspace_has_moved_on(workspace):
    ws, settings = workspace
    index_dir = Path(settings["index_dir"])
    first = train_workspace(ws, settings, TrainOptions(**{**ADAPTER.__dict__, "no_gate": True}))
    card_path = adapters_dir(index_dir) / first.adapter.adapter / CARD_NAME
    card = json.loads(card_path.read_text())
    assert len(card["pair_keys"]) == len(set(card["pair_keys"])) > 0
    # It gained more than any adapter can, but on pairs of which only a third are here now.
    kept = card["pair_keys"][: len(card["pair_keys"]) // 3]
    card_path.write_text(json.dumps({**card, "gain": 1.0, "pair_keys": kept + ["0000abcd"]}))
    again = train_workspace(ws, settings, ADAPTER)
    assert again.adapter.status == "promoted", again.reason
    assert again.adapter.adapter != first.adapter.adapter
    assert f"adapter {first.adapter.adapter}, in use, gained +1.000 on pairs of which" in (
        again.reason
    )
    assert "so only the model as it is had to be beaten" in again.reason


def test_a_corrupt_adapter_is_refused_once_and_the_model_alone_answers(workspace):
    ws, settings = workspace
    run = train_workspace(ws, settings, TrainOptions(**{**ADAPTER.__dict__, "no_gate": True}))
    weights = adapters_dir(Path(settings["index_dir"])) / run.adapter.adapter / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")
    with Engine.open(ws, settings) as engine:
        status = engine.status()
        answer = engine.search_outcome("compute the tax on an order", mode="hybrid")
        engine.reload_adapter()  # a second look does not repeat the warning
        warnings = engine.status().warnings
    assert status.adapter is None and answer.adapter is None and answer.results
    [warning] = [w for w in warnings if "adapter" in w]
    assert warning == (
        f"adapter {run.adapter.adapter}: {WEIGHTS_NAME} does not match its checksum; "
        "searching with the model alone"
    )


def test_an_adapter_for_other_vectors_is_not_applied(workspace):
    ws, settings = workspace
    run = train_workspace(ws, settings, TrainOptions(**{**ADAPTER.__dict__, "no_gate": True}))
    # Another max_seq_length means other vectors: until they are built the old ones answer,
    # with the adapter trained for them; once they answer, the adapter no longer fits.
    with Engine.open(ws, {**settings, "max_seq_length": 128}) as engine:
        assert engine.status().adapter == run.adapter.adapter
        engine.index()
        status = engine.status()
        answer = engine.search_outcome("compute the tax on an order", mode="semantic")
    assert status.adapter is None and answer.adapter is None and answer.results
    assert any(
        w.startswith(f"adapter {run.adapter.adapter} was trained for all-MiniLM-L6-v2@base")
        for w in status.warnings
    )


def test_picks_are_the_pairs_of_a_workspace_with_too_few_of_its_own(tmp_path):
    ws = tmp_path / "tiny"
    ws.mkdir()
    bodies = {
        "prices.py": [
            ("parse_price", "text", "return float(text.strip().lstrip('$'))"),
            ("format_price", "value", "return f'${value:,.2f}'"),
            ("round_price", "value", "return round(value * 20) / 20"),
        ],
        "stock.py": [
            ("reserve_units", "sku, n", "STOCK[sku] -= n\n    return STOCK[sku]"),
            ("restock_units", "sku, n", "STOCK[sku] = STOCK.get(sku, 0) + n"),
            ("units_left", "sku", "return STOCK.get(sku, 0)"),
        ],
    }
    for name, defs in bodies.items():
        (ws / name).write_text(
            "STOCK = {}\n\n" + "\n\n".join(f"def {f}({a}):\n    {b}\n" for f, a, b in defs)
        )
    settings = {"index_dir": str(tmp_path / "index"), "device": "cpu"}
    with Engine.open(ws, settings) as engine:
        engine.index()
    options = TrainOptions(**{**ADAPTER.__dict__, "no_gate": True})
    before = train_workspace(ws, settings, options)
    assert before.status == "skipped"
    assert before.reason.startswith("not enough pairs to measure a query adapter: 0 query-like")

    # Someone searched, in their own words, and opened these functions.
    store = PickStore(tmp_path / "index")
    words = [
        "dollar amount from a string",
        "show money nicely",
        "nearest five cents",
        "hold items for an order",
        "add delivered items",
        "how many are in stock",
    ]
    lines = {
        "parse_price": 3,
        "format_price": 7,
        "round_price": 11,
        "reserve_units": 3,
        "restock_units": 8,
        "units_left": 12,
    }
    variants = ["", "please", "quickly", "now", "code", "function", "helper", "in python", "here"]
    for variant in variants:
        for (name, defs), offset in zip(bodies.items(), (0, 3), strict=True):
            for j, (func, _, _) in enumerate(defs):
                query = f"{words[offset + j]} {variant}".strip()
                pick, why = make_pick(ws, name, lines[func], lines[func] + 1, query, 1 << 20)
                assert why is None
                store.add(pick)
    after = train_workspace(ws, settings, options)
    assert after.picks == 54 and after.adapter is not None, after.reason
    assert after.adapter.heldout_pairs >= 10 and after.adapter.status == "promoted"
    assert after.adapter.before.by_kind["pick"]["queries"] == after.adapter.heldout_pairs


def test_a_lightly_documented_workspace_still_measures_an_adapter(tmp_path):
    # Fifteen one-line docstrings in three files: a fifth held out is too few to measure a
    # fine-tune, but cross-fitting measures every one of them for the adapter.
    ws = tmp_path / "light"
    ws.mkdir()
    topics = {
        "money.py": ["parse a price", "format a price", "round a price", "add tax", "convert"],
        "stock.py": ["reserve units", "restock units", "count units", "move units", "audit"],
        "mail.py": ["send a receipt", "send a reminder", "queue a mail", "render a mail", "bounce"],
    }
    for name, docs in topics.items():
        (ws / name).write_text(
            "\n\n".join(
                f'def {name[:-3]}_{i}(value):\n    """{doc.capitalize()} for the shop."""\n'
                f"    result = value * {i + 2}\n    return result + {i}\n"
                for i, doc in enumerate(docs)
            )
        )
    settings = {"index_dir": str(tmp_path / "index"), "device": "cpu"}
    with Engine.open(ws, settings) as engine:
        engine.index()
    result = train_workspace(ws, settings, TrainOptions(parts="both", max_commits=0))
    assert result.model_status == "skipped" and "not enough held-out pairs" in result.reason
    run = result.adapter
    assert run is not None and run.status in ("promoted", "rejected"), result.reason
    assert run.heldout_pairs == 15 and run.folds == 3 and run.before.queries == 15
    assert "cross-fitted MRR@10 on 15 queries in 3 folds" in run.reason


def test_a_promoted_model_retires_the_old_adapter_and_gets_its_own(shopcart, tmp_path, tiny_model):
    from kenning.server.adapters import promoted_adapter
    from kenning.server.models import promoted_model, vector_identity

    settings = {
        "index_dir": str(tmp_path / "index"),
        "device": "cpu",
        "model": str(tiny_model),
        "max_seq_length": 64,
    }
    index_dir = tmp_path / "index"
    with Engine.open(shopcart, settings) as engine:
        engine.index()
    first = train_workspace(
        shopcart, settings, TrainOptions(**{**ADAPTER.__dict__, "no_gate": True})
    )
    old, _ = promoted_adapter(index_dir)
    assert old is not None and old.id == first.adapter.adapter and old.model == "tiny-bert@base"

    both = TrainOptions(
        parts="both",
        batch_size=8,
        max_pairs=16,
        min_steps=2,
        max_seq_length=32,
        save_steps=100,
        no_gate=True,
        max_commits=0,
    )
    run = train_workspace(shopcart, settings, both)
    assert run.model_status == "promoted" and run.adapter.status == "promoted", run.reason
    assert f"adapter {old.id} belonged to the previous model and was retired" in run.notes
    assert run.reason.startswith("model: ") and "; adapter: " in run.reason
    model = promoted_model(index_dir, str(tiny_model))
    new, _ = promoted_adapter(index_dir)
    assert new.id == run.adapter.adapter != old.id and new.model == model.label
    assert new.identity == vector_identity(model, 64)
    # Its chunk vectors are the ones the fine-tune's measurement computed: none embedded again.
    assert run.adapter.chunk_vectors == "measured" and run.adapter.chunks_embedded == 0
    # The old generation still answers (nothing re-embedded yet): the new adapter waits.
    with Engine.open(shopcart, settings) as engine:
        assert engine.status().adapter is None
        engine.index()  # the switch to the new model's vectors
        assert engine.status().adapter == new.id
        assert engine.search_outcome("tax on an order", mode="semantic").adapter == new.id
