"""The `kenning/*` method table: every request served, typed and checked; results lean."""

from __future__ import annotations

import attrs
import pytest
from kenning.server.lsp import KENNING_HANDLERS, build_server, kenning_features
from kenning.server.protocol import (
    KENNING_SEARCH,
    KENNING_TRAIN,
    METHODS,
    REQUESTS,
    ModelInfo,
    Request,
    SearchHit,
    SearchParams,
    SearchResponse,
    StatusResponse,
    make_converter,
)
from lsprotocol import types


def test_every_request_in_the_table_is_served():
    ls = build_server()
    for name in REQUESTS:
        assert name in ls.protocol.fm.features, name


def test_a_request_without_a_handler_stops_the_server_from_starting():
    without_train = {k: v for k, v in KENNING_HANDLERS.items() if k != KENNING_TRAIN}
    with pytest.raises(RuntimeError, match="without a handler in lsp.py: kenning/train;"):
        kenning_features(without_train)


def test_a_handler_without_a_row_stops_the_server_from_starting():
    extra = {**KENNING_HANDLERS, "kenning/nothing": KENNING_HANDLERS[KENNING_SEARCH]}
    with pytest.raises(
        RuntimeError, match="without a row in protocol.py's METHODS: kenning/nothing"
    ):
        kenning_features(extra)


def test_a_request_arrives_as_its_generated_message_with_typed_params():
    protocol = build_server().protocol
    message = protocol.structure_message(
        {"jsonrpc": "2.0", "id": 4, "method": KENNING_SEARCH, "params": {"query": "retry"}}
    )
    assert type(message).__name__ == "SearchRequest"
    assert (message.id, message.method) == (4, KENNING_SEARCH)
    assert message.params == SearchParams(query="retry")
    assert [f.name for f in attrs.fields(type(message))] == ["id", "params", "method", "jsonrpc"]


def test_bad_params_are_rejected_naming_the_field():
    protocol = build_server().protocol
    rejected = protocol.structure_message(
        {
            "jsonrpc": "2.0",
            "id": 5,
            "method": KENNING_SEARCH,
            "params": {"query": "x", "limit": "5"},
        }
    )
    assert rejected.message == "Invalid params: params.limit must be a whole number, got '5'"


def test_results_keep_snake_case_names_and_drop_unset_optional_fields_at_every_depth():
    conv = make_converter()
    span = types.Range(
        start=types.Position(line=0, character=0), end=types.Position(line=2, character=0)
    )
    hit = SearchHit(
        uri="file:///w/a.py", range=span, score=0.5, snippet="def a(): ...", path="a.py"
    )
    answer = conv.unstructure(
        SearchResponse(results=[hit], took_ms=1.0, model="m", generation=None)
    )
    assert answer["took_ms"] == 1.0
    assert answer["generation"] is None  # required, so sent as null
    assert set(answer["results"][0]) == {"uri", "range", "score", "snippet", "path"}
    status = conv.unstructure(
        StatusResponse(
            state="idle",
            files=1,
            chunks=1,
            pending=0,
            model=ModelInfo("m", "v2", trained_at="2026-11-29"),
            index_dir="/w/.kenning",
        )
    )
    assert status["model"] == {"name": "m", "version": "v2", "trained_at": "2026-11-29"}
    assert status["index_dir"] == "/w/.kenning"
    assert "training" not in status and "workspace" not in status
    untrained = conv.unstructure(
        StatusResponse(state="idle", files=1, chunks=1, pending=0, model=ModelInfo("m", "base"))
    )
    assert untrained["model"] == {"name": "m", "version": "base"}


def test_notifications_are_rows_but_need_no_handler():
    notifications = [m.name for m in METHODS if not isinstance(m, Request)]
    assert notifications == ["kenning/indexChanged"]
    assert "kenning/indexChanged" not in KENNING_HANDLERS
