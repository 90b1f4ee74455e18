"""The graph, the CLI and the LangGraph server on the real embedded vLLM (SmolLM2-135M on CPU)."""

import asyncio
import functools
import json
import os
import subprocess
import sys
import time

import pytest

from app.embedded import served_model_names
from bench.harness import langgraph_dev
from expressway.context import Context
from expressway.events import iter_events
from expressway.models import _LOOP_MODELS, serving_models, tier_model
from expressway.openai_stream import busy_stream_options
from graphs.agent import build_graph, graph
from tools import DEFAULT_TOOLS

pytestmark = pytest.mark.integration


async def _run(compiled, question: str, **context) -> list[dict]:
    stream = compiled.astream(
        {"messages": [("user", question)]}, context=Context(**context), stream_mode=["custom"]
    )
    return [event async for event in iter_events(stream)]


def test_server_serves_both_tiers(embedded_port: int) -> None:
    names = serving_models(f"http://127.0.0.1:{embedded_port}/v1")
    assert names is not None and set(served_model_names()) <= set(names)


async def test_a_busy_process_gets_fewer_larger_chunks_from_the_real_vllm(
    embedded_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tier learns from vLLM's model list that it takes `stream_interval`; a request made
    while the process is busy gets 4 tokens per chunk, one made at rest each token alone."""
    model = tier_model(Context(), "fast")
    await asyncio.gather(*_LOOP_MODELS[asyncio.get_running_loop()].questions)
    assert model.takes_stream_interval

    async def chunks(busy: bool) -> list[str]:
        monkeypatch.setattr("expressway.openai_stream.process_busy", lambda: busy)
        options = busy_stream_options(model, 0.0, 4)
        # ignore_eos (a vLLM field): exactly max_tokens tokens, however the model would stop.
        bound = model.bind(max_tokens=32, extra_body={"ignore_eos": True}, **options)
        return [chunk.text async for chunk in bound.astream("Count to forty.") if chunk.text]

    each, grouped = await chunks(busy=False), await chunks(busy=True)
    assert len(each) >= 24
    assert 2 <= len(grouped) <= 12


async def test_graph_answers_a_tool_question_streamed(embedded_port: int) -> None:
    events = await _run(graph, "How many orders are pending, and what time is it in Tokyo?")
    types = [event["type"] for event in events]
    assert types[:2] == ["run.started", "route.decided"]
    assert "plan.task" in types and "task.finished" in types
    assert types[-1] == "run.finished"
    tokens = [event for event in events if event["type"] == "token"]
    assert len(tokens) > 3  # streamed in many chunks, not at the end in one piece
    assert "".join(event["text"] for event in tokens).strip()
    timings = events[-1]["timings"]
    assert 0 < timings["ttft"] <= timings["total"]


async def test_two_tools_run_concurrently_on_the_real_model(embedded_port: int) -> None:
    """parallel_calls mode fans out the model's calls; remote-like tool latency makes overlap
    visible (the shipped tools answer in milliseconds)."""

    def with_latency(tool):
        @functools.wraps(tool)
        def slowed(**kwargs):
            time.sleep(0.5)
            return tool(**kwargs)

        return slowed

    compiled = build_graph(tools=[with_latency(tool) for tool in DEFAULT_TOOLS])
    events = await _run(
        compiled, "What time is it in Tokyo and in Berlin?", execution_mode="parallel_calls"
    )
    started = [e["t"] for e in events if e["type"] == "task.started"]
    finished = [e["t"] for e in events if e["type"] == "task.finished"]
    assert len(started) >= 2, f"the model planned {len(started)} task(s): {events}"
    assert max(started) < min(finished)


async def test_a_question_the_model_handles_badly_still_completes(embedded_port: int) -> None:
    question = "Объясни, пожалуйста, 量子力学 " * 40
    events = await _run(graph, question, model_timeout_s=120)
    assert events[-1]["type"] == "run.finished"


async def test_naive_baseline_gets_forced_tool_calls_and_an_answer(embedded_port: int) -> None:
    # The e2e benchmark's baseline on the real server: tool_choice "required" (real tools only
    # until min_tool_calls) and the named final_answer turn need the profile's tool-calling flags.
    # The benchmark's model settings: an uncapped final_answer turn of the 135M model once ran
    # 720 s to the context limit.
    from bench.e2e import naive_model
    from bench.naive_agent import run_naive_agent

    run = await run_naive_agent(
        "What time is it in Tokyo?",
        naive_model(Context().embedded_base_url),
        DEFAULT_TOOLS,
        max_turns=2,
        tool_timeout_s=10,
        min_tool_calls=1,
    )
    assert run.turns == 2 and run.answer.strip()
    assert [call["tool"] in {t.__name__ for t in DEFAULT_TOOLS} for call in run.tool_calls] == [
        True
    ]


def test_cli_ask_streams_json_events(embedded_port: int) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "app.cli", "ask", "--json", "What is 17 * 23?"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "EXPRESSWAY_EMBEDDED_PORT": str(embedded_port)},
    )
    assert completed.returncode == 0, completed.stderr
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.finished"
    assert "reusing the embedded vLLM" in completed.stderr


def test_langgraph_dev_streams_a_run_over_http(embedded_port: int, tmp_path) -> None:
    from langgraph_sdk import get_sync_client

    env = {**os.environ, "EXPRESSWAY_EMBEDDED_PORT": str(embedded_port)}
    with langgraph_dev(env, tmp_path / "langgraph.log") as url:
        client = get_sync_client(url=url)
        thread = client.threads.create()
        parts = list(
            client.runs.stream(
                thread["thread_id"],
                "agent",
                input={"messages": [{"role": "user", "content": "What time is it in Tokyo?"}]},
                stream_mode=["custom", "values"],
            )
        )
        events = [p.data for p in parts if p.event == "custom"]
        assert events[0]["type"] == "run.started", parts
        assert events[-1]["type"] == "run.finished"
        final = [p.data for p in parts if p.event == "values"][-1]
        answer = "".join(e["text"] for e in events if e["type"] == "token")
        assert final["messages"][-1]["content"] == answer
        state = client.threads.get_state(thread["thread_id"])
        assert len(state["values"]["messages"]) == 2


def test_the_fast_route_streams_a_threaded_run_from_the_real_model(
    embedded_port: int, tmp_path
) -> None:
    from langgraph_sdk import get_sync_client

    env = {**os.environ, "EXPRESSWAY_EMBEDDED_PORT": str(embedded_port)}
    with langgraph_dev(env, tmp_path / "langgraph.log") as url:
        fast = get_sync_client(url=f"{url}/fast")
        for question in ("What time is it in Tokyo?", "And in Toronto?"):
            parts = list(
                fast.runs.stream(
                    "embedded-thread",
                    "agent",
                    input={"messages": [{"role": "user", "content": question}]},
                    stream_mode="custom",
                )
            )
            assert parts[0].event == "metadata", parts
            assert parts[0].data["thread_id"] == "embedded-thread"
            events = [p.data for p in parts if p.event == "custom"]
            assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.finished"
            assert any(e["type"] == "token" for e in events)
