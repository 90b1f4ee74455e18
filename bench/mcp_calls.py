"""MCP benchmark: what a kept stdio session saves, and whether calls on one session overlap.

Measures, against a local stdio MCP server (bench/mcp_server.py): the first start (process,
handshake and tool listing); the latency of a call on the kept session (how expressway/mcp_tools.py
calls); the latency of a call that opens a new process and session for itself (what a client
that creates a session per call pays, langchain-mcp-adapters' default); and N concurrent calls of
a tool that waits `latency_s`, through the graph's task runner, as a multiple of one call.
"""

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from expressway.mcp_tools import MCPServerConfig, MCPServers
from expressway.state import PlannedTask
from nodes.task_runner import TaskRunner, call_tool

SERVER = MCPServerConfig(
    name="bench", command=sys.executable, args=(str(Path(__file__).with_name("mcp_server.py")),)
)


def _ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def run(
    kept_calls: int, new_process_calls: int, concurrency: int, latency_s: float
) -> dict[str, Any]:
    servers = MCPServers({"bench": SERVER})
    started = time.perf_counter()
    (tool,) = await servers.tools(startup_timeout_s=60)
    first_start_s = time.perf_counter() - started
    try:
        kept = []
        for _ in range(kept_calls):
            began = time.perf_counter()
            await call_tool(tool, {"seconds": 0}, timeout_s=30)
            kept.append(time.perf_counter() - began)
        fresh = []
        for _ in range(new_process_calls):
            began = time.perf_counter()
            async with SERVER.client() as client:
                await client.call_tool("wait", {"seconds": 0})
            fresh.append(time.perf_counter() - began)
        runner = TaskRunner([tool], time.perf_counter(), timeout_s=30, max_concurrency=concurrency)
        began = time.perf_counter()
        for task_id in range(1, concurrency + 1):
            # Distinct arguments: identical calls in one run would execute once.
            runner.submit(PlannedTask(task_id, "wait", {"seconds": latency_s + task_id * 1e-6}))
        results = await runner.results()
        wall_s = time.perf_counter() - began
    finally:
        await servers.aclose()
    return {
        "benchmark": "mcp_calls",
        "schema_version": 1,
        "first_start_s": round(first_start_s, 3),
        "kept_session_call": _ms(kept),
        "new_process_per_call": _ms(fresh),
        "concurrent_calls": concurrency,
        "latency_s": latency_s,
        "concurrent_wall_s": round(wall_s, 3),
        "ratio_to_single": round(wall_s / latency_s, 3),
        "concurrent_all_ok": all(result.status == "ok" for result in results),
    }


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench mcp_calls")
    parser.add_argument("--kept-calls", type=int, default=50)
    parser.add_argument("--new-process-calls", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-s", type=float, default=0.5)
    args = parser.parse_args(argv)
    return asyncio.run(
        run(args.kept_calls, args.new_process_calls, args.concurrency, args.latency_s)
    )
