"""Where the HTTP app keeps threads: the LangGraph server's own checkpointer when the app is
mounted there, Postgres at DATABASE_URI under plain uvicorn, else memory (one process only)."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

DATABASE_URI = "DATABASE_URI"
MIGRATION_LOCK = 0x45585052  # any fixed number, the same in every worker ("EXPR")


def mounted_in_langgraph_server() -> bool:
    """True when LangGraph's server loaded this app from langgraph.json's `http.app`."""
    return "langgraph_api" in sys.modules


async def server_checkpointer() -> BaseCheckpointSaver:
    """The checkpointer LangGraph's server runs its own graphs with (in memory for
    `langgraph dev`, Postgres or a custom one in a deployment), so both routes keep threads in
    one place. `langgraph_api._checkpointer` is the server's internal module (langgraph-api
    0.16): tests/integration_tests/test_http_app.py runs against it."""
    from langgraph_api._checkpointer import get_checkpointer

    return await get_checkpointer()  # type: ignore[return-value]


@asynccontextmanager
async def own_checkpointer() -> AsyncIterator[BaseCheckpointSaver]:
    """The app's checkpointer when no LangGraph server provides one: Postgres at DATABASE_URI
    (every uvicorn worker and replica sees every thread), else memory (threads live in one
    worker process and are lost when it stops)."""
    uri = os.environ.get(DATABASE_URI)
    if not uri:
        yield InMemorySaver()
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    # The settings AsyncPostgresSaver.from_conn_string uses, on a pool shared by concurrent runs
    # (a run holds a connection only while it reads or writes a checkpoint).
    connection = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    async with AsyncConnectionPool(uri, kwargs=connection, max_size=16, open=False) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        # Workers start together: an advisory lock lets one at a time create or migrate tables.
        # Polled, not awaited with pg_advisory_lock: a session blocked there holds a transaction
        # open, and the migrations' CREATE INDEX CONCURRENTLY waits for it (a deadlock).
        async with pool.connection() as lock:
            while not await _try_lock(lock):  # noqa: ASYNC110 (another process holds it)
                await asyncio.sleep(0.2)
            try:
                await saver.setup()
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        yield saver


async def _try_lock(connection: Any) -> bool:
    cursor = await connection.execute("SELECT pg_try_advisory_lock(%s) AS held", (MIGRATION_LOCK,))
    row = await cursor.fetchone()
    return bool(row and row["held"])
