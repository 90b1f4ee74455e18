"""Tools from a local stdio MCP server (the SDK's own MCPServer, no network): listed, planned, run
in parallel, timed out and isolated like local tools; a server that fails to start or dies."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.tools import StructuredTool

from bench.scripted_model import ScriptedChatModel
from expressway.context import ConfigurationError, Context
from expressway.events import iter_events
from expressway.mcp_tools import MCPConfigError, MCPServers, configured_servers, read_config
from expressway.toolbox import is_read_only
from graphs.agent import build_graph
from nodes.planner import encode_plan
from nodes.task_runner import call_tool

ROOT = Path(__file__).resolve().parents[2]
SERVER = {"command": sys.executable, "args": [str(ROOT / "tests/mcp_servers/lookup_server.py")]}
QUESTION = "Look up the status of order a and order bb in the remote store."


def _plan(*calls: tuple[str, dict]) -> str:
    return encode_plan(list(calls))


def local_count(word: str) -> str:
    """Counts the letters of a word (a local tool beside the MCP ones)."""
    return str(len(word))


@pytest.fixture(scope="module")
async def servers():
    servers = MCPServers({"lookup": SERVER})
    yield servers
    await servers.aclose()


async def _run(graph, **context) -> list[dict]:
    stream = graph.astream(
        {"messages": [("user", QUESTION)]}, context=Context(**context), stream_mode=["custom"]
    )
    return [event async for event in iter_events(stream)]


def _finished(events: list[dict]) -> dict[str, dict]:
    starts = {e["task_id"]: e["t"] for e in events if e["type"] == "task.started"}
    return {
        f"{e['tool']}#{e['task_id']}": {**e, "started": starts[e["task_id"]]}
        for e in events
        if e["type"] == "task.finished"
    }


async def test_tools_are_listed_with_schemas_and_the_read_only_hint(servers) -> None:
    tools = {tool.name: tool for tool in await servers.tools(startup_timeout_s=30)}
    assert set(tools) == {
        "remote_lookup",
        "remote_hang",
        "remote_broken",
        "remote_crash",
        "remote_chart",
    }
    lookup = tools["remote_lookup"]
    assert isinstance(lookup, StructuredTool) and lookup.coroutine is not None
    assert lookup.args["key"]["type"] == "string"
    assert "remote store" in lookup.description
    assert is_read_only(lookup) and not is_read_only(tools["remote_hang"])
    assert lookup.metadata["mcp_server"] == "lookup"
    # Listed once: a second run reuses the session and the tools.
    assert [t.name for t in await servers.tools(30)] == list(tools)


async def test_mcp_tools_are_planned_run_in_parallel_timed_out_and_isolated(servers) -> None:
    plan = _plan(
        ("remote_lookup", {"key": "a"}),
        ("remote_lookup", {"key": "bb"}),
        ("remote_hang", {"key": "c"}),
        ("remote_broken", {"key": "d"}),
        ("local_count", {"word": "four"}),
    )
    model = ScriptedChatModel(plans=[plan], answer="a = 7, bb = 14.")
    graph = build_graph(
        tools=[local_count], mcp_servers=servers, models={"fast": model, "frontier": model}
    )
    events = await _run(graph, tool_timeout_s=3, max_replans=0)

    schema = json.dumps(model.calls[0]["response_format"])
    assert '"remote_lookup"' in schema and '"local_count"' in schema  # offered to the planner
    done = _finished(events)
    first, second = done["remote_lookup#1"], done["remote_lookup#2"]
    assert (first["status"], first["output"]) == ("ok", "a = 7")
    assert (second["status"], second["output"]) == ("ok", "bb = 14")
    # The two calls share one session and overlap in time.
    assert max(first["started"], second["started"]) < min(first["t"], second["t"])
    assert done["remote_hang#3"]["status"] == "error"
    assert "timed out after 3 s" in done["remote_hang#3"]["output"]
    assert done["remote_broken#4"]["status"] == "error"
    assert "MCPToolError" in done["remote_broken#4"]["output"]
    assert done["local_count#5"]["output"] == "4"
    # The hung call did not hold the siblings back.
    assert first["t"] < done["remote_hang#3"]["t"]
    assert events[-1]["type"] == "run.finished"


async def test_mcp_tools_fan_out_in_parallel_calls_mode(servers) -> None:
    plan = _plan(("remote_lookup", {"key": "pq"}), ("remote_lookup", {"key": "rst"}))
    model = ScriptedChatModel(plans=[plan], answer="pq = 14, rst = 21.")
    graph = build_graph(tools=[], mcp_servers=servers, models={"fast": model, "frontier": model})
    done = _finished(await _run(graph, execution_mode="parallel_calls"))
    first, second = done["remote_lookup#1"], done["remote_lookup#2"]
    assert (first["output"], second["output"]) == ("pq = 14", "rst = 21")
    assert max(first["started"], second["started"]) < min(first["t"], second["t"])


async def test_a_server_that_dies_mid_run_fails_its_call_and_restarts_on_the_next() -> None:
    servers = MCPServers({"lookup": SERVER})
    try:
        tools = {tool.name: tool for tool in await servers.tools(30)}
        with pytest.raises(Exception, match=r"MCP server 'lookup'.*closed the connection"):
            await call_tool(tools["remote_crash"], {"key": "x"}, timeout_s=10)
        assert await call_tool(tools["remote_lookup"], {"key": "abc", "seconds": 0}, 10) == (
            "abc = 21"
        )
    finally:
        await servers.aclose()


async def test_a_server_that_fails_to_start_is_named_and_the_other_tools_still_run(
    servers,
) -> None:
    broken = MCPServers({"inventory": {"command": "no-such-mcp-server", "args": ["--stdio"]}})
    model = ScriptedChatModel(
        plans=[_plan(("local_count", {"word": "abc"}))], answer="The word has 3 letters."
    )
    graph = build_graph(
        tools=[local_count], mcp_servers=broken, models={"fast": model, "frontier": model}
    )
    events = await _run(graph, max_replans=0)
    assert _finished(events)["local_count#1"]["output"] == "3"
    problem = broken.problems["inventory"]
    assert "'inventory'" in problem and "no-such-mcp-server --stdio" in problem
    assert "could not be started" in problem


async def test_content_blocks_become_text() -> None:
    servers = MCPServers({"lookup": SERVER})
    try:
        chart = next(t for t in await servers.tools(30) if t.name == "remote_chart")
        text = await call_tool(chart, {"key": "q3"}, 10)
        assert text == "chart of q3\n[image content, image/png]"
    finally:
        await servers.aclose()

    async def blocks(key: str) -> tuple[list[dict], dict]:
        """Returns LangChain content blocks, like langchain-mcp-adapters' tools."""
        return [{"type": "text", "text": f"{key} ok"}, {"type": "image", "base64": "AA"}], {}

    tool = StructuredTool.from_function(
        coroutine=blocks, name="blocks", response_format="content_and_artifact"
    )
    assert await call_tool(tool, {"key": "k"}, 10) == "k ok\n[image content]"


async def test_the_context_setting_adds_a_config_files_servers(tmp_path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"lookup": SERVER}}))
    model = ScriptedChatModel(plans=[_plan(("remote_lookup", {"key": "xy", "seconds": 0}))])
    graph = build_graph(tools=[local_count], models={"fast": model, "frontier": model})
    try:
        events = await _run(graph, mcp_config=str(config), max_replans=0)
        assert _finished(events)["remote_lookup#1"]["output"] == "xy = 14"
    finally:
        await configured_servers(str(config)).aclose()
        configured_servers.cache_clear()


def test_importing_the_graph_starts_no_server(tmp_path) -> None:
    marker = tmp_path / "started"
    starter = f"open({str(marker)!r}, 'w').close()"
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"s": {"command": sys.executable, "args": ["-c", starter]}}})
    )
    code = "import sys, graphs.agent; print('mcp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"EXPRESSWAY_MCP_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False"  # the SDK is not even imported
    assert not marker.exists()


@pytest.mark.reliability("configuration")
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "unreadable"),
        ('{"servers": {}}', "no `mcpServers` object"),
        ('{"mcpServers": {}}', "no MCP servers are listed"),
        ('{"mcpServers": {"inv": {"args": ["x"]}}}', "server 'inv' needs either a `command`"),
        ('{"mcpServers": {"inv": {"command": "x", "url": "http://h"}}}', "either a `command`"),
        ('{"mcpServers": {"inv": {"command": "x", "args": "a b"}}}', "list of strings"),
        ('{"mcpServers": {"inv": {"command": "x", "cmd": "y"}}}', "unknown keys ['cmd']"),
    ],
)
def test_a_wrong_config_file_names_the_server_and_the_fix(tmp_path, content, message) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(content)
    with pytest.raises(MCPConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_config(config)


@pytest.mark.reliability("configuration")
def test_the_setting_must_name_a_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EXPRESSWAY_MCP_CONFIG", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match="EXPRESSWAY_MCP_CONFIG"):
        Context()


async def test_the_mcp_benchmark_reports_its_figures() -> None:
    from bench.mcp_calls import run

    report = await run(kept_calls=3, new_process_calls=1, concurrency=4, latency_s=0.3)
    assert report["concurrent_all_ok"]
    for figure in ("kept_session_call", "new_process_per_call"):
        assert set(report[figure]) == {"p50_ms", "max_ms"}
    assert report["first_start_s"] > 0 and report["concurrent_wall_s"] >= 0.3
