"""End-to-end benchmark: the naive sequential agent vs Expressway, side by side in one run.

Both agents answer every workload question against the same backend, with the same real tools plus
a deterministic remote-like latency. The backend is the scripted simulator (vLLM-on-A100 latency
profile by default; the numbers the goals are about) or, with `--backend embedded`, the real
embedded vLLM on a subset (a real model's plans, tool calls and answers, at CPU speed).
Writes a JSON report, a markdown table and a PNG plot to --out (e2e.* or e2e-embedded.*), and
returns the JSON report.
"""

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI

from app.embedded import model_dir, start_server
from bench.harness import context_at
from bench.naive_agent import run_naive_agent
from bench.simulator import LatencyProfile, RunningSimulator, SimulatedBackend
from bench.workload import QUESTIONS, Question, scripted_reply, workload_tools
from expressway.context import Context
from expressway.events import iter_events
from graphs.agent import build_graph
from nodes.planner import TOKENS_PER_TASK
from routers.table import load_routing_table

STAGES = ("route", "plan", "tools", "answer")
# The fast tier: an 8B-class model on one A100 decodes about twice as fast as the frontier
# (70B-class, tensor parallel) profile that LatencyProfile defaults to.
FAST_TIER = LatencyProfile(ttft_s=0.15, tokens_per_s=120.0)


async def run_expressway(graph: Any, question: Question, base_url: str) -> dict[str, Any]:
    context = context_at(base_url)
    started = time.perf_counter()
    first_token, finished = None, None
    async for event in iter_events(
        graph.astream(
            {"messages": [("user", question.text)]}, context=context, stream_mode=["custom"]
        )
    ):
        if event["type"] == "token" and first_token is None:
            first_token = time.perf_counter() - started
        if event["type"] == "run.finished":
            finished = event
    total = time.perf_counter() - started
    assert finished is not None and first_token is not None, "the run did not finish"
    return {
        "e2e_s": round(total, 4),
        "ttfa_s": round(first_token, 4),
        "stages_s": {stage: round(finished["timings"].get(stage, 0.0), 4) for stage in STAGES},
        "tasks": finished["tasks"],
        "failed_tasks": finished["failed_tasks"],
    }


async def run_naive(question: Question, base_url: str, tools: list[Any]) -> dict[str, Any]:
    model = ChatOpenAI(
        base_url=base_url,
        api_key="none",
        model="frontier",
        streaming=False,
        temperature=0,
        # The routing table's largest answer budget: a small real model may otherwise fill a
        # JSON string up to the context limit.
        max_tokens=max(route.max_tokens for route in load_routing_table().tasks.values()),
    )
    # Exactly the tool turns a correct run needs, then the answer: a small real model can neither
    # skip the work nor loop (a scripted one does this anyway).
    calls = len(question.calls)
    result = await run_naive_agent(
        question.text,
        model,
        tools,
        max_turns=calls + 1,
        min_tool_calls=calls,
        tool_call_max_tokens=TOKENS_PER_TASK,  # the token budget Expressway's planner gives a task
    )
    return {
        "e2e_s": round(result.total_s, 4),
        "ttfa_s": round(result.total_s, 4),  # nothing is shown before the whole answer
        "stages_s": {"model": round(result.model_s, 4), "tools": round(result.tools_s, 4)},
        "turns": result.turns,
        "tool_calls": len(result.tool_calls),
    }


@contextlib.contextmanager
def simulated_backend(frontier: LatencyProfile, fast: LatencyProfile) -> Iterator[str]:
    """The scripted simulator with the tiers' latency profiles; yields its base URL."""
    backend = SimulatedBackend(scripted_reply, frontier, model_profiles={"fast": fast})
    with RunningSimulator(backend) as simulator:
        yield simulator.base_url


@contextlib.contextmanager
def embedded_backend() -> Iterator[str]:
    """The real embedded vLLM (started, or reused if it runs); yields its base URL. A server this
    started is left running, as `expressway ask` does."""
    context = Context()
    start_server(context.embedded_port, lambda line: print(line, file=sys.stderr, flush=True))
    yield context.embedded_base_url


async def run(
    questions: list[Question], base_url: str, tool_low_s: float, tool_high_s: float
) -> dict[str, Any]:
    """Both agents on every question against the backend at `base_url`."""
    tools = workload_tools(tool_low_s, tool_high_s)
    graph = build_graph(tools=tools)
    rows = []
    for index, question in enumerate(questions):
        # Alternate which agent goes first so drift on a noisy machine hits both alike.
        if index % 2:
            ours = await run_expressway(graph, question, base_url)
            naive = await run_naive(question, base_url, tools)
        else:
            naive = await run_naive(question, base_url, tools)
            ours = await run_expressway(graph, question, base_url)
        rows.append(
            {
                "question": question.text,
                "calls": len(question.calls),
                "naive": naive,
                "expressway": ours,
            }
        )
    naive_e2e = statistics.median(r["naive"]["e2e_s"] for r in rows)
    fast_e2e = statistics.median(r["expressway"]["e2e_s"] for r in rows)
    naive_ttfa = statistics.median(r["naive"]["ttfa_s"] for r in rows)
    fast_ttfa = statistics.median(r["expressway"]["ttfa_s"] for r in rows)
    return {
        "benchmark": "e2e",
        "schema_version": 1,
        "tool_latency_s": [tool_low_s, tool_high_s],
        "questions": rows,
        "aggregate": {
            "questions": len(rows),
            "naive_e2e_median_s": round(naive_e2e, 4),
            "expressway_e2e_median_s": round(fast_e2e, 4),
            "e2e_speedup": round(naive_e2e / fast_e2e, 3),
            "naive_ttfa_median_s": round(naive_ttfa, 4),
            "expressway_ttfa_median_s": round(fast_ttfa, 4),
            "ttfa_reduction": round(1 - fast_ttfa / naive_ttfa, 4),
            # On a small real model the agents may not make the calls a correct run needs.
            "tool_calls": {
                "expected": sum(r["calls"] for r in rows),
                "naive": sum(r["naive"]["tool_calls"] for r in rows),
                "expressway": sum(r["expressway"]["tasks"] for r in rows),
            },
            "expressway_stage_medians_s": {
                stage: round(statistics.median(r["expressway"]["stages_s"][stage] for r in rows), 4)
                for stage in STAGES
            },
            "naive_stage_medians_s": {
                stage: round(statistics.median(r["naive"]["stages_s"][stage] for r in rows), 4)
                for stage in ("model", "tools")
            },
        },
    }


def markdown_table(report: dict[str, Any]) -> str:
    aggregate = report["aggregate"]
    lines = [
        "| question | calls needed / naive / Expressway | naive e2e (s) | Expressway e2e (s) "
        "| speedup | Expressway TTFA (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["questions"]:
        naive, ours = row["naive"], row["expressway"]
        calls = f"{row['calls']} / {naive['tool_calls']} / {ours['tasks']}"
        lines.append(
            f"| {row['question']} | {calls} | {naive['e2e_s']:.2f} | {ours['e2e_s']:.2f} "
            f"| {naive['e2e_s'] / ours['e2e_s']:.2f}x | {ours['ttfa_s']:.2f} |"
        )
    lines.append(
        f"| **median** | | **{aggregate['naive_e2e_median_s']:.2f}** | "
        f"**{aggregate['expressway_e2e_median_s']:.2f}** | **{aggregate['e2e_speedup']:.2f}x** | "
        f"**{aggregate['expressway_ttfa_median_s']:.2f}** |"
    )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, aggregate = report["questions"], report["aggregate"]
    figure, (distribution, stages) = plt.subplots(1, 2, figsize=(12, 4.8))
    series = {
        "naive e2e": [r["naive"]["e2e_s"] for r in rows],
        "Expressway e2e": [r["expressway"]["e2e_s"] for r in rows],
        "naive first\nanswer token": [r["naive"]["ttfa_s"] for r in rows],
        "Expressway first\nanswer token": [r["expressway"]["ttfa_s"] for r in rows],
    }
    distribution.boxplot(list(series.values()), tick_labels=list(series.keys()))
    for position, values in enumerate(series.values(), start=1):
        distribution.scatter([position] * len(values), values, s=10, alpha=0.5)
    distribution.set_ylabel("seconds")
    distribution.set_title(
        f"{report['backend']} backend, {aggregate['questions']} questions: "
        f"{aggregate['e2e_speedup']:.2f}x faster end to end, "
        f"{aggregate['ttfa_reduction']:.0%} earlier first token",
        fontsize=10,
    )
    bottoms = [0.0, 0.0]
    naive_stages = aggregate["naive_stage_medians_s"]
    fast_stages = aggregate["expressway_stage_medians_s"]
    for label, naive_value, fast_value in [
        ("model calls", naive_stages["model"], 0.0),
        ("route", 0.0, fast_stages["route"]),
        ("plan (tools start during it)", 0.0, fast_stages["plan"]),
        ("tools (after the plan)", naive_stages["tools"], fast_stages["tools"]),
        ("answer (streamed)", 0.0, fast_stages["answer"]),
    ]:
        stages.bar(["naive", "Expressway"], [naive_value, fast_value], bottom=bottoms, label=label)
        bottoms = [bottoms[0] + naive_value, bottoms[1] + fast_value]
    stages.set_ylabel("median seconds per stage")
    stages.set_title("where the time goes", fontsize=10)
    stages.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench e2e")
    parser.add_argument(
        "--backend",
        choices=("simulated", "embedded"),
        default="simulated",
        help="the scripted simulator with A100-like latency, or the real embedded vLLM",
    )
    parser.add_argument(
        "--questions", type=int, help="first N questions (default: all; 6 on the embedded vLLM)"
    )
    parser.add_argument("--ttft", type=float, default=LatencyProfile.ttft_s, help="frontier tier")
    parser.add_argument("--tokens-per-s", type=float, default=LatencyProfile.tokens_per_s)
    parser.add_argument("--fast-ttft", type=float, default=FAST_TIER.ttft_s, help="fast tier")
    parser.add_argument("--fast-tokens-per-s", type=float, default=FAST_TIER.tokens_per_s)
    parser.add_argument("--tool-latency", default="0.5,2.0", help="low,high seconds per tool call")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="report folder")
    args = parser.parse_args(argv)
    low, high = (float(value) for value in args.tool_latency.split(","))
    if args.backend == "simulated":
        frontier = LatencyProfile(ttft_s=args.ttft, tokens_per_s=args.tokens_per_s)
        fast = LatencyProfile(ttft_s=args.fast_ttft, tokens_per_s=args.fast_tokens_per_s)
        backend = simulated_backend(frontier, fast)
        about: dict[str, Any] = {"profiles": {"frontier": asdict(frontier), "fast": asdict(fast)}}
        count, stem = args.questions or len(QUESTIONS), "e2e"
    else:
        backend = embedded_backend()
        about = {"model": model_dir().name}
        count, stem = args.questions or 6, "e2e-embedded"
    with backend as base_url:
        report = asyncio.run(run(QUESTIONS[:count], base_url, low, high))
    report = {**report, "backend": args.backend, **about}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (args.out / f"{stem}.md").write_text(markdown_table(report))
    plot(report, args.out / f"{stem}.png")
    return report
