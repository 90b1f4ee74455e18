"""Durability: a process running the graph on a SQLite checkpointer is killed with SIGKILL while
the answer streams; a new process resumes the thread from its last checkpoint.

Checked: the resumed run finishes with the question and one complete answer in the thread (no
message lost or doubled), and the side-effect tools that had finished before the kill are not run
again (each appends a line to a ledger file). A kill while tools are still running re-runs that
stage on resume (LangGraph checkpoints between nodes), so tools with side effects must be idempotent
in that window; this check covers the window after the tools' checkpoint.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, context_at
from bench.simulator import LatencyProfile, RunningSimulator, SimulatedBackend

QUESTION = "Please record order 7 and order 8 as shipped."
ANSWER = " ".join(f"word{i}" for i in range(60)) + "."
PLAN = json.dumps(
    {
        "tasks": [
            {"id": 1, "tool": "record_shipment", "args": {"order_id": 7}, "deps": []},
            {"id": 2, "tool": "record_shipment", "args": {"order_id": 8}, "deps": []},
        ]
    }
)


def scripted(request: dict[str, Any]) -> str:
    return PLAN if "response_format" in request else ANSWER


async def worker(database: str, thread: str, base_url: str, ledger: str, resume: bool) -> None:
    """Run (or resume) the thread, printing each event as a JSON line."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from graphs.agent import build_graph

    def record_shipment(order_id: int) -> str:
        """Marks an order as shipped (a side effect: one ledger line per call)."""
        with open(ledger, "a", encoding="utf-8") as file:
            file.write(f"{order_id}\n")
        return f"order {order_id} recorded"

    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        graph = build_graph(tools=[record_shipment], checkpointer=saver)
        config = {"configurable": {"thread_id": thread}}
        payload = None if resume else {"messages": [("user", QUESTION)]}
        context = context_at(base_url)
        async for _, event in graph.astream(
            payload, config, context=context, stream_mode=["custom"], durability="sync"
        ):
            print(json.dumps(event), flush=True)
        state = await graph.aget_state(config)
        messages = [{"type": m.type, "text": m.text} for m in state.values["messages"]]
        print(json.dumps({"type": "final_state", "messages": messages}), flush=True)


def _worker_command(database: Path, base_url: str, ledger: Path, resume: bool) -> list[str]:
    return [
        sys.executable, "-m", "bench.durability", "worker", str(database), "t-1", base_url,
        str(ledger), "resume" if resume else "start",
    ]  # fmt: skip


def run(workdir: Path) -> dict[str, Any]:
    database, ledger = workdir / "threads.sqlite", workdir / "ledger.txt"
    profile = LatencyProfile(ttft_s=0.05, tokens_per_s=20)  # a slow answer to kill mid-stream
    with RunningSimulator(SimulatedBackend(scripted, profile)) as simulator:
        first = subprocess.Popen(
            _worker_command(database, simulator.base_url, ledger, resume=False),
            stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        )  # fmt: skip
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
        resumed = subprocess.run(
            _worker_command(database, simulator.base_url, ledger, resume=True),
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
        )  # fmt: skip
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    final = next((e for e in events if e["type"] == "final_state"), {"messages": []})
    ledger_final = ledger.read_text().split()
    messages = final["messages"]
    return {
        "benchmark": "durability",
        "schema_version": 1,
        "killed_with": "SIGKILL",
        "killed_after_tokens": tokens_before_kill,
        "first_exit_code": first.returncode,
        "resume_exit_code": resumed.returncode,
        "tool_calls_before_kill": len(ledger_after_kill),
        "tool_calls_after_resume": len(ledger_final),
        "messages": [m["type"] for m in messages],
        "answer_complete": bool(messages) and messages[-1]["text"] == ANSWER,
        "ok": (
            resumed.returncode == 0
            and [m["type"] for m in messages] == ["human", "ai"]
            and messages[-1]["text"] == ANSWER
            and sorted(ledger_final) == ["7", "8"]
        ),
        "resume_stderr_tail": resumed.stderr[-500:] if resumed.returncode else "",
    }


def main(argv: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="expressway-durability-") as workdir:
        return run(Path(workdir))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        database, thread, base_url, ledger, mode = sys.argv[2:7]
        asyncio.run(worker(database, thread, base_url, ledger, resume=mode == "resume"))
    else:
        print(json.dumps(main(sys.argv[1:])))
