"""Queries nobody should type, through the engine with the real model: each one
gets an answer (maybe empty, with a note saying why), never an error.
(The same list goes through the language server in e2e/test_lsp_search.py.)"""

from __future__ import annotations

import pytest
from kenning.server.engine import Engine

BAD_QUERIES = {
    "only stop words": "the of and to is it",
    "only punctuation": "?!.,;:-- ()[]{} ...",
    "10,000 characters": ("retry failed uploads " * 500)[:10_000],
    "mixed scripts": "データを読む retry Загрузка failed 上传 uploads",
    "a regex": "foo.*bar(",
    "SQL with FTS5 syntax": "' OR 1=1; DROP TABLE chunks; -- "
    + '"upload" NEAR(retry fail) AND * OR NOT',
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    import shutil
    from pathlib import Path

    root = tmp_path_factory.mktemp("bad-queries")
    workspace = root / "ws"
    shutil.copytree(Path(__file__).parent / "data" / "core", workspace)
    with Engine.open(workspace, {"index_dir": str(root / "index")}) as engine:
        engine.index()
        yield engine


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "lexical"])
@pytest.mark.parametrize("query", list(BAD_QUERIES.values()), ids=list(BAD_QUERIES))
def test_a_bad_query_gets_an_answer_not_an_error(engine: Engine, query: str, mode: str):
    outcome = engine.search_outcome(query, mode=mode, explain=True)

    # The language server and the command line add "nothing matched" to an empty
    # answer; here it is enough that there is an answer, explained where it exists.
    assert all(r.explanation is not None for r in outcome.results)


def test_punctuation_alone_finds_nothing_and_says_so(engine: Engine):
    outcome = engine.search_outcome(BAD_QUERIES["only punctuation"])
    assert outcome.results == []
    assert any("no words" in note for note in outcome.notes)


def test_stop_words_alone_are_left_to_the_model_and_the_note_says_so(engine: Engine):
    outcome = engine.search_outcome(BAD_QUERIES["only stop words"])
    assert any("only common words" in note for note in outcome.notes)
    assert engine.search_outcome(BAD_QUERIES["only stop words"], mode="lexical").results == []


def test_the_words_inside_noise_still_find_their_code(engine: Engine):
    for name in ("10,000 characters", "mixed scripts", "SQL with FTS5 syntax"):
        top = engine.search_outcome(BAD_QUERIES[name], mode="lexical").results
        assert top and top[0].path == "app/uploads.py", name
