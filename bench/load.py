"""Load test (loopback only): N concurrent runs through `langgraph dev` against the simulated
backend in its own process. Counts lost and failed runs, records end-to-end and time-to-first-token
percentiles per run, and the server's memory (RSS) before and after. Bounded: N runs, one each."""

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import langgraph_dev, percentile, simulator_process, tiers_at
from bench.workload import QUESTIONS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def server_pid(port: int) -> int:
    """The process listening on 127.0.0.1:port (the API server itself, not its launcher)."""
    inode_hex = f"{port:04X}"
    inodes = {
        line.split()[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[1].endswith(f":{inode_hex}") and line.split()[3] == "0A"
    }
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
            except OSError:
                continue
            if any(f"socket:[{inode}]" in links for inode in inodes):
                return int(proc.name)
    raise RuntimeError(f"no process listens on port {port}")


async def one_run(client: Any, question: str) -> dict[str, Any]:
    started = time.monotonic()
    first_token, finished = None, False
    try:
        async for part in client.runs.stream(
            None,
            "agent",
            input={"messages": [{"role": "user", "content": question}]},
            stream_mode="custom",
        ):
            if part.event == "custom" and isinstance(part.data, dict):
                if part.data.get("type") == "token" and first_token is None:
                    first_token = time.monotonic() - started
                finished = finished or part.data.get("type") == "run.finished"
    except Exception as error:  # a failed run is counted, not raised
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:200]}
    return {"ok": finished, "e2e_s": time.monotonic() - started, "ttft_s": first_token}


async def run(concurrency: int, workdir: Path) -> dict[str, Any]:
    from langgraph_sdk import get_client

    with simulator_process(workdir / "simulator.log", "--workload") as sim_url:
        server_env = {**os.environ, **tiers_at(f"{sim_url}/v1")}
        # Every run executes at once rather than waiting in the server's queue.
        with langgraph_dev(server_env, workdir / "langgraph.log", jobs=concurrency) as url:
            pid = server_pid(int(url.rsplit(":", 1)[1]))
            client = get_client(url=url, timeout=300)
            await one_run(client, QUESTIONS[1].text)  # warm-up: imports, graph load
            memory_before = rss_mb(pid)
            started = time.monotonic()
            results = await asyncio.gather(
                *(one_run(client, QUESTIONS[i % len(QUESTIONS)].text) for i in range(concurrency))
            )
            wall = time.monotonic() - started
            memory_after = rss_mb(pid)
    ok = [r for r in results if r["ok"]]
    e2e = [r["e2e_s"] for r in ok]
    ttft = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    return {
        "benchmark": "load",
        "schema_version": 1,
        "concurrent_runs": concurrency,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r["error"] for r in results if not r["ok"] and "error" in r})[:5],
        "wall_s": round(wall, 3),
        "e2e_p50_s": round(statistics.median(e2e), 3) if e2e else None,
        "e2e_p99_s": round(percentile(e2e, 99), 3) if e2e else None,
        "ttft_p50_s": round(statistics.median(ttft), 3) if ttft else None,
        "ttft_p99_s": round(percentile(ttft, 99), 3) if ttft else None,
        "server_rss_mb_before": round(memory_before, 1),
        "server_rss_mb_after": round(memory_after, 1),
    }


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench load")
    parser.add_argument("--runs", type=int, default=200, help="concurrent runs (one each)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="expressway-load-") as workdir:
        return asyncio.run(run(args.runs, Path(workdir)))
