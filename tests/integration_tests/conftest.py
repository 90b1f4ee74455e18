"""Starts the real embedded vLLM once per test session (or reuses one already on the port), and a
throwaway PostgreSQL for the tests that need one."""

import os
from collections.abc import Iterator

import pytest

from app.embedded import start_server
from bench.harness import free_port, local_postgres


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
    """A PostgreSQL started by infra/postgres-local.sh for the session, stopped at the end."""
    with local_postgres() as uri:
        yield uri
