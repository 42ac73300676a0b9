"""Ranking rules that hold whatever the model: the query's shape, fusion, priors,
code-aware boosts and the selection of places."""

import pytest
from kenning.server import priors
from kenning.server.fusion import Candidate, fuse, lexical_gap, weights_for
from kenning.server.models import split_label
from kenning.server.query_shape import shape_of
from kenning.server.ranking import DEFAULT
from kenning.server.search import (
    ModePlan,
    Semantic,
    SemanticUnavailable,
    fine_tuned,
    plan_mode,
    select,
    snippet_of,
)
from kenning.server.store import Generation, StoredChunk


def chunk(
    path: str,
    language: str = "python",
    *,
    cid: int = 1,
    symbol: str | None = None,
    kind: str = "function",
    lines: tuple[int, int] = (1, 5),
) -> StoredChunk:
    return StoredChunk(cid, path, *lines, symbol, kind, language, "def f(): pass")


def factor(c: StoredChunk, query: str = "compute the total") -> float:
    out = 1.0
    for f in priors.file_factors(c, shape_of(query), DEFAULT).values():
        out *= f
    return out


def test_code_outranks_prose_tests_examples_shims_and_stubs_at_equal_relevance():
    code = factor(chunk("pkg/mod.py"))
    assert code == 1.0
    for other in (
        chunk("README.md", "markdown"),
        chunk("tests/test_mod.py"),
        chunk("src/app.spec.ts", "typescript"),
        chunk("examples/demo.py"),
        chunk("pkg/_compat.py"),
        chunk("pkg/vendor/six.py"),
        chunk("pkg/mod.pyi"),
        chunk("pkg/__init__.py", kind="window"),
    ):
        assert factor(other) < code, other.path
    assert (
        factor(chunk("pkg/__init__.py", kind="function")) == code
    )  # a definition, not a re-export


def test_tests_and_docs_count_in_full_when_the_query_asks_for_them():
    assert factor(chunk("tests/test_mod.py"), "tests for the retry logic") == 1.0
    assert factor(chunk("docs/setup.md", "markdown"), "how do I configure logging?") == 1.0
    assert factor(chunk("docs/setup.md", "markdown"), "logging setup docs") == 1.0
    assert factor(chunk("docs/setup.md", "markdown"), "configure logging") < 1.0
    assert factor(chunk("docs/setup.md", "markdown"), "parse the log level") < 1.0


@pytest.mark.parametrize(
    ("query", "is_name", "is_path", "names"),
    [
        ("Flask.route", True, False, ["Flask.route"]),
        ("parse_url", True, False, ["parse_url"]),
        ("getUser()", True, False, ["getUser"]),
        ("Sinatra::Base", True, False, ["Sinatra::Base"]),
        ("src/app.py", False, True, []),
        ("app.py", False, True, []),
        ("where is parse_url called", False, False, ["parse_url"]),
        ("retry failed uploads", False, False, []),
    ],
)
def test_a_query_is_read_as_a_name_a_path_or_words(query, is_name, is_path, names):
    shape = shape_of(query)
    assert (shape.is_name, shape.is_path, shape.names) == (is_name, is_path, names)


def test_a_name_query_leans_on_the_words():
    dense, lexical = [(1, 0.9)], [(2, 5.0)]
    name = weights_for(shape_of("parse_url"), dense, lexical, DEFAULT)
    words = weights_for(shape_of("parse the url"), dense, lexical, DEFAULT)
    assert name.lexical > words.lexical and name.dense == words.dense
    assert "name" in name.why


def test_the_words_count_for_more_when_their_first_answer_stands_out():
    flat = [(i, 10.0 - i * 0.1) for i in range(20)]  # many chunks share common words
    standout = [(0, 30.0)] + [(i, 10.0 - i * 0.1) for i in range(1, 20)]
    shape = shape_of("compute the invoice total")
    assert lexical_gap(standout) > lexical_gap(flat)
    assert (
        weights_for(shape, [], standout, DEFAULT).lexical
        > weights_for(shape, [], flat, DEFAULT).lexical
    )


def test_a_model_trained_on_the_workspace_weighs_more_than_the_bundled_one():
    dense, lexical = [(1, 0.9)], [(2, 5.0)]
    for query in ("parse_url", "parse the url"):
        bundled = weights_for(shape_of(query), dense, lexical, DEFAULT)
        trained = weights_for(shape_of(query), dense, lexical, DEFAULT, trained=True)
        assert (bundled.dense, trained.dense) == (
            DEFAULT.dense_weight,
            DEFAULT.trained_dense_weight,
        )
        assert trained.lexical == bundled.lexical
        assert "trained on this workspace" in trained.why and "trained" not in bundled.why


def test_a_generation_from_a_promoted_checkpoint_counts_as_trained():
    def gen(label: str) -> Generation:
        return Generation(1, label, "identity", "/models/x", 384, "active")

    assert fine_tuned(gen("all-MiniLM-L6-v2@20261203-231556-08c82e"))
    assert not fine_tuned(gen("all-MiniLM-L6-v2@base")) and not fine_tuned(None)


def test_a_model_label_splits_at_its_last_at_sign():
    assert split_label("all-MiniLM-L6-v2@20261203-231556-08c82e") == (
        "all-MiniLM-L6-v2",
        "20261203-231556-08c82e",
    )
    # A local model folder may be named with an `@`; a label without a version is the
    # model as configured.
    assert split_label("team@models@base") == ("team@models", "base")
    assert split_label("all-MiniLM-L6-v2") == ("all-MiniLM-L6-v2", "base")
    assert split_label("all-MiniLM-L6-v2@") == ("all-MiniLM-L6-v2", "base")


def test_fusion_rewards_agreement_between_the_two_rankings():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 12.0), (4, 10.0)]
    fused = {
        c.chunk_id: c.fused for c in fuse(dense, lexical, "hybrid", shape_of("x y"), DEFAULT)[0]
    }
    assert fused[3] > fused[2]  # found by both sides beats second place on one
    assert max(fused.values()) <= 1.0


def test_modes_use_one_side_alone_and_first_place_scores_one():
    dense, lexical = [(1, 0.9), (5, 0.8)], [(2, 5.0)]
    shape = shape_of("x y")
    semantic, _ = fuse(dense, lexical, "semantic", shape, DEFAULT)
    words, _ = fuse(dense, lexical, "lexical", shape, DEFAULT)
    assert [c.chunk_id for c in semantic] == [1, 5] and semantic[0].fused == 1.0
    assert [c.chunk_id for c in words] == [2] and words[0].fused == 1.0


def test_the_definition_of_a_typed_name_goes_first():
    chunks = {
        1: chunk("app.py", cid=1, symbol="App.handle", kind="method"),
        2: chunk("flask/app.py", cid=2, symbol="Flask.route", kind="method"),
        3: chunk("flask/scaffold.py", cid=3, symbol="Scaffold.route", kind="method"),
    }
    candidates = [Candidate(1, fused=1.0), Candidate(3, fused=0.8), Candidate(2, fused=0.2)]
    priors.apply(candidates, chunks, shape_of("Flask.route"), DEFAULT)
    order = [c.chunk_id for c in sorted(candidates, key=lambda c: -c.score)]
    assert order == [2, 3, 1]  # exact, then the same method name elsewhere


@pytest.mark.parametrize(
    ("symbol", "tier"),
    [("Flask.route", 1.0), ("x.Flask.route", 0.8), ("flask.Route", 0.6), ("Blueprint.route", 0.5)],
)
def test_definitions_match_the_name_more_or_less_exactly(symbol, tier):
    c = chunk("a.py", symbol=symbol, kind="method")
    assert priors.definition_tier(c, shape_of("Flask.route")) == tier
    assert priors.definition_tier(chunk("a.py", symbol=symbol, kind="window"), shape_of("x.y")) == 0


def test_query_words_that_name_a_file_or_its_folder_match_it():
    shape = shape_of("sessions cookie signing")
    assert priors.path_match("src/flask/sessions.py", shape) == pytest.approx(1 / 3)
    assert priors.path_match("src/flask/app.py", shape) == 0
    assert priors.path_match("src/flask/app.py", shape_of("flask/app.py")) == 1


def test_several_candidates_in_one_file_raise_its_best():
    chunks = {
        i: chunk("a.py" if i < 3 else f"b{i}.py", cid=i, lines=(i * 10, i * 10 + 5))
        for i in range(1, 5)
    }
    candidates = [Candidate(i, fused=f) for i, f in ((1, 0.5), (2, 0.5), (3, 0.6), (4, 0.1))]
    priors.apply(candidates, chunks, shape_of("x y"), DEFAULT)
    assert candidates[0].boosts["coherence"] > 0 and "coherence" not in candidates[2].boosts


def test_selection_lists_each_place_once_and_honours_the_path_filter():
    import pathspec

    chunks = {
        1: chunk("a.py", cid=1, lines=(1, 40)),
        2: chunk("a.py", cid=2, lines=(30, 70)),  # overlaps 1: the same place
        3: chunk("lib/b.py", cid=3, lines=(1, 5)),
        4: chunk("a.py", cid=4, lines=(80, 90)),
    }
    cands = [Candidate(i, score=s) for i, s in ((1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6))]
    assert [c.chunk_id for c, _ in select(cands, chunks, 10, None, 1.0)] == [1, 3, 4]
    only_lib = pathspec.GitIgnoreSpec.from_lines(["lib/**"])
    assert [c.chunk_id for c, _ in select(cands, chunks, 10, only_lib, 1.0)] == [3]


def test_further_chunks_of_a_listed_file_decay():
    chunks = {
        1: chunk("a.py", cid=1, lines=(1, 5)),
        2: chunk("a.py", cid=2, lines=(10, 15)),
        3: chunk("b.py", cid=3, lines=(1, 5)),
    }
    cands = [Candidate(i, score=s) for i, s in ((1, 1.0), (2, 0.9), (3, 0.6))]
    picked = select(cands, chunks, 10, None, 0.5)
    assert [(c.chunk_id, d) for c, d in picked] == [(1, 1.0), (3, 1.0), (2, 0.5)]


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
