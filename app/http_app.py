"""The HTTP app: a fast route that runs the graph inside the server process and streams the event
schema over SSE the moment the request arrives (no run queue, no pub/sub hop per token).

    POST /fast/runs/stream                      a run on a fresh thread that is not kept
    POST /fast/threads/{thread_id}/runs/stream  a run that continues thread_id (or starts it)
    GET  /fast/ok                               health

The request is the standard route's (`client.runs.stream(...)` of langgraph-sdk sends it when the
client's URL ends in /fast): `input`, `context` (fields of expressway.context.Context),
`assistant_id` ("agent"), `stream_mode` ("custom"). The response is the standard route's SSE: a
`metadata` message (run and thread ids), one `custom` message per event of the schema, and
`error` if the run fails. Answer tokens that wait for a slow client merge into one event
(`Context.token_merge_window_ms`). A client that disconnects stops the run. Threads live in the
checkpointer app/checkpointer.py picks; auth is langgraph.json's Auth, applied as app/auth.py
says.

LangGraph's server mounts this app beside its own API (langgraph.json `http.app`); without that
server it runs alone: `uvicorn app.http_app:app --workers N`, with DATABASE_URI for Postgres.
"""

import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph_sdk import Auth
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth import (
    authenticate,
    authorize_run,
    configured_auth_path,
    load_auth,
    thread_matches,
)
from app.checkpointer import mounted_in_langgraph_server, own_checkpointer, server_checkpointer
from app.event_stream import EventStreamResponse, sse_message
from expressway.context import ConfigurationError, Context
from expressway.events import coalesce_tokens, iter_events
from expressway.heap import freeze_static_heap
from graphs.agent import graph

GRAPH_ID = "agent"  # the graph's name in langgraph.json
PREFIX = "/fast"
ACCEPTED = {"input", "context", "assistant_id", "stream_mode", "on_disconnect"}
# Where a tier's requests go (with its API key) is the server's setting, never a caller's.
SERVER_ONLY = {"fast_base_url", "frontier_base_url", "embedded_port"}
STANDARD_ROUTE = "the standard route (/threads/{thread_id}/runs/stream)"


@dataclass
class RunRequest:
    """A validated request: what the graph runs on, and with which settings."""

    input: dict[str, Any]
    context: Context
    overrides: dict[str, Any]
    thread_id: str | None


@dataclass
class Service:
    """What every request shares: the graph, the Auth object and where threads are kept."""

    graph: CompiledStateGraph
    auth: Auth | None
    checkpointer: Callable[[], Awaitable[BaseCheckpointSaver]]
    _threaded: tuple[BaseCheckpointSaver, CompiledStateGraph] | None = field(default=None)

    async def caller(self, request: Request) -> tuple[Any, list[str]]:
        """The authenticated caller and their permissions (None when no auth is configured)."""
        if "user" in request.scope:  # LangGraph's server authenticated it already
            credentials = request.scope.get("auth")
            return request.scope["user"], list(getattr(credentials, "scopes", []))
        if self.auth is None:
            return None, []
        return await authenticate(self.auth, request)

    def graph_with(self, saver: BaseCheckpointSaver) -> CompiledStateGraph:
        """The graph checkpointing to `saver` (one copy per saver)."""
        if self._threaded is None or self._threaded[0] is not saver:
            self._threaded = (saver, self.graph.copy(update={"checkpointer": saver}))
        return self._threaded[1]


async def read_run_request(request: Request) -> RunRequest:
    """The request body, checked; a bad one raises HTTPException(422) saying what to send."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPException(
            422, 'the body must be a JSON object: {"input": {"messages": [...]}, "context": {}}'
        )
    unsupported = sorted(name for name, value in body.items() if name not in ACCEPTED and value)
    if unsupported:
        raise HTTPException(
            422, f"not supported by the fast route: {', '.join(unsupported)}; use {STANDARD_ROUTE}"
        )
    if body.get("assistant_id", GRAPH_ID) != GRAPH_ID:
        raise HTTPException(422, f"the fast route serves the graph {GRAPH_ID!r} only")
    modes = body.get("stream_mode") or "custom"
    if modes not in ("custom", ["custom"]):
        raise HTTPException(
            422,
            f"the fast route streams the event schema (stream_mode 'custom') only; use "
            f"{STANDARD_ROUTE} for other stream modes",
        )
    if body.get("on_disconnect", "cancel") != "cancel":
        raise HTTPException(
            422, f"the fast route always stops a run whose client leaves; use {STANDARD_ROUTE}"
        )
    graph_input, overrides = body.get("input"), body.get("context") or {}
    if not isinstance(graph_input, dict) or not isinstance(overrides, dict):
        raise HTTPException(
            422,
            '`input` must be an object like {"messages": [{"role": "user", "content": '
            '"..."}]}, and `context` an object of settings',
        )
    if SERVER_ONLY & set(overrides):
        raise HTTPException(
            422,
            f"`context` may not set {', '.join(sorted(SERVER_ONLY & set(overrides)))}: the "
            "server's environment chooses where each tier's requests (and API keys) go",
        )
    settings = {spec.name for spec in fields(Context)} - SERVER_ONLY
    if set(overrides) - settings:
        raise HTTPException(
            422,
            f"unknown `context` settings {sorted(set(overrides) - settings)}; the settings are: "
            f"{', '.join(sorted(settings))}",
        )
    try:
        context = Context(**overrides)
    except (ConfigurationError, TypeError, ValueError) as error:
        raise HTTPException(422, f"context: {error}") from None
    return RunRequest(graph_input, context, overrides, request.path_params.get("thread_id"))


async def run_messages(
    runnable: CompiledStateGraph, run: RunRequest, config: dict[str, Any], run_id: str
) -> AsyncGenerator[bytes, None]:
    """The run's SSE messages; closing this generator stops the run."""
    yield sse_message("metadata", {"run_id": run_id, "thread_id": run.thread_id})
    window_s = run.context.token_merge_window_ms / 1000
    try:
        stream = runnable.astream(run.input, config, context=run.context, stream_mode=["custom"])
        async with contextlib.aclosing(stream):
            async for event in coalesce_tokens(iter_events(stream), window_s):
                yield sse_message("custom", event)
    except Exception as error:  # the stream has begun: the error goes to the client, as an event
        yield sse_message("error", {"error": type(error).__name__, "message": str(error)})


async def stream_run(request: Request) -> Response:
    service: Service = request.app.state.service
    user, permissions = await service.caller(request)
    run = await read_run_request(request)
    run_id, metadata = str(uuid.uuid4()), {}
    filters: dict[str, Any] = {}
    if service.auth is not None:
        value = {
            "thread_id": run.thread_id,
            "assistant_id": GRAPH_ID,
            "run_id": run_id,
            "metadata": metadata,
            "kwargs": {"input": run.input, "context": run.overrides},
        }
        filters = await authorize_run(service.auth, user, permissions, value)
        metadata = value["metadata"]
    config: dict[str, Any] = {"run_id": run_id, "metadata": metadata}
    runnable = service.graph
    if run.thread_id is not None:
        saver = await service.checkpointer()
        config["configurable"] = {"thread_id": run.thread_id}
        saved = await saver.aget_tuple(config) if filters else None
        if saved is not None and not thread_matches(filters, saved.metadata):
            # As the standard routes answer for a thread the caller may not see.
            raise HTTPException(404, f"thread {run.thread_id} not found")
        runnable = service.graph_with(saver)
    return EventStreamResponse(run_messages(runnable, run, config, run_id))


async def ok(_: Request) -> Response:
    return JSONResponse({"ok": True})


async def http_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return JSONResponse({"detail": error.detail}, error.status_code, error.headers)


def create_app(agent: CompiledStateGraph = graph) -> Starlette:
    """The app serving `agent` (by default the graph langgraph.json serves)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if mounted_in_langgraph_server():
                checkpointer = server_checkpointer
            else:
                saver = await stack.enter_async_context(own_checkpointer())

                async def checkpointer() -> BaseCheckpointSaver:
                    return saver

            auth = load_auth(configured_auth_path())
            app.state.service = Service(agent, auth, checkpointer)
            freeze_static_heap()  # see expressway/heap.py: no full GC pass stalls token streams
            yield

    return Starlette(
        routes=[
            Route(f"{PREFIX}/runs/stream", stream_run, methods=["POST"]),
            Route(f"{PREFIX}/threads/{{thread_id}}/runs/stream", stream_run, methods=["POST"]),
            Route(f"{PREFIX}/ok", ok, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )


app = create_app()
