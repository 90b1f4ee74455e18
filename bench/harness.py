"""Processes the benchmarks and integration tests start: free ports, readiness, `langgraph dev`,
a throwaway PostgreSQL, the HTTP app under plain uvicorn, and what a server process costs (CPU
seconds, memory)."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
def running(
    args: list[str], ready_url: str, env: dict[str, str], log: Path, cwd: Path = REPO_ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process (in `cwd`) until the block ends; its output goes to `log`."""
    with log.open("wb") as log_file:
        child = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        try:
            wait_http(ready_url, 120, child)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{log.read_text(errors='replace')[-3000:]}") from error
        yield child
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
    """A throwaway PostgreSQL on a free loopback port (infra/postgres-local.sh); yields its URI.
    Its folder (about 40 MB of data) is removed once the server has stopped."""
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
        shutil.rmtree(folder)


@contextlib.contextmanager
def simulator_process(log: Path, *options: str) -> Iterator[str]:
    """The simulated backend (bench/simulator.py) in its own process, so it shares no GIL with the
    code under measurement; yields its root URL (its API is under /v1)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "bench.simulator", "--port", str(port), *options]
    with running(args, f"{url}/health", {**os.environ, "PYTHONUNBUFFERED": "1"}, log):
        yield url


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it that is alive now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 on (after the parenthesized command name, which may hold
    spaces): index 1 is the parent's pid, 11-14 utime, stime, cutime, cstime."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_ticks(pid: int) -> int:
    # utime and stime, and the same for the children it has waited for.
    return sum(int(value) for value in _stat_fields(pid)[11:15])


@dataclass(frozen=True)
class ServerProcess:
    """A server the harness started: its URL and the process that serves it (with its workers)."""

    url: str
    pid: int

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server and its worker processes have used so far."""
        ticks = 0
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError):
                ticks += _cpu_ticks(pid)
        return ticks / _CLOCK_TICKS

    def rss_mb(self) -> float:
        """Resident memory of the server and its worker processes, in MiB."""
        total_kib = 0
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
        return total_kib / 1024


def hermetic_config(config: Path, folder: Path) -> Path:
    """A copy of a langgraph.json in `folder`, with absolute paths and no `.env`, for a
    `langgraph dev` that runs in `folder`. Its in-memory runtime pickles its runs into
    .langgraph_api/ in the working directory, and a server started where an earlier one stopped
    resumes the runs that one left unfinished: each server gets a fresh folder."""
    data = json.loads(config.read_text())
    base = config.parent.resolve()

    def absolute(reference: str) -> str:
        location, colon, name = reference.rpartition(":")
        if not location.startswith("."):
            return reference
        return f"{(base / location).resolve()}{colon}{name}"

    data["graphs"] = {graph_id: absolute(path) for graph_id, path in data["graphs"].items()}
    for section, key in (("http", "app"), ("auth", "path")):
        if key in data.get(section, {}):
            data[section][key] = absolute(data[section][key])
    data["dependencies"] = [
        str((base / path).resolve()) if path.startswith(".") else path
        for path in data.get("dependencies", [])
    ]
    data.pop("env", None)
    copy = folder / "langgraph.json"
    copy.write_text(json.dumps(data))
    return copy


@contextlib.contextmanager
def langgraph_server(
    env: dict[str, str], log: Path, jobs: int = 10, config: Path | None = None
) -> Iterator[ServerProcess]:
    """`langgraph dev` serving `config` (default: this repo's langgraph.json, which also mounts
    the fast route; see hermetic_config), running up to `jobs` runs at once."""
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
    folder = Path(tempfile.mkdtemp(prefix="langgraph-dev-", dir=log.parent))
    args += ["--config", str(hermetic_config(config or REPO_ROOT / "langgraph.json", folder))]
    url = f"http://127.0.0.1:{port}"
    with running(args, f"{url}/ok", env, log, cwd=folder) as child:
        yield ServerProcess(url, child.pid)


@contextlib.contextmanager
def langgraph_dev(
    env: dict[str, str], log: Path, jobs: int = 10, config: Path | None = None
) -> Iterator[str]:
    """`langgraph_server`, yielding only its URL."""
    with langgraph_server(env, log, jobs, config) as server:
        yield server.url


@contextlib.contextmanager
def uvicorn_server(env: dict[str, str], log: Path, workers: int = 1) -> Iterator[ServerProcess]:
    """The HTTP app (app/http_app.py) under plain uvicorn with `workers` processes, as deployed
    without LangGraph's server."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "app.http_app:app", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    with running(args, f"{url}/fast/ok", env, log) as child:
        yield ServerProcess(url, child.pid)


@contextlib.contextmanager
def serve_in_thread(app: Any, send_buffer_bytes: int = 0) -> Iterator[str]:
    """Serve an ASGI app (lifespan included) with uvicorn on a background thread on 127.0.0.1;
    yields its URL. `send_buffer_bytes` shrinks the kernel's send buffer of every connection, so
    that a slow client's backpressure reaches the app after a few kilobytes, as over a slow
    network, rather than after the megabytes loopback buffers."""
    import uvicorn

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer_bytes:  # accepted connections inherit it
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start within 30 s (see the log above)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        listener.close()
