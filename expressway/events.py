"""The progress event schema (version 1) and the helper nodes use to emit events.

Every event is a JSON-serializable dict with `type`, `v` (schema version) and `t` (seconds since
the run started, from a monotonic clock). Nodes emit them through LangGraph's custom stream
(`get_stream_writer`), so `graph.astream(..., stream_mode="custom")`, the LangGraph server's SSE
stream and the CLI all see the same events in the same order.
"""

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Literal, NotRequired, TypedDict

from langgraph.config import get_stream_writer

from expressway.coalesce import merge_waiting

SCHEMA_VERSION = 1

EventType = Literal[
    "run.started",
    "route.decided",
    "plan.started",
    "speculation.started",
    "plan.task",
    "plan.error",
    "plan.finished",
    "task.started",
    "task.finished",
    "answer.started",
    "task.in_doubt",
    "fallback",
    "answer.withheld",
    "token",
    "run.finished",
]


class Event(TypedDict):
    """Fields every event has; each type adds its own (see README "Event schema")."""

    type: EventType
    v: int
    t: float
    task_id: NotRequired[int]
    tool: NotRequired[str]
    status: NotRequired[Literal["ok", "error"]]
    duration_s: NotRequired[float]
    reused: NotRequired[bool]
    text: NotRequired[str]
    tier: NotRequired[str]
    model: NotRequired[str]
    tokens: NotRequired[int]


def now() -> float:
    """The clock every run timestamp is taken from."""
    return time.monotonic()


def emit(started_at: float, type: EventType, **fields: Any) -> dict[str, Any]:
    """Send one event to the run's custom stream (a no-op outside a graph run) and return it."""
    event = {"type": type, "v": SCHEMA_VERSION, "t": round(now() - started_at, 6), **fields}
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a runnable context (plain unit use)
        return event
    writer(event)
    return event


async def iter_events(
    stream: AsyncIterator[Any],
) -> AsyncIterator[dict[str, Any]]:
    """Yield the progress events of `graph.astream(..., stream_mode=["custom", ...])` and
    drop other stream parts, so callers get one typed sequence."""
    async for part in stream:
        mode, payload = part if isinstance(part, tuple) and len(part) == 2 else ("custom", part)
        if mode == "custom" and isinstance(payload, Mapping) and "type" in payload:
            yield dict(payload)


def coalesce_tokens(
    events: AsyncGenerator[dict[str, Any], None], window_s: float
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield `events`, merging token events that are already waiting when the consumer asks for
    the next one: a consumer that keeps up gets every token as its own event, at once; one that
    fell behind (a slow client, a busy server) gets each run of waiting tokens (same tier and
    model, at most `window_s` apart from the first by their `t`) as one event whose `text` joins
    theirs and whose `tokens` counts them. `window_s` 0 never merges (expressway/coalesce.py)."""

    def merge(first: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
        if not (
            window_s > 0
            and first["type"] == after["type"] == "token"
            and after.get("tier") == first.get("tier")
            and after.get("model") == first.get("model")
            and after["t"] - first["t"] <= window_s
        ):
            return None
        tokens = first.get("tokens", 1) + after.get("tokens", 1)
        return {**first, "text": first["text"] + after["text"], "tokens": tokens}

    return merge_waiting(events, merge)
