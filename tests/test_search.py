"""Ranking rules that hold whatever the model: fusion, priors, de-duplication."""

from kenning.server.search import _fuse, prior, snippet_of
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
