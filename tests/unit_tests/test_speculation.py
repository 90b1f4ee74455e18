"""Plan templates and speculation: read-only calls start before the plan, side-effect tools never
do, a wrong guess never reaches the answer, and answers are the same with speculation on or off."""

import asyncio
from collections import Counter

import pytest
from langgraph.store.memory import InMemoryStore

from bench.scripted_model import ScriptedChatModel
from expressway.context import Context
from expressway.events import iter_events
from expressway.toolbox import as_tools, read_only
from graphs.agent import build_graph
from nodes import plan_and_schedule
from nodes.plan_cache import PlanCache, make_template, match_parts
from nodes.planner import encode_plan

CALLS: Counter[str] = Counter()


@read_only
async def order_status(order: str) -> str:
    """The shipping status of an order, by its number (e.g. A-1001)."""
    CALLS[f"order_status:{order}"] += 1
    await asyncio.sleep(0.05)
    return f"order {order} shipped"


async def cancel_order(order: str) -> str:
    """Cancels an order (a side effect)."""
    CALLS[f"cancel_order:{order}"] += 1
    return f"order {order} cancelled"


def _plan(tool: str, order: str) -> str:
    return encode_plan([(tool, {"order": order})])


async def _run(graph, question: str, **context) -> list[dict]:
    stream = graph.astream(
        {"messages": [("user", question)]}, context=Context(**context), stream_mode=["custom"]
    )
    events = [event async for event in iter_events(stream)]
    await asyncio.gather(*plan_and_schedule._BACKGROUND)  # the template write of that run
    return events


def _graph(plans: list[str], tools=(order_status,)):
    # A slow planner: each 4-character chunk takes 10 ms, so a speculative start shows. Each
    # graph gets its own store, so no test sees another's templates.
    model = ScriptedChatModel(plans=plans, answer="done", chunk_chars=4, delay_s=0.01)
    models = {"fast": model, "frontier": model}
    return build_graph(tools=list(tools), models=models, store=InMemoryStore()), model


@pytest.fixture(autouse=True)
def _fresh_counts():
    CALLS.clear()


def test_a_template_slots_the_words_its_arguments_copied() -> None:
    parts, steps = make_template(
        "What is the status of order A-1001?", [("order_status", {"order": "A-1001"})]
    )
    assert steps == [{"tool": "order_status", "args": {"order": "⟦0⟧"}}]
    assert parts == ["what is the status of order ", "?"]
    assert match_parts(parts, "what is the STATUS of order B-2002 and C-3003?") == [
        "B-2002 and C-3003"
    ]
    assert match_parts(parts, "What is the status of order ?") is None  # a slot has words
    assert match_parts(parts, "What was the status of order B-2002?") is None


async def test_a_long_near_miss_question_is_matched_in_linear_time() -> None:
    codes = ["A1", "B2", "C3", "D4", "E5", "F6", "G7", "H8"]
    parts, _ = make_template(
        f"How many units are in stock for {', '.join(codes)}?",
        [("stock", {"sku": code}) for code in codes],
    )
    assert len(parts) == 9
    # A regular expression of eight lazy groups backtracked for minutes on this question.
    sixty = ", ".join(f"w{i}" for i in range(60))
    near_miss = f"How many units are in stock for {sixty} and which is cheapest"
    assert match_parts(parts, near_miss) is None
    words = match_parts(parts, f"How many units are in stock for {', '.join(codes[::-1])}?")
    assert words == codes[::-1]


async def test_a_matching_template_starts_read_only_calls_before_the_plan_and_is_adopted() -> None:
    graph, _ = _graph([_plan("order_status", "A-1001"), _plan("order_status", "B-2002")])
    await _run(graph, "What is the status of order A-1001?")
    events = await _run(graph, "What is the status of order B-2002?")
    speculated = next(e for e in events if e["type"] == "speculation.started")
    assert speculated["calls"] == [{"tool": "order_status", "args": {"order": "B-2002"}}]
    planned = next(e for e in events if e["type"] == "plan.task")
    started = next(e for e in events if e["type"] == "task.started")
    assert started["speculated_at"] < planned["t"]  # the call ran before its plan line arrived
    assert CALLS["order_status:B-2002"] == 1  # adopted, not called twice
    assert events[-1]["speculation"] == {
        "speculated": 1,
        "adopted": 1,
        "wasted": 0,
        "from_cache": 0,
    }


async def test_a_tool_with_side_effects_is_never_speculated() -> None:
    graph, _ = _graph(
        [_plan("cancel_order", "A-1001"), _plan("cancel_order", "B-2002")], tools=(cancel_order,)
    )
    # Routed as lookups (the scripted planner decides the calls, whatever the wording).
    await _run(graph, "What is the status of order A-1001?")
    events = await _run(graph, "What is the status of order B-2002?")
    assert "speculation.started" not in [event["type"] for event in events]
    assert CALLS == {"cancel_order:A-1001": 1, "cancel_order:B-2002": 1}
    # Not even in trust mode, with a template confirmed many times.
    for _ in range(3):
        events = await _run(graph, "What is the status of order B-2002?", plan_cache="trust")
        assert events[-1]["speculation"]["from_cache"] == 0


async def test_a_wrong_guess_is_cancelled_and_never_reaches_the_answer() -> None:
    # The planner reads "B-2002" as order "B2002": the template's guess is not what it plans.
    graph, model = _graph([_plan("order_status", "A-1001"), _plan("order_status", "B2002")])
    await _run(graph, "What is the status of order A-1001?")
    events = await _run(graph, "What is the status of order B-2002?")
    assert events[-1]["speculation"]["wasted"] == 1
    answer_prompt = model.calls[-1]["prompt"]
    assert "order B2002 shipped" in answer_prompt
    assert "B-2002 shipped" not in answer_prompt
    tasks = [e for e in events if e["type"] == "task.finished"]
    assert [task["output"] for task in tasks] == ["order B2002 shipped"]


async def test_speculation_is_lossless_same_calls_and_answers_on_or_off() -> None:
    questions = [f"What is the status of order {order}?" for order in ("A-1", "B-2", "C-3")]
    outcomes = {}
    for mode in ("off", "speculate"):
        graph, _ = _graph([_plan("order_status", q.split()[-1][:-1]) for q in questions])
        runs = [await _run(graph, question, plan_cache=mode) for question in questions]
        outcomes[mode] = [
            (
                [(e["tool"], e["args"]) for e in run if e["type"] == "task.started"],
                [e["output"] for e in run if e["type"] == "task.finished"],
                "".join(e["text"] for e in run if e["type"] == "token"),
            )
            for run in runs
        ]
        if mode == "speculate":
            assert sum(run[-1]["speculation"]["adopted"] for run in runs) == 2
    assert outcomes["off"] == outcomes["speculate"]


async def test_trust_mode_skips_the_planner_only_on_a_confirmed_read_only_template() -> None:
    plans = [_plan("order_status", order) for order in ("A-1", "B-2", "C-3", "D-4")]
    graph, model = _graph(plans)
    for order in ("A-1", "B-2", "C-3", "D-4"):
        events = await _run(graph, f"What is the status of order {order}?", plan_cache="trust")
    planner_calls = sum(call["plan"] for call in model.calls)
    # Learned on A-1, confirmed on B-2 and C-3 (the planner agreed), trusted for D-4.
    assert planner_calls == 3
    assert events[-1]["speculation"]["from_cache"] == 1
    assert [e["output"] for e in events if e["type"] == "task.finished"] == ["order D-4 shipped"]


async def test_templates_are_kept_in_the_store_the_graph_runs_with() -> None:
    store = InMemoryStore()
    model = ScriptedChatModel(plans=[_plan("order_status", "A-1001")], answer="done")
    graph = build_graph(
        tools=[order_status], models={"fast": model, "frontier": model}, store=store
    )
    await _run(graph, "What is the status of order A-1001?")
    other_replica = PlanCache(store, as_tools([order_status]))
    match = await other_replica.lookup("What is the status of order Z-9?")
    assert match is not None and match.calls == [("order_status", {"order": "Z-9"})]
