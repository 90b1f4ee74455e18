"""The HTTP app's fast route over real HTTP (app/http_app.py), against the simulated backend:
mounted in `langgraph dev` beside the standard route, and on its own under uvicorn."""

import asyncio
import contextlib
import json
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from app.http_app import create_app
from bench.harness import REPO_ROOT, langgraph_dev, serve_in_thread, tiers_at, uvicorn_server
from bench.simulator import (
    FixedResponder,
    LatencyProfile,
    RunningSimulator,
    SimulatedBackend,
)
from graphs.agent import build_graph
from nodes.planner import encode_plan
from tests.integration_tests.test_streaming import PlanSlowLookup, PlanThenAnswer, slow_lookup

QUESTION = "What time is it in Tokyo, and what is 17 * 23?"
LONG_ANSWER_QUESTION = "Summarize the history of tea in a long essay."
AUTH_FILE = Path(__file__).with_name("bearer_auth.py")


def fast_request(question: str, **context: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": question}]
    return {"input": {"messages": messages}, "context": context}


def tiers_in_this_process(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    """Point both tiers at `base_url` for an app served on a thread of this process (tier URLs
    come from the server's environment, never from a request)."""
    for name, value in tiers_at(base_url).items():
        monkeypatch.setenv(name, value)


async def sse_messages(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) of each SSE message of a response, as they arrive."""
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))


async def fast_run(url: str, body: dict[str, Any], thread: str | None = None, **headers: str):
    path = f"/fast/threads/{thread}/runs/stream" if thread else "/fast/runs/stream"
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("POST", path, json=body, headers=headers) as response,
    ):
        if response.status_code != 200:
            await response.aread()
            return response.status_code, response.json()
        return 200, [message async for message in sse_messages(response)]


async def leave_after(url: str, body: dict[str, Any], event_type: str) -> None:
    """Start a fast-route run and disconnect once an event of `event_type` arrived."""
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("POST", "/fast/runs/stream", json=body) as response,
    ):
        async for event, data in sse_messages(response):
            if event == "custom" and data["type"] == event_type:
                return


def events_of(messages: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [data for event, data in messages if event == "custom"]


def shape(events: list[dict]) -> tuple:
    """Events in order, except that parallel tasks may start and finish in any order."""
    ordered = [(e["type"], e.get("text")) for e in events if not e["type"].startswith("task.")]
    tasks = sorted(
        (e["type"], e["task_id"], e.get("status", ""))
        for e in events
        if e["type"].startswith("task.")
    )
    return ordered, tasks


async def test_both_routes_serve_the_same_events(tmp_path: Path) -> None:
    from langgraph_sdk import get_client

    backend = SimulatedBackend(
        responder=PlanThenAnswer(answer_tokens=30),
        profile=LatencyProfile(ttft_s=0.01, tokens_per_s=500),
    )
    with RunningSimulator(backend) as simulator:
        # The same question three times: a plan-cache hit would add speculation events
        # to the later runs, and this test compares the routes, not the cache.
        env = {
            **os.environ,
            **tiers_at(simulator.base_url),
            "EXPRESSWAY_FORCE_TIER": "fast",
            "EXPRESSWAY_PLAN_CACHE": "off",
        }
        with langgraph_dev(env, tmp_path / "langgraph.log") as url:

            async def run_through(prefix: str, **context: Any) -> list[tuple[str, Any]]:
                client = get_client(url=f"{url}{prefix}")
                stream = client.runs.stream(
                    None,
                    "agent",
                    input={"messages": [{"role": "user", "content": QUESTION}]},
                    context=context or None,
                    stream_mode="custom",
                )
                return [(part.event, part.data) async for part in stream]

            # A zero window: one event per token on both (a busy server would otherwise merge).
            standard = await run_through("", token_merge_window_ms=0)
            # The same SDK call, its URL ending in /fast.
            fast = await run_through("/fast", token_merge_window_ms=0)
            merged = await run_through("/fast")

    assert standard[0][0] == fast[0][0] == "metadata"
    assert shape(events_of(fast)) == shape(events_of(standard))
    assert len([e for e in events_of(fast) if e["type"] == "task.finished"]) == 2
    assert [e["type"] for e in events_of(fast)][-1] == "run.finished"

    def text(events: list[dict]) -> str:
        return "".join(e["text"] for e in events if e["type"] == "token")

    assert text(events_of(merged)) == text(events_of(standard)) != ""


@contextlib.contextmanager
def fast_route_at(
    where: str, backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The URL of a server with the fast route: the app alone under uvicorn, or mounted in
    `langgraph dev` by langgraph.json."""
    if where == "uvicorn":
        tiers_in_this_process(monkeypatch, backend_url)
        with serve_in_thread(create_app()) as url:
            yield url
    else:
        env = {**os.environ, **tiers_at(backend_url)}
        with langgraph_dev(env, tmp_path / "langgraph.log") as url:
            yield url


@pytest.mark.reliability("backends")
@pytest.mark.parametrize("where", ["uvicorn", "langgraph dev"])
async def test_client_disconnect_closes_the_model_stream(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = SimulatedBackend(
        responder=FixedResponder(answer_tokens=500),
        profile=LatencyProfile(ttft_s=0.05, tokens_per_s=50),
    )
    with (
        RunningSimulator(backend) as simulator,
        fast_route_at(where, simulator.base_url, tmp_path, monkeypatch) as url,
    ):
        await leave_after(url, fast_request(LONG_ANSWER_QUESTION), "token")
        for _ in range(200):
            if backend.stats.cancelled:
                break
            await asyncio.sleep(0.05)
    assert backend.stats.cancelled == 1
    assert backend.stats.completed == 0


@pytest.mark.reliability("tools")
async def test_client_disconnect_cancels_running_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled = threading.Event()  # the app runs on uvicorn's own thread and event loop
    backend = SimulatedBackend(responder=PlanSlowLookup())
    agent = build_graph(tools=[slow_lookup(cancelled)])
    with RunningSimulator(backend) as simulator, serve_in_thread(create_app(agent)) as url:
        tiers_in_this_process(monkeypatch, simulator.base_url)
        body = fast_request("What is the status of order a?")
        await leave_after(url, body, "task.started")
        await asyncio.to_thread(cancelled.wait, 5)
    assert cancelled.is_set()


async def test_a_slow_client_gets_every_token_in_order_in_fewer_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tokens of ~3 KB each (runs of spaces, one token apiece for the simulator), read by a client
    # with small socket buffers that takes 20 ms per message: the server's writes back up after a
    # few of them, as for a client on a slow network.
    answer = ("x" + " " * 3000) * 100
    backend = SimulatedBackend(
        responder=lambda request: encode_plan([]) if "response_format" in request else answer,
        profile=LatencyProfile(ttft_s=0.01, tokens_per_s=1000),
    )
    small_buffers = httpx.AsyncHTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    )
    with (
        RunningSimulator(backend) as simulator,
        serve_in_thread(create_app(), send_buffer_bytes=4096) as url,
    ):
        tiers_in_this_process(monkeypatch, simulator.base_url)
        body = fast_request(LONG_ANSWER_QUESTION, force_tier="fast")
        tokens = []
        async with (
            httpx.AsyncClient(base_url=url, timeout=60, transport=small_buffers) as client,
            client.stream("POST", "/fast/runs/stream", json=body) as response,
        ):
            async for event, data in sse_messages(response):
                if event == "custom" and data["type"] == "token":
                    tokens.append(data)
                    await asyncio.sleep(0.02)
        sent = [chunk.text for chunk in backend.stats.chunks]
    assert "".join(token["text"] for token in tokens) == "".join(sent)
    assert len(tokens) < len(sent)
    assert sum(token.get("tokens", 1) for token in tokens) == len(sent)


@contextlib.contextmanager
def fast_route_with_auth(
    where: str, backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A server whose langgraph.json names tests/integration_tests/bearer_auth.py's Auth."""
    if where == "uvicorn":
        # As LangGraph's server sets it from langgraph.json's "auth"; the app reads it too.
        monkeypatch.setenv("LANGGRAPH_AUTH", json.dumps({"path": f"{AUTH_FILE}:auth"}))
        tiers_in_this_process(monkeypatch, backend_url)
        with serve_in_thread(create_app()) as url:
            yield url
        return
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(REPO_ROOT)],
                "graphs": {"agent": f"{REPO_ROOT / 'graphs' / 'agent.py'}:graph"},
                "http": {
                    "app": f"{REPO_ROOT / 'app' / 'http_app.py'}:app",
                    "enable_custom_route_auth": True,
                },
                "auth": {"path": f"{AUTH_FILE}:auth"},
            }
        )
    )
    env = {**os.environ, **tiers_at(backend_url)}
    with langgraph_dev(env, tmp_path / "langgraph.log", config=config) as url:
        yield url


@pytest.mark.reliability("security")
@pytest.mark.parametrize("where", ["uvicorn", "langgraph dev"])
async def test_fast_route_auth(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = SimulatedBackend(responder=PlanThenAnswer(answer_tokens=5))
    body = fast_request(QUESTION)
    with (
        RunningSimulator(backend) as simulator,
        fast_route_with_auth(where, simulator.base_url, tmp_path, monkeypatch) as url,
    ):
        refused, detail = await fast_run(url, body)
        assert refused == 401 and "Bearer" in detail["detail"]
        assert (await fast_run(url, body, Authorization="Bearer wrong"))[0] == 401
        assert backend.stats.requests == 0
        status, messages = await fast_run(url, body, "ana-1", Authorization="Bearer token-ana")
        assert status == 200 and events_of(messages)[-1]["type"] == "run.finished"
        # Ana's thread is Ana's: Ben cannot continue it, Ana can.
        assert (await fast_run(url, body, "ana-1", Authorization="Bearer token-ben"))[0] == 404
        status, messages = await fast_run(url, body, "ana-1", Authorization="Bearer token-ana")
        assert status == 200 and events_of(messages)[-1]["type"] == "run.finished"
        if where == "langgraph dev":  # the standard route takes the same hook
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                standard = await client.post("/runs/wait", json={"assistant_id": "agent", **body})
            assert standard.status_code == 401


async def test_uvicorn_workers_keep_threads_in_postgres(postgres_uri: str, tmp_path: Path) -> None:
    backend = SimulatedBackend(responder=PlanThenAnswer(answer_tokens=5))
    with RunningSimulator(backend) as simulator:
        env = {**os.environ, **tiers_at(simulator.base_url), "DATABASE_URI": postgres_uri}
        with uvicorn_server(env, tmp_path / "uvicorn.log", workers=2) as server:
            for _ in range(4):  # requests spread over both workers
                status, messages = await fast_run(
                    server.url, fast_request(QUESTION), "shared-thread"
                )
                assert status == 200 and events_of(messages)[-1]["type"] == "run.finished"
    async with AsyncPostgresSaver.from_conn_string(postgres_uri) as saver:
        saved = await saver.aget_tuple({"configurable": {"thread_id": "shared-thread"}})
    assert saved is not None
    messages = saved.checkpoint["channel_values"]["messages"]
    assert [message.type for message in messages] == ["human", "ai"] * 4


async def test_bad_requests_say_what_to_send() -> None:
    with serve_in_thread(create_app()) as url:
        assert (await fast_run(url, {"input": "hello"}))[1]["detail"].startswith("`input` must be")
        status, detail = await fast_run(url, {"input": {}, "context": {"max_plan_tasks": 0}})
        assert status == 422 and "EXPRESSWAY_MAX_PLAN_TASKS" in detail["detail"]
        status, detail = await fast_run(url, {"input": {}, "context": {"warp": 9}})
        assert status == 422 and "token_merge_window_ms" in detail["detail"]
        status, detail = await fast_run(url, {"input": {}, "stream_mode": "values"})
        assert status == 422 and "standard route" in detail["detail"]
        status, detail = await fast_run(url, {"input": {}, "command": {"resume": 1}})
        assert status == 422 and "command" in detail["detail"]
        # Where a tier's requests (and its API key) go is the server's choice, not a caller's.
        evil = {"input": {}, "context": {"fast_base_url": "http://attacker.example/v1"}}
        status, detail = await fast_run(url, evil)
        assert status == 422 and "fast_base_url" in detail["detail"]
