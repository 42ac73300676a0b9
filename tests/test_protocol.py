"""The `kenning/*` method table: every request served, typed and checked; results lean."""

from __future__ import annotations

import re

import attrs
import pytest
from kenning.server.lsp import KENNING_HANDLERS, build_server, kenning_features
from kenning.server.protocol import (
    KENNING_SEARCH,
    KENNING_TRAIN,
    METHODS,
    REQUESTS,
    ClientNotification,
    FeedbackParams,
    ModelInfo,
    Notification,
    ParamsError,
    SearchHit,
    SearchParams,
    SearchResponse,
    StatusResponse,
    make_converter,
    structure_params,
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


def test_server_notifications_are_rows_but_need_no_handler():
    sent = [m.name for m in METHODS if isinstance(m, Notification)]
    assert sent == ["kenning/indexChanged"]
    assert "kenning/indexChanged" not in KENNING_HANDLERS


RANGE = {"start": {"line": 4, "character": 0}, "end": {"line": 9, "character": 0}}


def test_client_notifications_are_rows_and_are_handled():
    received = [m.name for m in METHODS if isinstance(m, ClientNotification)]
    assert received == ["kenning/feedback"]
    ls = build_server()
    assert "kenning/feedback" in ls.protocol.fm.features


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"uri": "file:///w/a.py", "range": RANGE}, "params.query is required"),
        ({"query": " ", "uri": "file:///w/a.py", "range": RANGE}, "params.query is empty"),
        ({"query": "q", "uri": 5, "range": RANGE}, "params.uri must be a string"),
        ({"query": "q", "uri": "a.py"}, "params.range is required"),
        (
            {
                "query": "q",
                "uri": "a.py",
                "range": {**RANGE, "start": {"line": -1, "character": 0}},
            },
            "params.range.start is invalid (Position.line should be in range",
        ),
        (
            {"query": "q", "uri": "a.py", "range": {"start": RANGE["end"], "end": RANGE["start"]}},
            "params.range.end must not come before params.range.start",
        ),
    ],
)
def test_feedback_params_are_checked_and_name_the_field(params, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        structure_params(params, FeedbackParams)


def test_good_feedback_params_arrive_typed():
    params = structure_params({"query": "q", "uri": "a.py", "range": RANGE}, FeedbackParams)
    assert params.range.end.line == 9 and params.query == "q"
