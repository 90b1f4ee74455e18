"""Load test (loopback only): N concurrent runs through each HTTP route against the simulated
backend in its own process. The standard route is LangGraph's `/runs/stream` on `langgraph dev`;
the fast route is the app in app/http_app.py (`/fast/runs/stream`), mounted in the same kind of
server (or, with `--fast-server uvicorn`, under plain uvicorn). Each route gets a fresh server.
`in_process` runs the same graph in this process with no HTTP at all: the floor of any route.

Every run is one question with a 3-task plan and a 200-token answer. Per route: lost and failed
runs (a run whose answer text arrived incomplete counts as failed), end-to-end and
time-to-first-token percentiles, SSE events per run, the server's memory (RSS) before and after,
and its CPU time (user + system, from /proc, worker processes included) per completed run.
Bounded: N runs per route, one each."""

import asyncio
import itertools
import os
import resource
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import httpx
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from bench.harness import (
    ServerProcess,
    context_at,
    langgraph_server,
    percentile,
    process_tree,
    simulator_process,
    tiers_at,
    uvicorn_server,
)
from bench.simulator import TOKEN
from bench.workload import QUESTIONS
from expressway.events import iter_events
from expressway.heap import freeze_static_heap
from graphs.agent import graph

# Three tasks: two stock lookups, then a calculator over both results.
LOAD_QUESTION = QUESTIONS[7]
ANSWER_TOKENS = 200
ROUTES = ("standard", "fast", "in_process")


def _answer_of(tokens: int) -> str:
    """A plausible answer exactly `tokens` simulator tokens long: the workload's answers one after
    another (one sentence repeated would be cut by the answer's loop guard)."""
    text = " ".join(question.answer for question in QUESTIONS)
    while len(TOKEN.findall(text)) < tokens:
        text += " " + text
    return "".join(TOKEN.findall(text)[:tokens])


LOAD_ANSWER = _answer_of(ANSWER_TOKENS)


def load_reply(request: dict[str, Any]) -> str:
    """The load run's model (`bench.simulator --responder bench.load:load_reply`): the question's
    3-task plan, then the 200-token answer."""
    return LOAD_QUESTION.plan_json() if "response_format" in request else LOAD_ANSWER


async def one_run(parts: AsyncIterator[Any]) -> dict[str, Any]:
    """Read one run's SSE stream; it is complete when `run.finished` arrived and the token events
    carry the whole answer, in order."""
    started = time.monotonic()
    first_token, finished, events, text = None, False, 0, []
    try:
        async for part in parts:
            events += 1
            if part.event == "custom" and isinstance(part.data, dict):
                if part.data.get("type") == "token":
                    first_token = first_token or time.monotonic() - started
                    text.append(part.data["text"])
                finished = finished or part.data.get("type") == "run.finished"
    except Exception as error:  # a failed run is counted, not raised
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:200]}
    if finished and "".join(text) != LOAD_ANSWER:
        return {"ok": False, "error": "the answer's text arrived incomplete or out of order"}
    return {
        "ok": finished,
        "e2e_s": time.monotonic() - started,
        "ttft_s": first_token,
        "events": events,
    }


_QUESTIONS_ASKED = itertools.count(1)


def distinct_question() -> str:
    """The load question, made distinct per run (as real traffic is): no run reuses another's
    routing embedding or plan template, so each pays for its own."""
    return f"{LOAD_QUESTION.text} (request {next(_QUESTIONS_ASKED)})"


def concurrent_client(url: str, concurrency: int) -> LangGraphClient:
    """A LangGraph SDK client that keeps `concurrency` streams open at once. `get_client` uses
    httpx's default pool of 100 connections, which would run the 101st run only after one of the
    first 100 ended: a queue in the benchmark's client, not in the server."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(retries=5, limits=limits)
    http = httpx.AsyncClient(base_url=url, transport=transport, timeout=httpx.Timeout(300))
    return LangGraphClient(http)


def stream_run(client: Any) -> AsyncIterator[Any]:
    """One stateless run through `client` (the standard API's URL, or the fast route's prefix:
    the fast route takes the same request)."""
    return client.runs.stream(
        None,
        "agent",
        input={"messages": [{"role": "user", "content": distinct_question()}]},
        stream_mode="custom",
    )


class Meter(Protocol):
    def cpu_s(self) -> float: ...
    def rss_mb(self) -> float: ...


class ThisProcess:
    """The benchmark's own process, for the in-process runs (the simulator is a child process,
    so only this process's own usage counts)."""

    def cpu_s(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def rss_mb(self) -> float:
        return ServerProcess("", os.getpid()).rss_mb() - sum(
            ServerProcess("", child).rss_mb() for child in process_tree(os.getpid())[1:]
        )


async def in_process_run(base_url: str) -> AsyncIterator[StreamPart]:
    """One run of the graph in this process, its events as the SSE client sees them."""
    stream = graph.astream(
        {"messages": [("user", distinct_question())]},
        context=context_at(base_url),
        stream_mode=["custom"],
    )
    async for event in iter_events(stream):
        yield StreamPart("custom", event)


async def measure_route(
    meter: Meter, start_run: Callable[[], AsyncIterator[Any]], concurrency: int
) -> dict[str, Any]:
    await one_run(start_run())  # warm-up: imports, graph load, connections
    memory_before, cpu_before = meter.rss_mb(), meter.cpu_s()
    started = time.monotonic()
    results = await asyncio.gather(*(one_run(start_run()) for _ in range(concurrency)))
    wall = time.monotonic() - started
    cpu_s = meter.cpu_s() - cpu_before
    memory_after = meter.rss_mb()
    ok = [r for r in results if r["ok"]]
    e2e = [r["e2e_s"] for r in ok]
    ttft = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]

    def rounded(value: float | None, digits: int = 3) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r["error"] for r in results if not r["ok"] and "error" in r})[:5],
        "wall_s": round(wall, 3),
        "e2e_p50_s": rounded(statistics.median(e2e) if e2e else None),
        "e2e_p99_s": rounded(percentile(e2e, 99) if e2e else None),
        "ttft_p50_s": rounded(statistics.median(ttft) if ttft else None),
        "ttft_p99_s": rounded(percentile(ttft, 99) if ttft else None),
        "events_per_run": rounded(statistics.mean(r["events"] for r in ok) if ok else None, 1),
        "server_cpu_s": round(cpu_s, 3),
        "server_cpu_ms_per_run": rounded(cpu_s * 1000 / len(ok) if ok else None, 1),
        "runs_per_s_per_core": rounded(len(ok) / cpu_s if cpu_s else None, 2),
        "server_rss_mb_before": round(memory_before, 1),
        "server_rss_mb_after": round(memory_after, 1),
    }


async def run(
    concurrency: int,
    workdir: Path,
    routes: tuple[str, ...] = ROUTES,
    fast_server: str = "langgraph",
    workers: int = 1,
) -> dict[str, Any]:
    options = ("--responder", "bench.load:load_reply")
    measured: dict[str, dict[str, Any]] = {}
    with simulator_process(workdir / "simulator.log", *options) as sim_url:
        server_env = {**os.environ, **tiers_at(f"{sim_url}/v1")}

        def server_for(route: str) -> AbstractContextManager[ServerProcess]:
            log = workdir / f"{route}-server.log"
            if route == "fast" and fast_server == "uvicorn":
                return uvicorn_server(server_env, log, workers=workers)
            # Every run executes at once rather than waiting in the server's queue.
            return langgraph_server(server_env, log, jobs=concurrency)

        for route in routes:
            if route == "in_process":
                freeze_static_heap()  # as the app does at startup (expressway/heap.py)
                run_here = partial(in_process_run, f"{sim_url}/v1")
                measured[route] = await measure_route(ThisProcess(), run_here, concurrency)
                continue
            with server_for(route) as server:
                prefix = "/fast" if route == "fast" else ""
                client = concurrent_client(f"{server.url}{prefix}", concurrency)
                run_there = partial(stream_run, client)
                measured[route] = await measure_route(server, run_there, concurrency)
    standard = measured.get("standard") or measured[routes[0]]
    return {
        "benchmark": "load",
        "schema_version": 1,
        "concurrent_runs": concurrency,
        "plan_tasks": len(LOAD_QUESTION.calls),
        "answer_tokens": ANSWER_TOKENS,
        "fast_server": f"{fast_server} ({workers} worker{'s' * (workers > 1)})",
        # Today's top-level keys keep their meaning: the standard route (or the only one run).
        **{key: value for key, value in standard.items() if key in _TOP_LEVEL},
        "routes": measured,
    }


_TOP_LEVEL = (
    "completed",
    "failed",
    "errors",
    "wall_s",
    "e2e_p50_s",
    "e2e_p99_s",
    "ttft_p50_s",
    "ttft_p99_s",
    "server_rss_mb_before",
    "server_rss_mb_after",
)


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench load")
    parser.add_argument("--runs", type=int, default=200, help="concurrent runs (one each)")
    parser.add_argument(
        "--routes",
        default=",".join(ROUTES),
        help="comma-separated: standard, fast, in_process (the graph in this process: the floor)",
    )
    parser.add_argument(
        "--fast-server",
        choices=["langgraph", "uvicorn"],
        default="langgraph",
        help="serve the fast route mounted in `langgraph dev` or under plain uvicorn",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args(argv)
    routes = tuple(route for route in args.routes.split(",") if route)
    if not routes or set(routes) - set(ROUTES):
        parser.error(f"--routes takes a comma-separated subset of {', '.join(ROUTES)}")
    with tempfile.TemporaryDirectory(prefix="expressway-load-") as workdir:
        return asyncio.run(run(args.runs, Path(workdir), routes, args.fast_server, args.workers))
