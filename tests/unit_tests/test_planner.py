"""The planner's stream parser yields each task as soon as it closes, and every invalid plan is
reported clearly."""

import json

import pytest

from bench.scripted_model import ScriptedChatModel
from expressway.state import PlannedTask
from expressway.toolbox import as_tools
from nodes.planner import PlanError, PlanValidator, TaskStreamParser, plan_json_schema, stream_plan
from tools import DEFAULT_TOOLS

TOOLS = as_tools(DEFAULT_TOOLS)
PLAN = (
    '{"tasks": [{"id": 1, "tool": "current_time", "args": {"timezone": "Tokyo"}, "deps": []}, '
    '{"id": 2, "tool": "sql_query", "args": {"query": "SELECT \\"}\\" FROM x"}, "deps": []}, '
    '{"id": 3, "tool": "calculator", "args": {"expression": "$2 * 2"}, "deps": [2]}]}'
)


def test_parser_yields_each_task_the_moment_its_brace_closes() -> None:
    parser = TaskStreamParser()
    arrivals = []
    for position, char in enumerate(PLAN):
        for task in parser.feed(char):
            arrivals.append((position, task["id"]))
    parser.finish()
    assert [task_id for _, task_id in arrivals] == [1, 2, 3]
    task_1_closes = PLAN.index('"deps": []}') + len('"deps": []}') - 1
    assert arrivals[0][0] == task_1_closes


@pytest.mark.reliability("model output")
def test_parser_reports_a_cut_off_plan() -> None:
    parser = TaskStreamParser()
    parser.feed(PLAN[:60])
    with pytest.raises(PlanError, match="not complete JSON"):
        parser.finish()


def _validator() -> PlanValidator:
    return PlanValidator(tools={tool.name: tool for tool in TOOLS}, seen=set(), max_tasks=8)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"id": 1, "tool": "rm_rf", "args": {}, "deps": []}, "unknown tool"),
        ({"id": 1, "tool": "calculator", "args": {"expr": "1"}, "deps": []}, "bad arguments"),
        ({"id": 1, "tool": "calculator", "args": {}, "deps": []}, "missing"),
        (
            {"id": 1, "tool": "calculator", "args": {"expression": "1"}, "deps": [7]},
            "not an earlier task",
        ),
        ({"id": 1, "tool": "calculator", "args": {"expression": "$1"}, "deps": []}, "itself"),
        (
            {"id": 1, "tool": "calculator", "args": {"expression": "$2 + 1"}, "deps": []},
            "not an earlier task",
        ),
        (
            {"id": "one", "tool": "calculator", "args": {"expression": "1"}, "deps": []},
            "integer id",
        ),
        ({"id": 1, "tool": "calculator", "args": "1+1", "deps": []}, "args must be an object"),
    ],
)
@pytest.mark.reliability("model output")
def test_invalid_tasks_are_refused_with_a_reason(task: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        _validator().check(task)


@pytest.mark.reliability("model output")
def test_duplicate_ids_and_forward_cycles_are_refused() -> None:
    validator = _validator()
    validator.check({"id": 1, "tool": "calculator", "args": {"expression": "1"}, "deps": []})
    with pytest.raises(PlanError, match="used twice"):
        validator.check({"id": 1, "tool": "calculator", "args": {"expression": "2"}, "deps": []})
    # A cycle 2 -> 3 -> 2 cannot be written: 2 may only depend on tasks before it.
    with pytest.raises(PlanError, match="not an earlier task"):
        validator.check({"id": 2, "tool": "calculator", "args": {"expression": "1"}, "deps": [3]})


def test_references_become_dependencies() -> None:
    validator = _validator()
    validator.check({"id": 1, "tool": "sql_query", "args": {"query": "SELECT 1"}, "deps": []})
    task = validator.check(
        {"id": 2, "tool": "calculator", "args": {"expression": "$1 * 2"}, "deps": []}
    )
    assert task == PlannedTask(id=2, tool="calculator", args={"expression": "$1 * 2"}, deps=[1])


def test_schema_constrains_tool_names_and_arguments() -> None:
    schema = plan_json_schema(TOOLS, 8)
    variants = schema["properties"]["tasks"]["items"]["anyOf"]
    assert {variant["properties"]["tool"]["const"] for variant in variants} == {
        t.name for t in TOOLS
    }
    calculator = next(v for v in variants if v["properties"]["tool"]["const"] == "calculator")
    assert calculator["properties"]["args"]["required"] == ["expression"]
    json.dumps(schema)


async def test_stream_plan_yields_valid_tasks_and_errors_in_order() -> None:
    plan = (
        '{"tasks": [{"id": 1, "tool": "calculator", "args": {"expression": "1+1"}, "deps": []}, '
        '{"id": 2, "tool": "teleport", "args": {}, "deps": []}, '
        '{"id": 3, "tool": "calculator", "args": {"expression": "$1 * 3"}, "deps": [1]}]}'
    )
    model = ScriptedChatModel(plans=[plan], chunk_chars=5)
    items = [item async for item in stream_plan(model, [], TOOLS, 8)]
    assert [type(item).__name__ for item in items] == ["PlannedTask", "PlanError", "PlannedTask"]
    assert "unknown tool 'teleport'" in str(items[1])
    assert model.calls[0]["response_format"]["json_schema"]["schema"]["required"] == ["tasks"]


@pytest.mark.reliability("model output")
async def test_stream_plan_reports_invalid_json() -> None:
    model = ScriptedChatModel(plans=['{"tasks": [{"id": 1, "tool": '])
    items = [item async for item in stream_plan(model, [], TOOLS, 8)]
    assert len(items) == 1 and isinstance(items[0], PlanError)


async def test_a_replan_is_renumbered_after_earlier_results() -> None:
    plan = (
        '{"tasks": [{"id": 1, "tool": "sql_query", "args": {"query": "SELECT 1"}, "deps": []}, '
        '{"id": 2, "tool": "calculator", "args": {"expression": "$1 * 2"}, "deps": [1]}]}'
    )
    items = [i async for i in stream_plan(ScriptedChatModel(plans=[plan]), [], TOOLS, 8, 5)]
    assert [(t.id, t.deps, t.args) for t in items] == [
        (6, [], {"query": "SELECT 1"}),
        (7, [6], {"expression": "$6 * 2"}),
    ]


@pytest.mark.reliability("model output")
async def test_a_plan_that_repeats_itself_is_cut_off() -> None:
    task = '{{"id": {}, "tool": "search_docs", "args": {{"query": "returns"}}, "deps": []}}'
    plan = '{"tasks": [' + ", ".join(task.format(i) for i in range(1, 9)) + "]}"
    model = ScriptedChatModel(plans=[plan], chunk_chars=16)
    items = [item async for item in stream_plan(model, [], TOOLS, 16)]
    assert isinstance(items[0], PlannedTask)
    assert [type(item).__name__ for item in items[1:]] == [
        "DuplicateTaskError",
        "DuplicateTaskError",
        "PlanError",
    ]
    assert "stopped reading" in str(items[-1])


async def test_a_plan_cut_by_its_token_budget_is_a_clear_error() -> None:
    from langchain_openai import ChatOpenAI

    from bench.simulator import RunningSimulator, SimulatedBackend
    from nodes.planner import TOKENS_PER_TASK

    requests: list[dict] = []

    def remember(request: dict) -> str:
        requests.append(request)
        return PLAN * 3  # runs on past the budget, as a small model's plan can

    with RunningSimulator(SimulatedBackend(remember)) as simulator:
        model = ChatOpenAI(base_url=simulator.base_url, api_key="none", model="fast")
        items = [item async for item in stream_plan(model, [], TOOLS, max_tasks=2)]
    assert requests[0]["max_completion_tokens"] == 2 * TOKENS_PER_TASK  # langchain-openai's name
    assert isinstance(items[0], PlannedTask)  # what arrived before the cut still runs
    assert isinstance(items[-1], PlanError) and "token limit" in str(items[-1])
