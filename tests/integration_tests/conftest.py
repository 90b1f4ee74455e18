"""Starts the real embedded vLLM once per test session (or reuses one already on the port), and
a throwaway PostgreSQL (infra/postgres-local.sh) for the tests that need one."""

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.embedded import start_server
from bench.harness import REPO_ROOT, free_port


@pytest.fixture(scope="session")
def embedded_port() -> Iterator[int]:
    """EXPRESSWAY_TEST_EMBEDDED_PORT reuses a server you already run; otherwise one is started on a
    free port and stopped at the end."""
    reuse = os.environ.get("EXPRESSWAY_TEST_EMBEDDED_PORT")
    port = int(reuse) if reuse else free_port()
    server = start_server(port, progress=lambda line: print(line, flush=True), timeout_s=900)
    previous = os.environ.get("EXPRESSWAY_EMBEDDED_PORT")
    os.environ["EXPRESSWAY_EMBEDDED_PORT"] = str(port)
    yield port
    if previous is None:
        os.environ.pop("EXPRESSWAY_EMBEDDED_PORT", None)
    else:
        os.environ["EXPRESSWAY_EMBEDDED_PORT"] = previous
    if server.process is not None:
        server.stop()


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="expressway-pg-")
    Path(folder).chmod(0o755)
    script = str(REPO_ROOT / "infra" / "postgres-local.sh")
    started = subprocess.run(
        [script, "start", folder, str(free_port())], capture_output=True, text=True, check=True
    )
    yield started.stdout.strip()
    subprocess.run([script, "stop", folder], check=True)
