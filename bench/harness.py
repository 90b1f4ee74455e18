"""Processes the benchmarks and integration tests start: free ports, readiness, `langgraph dev`,
a throwaway PostgreSQL."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from expressway.context import Context

REPO_ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


@contextlib.contextmanager
def running(args: list[str], ready_url: str, env: dict[str, str], log: Path) -> Iterator[None]:
    """Run a server process until the block ends; its output goes to `log`."""
    with log.open("wb") as log_file:
        child = subprocess.Popen(
            args, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
        )
    try:
        try:
            wait_http(ready_url, 120, child)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{log.read_text(errors='replace')[-3000:]}") from error
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def tiers_at(base_url: str) -> dict[str, str]:
    """Environment that points both tiers at one OpenAI-compatible endpoint."""
    return {"EXPRESSWAY_FAST_BASE_URL": base_url, "EXPRESSWAY_FRONTIER_BASE_URL": base_url}


def context_at(base_url: str, **fields: Any) -> Context:
    """A run context whose two tiers are both served by `base_url`."""
    return Context(fast_base_url=base_url, frontier_base_url=base_url, **fields)


@contextlib.contextmanager
def local_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL on a free loopback port (infra/postgres-local.sh); yields its URI."""
    folder = tempfile.mkdtemp(prefix="expressway-pg-")
    Path(folder).chmod(0o755)  # the server runs as the `postgres` user when we are root
    script = str(REPO_ROOT / "infra" / "postgres-local.sh")
    started = subprocess.run(
        [script, "start", folder, str(free_port())], capture_output=True, text=True, check=True
    )
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([script, "stop", folder], check=True)


@contextlib.contextmanager
def simulator_process(log: Path, *options: str) -> Iterator[str]:
    """The simulated backend (bench/simulator.py) in its own process, so it shares no GIL with the
    code under measurement; yields its root URL (its API is under /v1)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "bench.simulator", "--port", str(port), *options]
    with running(args, f"{url}/health", {**os.environ, "PYTHONUNBUFFERED": "1"}, log):
        yield url


@contextlib.contextmanager
def langgraph_dev(env: dict[str, str], log: Path, jobs: int = 10) -> Iterator[str]:
    """`langgraph dev` serving this repo's langgraph.json, running up to `jobs` runs at once;
    yields its URL."""
    port = free_port()
    # `-m langgraph_cli`, not the console script: it runs wherever the package imports.
    args = [
        sys.executable,
        "-m",
        "langgraph_cli",
        "dev",
        "--port",
        str(port),
        "--no-browser",
        "--no-reload",
    ]
    args += ["--n-jobs-per-worker", str(jobs)]
    url = f"http://127.0.0.1:{port}"
    with running(args, f"{url}/ok", env, log):
        yield url
