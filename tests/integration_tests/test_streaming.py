"""Streaming over real HTTP against the simulated backend: cancellation, and the LangGraph server's
stream matching the in-process one."""

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable

import pytest

from bench.harness import context_at, langgraph_dev, tiers_at
from bench.simulator import (
    Fault,
    FixedResponder,
    LatencyProfile,
    RunningSimulator,
    SimulatedBackend,
)
from expressway.events import iter_events
from graphs.agent import build_graph, graph
from nodes.planner import encode_plan
from routers.table import load_routing_table

PLAN = encode_plan(
    [("current_time", {"timezone": "Tokyo"}), ("calculator", {"expression": "17 * 23"})]
)


class PlanThenAnswer(FixedResponder):
    def __call__(self, request: dict) -> str:
        return PLAN if "response_format" in request else super().__call__(request)


@pytest.mark.reliability("backends")
async def test_consumer_disconnect_cancels_the_backend_stream() -> None:
    backend = SimulatedBackend(
        responder=FixedResponder(answer_tokens=500),
        profile=LatencyProfile(ttft_s=0.05, tokens_per_s=50),
    )
    with RunningSimulator(backend) as simulator:
        stream = graph.astream(
            {"messages": [("user", "Summarize the history of tea in a long essay.")]},
            context=context_at(simulator.base_url),
            stream_mode=["custom"],
        )
        async for _, event in stream:
            if event["type"] == "token":
                break
        await stream.aclose()
        for _ in range(100):
            if backend.stats.cancelled:
                break
            await asyncio.sleep(0.05)
        assert backend.stats.cancelled == 1
        assert backend.stats.completed == 0


@pytest.mark.reliability("backends")
async def test_slow_consumer_gets_every_event_and_the_run_stays_bounded() -> None:
    # A backend that ignores max_tokens and talks fast, read by a consumer that takes 10 ms per
    # event: the run still ends at the route's max_tokens and frees the backend while the consumer
    # is behind, and the consumer loses nothing.
    backend = SimulatedBackend(
        responder=FixedResponder(answer_tokens=1000),
        profile=LatencyProfile(ttft_s=0.01, tokens_per_s=400),
        faults=[Fault(ignore_max_tokens=True)],
    )
    question = "Classify this review as positive or negative: the tent leaked on the first night."
    with RunningSimulator(backend) as simulator:
        events, backend_done_at = [], None
        async for event in iter_events(
            graph.astream(
                {"messages": [("user", question)]},
                # Window 0: a token per event, so the consumer is behind the backend (a busy
                # process would read the stream once per window; tests/unit_tests cover that).
                context=context_at(simulator.base_url, token_merge_window_ms=0),
                stream_mode=["custom"],
            )
        ):
            events.append(event)
            if backend_done_at is None and backend.stats.cancelled + backend.stats.completed:
                backend_done_at = len(events)
            await asyncio.sleep(0.01)
    route = next(event for event in events if event["type"] == "route.decided")
    tokens = [event for event in events if event["type"] == "token"]
    cap = load_routing_table().tasks[route["task"]].max_tokens
    # Tokens the reader found waiting arrive joined in one event (`tokens` counts them).
    assert sum(event.get("tokens", 1) for event in tokens) == cap < 1000
    assert events[-1]["type"] == "run.finished"
    assert backend.stats.cancelled == 1  # the stream was closed at the cap, not read to its end
    assert backend_done_at is not None and backend_done_at < len(tokens) // 2


def slow_lookup(cancelled: asyncio.Event | threading.Event) -> Callable[[str], Awaitable[str]]:
    """A tool that waits a minute, and sets `cancelled` if it is cancelled first."""

    async def slow_lookup(key: str) -> str:
        """Looks a key up in a slow remote store."""
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return key

    return slow_lookup


class PlanSlowLookup(FixedResponder):
    """A plan of one slow_lookup task, then a one-word answer."""

    def __call__(self, request: dict) -> str:
        plan = encode_plan([("slow_lookup", {"key": "a"})])
        return plan if "response_format" in request else "x"


@pytest.mark.reliability("tools")
async def test_consumer_disconnect_cancels_running_tools() -> None:
    cancelled = asyncio.Event()
    backend = SimulatedBackend(responder=PlanSlowLookup())
    with RunningSimulator(backend) as simulator:
        agent = build_graph(tools=[slow_lookup(cancelled)])
        stream = agent.astream(
            {"messages": [("user", "What is the status of order a?")]},
            context=context_at(simulator.base_url),
            stream_mode=["custom"],
        )
        async for _, event in stream:
            if event["type"] == "task.started":
                break
        await stream.aclose()
        await asyncio.wait_for(cancelled.wait(), timeout=5)


async def test_http_stream_matches_the_in_process_stream(tmp_path) -> None:
    from langgraph_sdk import get_client

    backend = SimulatedBackend(
        responder=PlanThenAnswer(answer_tokens=30),
        profile=LatencyProfile(ttft_s=0.01, tokens_per_s=500),
    )
    question = "What time is it in Tokyo, and what is 17 * 23?"
    with RunningSimulator(backend) as simulator:
        local = [
            event
            async for event in iter_events(
                graph.astream(
                    {"messages": [("user", question)]},
                    # Other tests in this process may have cached this plan's shape.
                    context=context_at(simulator.base_url, force_tier="fast", plan_cache="off"),
                    stream_mode=["custom"],
                )
            )
        ]
        env = {
            **os.environ,
            **tiers_at(simulator.base_url),
            "EXPRESSWAY_FORCE_TIER": "fast",
            "EXPRESSWAY_PLAN_CACHE": "off",
        }
        with langgraph_dev(env, tmp_path / "langgraph.log") as url:
            client = get_client(url=url)
            remote = [
                part.data
                async for part in client.runs.stream(
                    None,
                    "agent",
                    input={"messages": [{"role": "user", "content": question}]},
                    stream_mode="custom",
                )
                if part.event == "custom"
            ]

    def shape(events: list[dict]) -> tuple:
        ordered = [e["type"] for e in events if not e["type"].startswith("task.")]
        tasks = sorted(
            (e["type"], e["task_id"], e.get("status", ""))
            for e in events
            if e["type"].startswith("task.")
        )
        tokens = "".join(e["text"] for e in events if e["type"] == "token")
        return ordered, tasks, tokens

    assert shape(remote) == shape(local)
    assert len([e for e in local if e["type"] == "task.finished"]) == 2


async def test_stream_benchmark_reports_every_relay_it_names(tmp_path) -> None:
    from bench import stream

    report = await stream.run(
        runs=1, answer_tokens=20, tokens_per_s=500, ttft_s=0.01, workdir=tmp_path
    )
    prefixes = (
        "",
        "http_floor_",
        "langgraph_floor_",
        "openai_client_",
        "server_",
        "standard_server_",
    )
    for prefix in prefixes:
        assert report[f"{prefix}relay_p99_ms"] >= report[f"{prefix}relay_p50_ms"] > 0
    for key in ("first_event_ms", "server_first_event_ms", "standard_server_first_event_ms"):
        assert report[key] > 0
    # The backend stamps a chunk once its own write returned, in another process: a reader that
    # is quicker than the backend's resume sees the first token a few microseconds "early".
    assert -1 < report["first_token_after_backend_ms"] < 1000
    assert (
        report["tokens_measured"]
        == report["server_tokens_measured"]
        == report["standard_server_tokens_measured"]
        > 0
    )


async def test_load_benchmark_completes_every_run_with_its_whole_answer(tmp_path) -> None:
    from bench import load

    report = await load.run(concurrency=4, workdir=tmp_path, routes=("in_process", "fast"))
    for route in ("in_process", "fast"):
        figures = report["routes"][route]
        assert (figures["completed"], figures["failed"]) == (4, 0), figures.get("errors")
        assert figures["server_cpu_ms_per_run"] > 0
