"""The scale-out storage piece that runs here: the graph on a real PostgreSQL checkpointer
(started by infra/postgres-local.sh), its threads surviving a new process-level graph instance."""

import tempfile
from pathlib import Path

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde import _msgpack as msgpack_serde

from bench.harness import local_postgres
from bench.scripted_model import ScriptedChatModel
from expressway.context import Context
from graphs.agent import build_graph
from nodes.planner import encode_plan
from tools import DEFAULT_TOOLS

PLAN = encode_plan([("sql_query", {"query": "SELECT COUNT(*) FROM orders"})])


async def test_threads_persist_in_postgres_across_graph_instances(
    postgres_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Strict msgpack (LANGGRAPH_STRICT_MSGPACK=true, a future default) only restores allow-listed
    # types: the state's dataclasses must come back from the schema-derived allowlist.
    monkeypatch.setattr(msgpack_serde, "STRICT_MSGPACK_ENABLED", True)
    model = ScriptedChatModel(plans=[PLAN], answer="There are 12 orders.")
    config = {"configurable": {"thread_id": "customer-42"}}
    async with AsyncPostgresSaver.from_conn_string(postgres_uri) as saver:
        await saver.setup()
        agent = build_graph(
            tools=DEFAULT_TOOLS, models={"fast": model, "frontier": model}, checkpointer=saver
        )
        for question in ("How many orders are there?", "And how many orders are there now?"):
            await agent.ainvoke({"messages": [("user", question)]}, config, context=Context())

    async with AsyncPostgresSaver.from_conn_string(postgres_uri) as fresh_saver:
        restarted = build_graph(
            tools=DEFAULT_TOOLS, models={"fast": model}, checkpointer=fresh_saver
        )
        state = await restarted.aget_state(config)
        history = [snapshot async for snapshot in restarted.aget_state_history(config)]
    messages = state.values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]
    assert messages[-1].content == "There are 12 orders."
    assert state.values["results"][0].output == "12"
    assert state.values["route"].task == "lookup"
    assert len(history) > 4  # every step of both runs was checkpointed


def test_a_throwaway_postgres_leaves_no_folder_behind() -> None:
    def folders() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("expressway-pg-*"))

    before = folders()
    with local_postgres() as uri:
        assert uri.startswith("postgresql://") and len(folders()) == len(before) + 1
    assert folders() == before
