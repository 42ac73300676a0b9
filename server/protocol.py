"""The wire types of Kenning's custom LSP methods (docs/protocol.md §2), and their validation.

Each `kenning/*` request has an attrs params class and an attrs result class,
and one row in `METHODS`, the table everything else is made from: the request
message classes pygls reads, the name -> params lookup, the list of types whose
unset optional fields stay off the wire (found through the result types' fields)
and, in lsp.py, the check that every request has a handler. Notifications the
server sends (`kenning/indexChanged`) are rows too.

`KenningProtocol` reads the table, so a handler receives params that are
already typed and checked: a wrong type, a missing field or a bad value is
answered with JSON-RPC -32602 InvalidParams whose message names the field
(``params.limit must be a whole number, got '5'``), and the server carries on.
Unknown fields are ignored, as the protocol promises.

pygls structures incoming messages inside ``json.loads``; a message that fails
there would get no answer at all. The protocol subclass therefore catches the
failure and answers the request with the error instead, for the standard LSP
methods too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol, default_converter

from .fusion import Weights
from .search import Explanation

log = logging.getLogger(__name__)

KENNING_SEARCH = "kenning/search"
KENNING_STATUS = "kenning/status"
KENNING_REINDEX = "kenning/reindex"
KENNING_TRAIN = "kenning/train"
KENNING_FEEDBACK = "kenning/feedback"
KENNING_RELATED = "kenning/related"
KENNING_INDEX_CHANGED = "kenning/indexChanged"

SearchMode = Literal["hybrid", "semantic", "lexical"]
ServerState = Literal["starting", "indexing", "idle", "training"]
MAX_LIMIT = 1000


class ParamsError(ValueError):
    """Request params that do not fit their type; the message names the field."""


# -- params --------------------------------------------------------------------------


@attrs.define
class SearchParams:
    query: str
    """What the code does, in words ("retry failed uploads")."""
    limit: int = 10
    """How many results, best first (1 to 1000)."""
    mode: SearchMode = "hybrid"
    """hybrid (dense + lexical, fused), semantic (dense only) or lexical (FTS only)."""
    paths: list[str] = attrs.Factory(list)
    """Gitignore-style globs; when given, only matching files are searched."""
    folders: list[str] | None = None
    """Workspace folders to search (URI, path or name); none means every folder."""
    explain: bool = False
    """Add to each result why it ranks where it does (`SearchHit.explain`)."""

    def check(self) -> None:
        if not self.query.strip():
            raise ParamsError(
                "params.query is empty; say what the code does, e.g. 'retry failed uploads'"
            )
        check_limit(self.limit)


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ParamsError(f"params.limit must be between 1 and {MAX_LIMIT}, got {limit}")


@attrs.define
class RelatedParams:
    uri: str
    """The file, as a file:// URI (or an absolute path)."""
    position: types.Position
    """A position on the line of the code to compare (0-based, as in LSP)."""
    limit: int = 10
    """How many results, most similar first (1 to 1000)."""
    paths: list[str] = attrs.Factory(list)
    """Gitignore-style globs; when given, only matching files are searched."""

    def check(self) -> None:
        check_limit(self.limit)


@attrs.define
class StatusParams:
    pass


@attrs.define
class ReindexParams:
    paths: list[str] | None = None
    """Workspace-relative paths, absolute paths or file:// URIs; none means the whole workspace."""


@attrs.define
class TrainParams:
    force: bool = False
    """Start now, skipping the schedule's waiting conditions (never the quality gate)."""
    folder: str | None = None
    """Which workspace folder's model (URI, path or name); none means the first folder."""


@attrs.define
class FeedbackParams:
    """A search result the user opened: the strongest signal of what a query means."""

    query: str
    """The query as the user typed it (kept, cut at a few hundred characters; never logged)."""
    uri: str
    """The opened result's file (a `file://` URI or a path inside the workspace)."""
    range: types.Range
    """The opened result's range, as `kenning/search` gave it."""

    def check(self) -> None:
        if not self.query.strip():
            raise ParamsError("params.query is empty")
        first, last = self.range.start, self.range.end
        if (last.line, last.character) < (first.line, first.character):
            raise ParamsError("params.range.end must not come before params.range.start")


# -- results -------------------------------------------------------------------------


@attrs.define
class SearchHit:
    uri: str
    range: types.Range
    """0-based lines, end exclusive (the start of the line after the chunk)."""
    score: float
    snippet: str
    path: str
    """Workspace-relative, `/` separators (as in `kenning search --json`)."""
    symbol: str | None = None
    language: str | None = None
    kind: str | None = None
    """function, method, class, type, header or window (a span of lines without a symbol)."""
    folder: str | None = None
    """URI of the workspace folder `path` is relative to (the one whose index answered)."""
    explain: Explanation | None = None
    """Only when the request asked for it: why this result ranks where it does."""


@attrs.define
class SearchResponse:
    results: list[SearchHit]
    took_ms: float
    model: str
    generation: int | None
    partial: bool = False
    """True while the first index is still being built: results come from what is indexed so far."""
    notes: list[str] = attrs.Factory(list)
    """Plain-language remarks: still building, no vectors yet, nothing indexed."""
    adapter: str | None = None
    """The query adapter that mapped the query (its id), when one did."""
    weights: Weights | None = None
    """Only with `explain`, in hybrid mode: how much each side counted."""


@attrs.define
class RelatedResponse:
    source: SearchHit
    """The code at the position asked about, whose stored vector was the query."""
    results: list[SearchHit]
    took_ms: float
    model: str
    generation: int | None
    notes: list[str] = attrs.Factory(list)


@attrs.define
class ModelInfo:
    name: str
    version: str
    trained_at: str | None = None


@attrs.define
class StatusResponse:
    state: ServerState
    files: int
    chunks: int
    pending: int
    """Chunks still waiting for a vector."""
    model: ModelInfo
    last_training: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    """The run in progress: phase (training, re-embedding), message, step/steps."""
    workspace: str | None = None
    index_dir: str | None = None
    generation: int | None = None
    queued: int = 0
    """Changed paths waiting to be re-indexed (or being re-indexed now)."""
    embedded_since_start: int = 0
    """Chunk texts this server process has sent to the model."""
    index_bytes: int = 0
    warnings: list[str] = attrs.Factory(list)
    adapter: str | None = None
    """The query adapter searches apply (its id), when there is one."""
    picks: int = 0
    """Opened search results kept to learn from (`kenning/feedback`)."""
    writer: bool = True
    """Whether this server writes the index; false while another Kenning process does."""
    folders: list[FolderStatus] | None = None
    """Every workspace folder; the fields above are the first indexed folder's."""


@attrs.define
class FolderStatus:
    """One workspace folder in `kenning/status`."""

    name: str
    uri: str
    indexed_in: str
    """URI of the folder whose index holds this one: itself, or the folder it lies inside."""
    state: ServerState | Literal["failed", "stopping"]
    files: int = 0
    chunks: int = 0
    pending: int = 0
    queued: int = 0
    model: ModelInfo | None = None
    generation: int | None = None
    index_dir: str | None = None
    writer: bool = True
    error: str | None = None
    """Why the folder is not indexed (state `failed`)."""


@attrs.define
class ReindexResponse:
    queued: int


@attrs.define
class TrainResponse:
    started: bool
    reason: str | None = None


@attrs.define
class IndexChanged:
    """Params of the `kenning/indexChanged` notification, sent after each batch lands."""

    generation: int | None
    files: int
    chunks: int
    partial: bool = False
    folder: str | None = None
    """URI of the workspace folder whose index changed."""


# -- the table: one row per method ----------------------------------------------------


@attrs.frozen
class Request:
    """A request the client sends; the server answers with `result` (lsp.py holds the handler)."""

    name: str
    params: type
    result: type


@attrs.frozen
class Notification:
    """A notification the server sends; nothing answers it."""

    name: str
    params: type


@attrs.frozen
class ClientNotification:
    """A notification the client sends (lsp.py holds the handler); nothing answers it,
    so params that fail validation are logged and dropped."""

    name: str
    params: type


# Adding a request: its params and result classes above, a row here, a handler in lsp.py.
METHODS: tuple[Request | Notification | ClientNotification, ...] = (
    Request(KENNING_SEARCH, SearchParams, SearchResponse),
    Request(KENNING_STATUS, StatusParams, StatusResponse),
    Request(KENNING_REINDEX, ReindexParams, ReindexResponse),
    Request(KENNING_TRAIN, TrainParams, TrainResponse),
    ClientNotification(KENNING_FEEDBACK, FeedbackParams),
    Request(KENNING_RELATED, RelatedParams, RelatedResponse),
    Notification(KENNING_INDEX_CHANGED, IndexChanged),
)


def _request_class(request: Request) -> type:
    """The message class pygls' RPCRequest protocol expects (id, method, jsonrpc, params),
    e.g. `SearchRequest`."""
    return attrs.make_class(
        request.params.__name__.removesuffix("Params") + "Request",
        {
            "id": attrs.field(type=int | str),  # type: ignore[arg-type]  # attrs takes a union
            "params": attrs.field(type=request.params),
            "method": attrs.field(type=str, default=request.name),
            "jsonrpc": attrs.field(type=str, default="2.0"),
        },
    )


def _outgoing_classes(roots: Iterable[Any]) -> tuple[type, ...]:
    """Kenning's attrs classes the server sends, found through field types
    (`SearchResponse` -> `SearchHit`); lsprotocol's have pygls' own hooks."""
    found: dict[type, None] = {}

    def visit(tp: Any) -> None:
        for arg in get_args(tp):
            visit(arg)
        if not (isinstance(tp, type) and attrs.has(tp)) or tp in found:
            return
        if tp.__module__.partition(".")[0] == "lsprotocol":
            return
        found[tp] = None
        for field in attrs.fields(attrs.resolve_types(tp)):
            visit(field.type)

    for root in roots:
        visit(root)
    return tuple(found)


def _notification_class(notification: ClientNotification) -> type:
    """The message class pygls' RPCNotification protocol expects (method, params, jsonrpc)."""
    return attrs.make_class(
        notification.params.__name__.removesuffix("Params") + "Notification",
        {
            "params": attrs.field(type=notification.params),
            "method": attrs.field(type=str, default=notification.name),
            "jsonrpc": attrs.field(type=str, default="2.0"),
        },
    )


REQUESTS: dict[str, Request] = {m.name: m for m in METHODS if isinstance(m, Request)}
REQUEST_TYPES: dict[str, type] = {name: _request_class(r) for name, r in REQUESTS.items()}
CLIENT_NOTIFICATIONS: dict[str, ClientNotification] = {
    m.name: m for m in METHODS if isinstance(m, ClientNotification)
}
NOTIFICATION_TYPES: dict[str, type] = {
    name: _notification_class(n) for name, n in CLIENT_NOTIFICATIONS.items()
}
HANDLED = {**REQUESTS, **CLIENT_NOTIFICATIONS}
"""Every method the client sends that lsp.py must handle."""
RESULT_TYPES = _outgoing_classes(
    m.result if isinstance(m, Request) else m.params
    for m in METHODS
    if not isinstance(m, ClientNotification)
)
"""Kenning's types the server sends (results, notification params and the classes they hold);
`make_converter` leaves their optional fields out while None."""


@attrs.define
class RejectedRequest:
    """A request whose params failed validation; answered with InvalidParams."""

    id: int | str
    method: str
    message: str
    jsonrpc: str = "2.0"


@attrs.define
class RejectedNotification:
    """A notification whose params failed validation; logged and dropped (nothing answers)."""

    method: str
    message: str
    jsonrpc: str = "2.0"


# -- validation ----------------------------------------------------------------------


def _strict(expected: str, ok: Callable[[Any], bool]) -> Callable[[Any, type], Any]:
    def hook(value: Any, _type: type) -> Any:
        if not ok(value):
            raise ParamsError(f"must be {expected}, got {value!r}")
        return value

    return hook


def _literal_hook(value: Any, literal: Any) -> Any:
    choices = get_args(literal)
    if value not in choices:
        raise ParamsError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _make_params_converter() -> cattrs.Converter:
    """A converter that never coerces: JSON `"5"` is not an int, `"abc"` is not a list."""
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict("a string", lambda v: isinstance(v, str)))
    conv.register_structure_hook(
        int, _strict("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool))
    )
    conv.register_structure_hook(bool, _strict("true or false", lambda v: isinstance(v, bool)))
    conv.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is Literal, _literal_hook
    )
    list_of_str = conv.get_structure_hook(list[str])

    def list_hook(value: Any, t: type) -> list[str]:
        if not isinstance(value, list):
            raise ParamsError(f"must be a list of strings, got {value!r}")
        return list_of_str(value, t)

    conv.register_structure_hook_func(lambda t: t == list[str], list_hook)
    return conv


_PARAMS = _make_params_converter()


def _describe(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, KeyError):
        return "is required"
    if isinstance(exc, ParamsError):
        return str(exc)
    return f"is invalid ({exc})"


def validation_message(exc: BaseException, root: str = "params") -> str:
    """One line naming each bad field: `params.limit must be a whole number, got '5'`."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        parts = cattrs.transform_error(exc, path=root, format_exception=_describe)
        return "; ".join(
            f"{where.lstrip('.')} {what}" for what, _, where in (p.rpartition(" @ ") for p in parts)
        )
    return f"{root} {_describe(exc, None)}"


def structure_params(raw: Any, params_type: type) -> Any:
    """Typed, checked params from the JSON value; raises ParamsError naming the field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"params must be an object, got {raw!r}")
    try:
        params: Any = _PARAMS.structure(raw, params_type)
    except (ClassValidationError, IterableValidationError, ParamsError) as exc:
        raise ParamsError(validation_message(exc)) from exc
    check = getattr(params, "check", None)
    if check is not None:
        check()
    return params


# -- the protocol --------------------------------------------------------------------


def make_converter() -> cattrs.Converter:
    """pygls' converter, plus: Kenning's result types keep their snake_case field names and
    leave out optional fields (those defaulting to None) while they are None, as `symbol?`
    in the protocol."""
    conv = default_converter()
    kenning_types = frozenset(RESULT_TYPES)

    # A factory, not a hook per class: the hook made for SearchResponse looks up SearchHit's
    # when it is made, and must find this one rather than pygls' camelCasing default.
    def make_hook(cls: type) -> Callable[[Any], dict[str, Any]]:
        base: Callable[[Any], dict[str, Any]] = cattrs.gen.make_dict_unstructure_fn(cls, conv)
        optional = {f.name for f in attrs.fields(cls) if f.default is None}

        def unstructure(obj: Any) -> dict[str, Any]:
            return {k: v for k, v in base(obj).items() if v is not None or k not in optional}

        return unstructure

    conv.register_unstructure_hook_factory(lambda t: t in kenning_types, make_hook)
    return conv


class KenningProtocol(LanguageServerProtocol):
    """The LSP protocol plus typed `kenning/*` requests.

    A request that cannot be structured (wrong types, missing fields) is turned
    into a `RejectedRequest` and answered with -32602 naming the field, instead
    of pygls' default of logging it and never answering.
    """

    def get_message_type(self, method: str) -> type | None:  # type: ignore[override]
        return (
            REQUEST_TYPES.get(method)
            or NOTIFICATION_TYPES.get(method)
            or super().get_message_type(method)
        )

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" in data and "id" not in data and data.get("method") in CLIENT_NOTIFICATIONS:
            return self._structure_notification(data)
        if "jsonrpc" not in data or "method" not in data or "id" not in data:
            return super().structure_message(data)
        method = data["method"]
        request = REQUESTS.get(method)
        try:
            if request is None:
                return super().structure_message(data)
            params = structure_params(data.get("params"), request.params)
            return REQUEST_TYPES[method](
                id=data["id"], params=params, method=method, jsonrpc=data["jsonrpc"]
            )
        except ParamsError as exc:
            return RejectedRequest(id=data["id"], method=method, message=f"Invalid params: {exc}")
        except JsonRpcInvalidParams as exc:
            reason = validation_message(exc.__cause__, root="") if exc.__cause__ else "wrong types"
            return RejectedRequest(
                id=data["id"], method=method, message=f"Invalid params: {reason}"
            )

    def _structure_notification(self, data: dict[str, Any]) -> Any:
        method = data["method"]
        try:
            params = structure_params(data.get("params"), CLIENT_NOTIFICATIONS[method].params)
        except ParamsError as exc:
            return RejectedNotification(method=method, message=f"Invalid params: {exc}")
        return NOTIFICATION_TYPES[method](params=params, method=method, jsonrpc=data["jsonrpc"])

    def handle_message(self, message: Any) -> None:
        if isinstance(message, RejectedNotification):
            # Nothing answers a notification: say why it was dropped in the log (the
            # message names the field, never the query's text).
            log.warning("%s dropped: %s", message.method, message.message)
            return
        if isinstance(message, RejectedRequest):
            log.warning("%s: %s", message.method, message.message)
            if not self._shutdown:
                self._send_response(
                    message.id, error=JsonRpcInvalidParams(message.message).to_response_error()
                )
            return
        super().handle_message(message)
