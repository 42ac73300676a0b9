"""The held-out split, the retrieval metrics and the paired test."""

from __future__ import annotations

import numpy as np
import pytest
from kenning.server.chunking import chunk_file
from kenning.server.discover import FileFilter
from kenning.trainer.evaluate import Corpus, paired_test, reciprocal_ranks, sample, split_by_file
from kenning.trainer.pairs import Pair, mine_pairs


def test_split_puts_every_file_on_one_side_only(shopcart):
    pairs = mine_pairs(shopcart, FileFilter(shopcart, (), ()), 1 << 20).pairs
    split = split_by_file(pairs, heldout_fraction=0.2, seed=7)
    train_files = {p.path for p in split.train}
    held_files = {p.path for p in split.heldout}
    assert train_files and held_files and not train_files & held_files
    assert len(split.train) + len(split.heldout) == len(pairs)
    assert 0.2 * len(pairs) <= len(split.heldout) <= 0.5 * len(pairs)
    assert split_by_file(pairs, seed=7).heldout == split.heldout  # seeded
    assert {tuple(split_by_file(pairs, seed=s).heldout_files) for s in range(6)} != {
        tuple(split.heldout_files)
    }


def test_one_file_cannot_be_split():
    pairs = [Pair(f"query number {i} here", f"code {i}", "docstring", "a.py") for i in range(5)]
    split = split_by_file(pairs)
    assert not split.heldout and len(split.train) == 5


def test_held_out_files_are_chosen_and_counted_by_the_pairs_that_measure():
    # One large test file, mostly signatures, used to fill the held-out side alone.
    pairs = [
        Pair(f"def test_{i}(x):", f"code {i}", "signature", "tests/test_big.py") for i in range(90)
    ]
    for name in ("a", "b", "c", "d", "e"):
        pairs += [
            Pair(f"query {name} {i} here", f"{name} {i}", "docstring", f"{name}.py")
            for i in range(4)
        ]
    measured = lambda p: p.kind == "docstring"  # noqa: E731
    for seed in range(8):
        split = split_by_file(pairs, heldout_fraction=0.2, seed=seed, counts=measured)
        assert "tests/test_big.py" in split.train_files
        assert 1 <= len(split.heldout_files) <= 2 and all(measured(p) for p in split.heldout)
    # Counting every pair, some seed holds out the test file and no measured pair at all.
    assert any(
        split_by_file(pairs, heldout_fraction=0.2, seed=s).heldout_files == ["tests/test_big.py"]
        for s in range(30)
    )


def test_sample_is_seeded_and_keeps_order():
    pairs = [Pair(f"query number {i} here", f"code {i}", "docstring", f"{i}.py") for i in range(50)]
    picked = sample(pairs, 10, seed=1)
    assert picked == sample(pairs, 10, seed=1) and len(picked) == 10
    assert picked == sorted(picked, key=pairs.index)
    assert sample(pairs, 100) == pairs


class WordEncoder:
    """Bag of words over a fixed vocabulary: a model whose behaviour a test can predict."""

    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.lower().split()})
        self.index = {w: i for i, w in enumerate(words)}

    def __call__(self, texts):
        out = np.zeros((len(texts), len(self.index) + 1), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in text.lower().split():
                out[row, self.index.get(w, len(self.index))] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def test_queries_are_ranked_against_every_chunk_and_the_source_chunk_is_left_out():
    source = '''def area(w, h):
    """ compute rectangle area """
    return w * h
'''
    other = '''def volume(w, h, d):
    """ compute box volume from rectangle area """
    return w * h * d
'''
    chunks = chunk_file("geo.py", source) + chunk_file("box.py", other)
    area_chunk = chunks[0]
    held = [
        Pair(
            "compute rectangle area",
            "geo.py area\ndef area(w, h):\n    return w * h",
            "docstring",
            "geo.py",
            area_chunk.hash,
        )
    ]
    corpus = Corpus(chunks)
    enc = WordEncoder([c.embed_text for c in chunks] + [held[0].anchor, held[0].positive])
    metrics = corpus.evaluate(enc, held)
    # The box chunk shares the query's words and now beats the stripped positive;
    # the source chunk, which holds the query verbatim, is not a candidate.
    assert metrics.ranks == [2]
    assert metrics.mrr_at_10 == pytest.approx(0.5)
    assert metrics.recall_at_1 == 0.0 and metrics.recall_at_10 == 1.0
    assert metrics.corpus == 2 and metrics.by_kind["docstring"]["queries"] == 1
    # Without the source hash the verbatim chunk would compete as well.
    leaky = [Pair(held[0].anchor, held[0].positive, "docstring", "geo.py", None)]
    assert corpus.evaluate(enc, leaky).ranks == [3]


def test_metrics_from_ranks():
    rr = reciprocal_ranks([1, 2, 10, 11])
    assert rr.tolist() == [1.0, 0.5, 0.1, 0.0]


def test_paired_test_counts_queries_and_reports_p_values():
    before = [1, 3, 5, 20, 2, 2, 8, 1]
    after = [1, 1, 2, 4, 1, 3, 1, 1]
    t = paired_test(before, after)
    assert (t.queries, t.better, t.worse, t.ties) == (8, 5, 1, 2)
    assert t.mean_delta == pytest.approx(
        (reciprocal_ranks(after) - reciprocal_ranks(before)).mean()
    )
    assert 0 < t.wilcoxon_p < 1 and 0 < t.sign_p <= 1
    same = paired_test(before, before)
    assert same.wilcoxon_p == 1.0 and same.sign_p == 1.0 and same.ties == 8
    with pytest.raises(ValueError):
        paired_test([1], [1, 2])
