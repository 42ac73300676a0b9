"""A search or a status as every front end answers it: LSP, the daemon's socket, the CLI.

`answer_search` decides, once, what a search runs given what the serving side
knows (is the first index done, is the model loaded or did it fail), and which
notes explain a thin answer. `search_json` and `status_json` are the objects
`kenning search --json` and `kenning status --json` print; the daemon's socket
sends exactly these, so the command line prints the same whether it asked a
daemon or worked in-process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .engine import Engine
from .search import SearchOutcome, Semantic, plan_mode

STILL_BUILDING = "the index is still being built: results come from what is indexed so far"
NOTHING_MATCHED = "nothing matched; try other words, or check kenning/status for what is indexed"


@dataclass(frozen=True)
class IndexView:
    """What the serving side knows about its index beyond the store."""

    first_index_done: bool = True
    """False while a daemon's first index is running (answers are partial)."""
    semantic_available: bool = True
    """False once the model failed to load: hybrid falls back to lexical."""
    load_if_needed: bool = False
    """Load the model for this query if it is not loaded (the CLI); a daemon
    answers lexically meanwhile instead of making the query wait."""


def answer_search(
    engine: Engine,
    query: str,
    *,
    limit: int = 10,
    mode: str = "hybrid",
    paths: Sequence[str] = (),
    view: IndexView = IndexView(),
    explain: bool = False,
) -> SearchOutcome:
    """Search `engine`, narrowed and annotated for what `view` says; raises
    SemanticUnavailable when semantic search was asked for and no model can answer."""
    if not view.semantic_available:
        semantic = Semantic.MODEL_FAILED
    elif not view.load_if_needed and not engine.model_loaded:
        semantic = Semantic.MODEL_LOADING
    else:
        semantic = Semantic.READY
    plan = plan_mode(mode, semantic)
    outcome = engine.search_outcome(
        query, limit=limit, mode=plan.mode, paths=paths, explain=explain
    )
    notes = [STILL_BUILDING] if not view.first_index_done else []
    if plan.note:
        notes.append(plan.note)
    notes.extend(outcome.notes)
    outcome.partial = not view.first_index_done or plan.until_loaded
    if not outcome.results and not outcome.partial:
        notes.append(NOTHING_MATCHED)
    outcome.notes = notes
    return outcome


def search_json(outcome: SearchOutcome, *, explain: bool = False) -> dict[str, Any]:
    """What `kenning search --json` prints (docs/protocol.md §1); with `explain`, each
    result's `explain` and the fusion's `weights` (hybrid mode)."""
    answer = {
        "query": outcome.query,
        "took_ms": round(outcome.took_ms, 2),
        "load_ms": round(outcome.load_ms, 2),
        "model": outcome.model,
        "generation": outcome.generation,
        "partial": outcome.partial,
        "notes": list(outcome.notes),
        "results": [r.to_json() for r in outcome.results],
    }
    if explain and outcome.weights is not None:
        answer["weights"] = outcome.weights.to_json()
    return answer


def status_json(engine: Engine) -> dict[str, Any]:
    """What `kenning status --json` prints."""
    return engine.status().to_json()
