"""The planner's stream parser yields each task as soon as it closes, and every invalid plan is
reported clearly."""

import json
import re

import pytest

from bench.scripted_model import ScriptedChatModel
from expressway.state import PlannedTask
from expressway.toolbox import as_tools
from nodes.planner import (
    PlanError,
    PlanValidator,
    TaskStreamParser,
    encode_plan,
    plan_json_schema,
    stream_plan,
)
from tools import DEFAULT_TOOLS

TOOLS = as_tools(DEFAULT_TOOLS)
# A string that runs on without repeating itself (a loop is cut off sooner: see below).
RUN_ON = "SELECT " + ", ".join(f"column_{i}" for i in range(300))
PLAN = encode_plan(
    [
        ("current_time", {"timezone": "Tokyo"}),
        ("sql_query", {"query": 'SELECT "}" FROM x'}),
        ("calculator", {"expression": "$2 * 2"}),
    ]
)


def test_parser_yields_each_task_the_moment_its_brace_closes() -> None:
    parser = TaskStreamParser()
    arrivals = []
    for position, char in enumerate(PLAN):
        for step in parser.feed(char):
            arrivals.append((position, next(iter(json.loads(step)))))
    parser.finish()
    assert [tool for _, tool in arrivals] == ["current_time", "sql_query", "calculator"]
    step_1_closes = PLAN.index('"Tokyo"}}') + len('"Tokyo"}}') - 1
    assert arrivals[0][0] == step_1_closes


@pytest.mark.reliability("model output")
def test_parser_reports_a_cut_off_plan() -> None:
    parser = TaskStreamParser()
    parser.feed(PLAN[:60])
    with pytest.raises(PlanError, match="not complete JSON"):
        parser.finish()


def _validator() -> PlanValidator:
    return PlanValidator(tools={tool.name: tool for tool in TOOLS}, max_tasks=8)


def _step(tool: str, args: object) -> str:
    return json.dumps({tool: args})


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (_step("rm_rf", {}), "unknown tool"),
        (_step("calculator", {"expr": "1"}), "bad arguments"),
        (_step("calculator", {}), "missing"),
        (_step("calculator", {"expression": "$1"}), "its own result"),
        (_step("calculator", {"expression": "$2"}), "not a valid earlier step"),
        (_step("calculator", "1+1"), "must be an object"),
        ('{"calculator": {"expression": "1"}, "sql_query": {"query": "x"}}', "must be"),
        ('{"calculator": {"expression": ', "not valid JSON"),
    ],
)
@pytest.mark.reliability("model output")
def test_invalid_steps_are_refused_with_a_reason(step: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        _validator().check(step)


@pytest.mark.reliability("model output")
def test_a_step_may_only_use_earlier_valid_steps() -> None:
    validator = _validator()
    with pytest.raises(PlanError, match="unknown tool"):
        validator.check(_step("teleport", {}))
    # Step 2 may not use step 1 (invalid), nor step 3 (later: a cycle cannot be written). Inside
    # a text, a later "$4" is a price, not a step; alone it can only be a step.
    with pytest.raises(PlanError, match="step 1, which is not a valid earlier step"):
        validator.check(_step("calculator", {"expression": "$1 + 1"}))
    with pytest.raises(PlanError, match="step 4, which is not a valid earlier step"):
        validator.check(_step("calculator", {"expression": "$4"}))


def test_references_become_dependencies() -> None:
    validator = _validator()
    validator.check(_step("sql_query", {"query": "SELECT 1"}))
    task = validator.check(_step("calculator", {"expression": "$1 * 2"}))
    assert task == PlannedTask(id=2, tool="calculator", args={"expression": "$1 * 2"}, deps=[1])


def test_schema_constrains_tool_names_and_arguments() -> None:
    schema = plan_json_schema(TOOLS, 8)
    steps = schema["properties"]["plan"]["items"]["anyOf"]
    assert [step["required"] for step in steps] == [[t.name] for t in TOOLS]
    calculator = next(step for step in steps if step["required"] == ["calculator"])
    assert calculator["properties"]["calculator"]["required"] == ["expression"]
    assert calculator["additionalProperties"] is False
    assert schema["properties"]["plan"]["minItems"] == 0
    assert plan_json_schema(TOOLS, 8, min_tasks=1)["properties"]["plan"]["minItems"] == 1
    json.dumps(schema)


def test_the_compact_plan_is_well_under_the_old_encoding() -> None:
    old = json.dumps(
        {"tasks": [{"id": 1, "tool": "current_time", "args": {"timezone": "Tokyo"}, "deps": []}]},
        separators=(",", ":"),
    )
    assert len(encode_plan([("current_time", {"timezone": "Tokyo"})])) < 0.65 * len(old)


async def test_stream_plan_yields_valid_tasks_and_errors_in_order() -> None:
    plan = encode_plan(
        [
            ("calculator", {"expression": "1+1"}),
            ("teleport", {}),
            ("calculator", {"expression": "$1 * 3"}),
        ]
    )
    model = ScriptedChatModel(plans=[plan], chunk_chars=5)
    items = [item async for item in stream_plan(model, [], TOOLS, 8)]
    assert [type(item).__name__ for item in items] == ["PlannedTask", "PlanError", "PlannedTask"]
    assert "unknown tool 'teleport'" in str(items[1])
    assert model.calls[0]["response_format"]["json_schema"]["schema"]["required"] == ["plan"]
    # Ids are positions: the invalid step 2 keeps its number, so "$1" still means step 1.
    assert [items[0].id, items[1].task_id, items[2].id] == [1, 2, 3]


@pytest.mark.reliability("model output")
async def test_stream_plan_reports_invalid_json() -> None:
    model = ScriptedChatModel(plans=['{"plan": [{"calculator": '])
    items = [item async for item in stream_plan(model, [], TOOLS, 8)]
    assert len(items) == 1 and isinstance(items[0], PlanError)


async def test_a_replan_is_renumbered_after_earlier_results() -> None:
    plan = encode_plan(
        [("sql_query", {"query": "SELECT 1"}), ("calculator", {"expression": "$1 * 2"})]
    )
    items = [i async for i in stream_plan(ScriptedChatModel(plans=[plan]), [], TOOLS, 8, 5)]
    assert [(t.id, t.deps, t.args) for t in items] == [
        (6, [], {"query": "SELECT 1"}),
        (7, [6], {"expression": "$6 * 2"}),
    ]


@pytest.mark.reliability("model output")
async def test_a_plan_that_repeats_itself_is_cut_off() -> None:
    plan = encode_plan([("search_docs", {"query": "returns"})] * 8)
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
        # A string that runs on past the budget, as a small model's plan can.
        return PLAN[: PLAN.index("}},") + 3] + '{"sql_query": {"query": "' + RUN_ON

    with RunningSimulator(SimulatedBackend(remember)) as simulator:
        model = ChatOpenAI(base_url=simulator.base_url, api_key="none", model="fast")
        items = [item async for item in stream_plan(model, [], TOOLS, max_tasks=2)]
    assert requests[0]["max_completion_tokens"] == 2 * TOKENS_PER_TASK  # langchain-openai's name
    assert isinstance(items[0], PlannedTask)  # what arrived before the cut still runs
    assert isinstance(items[-1], PlanError) and "token limit" in str(items[-1])


@pytest.mark.reliability("model output")
async def test_a_replans_errors_name_its_steps_as_the_run_numbers_them() -> None:
    plan = encode_plan([("sql_query", {"query": "SELECT 1"}), ("sql_query", {"query": "SELECT 1"})])
    items = [i async for i in stream_plan(ScriptedChatModel(plans=[plan]), [], TOOLS, 8, 5)]
    task, error = items
    assert task.id == 6
    assert isinstance(error, PlanError) and error.task_id == 7
    assert str(error).startswith("step 7: repeats step 6 ")


@pytest.mark.reliability("model output")
def test_a_price_is_text_and_a_reference_counts_at_any_depth() -> None:
    validator = _validator()
    validator.check(_step("sql_query", {"query": "SELECT 1"}))
    prices = "refund of $25, $1,200 or $3.50 (step 2 of $40)"
    task = validator.check(_step("calculator", {"expression": prices}))
    assert task.deps == []

    def tag_customers(ids: list[str], owner: dict[str, str]) -> str:
        """Tags customers by id for an owner."""
        return "tagged"

    validator.tools["tag_customers"] = as_tools([tag_customers])[0]
    nested = validator.check(_step("tag_customers", {"ids": ["$1"], "owner": {"id": "${1}"}}))
    assert nested.deps == [1]


@pytest.mark.parametrize(
    "plan",
    [
        '{"plan": [{"current_time": {"timezone": "UTC"}}], "notes": [{"sql_query": {}}]}',
        '{"steps": [{"sql_query": {"query": "x"}}]}',
        '{"notes": [], "plan": [{"sql_query": {"query": "x"}}]}',
    ],
)
@pytest.mark.reliability("model output")
async def test_steps_outside_the_plans_array_never_run(plan: str) -> None:
    items = [item async for item in stream_plan(ScriptedChatModel(plans=[plan]), [], TOOLS, 8)]
    assert not any(isinstance(item, PlannedTask) and item.tool == "sql_query" for item in items)
    assert isinstance(items[-1], PlanError) and 'must be {"plan": [...]}' in str(items[-1])


@pytest.mark.reliability("model output")
async def test_a_plan_from_a_backend_that_ignores_max_tokens_is_cut_off() -> None:
    """A chat model passed to build_graph may not apply max_tokens: the planner stops reading."""
    endless_steps = encode_plan([("calculator", {"expression": f"{i} + 1"}) for i in range(500)])
    items = [
        item async for item in stream_plan(ScriptedChatModel(plans=[endless_steps]), [], TOOLS, 4)
    ]
    assert [type(item).__name__ for item in items] == ["PlannedTask"] * 4 + ["PlanTooLongError"]
    endless_string = '{"plan": [{"sql_query": {"query": "' + RUN_ON * 10
    model = ScriptedChatModel(plans=[endless_string], chunk_chars=4)
    items = [item async for item in stream_plan(model, [], TOOLS, 2)]
    assert len(items) == 1 and "ran past its 128-token limit" in str(items[0])


@pytest.mark.reliability("model output")
async def test_a_plan_stuck_in_a_loop_is_cut_off_long_before_its_token_limit() -> None:
    """SmolLM2 on the embedded server wrote this until the 1,024-token budget, 72 s on the CPU."""
    step = '{"sql_query": {"query": "SELECT 1"}}'
    looping = '{"plan": [' + step + ',{"sql_query": {"query": "SELECT name, price_usd, '
    looping += "".join(f"price{'_usd' * n}, " for n in range(2, 6)) + "price_usd_usd_usd_usd, " * 50
    model = ScriptedChatModel(plans=[looping], chunk_chars=4)
    task, error = [item async for item in stream_plan(model, [], TOOLS, 16)]
    assert isinstance(task, PlannedTask) and task.args == {"query": "SELECT 1"}
    assert isinstance(error, PlanError) and "over and over" in str(error)
    # The repeated run, read from wherever the stream stopped.
    assert re.search(r"repeats '(.+)' over", str(error))[1] in "price_usd_usd_usd_usd, " * 2


@pytest.mark.parametrize(
    "argument",
    [
        "1+1+1+1+1+1+1+1",  # a short repeat is an argument
        RUN_ON,  # a long argument that does not repeat
        "Dear team,\n\n" + "Our stand-up moves to 9:30 from Monday. " * 2 + "Thanks!",
    ],
)
@pytest.mark.reliability("model output")
async def test_long_or_repetitive_arguments_that_are_not_loops_are_planned(argument: str) -> None:
    plan = encode_plan([("sql_query", {"query": argument})])
    items = [i async for i in stream_plan(ScriptedChatModel(plans=[plan]), [], TOOLS, 16)]
    assert [type(item).__name__ for item in items] == ["PlannedTask"]
