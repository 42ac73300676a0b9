"""`kenning serve` answers search over LSP: kenning/search, workspace/symbol,
kenning/status, progress while it indexes, and clean errors for bad requests.

One server for the module (starting one loads the model); tests that edit
files live in test_lsp_changes.py.
"""

from __future__ import annotations

import pytest
import pytest_asyncio
from kenning_client import Session, copy_workspace, init_options, kenning_server, paths
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcMethodNotFound

pytestmark = pytest.mark.asyncio(loop_scope="module")

WORKSPACE_FILES = 6


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kenning(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("search")
    workspace = copy_workspace(root / "workspace")
    # initializationOptions name the index folder and beat KENNING_INDEX_DIR.
    options = init_options("per-folder", workspace, {"indexDir": str(root / "index")})
    async with kenning_server(workspace, root / "env-index", options=options) as session:
        session.index_dir = root / "index"
        yield session


async def test_a_search_during_the_first_index_answers_from_what_is_indexed(kenning: Session):
    first = await kenning.eventually(
        lambda: kenning.index_changes[:1], what="the first kenning/indexChanged"
    )
    assert first[0].partial is True

    answer = await kenning.search("compute_invoice_total")

    assert answer.partial is True
    assert "billing/invoices.py" in paths(answer)
    assert any("still being built" in note for note in answer.notes)


async def test_the_first_index_reports_progress_from_begin_to_end(kenning: Session):
    await kenning.settled()

    def finished_reports():
        return [
            r
            for r in kenning.client.progress_reports.values()
            if r and isinstance(r[-1], types.WorkDoneProgressEnd)
        ]

    (reports,) = await kenning.eventually(finished_reports, what="$/progress end")
    begin, *middle, end = reports
    assert isinstance(begin, types.WorkDoneProgressBegin)
    assert all(isinstance(r, types.WorkDoneProgressReport) for r in middle)
    assert any(f"/{WORKSPACE_FILES} files" in r.message for r in middle)
    percentages = [r.percentage for r in middle]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert isinstance(end, types.WorkDoneProgressEnd)


async def test_each_landed_batch_is_announced(kenning: Session):
    await kenning.settled()

    last = await kenning.eventually(
        lambda: [c for c in kenning.index_changes if not c.partial],
        what="a final kenning/indexChanged",
    )
    assert last[-1].files == WORKSPACE_FILES
    assert last[-1].chunks >= WORKSPACE_FILES
    assert isinstance(last[-1].generation, int)


async def test_search_finds_code_by_what_it_does(kenning: Session):
    await kenning.settled()

    answer = await kenning.search("retry a failed request, waiting longer each time")

    assert answer.partial is False
    assert answer.model == "all-MiniLM-L6-v2@base"
    top = answer.results[0]
    assert (top.path, top.symbol, top.language) == ("net/retry.py", "retry_with_backoff", "python")
    assert top.uri == kenning.uri("net/retry.py")
    assert top.range.start.line == 6  # `def retry_with_backoff` is line 7; LSP counts from 0
    assert top.range.start.character == 0
    assert "def retry_with_backoff" in top.snippet
    scores = [r.score for r in answer.results]
    assert 0 < scores[-1] and scores == sorted(scores, reverse=True)


async def test_explain_says_why_each_result_ranks_where_it_does(kenning: Session):
    await kenning.settled()

    answer = await kenning.search("retry_with_backoff", explain=True, limit=3)

    top = answer.results[0]
    assert top.symbol == "retry_with_backoff"
    why = top.explain
    assert why.lexical_rank == 1 and why.dense_rank >= 1
    assert why.boosts.definition > 0  # the query is this function's name
    assert why.final == pytest.approx(top.score, abs=1e-3)
    assert "name" in answer.weights.why
    plain = await kenning.search("retry_with_backoff", limit=3)
    assert not hasattr(plain.results[0], "explain") and not hasattr(plain, "weights")


@pytest.mark.parametrize(
    "query",
    [
        "the of and to is it",
        "?!.,;:-- ()[]{} ...",
        ("sales tax on an invoice " * 500)[:10_000],
        "データを読む sales Загрузка tax 上传 invoice",
        "foo.*bar(",
        '\' OR 1=1; DROP TABLE chunks; -- "tax" NEAR(sales tax) AND * OR NOT',
    ],
    ids=["stop words", "punctuation", "10k chars", "mixed scripts", "regex", "sql and fts5"],
)
async def test_a_bad_query_gets_an_answer_and_a_note_when_empty(kenning: Session, query: str):
    await kenning.settled()

    answer = await kenning.search(query, explain=True)

    assert answer.partial is False
    if not answer.results:
        assert answer.notes
    assert paths(await kenning.search("sales tax on an invoice"))[0] == "billing/invoices.py"


async def test_semantic_mode_needs_no_shared_words(kenning: Session):
    answer = await kenning.search(
        "evict the entry that was used longest ago", mode="semantic", limit=3
    )

    assert answer.results[0].path == "storage/cache.js"


async def test_path_globs_narrow_the_search(kenning: Session):
    answer = await kenning.search("price total tax discount", paths=["billing/**"])

    assert answer.results
    assert all(p.startswith("billing/") for p in paths(answer))


async def test_workspace_symbol_is_semantic_search(kenning: Session):
    symbols = await kenning.client.workspace_symbol_async(
        types.WorkspaceSymbolParams(query="turn a headline into a url")
    )

    top = symbols[0]
    assert top.name == "slugify"
    assert top.kind == types.SymbolKind.Function
    assert top.location.uri == kenning.uri("text/slugify.py")
    assert top.container_name == "text/slugify.py"


async def test_workspace_symbol_with_an_empty_query_lists_nothing(kenning: Session):
    assert await kenning.client.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) == []


async def test_status_describes_the_index(kenning: Session):
    status = await kenning.settled()

    assert (status.state, status.files, status.pending, status.queued) == (
        "idle",
        WORKSPACE_FILES,
        0,
        0,
    )
    assert status.chunks >= WORKSPACE_FILES
    assert (status.model.name, status.model.version) == ("all-MiniLM-L6-v2", "base")
    assert status.workspace == str(kenning.workspace)
    assert status.index_dir == str(kenning.index_dir)  # initializationOptions beat the environment
    assert not (kenning.index_dir.parent / "env-index").exists()


async def test_reindex_queues_the_paths_it_is_given(kenning: Session):
    assert (await kenning.request("kenning/reindex", {"paths": ["net/retry.py"]})).queued == 1
    assert (await kenning.request("kenning/reindex", {})).queued == WORKSPACE_FILES
    await kenning.settled()


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("kenning/search", {"query": 5}, "params.query"),
        ("kenning/search", {"limit": 3}, "params.query"),
        ("kenning/search", {"query": "tax", "limit": "5"}, "params.limit"),
        ("kenning/search", {"query": "tax", "limit": 0}, "params.limit"),
        ("kenning/search", {"query": "tax", "mode": "fuzzy"}, "params.mode"),
        ("kenning/search", {"query": "tax", "paths": "billing/**"}, "params.paths"),
        ("kenning/search", ["tax"], "params"),
        ("kenning/reindex", {"paths": [3]}, "params.paths[0]"),
        ("kenning/reindex", {"paths": ["/etc/passwd"]}, "params.paths[0]"),
        ("kenning/train", {"force": "yes"}, "params.force"),
        ("workspace/symbol", {"limit": 42}, "params.query"),
    ],
)
async def test_wrong_params_get_invalid_params_naming_the_field(
    kenning: Session, method, params, field
):
    with pytest.raises(JsonRpcInvalidParams) as error:
        await kenning.raw_request(method, params)

    assert error.value.code == -32602
    assert f"{field} " in error.value.message
    assert paths(await kenning.search("sales tax on an invoice"))[0] == "billing/invoices.py"


async def test_unknown_fields_are_ignored(kenning: Session):
    answer = await kenning.search("sales tax on an invoice", limit=2, colour="blue")

    assert len(answer.results) == 2


async def test_an_unknown_method_is_method_not_found(kenning: Session):
    with pytest.raises(JsonRpcMethodNotFound) as error:
        await kenning.raw_request("kenning/frobnicate", {})

    assert error.value.code == -32601
    assert paths(await kenning.search("sales tax on an invoice"))[0] == "billing/invoices.py"


async def test_logs_reach_the_client_log(kenning: Session):
    await kenning.settled()

    assert any("index complete" in m.message for m in kenning.client.log_messages)


async def test_no_code_reaches_the_log(kenning: Session):
    await kenning.settled()
    await kenning.search("sales tax on an invoice")
    code = (kenning.workspace / "billing" / "invoices.py").read_text()
    lines = {ln.strip() for ln in code.splitlines() if len(ln.strip()) > 12}

    logged = "\n".join(m.message for m in kenning.client.log_messages)
    assert logged and not [ln for ln in lines if ln in logged]
