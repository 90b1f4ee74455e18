"""Streaming benchmark: how much the graph, and the LangGraph server, add to each token.

A simulated backend (its own process, so it does not share the GIL with the graph) records the
moment each answer chunk's bytes were on the socket; the consumer records the moment each `token`
event arrived. The clock is the system's monotonic clock, shared by every process on the
machine. Measured:

- relay per token (arrival - sent), p50/p99, in-process (`graph.astream`), and over SSE through
  `langgraph dev` (`langgraph-sdk` client): its fast route (app/http_app.py, mounted by
  langgraph.json; `server_*` keys) and its standard `/runs/stream` route (`standard_server_*`),
  and the OpenAI client alone as the floor
  (`openai_client_relay_*`), and under that the bytes parsed with httpx + json alone
  (`http_floor_relay_*`: the machine's process wake-up and socket costs) and the same inside one
  LangGraph node writing to the custom stream (`langgraph_floor_relay_*`: the least any relay
  through LangGraph's stream can cost here);
- time from the request to the first event (`run.started`);
- time from the backend's first answer chunk to the consumer's first token.
"""

import asyncio
import json
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypedDict

import httpx
from langgraph_sdk import get_client

from bench.harness import context_at, langgraph_dev, percentile, simulator_process, tiers_at
from expressway.events import iter_events
from expressway.heap import freeze_static_heap
from graphs.agent import graph

# A request the routing table answers without tools: one model call, the answer.
QUESTION = "Summarize in one paragraph why streaming makes agents feel faster."


async def run_in_process(base_url: str) -> AsyncIterator[tuple[dict[str, Any], float]]:
    context = context_at(base_url)
    stream = graph.astream(
        {"messages": [("user", QUESTION)]}, context=context, stream_mode=["custom"]
    )
    async for event in iter_events(stream):
        yield event, time.monotonic()


async def sse_tokens(base_url: str) -> AsyncIterator[str]:
    """The answer's text deltas, read with httpx and parsed with json: no client library."""
    body = {"model": "fast", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream("POST", f"{base_url}/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line.removeprefix("data: "))["choices"][0]["delta"]
                if delta.get("content"):
                    yield delta["content"]


async def run_raw_http(base_url: str) -> AsyncIterator[tuple[dict[str, Any], float]]:
    """The machine's floor: process wake-up, socket and SSE parsing."""
    async for text in sse_tokens(base_url):
        yield {"type": "token", "text": text}, time.monotonic()


async def run_langgraph_floor(base_url: str) -> AsyncIterator[tuple[dict[str, Any], float]]:
    """The floor of any relay through LangGraph's own stream: one node that reads the SSE with
    httpx and writes each delta to the custom stream (no LangChain model, no routing)."""
    from langgraph.config import get_stream_writer
    from langgraph.graph import END, START, StateGraph

    class RelayState(TypedDict):
        base_url: str

    async def relay(state: RelayState) -> dict[str, Any]:
        write = get_stream_writer()
        async for text in sse_tokens(state["base_url"]):
            write({"type": "token", "text": text})
        return {}

    builder = StateGraph(RelayState)
    builder.add_node("relay", relay)
    builder.add_edge(START, "relay")
    builder.add_edge("relay", END)
    async for event in builder.compile().astream({"base_url": base_url}, stream_mode="custom"):
        yield event, time.monotonic()


async def run_openai_client(base_url: str) -> AsyncIterator[tuple[dict[str, Any], float]]:
    """The floor under any LangChain/LangGraph relay: the OpenAI client alone, no graph."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="none")
    stream = await client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            yield {"type": "token", "text": chunk.choices[0].delta.content}, time.monotonic()


async def run_over_http(client: Any) -> AsyncIterator[tuple[dict[str, Any], float]]:
    """A run through a langgraph-sdk client of the server's standard route, or of its fast route
    (the client's URL ends in /fast): the same call either way. The client is made once, before
    the runs: building one (its TLS context) costs tens of milliseconds that are not the
    server's."""
    async for part in client.runs.stream(
        None,
        "agent",
        input={"messages": [{"role": "user", "content": QUESTION}]},
        stream_mode="custom",
    ):
        if part.event == "custom" and isinstance(part.data, dict):
            yield part.data, time.monotonic()


async def measure(
    consumer: AsyncIterator[tuple[dict[str, Any], float]], sim_url: str
) -> dict[str, float]:
    """One run: relay of every token, first event and first token latency."""
    async with httpx.AsyncClient() as http:
        seen = len((await http.get(f"{sim_url}/stats")).json()["chunks"])
        requested = time.monotonic()
        arrivals = [(event, arrived) async for event, arrived in consumer]
        sent = (await http.get(f"{sim_url}/stats")).json()["chunks"][seen:]
    # A token event that merged n waiting chunks (the fast route's coalescing) relays all n.
    chunk_arrivals = [
        arrived
        for event, arrived in arrivals
        if event["type"] == "token"
        for _ in range(event.get("tokens", 1))
    ]
    text = "".join(event["text"] for event, _ in arrivals if event["type"] == "token")
    if len(chunk_arrivals) != len(sent) or text != "".join(chunk["text"] for chunk in sent):
        raise RuntimeError("token events do not match the chunks the backend sent")
    relays = [
        (arrived - chunk["sent_at"]) * 1000
        for arrived, chunk in zip(chunk_arrivals, sent, strict=True)
    ]
    return {
        "relays_ms": relays,
        "first_event_ms": (arrivals[0][1] - requested) * 1000,
        "first_token_after_backend_ms": relays[0],
        "ttft_ms": (chunk_arrivals[0] - requested) * 1000,
    }


async def measure_runs(
    consumer: Callable[[], AsyncIterator[tuple[dict[str, Any], float]]], sim_url: str, runs: int
) -> list[dict[str, Any]]:
    """One warm-up run (connections, imports, caches), then `runs` measured runs."""
    await measure(consumer(), sim_url)
    return [await measure(consumer(), sim_url) for _ in range(runs)]


def summarize(runs: list[dict[str, Any]], prefix: str) -> dict[str, float]:
    relays = [relay for run in runs for relay in run["relays_ms"]]
    return {
        f"{prefix}relay_p50_ms": round(percentile(relays, 50), 3),
        f"{prefix}relay_p99_ms": round(percentile(relays, 99), 3),
        f"{prefix}first_event_ms": round(statistics.median(r["first_event_ms"] for r in runs), 3),
        f"{prefix}first_token_after_backend_ms": round(
            statistics.median(r["first_token_after_backend_ms"] for r in runs), 3
        ),
        f"{prefix}ttft_ms": round(statistics.median(r["ttft_ms"] for r in runs), 3),
        f"{prefix}tokens_measured": len(relays),
    }


async def run(
    runs: int, answer_tokens: int, tokens_per_s: float, ttft_s: float, workdir: Path
) -> dict[str, Any]:
    # This process is set up as `expressway ask` sets up its own (see expressway/heap.py).
    freeze_static_heap()
    options = ["--ttft", str(ttft_s), "--tokens-per-s", str(tokens_per_s)]
    options += ["--answer-tokens", str(answer_tokens)]
    with simulator_process(workdir / "simulator.log", *options) as sim_url:
        raw_http = await measure_runs(lambda: run_raw_http(f"{sim_url}/v1"), sim_url, runs)
        graph_floor = await measure_runs(
            lambda: run_langgraph_floor(f"{sim_url}/v1"), sim_url, runs
        )
        client_only = await measure_runs(lambda: run_openai_client(f"{sim_url}/v1"), sim_url, runs)
        in_process = await measure_runs(lambda: run_in_process(f"{sim_url}/v1"), sim_url, runs)
        server_env = {**os.environ, **tiers_at(f"{sim_url}/v1")}
        with langgraph_dev(server_env, workdir / "langgraph.log") as server_url:
            fast_client, standard_client = (
                get_client(url=f"{server_url}/fast"),
                get_client(url=server_url),
            )
            fast = await measure_runs(lambda: run_over_http(fast_client), sim_url, runs)
            standard = await measure_runs(lambda: run_over_http(standard_client), sim_url, runs)
    return {
        "benchmark": "stream",
        "schema_version": 1,
        "runs": runs,
        "answer_tokens": answer_tokens,
        "backend_tokens_per_s": tokens_per_s,
        "backend_ttft_s": ttft_s,
        **summarize(in_process, ""),
        **{
            key: value
            for runs_of, prefix in (
                (raw_http, "http_floor_"),
                (graph_floor, "langgraph_floor_"),
                (client_only, "openai_client_"),
            )
            for key, value in summarize(runs_of, prefix).items()
            if "relay" in key
        },
        **summarize(fast, "server_"),
        **summarize(standard, "standard_server_"),
    }


def main(argv: list[str]) -> dict[str, Any]:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="expressway bench stream")
    parser.add_argument(
        "--runs", type=int, default=5, help="measured runs per consumer (after one warm-up)"
    )
    parser.add_argument("--answer-tokens", type=int, default=200)
    parser.add_argument("--tokens-per-s", type=float, default=60.0)
    parser.add_argument("--ttft", type=float, default=0.3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="expressway-bench-") as workdir:
        return asyncio.run(
            run(args.runs, args.answer_tokens, args.tokens_per_s, args.ttft, Path(workdir))
        )
