"""Durability: a process running the graph on a checkpointer (SQLite, or PostgreSQL with
`--checkpointer postgres`) is killed with SIGKILL; a new process resumes the thread.

Scenarios (`--scenario answer|tools|all`, default all):
- answer: killed while the answer streams. Checked: the resumed run ends with the question and one
  complete answer (no message lost or doubled) and the side-effect tools that had finished are not
  run again (each appends a line to a ledger file).
- tools: killed while tools run, at a random moment (`--repeat N`, `--seed`) after the first of
  five tasks has finished and while others run. Every tool writes a ledger line when it starts and
  when it ends, so the ledger says which calls had finished and which were running at the kill.
  Checked per run: no finished call with side effects runs again, every call with side effects
  that was running is reported (`task.in_doubt`) and not run again (the default policy),
  read-only calls that were running run again, every task has a result and the answer is complete.

`per_task_overhead_ms` is what saving a call's outcome adds to a task with side effects
(nodes/durable_tasks.py) on the same checkpointer; `per_task_overhead_detail_ms` breaks it down
(read-only calls, 16 tasks at once, a bare checkpointer write) and measures the same on SQLite with
`synchronous=NORMAL` and in memory, side by side.
"""

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint

from bench.harness import REPO_ROOT, context_at, local_postgres
from bench.simulator import LatencyProfile, RunningSimulator, SimulatedBackend
from expressway.events import now
from expressway.state import TaskResult, call_key
from expressway.toolbox import as_tools, read_only
from nodes.planner import encode_plan

QUESTION = "Please record order 7 and order 8 as shipped."
ANSWER = " ".join(f"word{i}" for i in range(60)) + "."
PLAN = encode_plan([("record_shipment", {"order_id": 7}), ("record_shipment", {"order_id": 8})])
TOOLS_QUESTION = (
    "Record orders 7, 8 and 9 as shipped, email the customer of order 7 and check stock."
)
TOOLS_STEPS = [
    ("record_shipment", {"order_id": 7}),
    ("record_shipment", {"order_id": 8}),
    ("check_stock", {"product": "widget"}),
    ("record_shipment", {"order_id": 9}),
    ("email_customer", {"order_id": 7, "note": "$1"}),  # step 5 uses step 1's result
]
TOOLS_PLAN = encode_plan(TOOLS_STEPS)
# Seconds each call takes: task 1 finishes first, task 4 inside the kill window, the rest after it.
SHIPMENT_S = {7: 0.3, 8: 1.5, 9: 0.6}
EMAIL_S, STOCK_S = 1.2, 1.3
KILL_WINDOW_S = 0.7  # the kill comes this long at most after the first task finished
OVERHEAD_CALLS, BURSTS = 200, 20
IN_FLIGHT_POLICY = "report"  # the default: a call with side effects in flight is not run again


def scripted(request: dict[str, Any]) -> str:
    return PLAN if "response_format" in request else ANSWER


def scripted_tools(request: dict[str, Any]) -> str:
    return TOOLS_PLAN if "response_format" in request else ANSWER


def _log(ledger: str, phase: str, call: str) -> None:
    with open(ledger, "a", encoding="utf-8") as file:
        file.write(f"{os.getpid()} {phase} {call}\n")


def answer_tools(ledger: str) -> list[Callable[..., Any]]:
    def record_shipment(order_id: int) -> str:
        """Marks an order as shipped (a side effect: one ledger line per call)."""
        with open(ledger, "a", encoding="utf-8") as file:
            file.write(f"{order_id}\n")
        return f"order {order_id} recorded"

    return [record_shipment]


def shop_tools(ledger: str) -> list[Callable[..., Any]]:
    """Tools that log a ledger line when a call starts and when it ends."""

    async def logged(tool: str, args: dict[str, Any], seconds: float, output: str) -> str:
        call = call_key(tool, args)
        _log(ledger, "begin", call)
        await asyncio.sleep(seconds)
        _log(ledger, "end", call)
        return output

    async def record_shipment(order_id: int) -> str:
        """Marks an order as shipped (a side effect)."""
        args = {"order_id": order_id}
        return await logged("record_shipment", args, SHIPMENT_S[order_id], f"order {order_id} ok")

    async def email_customer(order_id: int, note: str) -> str:
        """Emails the customer of an order (a side effect)."""
        args = {"order_id": order_id, "note": note}
        return await logged("email_customer", args, EMAIL_S, f"emailed order {order_id}")

    @read_only
    async def check_stock(product: str) -> str:
        """Units of a product in stock (only reads)."""
        return await logged("check_stock", {"product": product}, STOCK_S, f"{product}: 12")

    return [record_shipment, email_customer, check_stock]


@contextlib.asynccontextmanager
async def open_saver(store: str) -> AsyncIterator[BaseCheckpointSaver]:
    """A checkpointer on `store`: a PostgreSQL URI, or else a SQLite file."""
    if store.startswith("postgresql://"):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(store) as saver:
            await saver.setup()
            yield saver
    else:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(store) as saver:
            yield saver


async def worker(
    scenario: str, store: str, thread: str, base_url: str, ledger: str, resume: bool
) -> None:
    """Run (or resume) the thread, printing each event and then the final state as JSON lines."""
    from graphs.agent import build_graph

    tools = answer_tools(ledger) if scenario == "answer" else shop_tools(ledger)
    question = QUESTION if scenario == "answer" else TOOLS_QUESTION
    async with open_saver(store) as saver:
        graph = build_graph(tools=tools, checkpointer=saver)
        config = {"configurable": {"thread_id": thread}}
        payload = None if resume else {"messages": [("user", question)]}
        context = context_at(base_url, in_flight_side_effects=IN_FLIGHT_POLICY)
        async for _, event in graph.astream(
            payload, config, context=context, stream_mode=["custom"], durability="sync"
        ):
            print(json.dumps(event), flush=True)
        state = await graph.aget_state(config)
        messages = [{"type": m.type, "text": m.text} for m in state.values["messages"]]
        results = [
            {"id": r.id, "tool": r.tool, "args": r.args, "status": r.status, "output": r.output}
            for r in state.values.get("results", [])
        ]
        final = {"type": "final_state", "messages": messages, "results": results}
        print(json.dumps(final), flush=True)


def _worker_command(
    scenario: str, store: str, thread: str, base_url: str, ledger: Path, resume: bool
) -> list[str]:
    return [
        sys.executable, "-m", "bench.durability", "worker", scenario, store, thread, base_url,
        str(ledger), "resume" if resume else "start",
    ]  # fmt: skip


def _start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)


def _resume(command: list[str]) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    resumed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=180)
    return resumed, [json.loads(line) for line in resumed.stdout.splitlines()]


def _final(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next((e for e in events if e["type"] == "final_state"), {"messages": [], "results": []})


def _answer_complete(final: dict[str, Any]) -> bool:
    messages = final["messages"]
    return [m["type"] for m in messages] == ["human", "ai"] and messages[-1]["text"] == ANSWER


def answer_scenario(workdir: Path, store: str) -> dict[str, Any]:
    """SIGKILL after the fifth answer token, then resume."""
    ledger = workdir / "ledger.txt"
    profile = LatencyProfile(ttft_s=0.05, tokens_per_s=20)  # a slow answer to kill mid-stream
    with RunningSimulator(SimulatedBackend(scripted, profile)) as simulator:
        command = _worker_command(
            "answer", store, "answer-1", simulator.base_url, ledger, resume=False
        )
        first = _start(command)
        assert first.stdout is not None
        tokens_before_kill = 0
        for line in first.stdout:
            if json.loads(line)["type"] == "token":
                tokens_before_kill += 1
                if tokens_before_kill == 5:
                    os.kill(first.pid, signal.SIGKILL)
                    break
        first.wait()
        ledger_after_kill = ledger.read_text().split()
        resumed, events = _resume([*command[:-1], "resume"])
    final = _final(events)
    ledger_final = ledger.read_text().split()
    return {
        "killed_with": "SIGKILL",
        "killed_after_tokens": tokens_before_kill,
        "first_exit_code": first.returncode,
        "resume_exit_code": resumed.returncode,
        "tool_calls_before_kill": len(ledger_after_kill),
        "tool_calls_after_resume": len(ledger_final),
        "messages": [m["type"] for m in final["messages"]],
        "answer_complete": _answer_complete(final),
        "answer_ok": (
            resumed.returncode == 0
            and _answer_complete(final)
            and sorted(ledger_final) == ["7", "8"]
        ),
        "resume_stderr_tail": resumed.stderr[-500:] if resumed.returncode else "",
    }


def _ledger(path: Path) -> list[list[str]]:
    """The ledger's lines as [process id, "begin" or "end", call]."""
    return [line.split(" ", 2) for line in path.read_text().splitlines()]


def _has_side_effects(call: str) -> bool:
    return not call.startswith("check_stock:")


def tools_run(index: int, store: str, base_url: str, workdir: Path, delay_s: float) -> dict:
    """One run: SIGKILL `delay_s` after the first task finished, then resume and compare."""
    ledger = workdir / f"ledger-{index}.txt"
    ledger.touch()
    command = _worker_command("tools", store, f"tools-{index}", base_url, ledger, resume=False)
    first = _start(command)
    assert first.stdout is not None
    for line in first.stdout:
        if json.loads(line)["type"] == "task.finished":
            time.sleep(delay_s)
            os.kill(first.pid, signal.SIGKILL)
            break
    first.wait()
    resumed, events = _resume([*command[:-1], "resume"])
    lines = _ledger(ledger)
    before = [(phase, call) for pid, phase, call in lines if pid == str(first.pid)]
    finished = {call for phase, call in before if phase == "end"}
    in_flight = {call for phase, call in before if phase == "begin"} - finished
    run_again = {call for pid, phase, call in lines if pid != str(first.pid) and phase == "begin"}
    in_flight_effects = {call for call in in_flight if _has_side_effects(call)}
    reported = {call_key(e["tool"], e["args"]) for e in events if e["type"] == "task.in_doubt"}
    final = _final(events)
    planned = set(range(1, len(TOOLS_STEPS) + 1))
    run = {
        "kill_after_first_finished_s": round(delay_s, 3),
        "first_exit_code": first.returncode,
        "resume_exit_code": resumed.returncode,
        "finished_at_kill": len(finished),
        "in_flight_at_kill": len(in_flight),
        "side_effect_reexecutions": len({c for c in finished & run_again if _has_side_effects(c)}),
        "in_flight_side_effects": len(in_flight_effects),
        "in_flight_side_effects_reported": len(in_flight_effects & reported),
        "in_flight_side_effects_repeated": len(in_flight_effects & run_again),
        # Finished at the kill but not yet saved: reported as in doubt, not run again.
        "finished_reported_in_doubt": len(finished & reported),
        "read_only_reexecutions": len(
            {c for c in finished & run_again if not _has_side_effects(c)}
        ),
        "read_only_in_flight_rerun": len({c for c in in_flight - in_flight_effects} & run_again),
        "results_reused": sum(
            1 for e in events if e["type"] == "task.finished" and e.get("reused")
        ),
        "answer_complete": _answer_complete(final),
        "state_lost": len(planned - {result["id"] for result in final["results"]}),
        "resume_stderr_tail": resumed.stderr[-500:] if resumed.returncode else "",
    }
    run["clean"] = (
        first.returncode == -signal.SIGKILL
        and resumed.returncode == 0
        and bool(finished)
        and bool(in_flight)
        and run["side_effect_reexecutions"] == 0
        and in_flight_effects <= reported
        and run["in_flight_side_effects_repeated"] == 0
        and run["answer_complete"]
        and run["state_lost"] == 0
    )
    return run


def tools_scenario(workdir: Path, store: str, repeat: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    profile = LatencyProfile(ttft_s=0.05, tokens_per_s=2000)  # the plan streams in ~0.1 s
    with RunningSimulator(SimulatedBackend(scripted_tools, profile)) as simulator:
        runs = [
            tools_run(i, store, simulator.base_url, workdir, rng.uniform(0, KILL_WINDOW_S))
            for i in range(repeat)
        ]
    totals = {
        key: sum(run[key] for run in runs)
        for key in (
            "side_effect_reexecutions",
            "in_flight_side_effects",
            "in_flight_side_effects_reported",
            "in_flight_side_effects_repeated",
            "finished_reported_in_doubt",
            "read_only_reexecutions",
            "read_only_in_flight_rerun",
            "results_reused",
            "state_lost",
        )
    }
    return {
        "runs": len(runs),
        "clean_runs": sum(run["clean"] for run in runs),
        **totals,
        "answers_complete": sum(run["answer_complete"] for run in runs),
        "in_flight_policy": IN_FLIGHT_POLICY,
        "seed": seed,
        "tools_runs": runs,
    }


async def per_task_overhead_ms(store: str) -> dict[str, dict[str, float]]:
    """Milliseconds saving a call's outcome adds to a task: on `store`'s checkpointer as
    configured, on SQLite with `synchronous=NORMAL` (commits survive a process crash, not a power
    cut; SQLite only) and in memory (the journal's own work, no storage), side by side."""
    from langgraph.checkpoint.memory import InMemorySaver

    figures = {}
    async with open_saver(store) as saver:
        figures["checkpointer"] = await _overhead_on(saver)
        if not store.startswith("postgresql://"):
            await saver.conn.execute("PRAGMA synchronous=NORMAL")  # type: ignore[attr-defined]
            figures["sqlite_synchronous_normal"] = await _overhead_on(saver)
    figures["in_memory"] = await _overhead_on(InMemorySaver())
    return figures


async def _overhead_on(saver: BaseCheckpointSaver) -> dict[str, float]:
    """Medians over OVERHEAD_CALLS tasks run one at a time (a call with side effects saves twice,
    a read-only call once), per task over BURSTS of 16 finishing at once (they share commits), and
    one bare `aput_writes` of the checkpointer (the floor)."""
    from nodes.durable_tasks import CHANNEL, CallJournal, SaveResult

    config = await saver.aput(
        {"configurable": {"thread_id": f"overhead-{time.time_ns()}", "checkpoint_ns": ""}},
        empty_checkpoint(),
        {},
        {},
    )
    journal = CallJournal(saver, config, {}, now(), retry_in_flight=False)
    effect, lookup = as_tools([_effect, _lookup])

    async def execute(save: SaveResult | None, tool: BaseTool, i: int) -> TaskResult:
        result = TaskResult(i, tool.name, {"n": i}, "ok", "x" * 200, 0.0, 0.0)
        if save is not None:
            await save(result)
        return result

    async def one(tool: BaseTool, i: int, saved: bool) -> float:
        started = time.perf_counter()
        if saved:
            args = {"n": i}
            run = partial(execute, tool=tool, i=i)
            await journal.run(i, tool, args, call_key(tool.name, args), run)
        else:
            await execute(None, tool, i)
        return time.perf_counter() - started

    async def bare_write(i: int) -> float:
        started = time.perf_counter()
        await saver.aput_writes(config, [(CHANNEL, {"call": "floor", "n": i})], f"floor-{i}")
        return time.perf_counter() - started

    # Interleaved, so that every figure sees the same moments of a shared disk and CPU.
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(OVERHEAD_CALLS):
        times["checkpointer_write"].append(await bare_write(i))
        for name, tool in (("side_effects", effect), ("read_only", lookup)):
            times[name].append(await one(tool, i, saved=True) - await one(tool, i, saved=False))
    figures = {name: round(statistics.median(values) * 1000, 3) for name, values in times.items()}
    bursts = []
    for burst in range(BURSTS):
        started = time.perf_counter()
        await asyncio.gather(*(one(effect, 1000 * (burst + 1) + i, saved=True) for i in range(16)))
        bursts.append(time.perf_counter() - started)
    figures["side_effects_16_at_once"] = round(statistics.median(bursts) * 1000 / 16, 3)
    return figures


def _effect(n: int) -> str:
    """A call with side effects (overhead measurement)."""
    return str(n)


@read_only
def _lookup(n: int) -> str:
    """A read-only call (overhead measurement)."""
    return str(n)


@contextlib.contextmanager
def checkpointer_store(kind: str, workdir: Path) -> Iterator[str]:
    """Where the workers keep their threads: a SQLite file, or a throwaway PostgreSQL."""
    if kind == "postgres":
        with local_postgres() as uri:
            yield uri
    else:
        yield str(workdir / "threads.sqlite")


def run(
    workdir: Path, store: str, scenario: str = "all", repeat: int = 1, seed: int = 0
) -> dict[str, Any]:
    """The scenarios on `store` (a SQLite file or a PostgreSQL URI), as one report."""
    report: dict[str, Any] = {
        "benchmark": "durability",
        "schema_version": 1,
        "checkpointer": "postgres" if store.startswith("postgresql://") else "sqlite",
        "scenario": scenario,
    }
    if scenario in ("answer", "all"):
        report.update(answer_scenario(workdir, store))
    if scenario in ("tools", "all"):
        report.update(tools_scenario(workdir, store, repeat, seed))
        overhead = asyncio.run(per_task_overhead_ms(store))
        report["per_task_overhead_ms"] = overhead["checkpointer"]["side_effects"]
        report["per_task_overhead_detail_ms"] = overhead
    tools_clean = scenario == "answer" or report["clean_runs"] == report["runs"]
    report["ok"] = report.get("answer_ok", True) and tools_clean
    return report


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="expressway bench durability")
    parser.add_argument("--scenario", choices=["all", "answer", "tools"], default="all")
    parser.add_argument("--repeat", type=int, default=1, help="tools scenario: kills at random")
    parser.add_argument("--seed", type=int, default=0, help="tools scenario: kill moments")
    parser.add_argument("--checkpointer", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="expressway-durability-") as workdir,
        checkpointer_store(args.checkpointer, Path(workdir)) as store,
    ):
        return run(Path(workdir), store, args.scenario, args.repeat, args.seed)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        scenario, store, thread, base_url, ledger, mode = sys.argv[2:8]
        asyncio.run(worker(scenario, store, thread, base_url, ledger, resume=mode == "resume"))
    else:
        print(json.dumps(main(sys.argv[1:])))
