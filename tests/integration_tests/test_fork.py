"""A fork's first steps on the real embedded vLLM: the fork check on the sample tools (local and
over MCP), and a tier added in the routing table. The model's quality figures are reported by
the check, not asserted here: the harness must run and report every field."""

import functools
import json
import sys
from pathlib import Path

import pytest
import yaml

import routers.route_request
import routers.table
from app.check_tools import Question, load_questions, load_tools, run_check
from expressway import context as context_module
from expressway.context import Context
from expressway.events import iter_events
from graphs.agent import build_graph
from routers import classify_turn, load_routing_table
from routers.table import DEFAULT_TABLE

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples/fork_check"
ROW_FIELDS = {
    "question",
    "needs_tools",
    "expected_tools",
    "route",
    "planned",
    "planned_tools",
    "missing_tools",
    "plan_errors",
    "plan_ok",
    "answer",
    "ok_results",
    "results_used",
    "unbacked_facts",
    "grounded",
    "timings",
    "error",
}
TOTAL_FIELDS = {
    "questions",
    "tool_questions",
    "plan_ok",
    "plan_ok_rate",
    "no_tool_questions_planned_nothing",
    "planned_tasks",
    "args_valid",
    "calls_ok",
    "grounded_answers",
    "unbacked_fact_answers",
    "unbacked_without_any_result",
    "failed_runs",
    "median_wall_s",
    "goals",
}


def _assert_complete(report: dict, questions: list[Question]) -> None:
    assert [row["question"] for row in report["questions"]] == [q.text for q in questions]
    for row in report["questions"]:
        assert set(row) == ROW_FIELDS
        assert row["error"] == "" and row["answer"].strip()
        assert row["route"]["tier"] in ("fast", "frontier")
        assert row["timings"]["total"] > 0 and row["timings"]["wall"] > 0
        for task in row["planned"]:
            assert {"tool", "args", "args_valid", "args_errors", "ran_ok"} <= set(task)
    assert set(report["totals"]) == TOTAL_FIELDS
    assert report["totals"]["questions"] == len(questions)
    assert report["totals"]["failed_runs"] == 0
    json.dumps(report)  # the --json output


async def test_fork_check_on_the_sample_tools(embedded_port: int) -> None:
    everything = load_questions(SAMPLE / "questions.jsonl")
    # One single-tool, one two-tool and one no-tool question keep the run short.
    questions = [everything[0], everything[5], next(q for q in everything if not q.needs_tools)]
    report = await run_check(load_tools(str(SAMPLE / "warehouse_tools.py")), questions, Context())
    _assert_complete(report, questions)
    assert report["backend"]["fast"]["base_url"] == f"http://127.0.0.1:{embedded_port}/v1"
    # The goals on these questions: both tool questions planned with valid arguments, and
    # no tool-backed fact stated without a usable result.
    assert report["totals"]["goals"]["plan_ok_rate"]["met"], report["questions"]
    assert report["totals"]["unbacked_without_any_result"] == 0


async def test_fork_check_on_tools_from_an_mcp_server(embedded_port: int, tmp_path) -> None:
    config = tmp_path / "mcp.json"
    server = {"command": sys.executable, "args": [str(ROOT / "examples/mcp/warehouse_server.py")]}
    config.write_text(json.dumps({"mcpServers": {"warehouse": server}}))
    questions = load_questions(SAMPLE / "questions.jsonl")[2:4]
    report = await run_check([], questions, Context(mcp_config=str(config)))
    _assert_complete(report, questions)
    assert report["tools"] == sorted(
        tool.name for tool in load_tools(str(SAMPLE / "warehouse_tools.py"))
    )


async def test_a_tier_added_in_the_routing_table_answers(
    embedded_port: int, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(context_module, "ADDED_TIERS", dict(context_module.ADDED_TIERS))
    monkeypatch.setattr(routers.table, "ADDED_TIERS", context_module.ADDED_TIERS)
    table = yaml.safe_load(DEFAULT_TABLE.read_text())
    table["tiers"] = {"local": {"model": "smollm2"}}  # no base_url: the embedded server
    table["tasks"]["chat"]["tier"] = "local"
    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump(table))
    load_routing_table(path)
    monkeypatch.setattr(
        routers.route_request, "classify_turn", functools.partial(classify_turn, table_path=path)
    )
    stream = build_graph().astream(
        {"messages": [("user", "Hello there, how are you today?")]},
        context=Context(),
        stream_mode=["custom"],
    )
    events = [event async for event in iter_events(stream)]
    route = next(event for event in events if event["type"] == "route.decided")
    tokens = [event for event in events if event["type"] == "token"]
    assert route["tier"] == "local"
    assert tokens and {(e["tier"], e["model"]) for e in tokens} == {("local", "smollm2")}
