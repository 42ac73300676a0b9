"""Ranking rules that hold whatever the model: fusion, priors, de-duplication."""

import pytest
from kenning.server.search import (
    ModePlan,
    Semantic,
    SemanticUnavailable,
    _fuse,
    plan_mode,
    prior,
    snippet_of,
)
from kenning.server.store import StoredChunk


def chunk(path: str, language: str = "python") -> StoredChunk:
    return StoredChunk(1, path, 1, 5, None, "function", language, "def f(): pass")


def test_code_outranks_prose_and_tests_at_equal_relevance():
    code, readme, test = (
        chunk("pkg/mod.py"),
        chunk("README.md", "markdown"),
        chunk("tests/test_mod.py"),
    )
    assert prior(code) > prior(test) and prior(code) > prior(readme)
    assert prior(chunk("src/app.spec.ts", "typescript")) == prior(test)


def test_fusion_rewards_agreement_between_the_two_rankings():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 12.0), (4, 10.0)]
    fused = dict(_fuse(dense, lexical, "hybrid"))
    assert fused[3] > fused[2]  # found by both sides beats second place on one
    assert max(fused.values()) <= 1.0


def test_modes_use_one_side_alone():
    dense, lexical = [(1, 0.9)], [(2, 5.0)]
    assert [c for c, _ in _fuse(dense, lexical, "semantic")] == [1]
    assert [c for c, _ in _fuse(dense, lexical, "lexical")] == [2]
    assert 0 < _fuse(dense, lexical, "lexical")[0][1] < 1


def test_snippet_is_short_and_dedented():
    text = "    def f(self):\n\n        return 1\n" + "        x = 2\n" * 20
    snippet = snippet_of(text)
    assert snippet.startswith("def f(self):") and snippet.count("\n") == 5


def test_hybrid_answers_from_words_alone_while_the_semantic_side_cannot_and_says_why():
    loading = plan_mode("hybrid", Semantic.MODEL_LOADING)
    assert (loading.mode, loading.dense, loading.until_loaded) == ("lexical", False, True)
    assert loading.note == "the model is still loading: these results are lexical only"
    failed = plan_mode("hybrid", Semantic.MODEL_FAILED)
    assert (failed.mode, failed.dense, failed.until_loaded) == ("lexical", False, False)
    assert failed.note == "the model could not be loaded: these results are lexical only"
    unbuilt = plan_mode("hybrid", Semantic.NO_VECTORS)
    assert (unbuilt.mode, unbuilt.dense) == ("hybrid", False)
    assert unbuilt.note == "no vectors yet: the semantic side is still being built"
    assert plan_mode("hybrid", Semantic.READY) == ModePlan("hybrid", dense=True)


def test_semantic_search_waits_for_a_loading_model_and_is_refused_without_one():
    assert plan_mode("semantic", Semantic.MODEL_LOADING) == ModePlan("semantic", dense=True)
    assert not plan_mode("semantic", Semantic.NO_VECTORS).dense
    with pytest.raises(SemanticUnavailable, match="use mode 'lexical'"):
        plan_mode("semantic", Semantic.MODEL_FAILED)
    assert plan_mode("lexical", Semantic.MODEL_FAILED) == ModePlan("lexical", dense=False)
