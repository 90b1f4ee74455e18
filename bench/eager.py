"""Eager-execution benchmark: tasks start while the plan is still streaming.

A scripted model streams a plan of independent tasks at a steady pace (like a model decoding at
`tokens_per_s`); the benchmark reads from the run's own events when each task's line was parsed and
when the task started, and when the plan stream ended.
"""

import asyncio
from typing import Any

from bench.fanout import fan_out_plan, latency_tools
from bench.scripted_model import ScriptedChatModel
from expressway.context import Context
from graphs.agent import build_graph


async def run(tasks: int, chars_per_s: float, tool_latency_s: float) -> dict[str, Any]:
    tool = latency_tools(tool_latency_s)["async"]
    chunk_chars = 4
    model = ScriptedChatModel(
        plans=[fan_out_plan(tool.__name__, tasks)],
        answer="ok",
        chunk_chars=chunk_chars,
        delay_s=chunk_chars / chars_per_s,
    )
    graph = build_graph(tools=[tool], models={"fast": model, "frontier": model})
    events: list[dict[str, Any]] = []
    started_at = 0.0
    async for mode, payload in graph.astream(
        {"messages": [("user", "look up the status of all the keys")]},
        context=Context(force_tier="fast"),
        stream_mode=["custom", "values"],
    ):
        if mode == "custom":
            events.append(payload)
        elif payload.get("started_at"):
            started_at = payload["started_at"]
    plan_chunks = model.chunk_times[: len(model.chunk_times) - _answer_chunks(model, chunk_chars)]
    plan_stream_end_s = plan_chunks[-1] - started_at
    planned = {e["task_id"]: e["t"] for e in events if e["type"] == "plan.task"}
    starts = {e["task_id"]: e["t"] for e in events if e["type"] == "task.started"}
    lags_ms = [(starts[i] - planned[i]) * 1000 for i in planned]
    return {
        "benchmark": "eager",
        "schema_version": 1,
        "tasks": tasks,
        "plan_chars_per_s": chars_per_s,
        "tool_latency_s": tool_latency_s,
        "first_task_line_s": round(planned[1], 4),
        "first_task_start_s": round(starts[1], 4),
        "first_task_start_after_line_ms": round(lags_ms[0], 3),
        "max_task_start_after_line_ms": round(max(lags_ms), 3),
        "plan_stream_end_s": round(plan_stream_end_s, 4),
        "started_before_plan_end": starts[1] < plan_stream_end_s,
        "tools_done_s": round(max(e["t"] for e in events if e["type"] == "task.finished"), 4),
        "total_s": round(events[-1]["t"], 4),
    }


def _answer_chunks(model: ScriptedChatModel, chunk_chars: int) -> int:
    return -(-len(model.answer) // chunk_chars)


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench eager")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--chars-per-s", type=float, default=240.0, help="plan streaming speed")
    parser.add_argument("--tool-latency", type=float, default=0.5)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.tasks, args.chars_per_s, args.tool_latency))
