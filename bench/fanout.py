"""Fan-out benchmark: N tools of latency L through the real graph, sync and async, both modes.

Each row runs the graph with a plan of N independent calls (from a scripted model that answers
instantly, so only tool execution is measured) and reports the tools' wall time as a multiple of
one tool's latency. LangGraph's prebuilt ToolNode runs the same calls as a reference.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from bench.scripted_model import ScriptedChatModel
from expressway.context import Context
from expressway.toolbox import as_tools
from graphs.agent import build_graph
from nodes.planner import encode_plan
from nodes.task_runner import call_tool


def latency_tools(latency_s: float) -> dict[str, Callable[..., Any]]:
    """A sync and an async tool that each take `latency_s` (a remote call's wait, simulated)."""

    def sync_lookup(key: str) -> str:
        """Looks a key up in a remote store (blocking client)."""
        time.sleep(latency_s)
        return key

    async def async_lookup(key: str) -> str:
        """Looks a key up in a remote store (async client)."""
        await asyncio.sleep(latency_s)
        return key

    return {"sync": sync_lookup, "async": async_lookup}


def fan_out_plan(tool_name: str, n: int) -> str:
    return encode_plan([(tool_name, {"key": f"k{i}"}) for i in range(1, n + 1)])


async def graph_tools_wall_s(tool: Callable[..., Any], n: int, mode: str) -> float:
    """Wall time from the first task start to the last task finish, from the run's own events."""
    model = ScriptedChatModel(plans=[fan_out_plan(tool.__name__, n)], answer="ok", chunk_chars=4096)
    graph = build_graph(tools=[tool], models={"fast": model, "frontier": model})
    stream = graph.astream(
        {"messages": [("user", "look up the status of all the keys")]},
        context=Context(
            execution_mode=mode, max_concurrency=n, max_plan_tasks=n, force_tier="fast"
        ),
        stream_mode="custom",
    )
    events = [event async for event in stream]
    started = [e["t"] for e in events if e["type"] == "task.started"]
    finished = [e["t"] for e in events if e["type"] == "task.finished"]
    assert len(finished) == n, f"expected {n} finished tasks, got {len(finished)}"
    return max(finished) - min(started)


async def toolnode_wall_s(tool: Callable[..., Any], n: int) -> float:
    """The same calls through LangGraph's prebuilt ToolNode, in a one-node graph."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(as_tools([tool])))
    builder.add_edge(START, "tools")
    graph = builder.compile()
    calls = [{"name": tool.__name__, "args": {"key": f"k{i}"}, "id": f"c{i}"} for i in range(n)]
    started = time.perf_counter()
    await graph.ainvoke({"messages": [AIMessage("", tool_calls=calls)]})
    return time.perf_counter() - started


async def sequential_s(tool: Callable[..., Any], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        if asyncio.iscoroutinefunction(tool):
            await tool(key=f"k{i}")
        else:
            tool(key=f"k{i}")
    return time.perf_counter() - started


async def per_call_overhead_us(calls: int = 2000) -> dict[str, float]:
    """What one call of an instant async tool costs through LangChain's `ainvoke` (callback setup)
    and through `call_tool`'s direct path (argument validation, then the function)."""

    async def instant(key: str) -> str:
        """Returns its argument."""
        return key

    tool = as_tools([instant])[0]
    costs = {}
    for name, call in (
        ("langchain_ainvoke_us", lambda: tool.ainvoke({"key": "k"})),
        ("direct_call_us", lambda: call_tool(tool, {"key": "k"}, timeout_s=5)),
    ):
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        costs[name] = round((time.perf_counter() - started) / calls * 1e6, 1)
    return costs


async def run(sizes: list[int], latency_s: float, with_sequential: bool) -> dict[str, Any]:
    rows = []
    for kind, tool in latency_tools(latency_s).items():
        for n in sizes:
            sequential = await sequential_s(tool, n) if with_sequential else None
            for runner in ("compiler", "parallel_calls", "toolnode"):
                if runner == "toolnode":
                    wall = await toolnode_wall_s(tool, n)
                else:
                    wall = await graph_tools_wall_s(tool, n, runner)
                rows.append(
                    {
                        "runner": runner,
                        "tool_kind": kind,
                        "n": n,
                        "tool_latency_s": latency_s,
                        "sequential_s": None if sequential is None else round(sequential, 4),
                        "parallel_s": round(wall, 4),
                        "ratio_to_single": round(wall / latency_s, 3),
                    }
                )
    return {
        "benchmark": "fanout",
        "schema_version": 1,
        "rows": rows,
        "per_call_overhead": await per_call_overhead_us(),
    }


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench fanout")
    parser.add_argument("--sizes", default="8,64", help="comma-separated N values")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per tool call")
    parser.add_argument("--no-sequential", action="store_true", help="skip the N*L baseline run")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    return asyncio.run(run(sizes, args.latency, not args.no_sequential))
