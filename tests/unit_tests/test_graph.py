"""The whole graph on a scripted model: event order, eager task start, tokens, modes, fallback."""

import asyncio
import json
import time

import pytest

from bench.scripted_model import ScriptedChatModel
from expressway.context import Context
from expressway.events import iter_events
from graphs.agent import build_graph
from nodes.answer import is_looping
from nodes.planner import encode_plan
from tools import DEFAULT_TOOLS

TWO_LOOKUPS = encode_plan([("slow_lookup", {"key": "a"}), ("slow_lookup", {"key": "b"})])


def slow_lookup(key: str) -> str:
    """Looks a key up in a remote-like store (blocks for a while)."""
    time.sleep(0.3)
    return f"value of {key}"


async def _events(graph, question: str, **context) -> list[dict]:
    stream = graph.astream(
        {"messages": [("user", question)]}, context=Context(**context), stream_mode=["custom"]
    )
    return [event async for event in iter_events(stream)]


def _graph(model: ScriptedChatModel, tools=(slow_lookup,)):
    return build_graph(tools=list(tools), models={"fast": model, "frontier": model})


async def test_compiler_mode_event_order_and_answer_tokens() -> None:
    model = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="a is value of a; b is value of b.")
    graph = _graph(model)
    events = await _events(graph, "What is the status of order a and order b?")
    types = [event["type"] for event in events]
    assert types[:2] == ["run.started", "route.decided"]
    assert types[-1] == "run.finished"
    for task_id in (1, 2):
        planned = (
            types.index("plan.task", 0)
            if task_id == 1
            else len(types) - 1 - types[::-1].index("plan.task")
        )
        started = next(
            i
            for i, e in enumerate(events)
            if e["type"] == "task.started" and e["task_id"] == task_id
        )
        finished = next(
            i
            for i, e in enumerate(events)
            if e["type"] == "task.finished" and e["task_id"] == task_id
        )
        assert planned < started < finished
    first_token = types.index("token")
    assert all(i < first_token for i, t in enumerate(types) if t == "task.finished")
    tokens = "".join(event["text"] for event in events if event["type"] == "token")
    assert tokens == model.answer
    assert all(event["tier"] == "fast" for event in events if event["type"] == "token")
    timestamps = [event["t"] for event in events]
    assert timestamps == sorted(timestamps)
    timings = events[-1]["timings"]
    assert set(timings) >= {"route", "plan", "tools", "answer", "ttft", "total"}


async def test_tasks_start_while_the_plan_is_still_streaming() -> None:
    model = ScriptedChatModel(plans=[TWO_LOOKUPS], chunk_chars=4, delay_s=0.01)
    events = await _events(_graph(model), "What is the status of order a and order b?")
    first_start = next(e["t"] for e in events if e["type"] == "task.started")
    last_plan = max(e["t"] for e in events if e["type"] == "plan.task")
    assert first_start < last_plan


async def test_two_tasks_overlap_in_time() -> None:
    model = ScriptedChatModel(plans=[TWO_LOOKUPS])
    events = await _events(_graph(model), "What is the status of order a and order b?")
    started = [e["t"] for e in events if e["type"] == "task.started"]
    finished = [e["t"] for e in events if e["type"] == "task.finished"]
    assert max(started) < min(finished)


async def test_parallel_calls_mode_fans_out_and_answers_in_call_order() -> None:
    model = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="done")
    graph = _graph(model)
    result = await graph.ainvoke(
        {"messages": [("user", "What is the status of order a and order b?")]},
        context=Context(execution_mode="parallel_calls"),
    )
    assert [r.id for r in sorted(result["results"], key=lambda r: r.id)] == [1, 2]
    intervals = [(r.started_s, r.finished_s) for r in result["results"]]
    assert max(s for s, _ in intervals) < min(f for _, f in intervals)
    assert result["messages"][-1].content == "done"


@pytest.mark.reliability("model output")
async def test_invalid_plan_is_replanned_once_then_answered() -> None:
    bad = encode_plan([("format_disk", {})])
    good = encode_plan([("slow_lookup", {"key": "a"})])
    model = ScriptedChatModel(plans=[bad, good], answer="ok")
    events = await _events(_graph(model), "What is the status of order a?")
    types = [event["type"] for event in events]
    assert "plan.error" in types
    assert sum(1 for call in model.calls if call["plan"]) == 2
    assert any(e["type"] == "task.finished" and e["status"] == "ok" for e in events)
    assert types[-1] == "run.finished"


@pytest.mark.reliability("model output")
async def test_replans_are_bounded() -> None:
    bad = encode_plan([("format_disk", {})])
    model = ScriptedChatModel(plans=[bad], answer="I could not plan that.")
    events = await _events(_graph(model), "What is the status of order a?", max_replans=2)
    assert sum(1 for call in model.calls if call["plan"]) == 3
    assert events[-1]["type"] == "run.finished"


@pytest.mark.parametrize(
    "question",
    ["Classify the sentiment of this review: I love it", "hello", "thanks, that's all I needed"],
)
async def test_requests_that_need_no_tools_skip_planning(question: str) -> None:
    model = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="Positive.")
    events = await _events(_graph(model), question)
    assert not any(event["type"].startswith(("plan", "task")) for event in events)
    assert not any(call["plan"] for call in model.calls)


async def test_a_writing_request_is_answered_with_its_tasks_instructions() -> None:
    """The routing table's `answer_instructions` replace "a few sentences" for that task only."""
    model = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="Dear Ms. Lee, ...")
    await _events(_graph(model), "Draft a short email to my landlord about the broken heater")
    await _events(_graph(model), "hello")
    writing, chat = (call["prompt"] for call in model.calls)
    assert "Write the whole text the user asks for" in writing and "in a few" not in writing
    assert "in a few" in chat and "Write the whole text" not in chat


@pytest.mark.reliability("backends")
async def test_fallback_to_the_other_tier_before_the_first_token() -> None:
    broken = ScriptedChatModel(fail_with="connection refused")
    healthy = ScriptedChatModel(answer="from frontier")
    graph = build_graph(tools=[slow_lookup], models={"fast": broken, "frontier": healthy})
    events = await _events(graph, "Classify the sentiment of this review: meh")
    fallback = next(event for event in events if event["type"] == "fallback")
    assert (fallback["from_tier"], fallback["to_tier"]) == ("fast", "frontier")
    assert "".join(e["text"] for e in events if e["type"] == "token") == "from frontier"


@pytest.mark.reliability("backends")
async def test_the_plan_falls_back_to_the_other_tier_before_its_first_step() -> None:
    broken = ScriptedChatModel(fail_with="connection refused")
    healthy = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="a and b.")
    graph = build_graph(tools=[slow_lookup], models={"fast": broken, "frontier": healthy})
    events = await _events(graph, "What is the status of order a and order b?")
    fallbacks = [
        (e["stage"], e["from_tier"], e["to_tier"]) for e in events if e["type"] == "fallback"
    ]
    assert fallbacks == [("plan", "fast", "frontier"), ("answer", "fast", "frontier")]
    assert [e["tool"] for e in events if e["type"] == "task.finished"] == ["slow_lookup"] * 2
    assert events[-1]["type"] == "run.finished" and events[-1]["tasks"] == 2


@pytest.mark.reliability("backends")
async def test_a_passed_in_model_that_stalls_falls_back_after_the_model_timeout() -> None:
    """The tiers' HTTP client times out by itself; a chat model passed to build_graph may not."""
    stalled = ScriptedChatModel(plans=[TWO_LOOKUPS], delay_s=30)
    healthy = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="a and b.")
    graph = build_graph(tools=[slow_lookup], models={"fast": stalled, "frontier": healthy})
    question = "What is the status of order a and order b?"
    events = await asyncio.wait_for(_events(graph, question, model_timeout_s=0.2), 20)
    fallbacks = [(e["stage"], e["reason"]) for e in events if e["type"] == "fallback"]
    reason = "TimeoutError: no output within 0.2 s (EXPRESSWAY_MODEL_TIMEOUT_S)"
    assert fallbacks == [("plan", reason), ("answer", reason)]
    assert "".join(e["text"] for e in events if e["type"] == "token") == "a and b."


@pytest.mark.reliability("input")
async def test_a_turn_without_a_new_message_does_not_answer_the_last_one_again() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    model = ScriptedChatModel(answer="Hello, Bob.")
    graph = build_graph(
        tools=[slow_lookup], models={"fast": model, "frontier": model}, checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "t-empty"}}
    await graph.ainvoke({"messages": [("user", "hi, I am Bob")]}, config, context=Context())
    for empty_turn in ({"messages": []}, {}):
        with pytest.raises(ValueError, match="no new question"):
            await graph.ainvoke(empty_turn, config, context=Context())
    assert len((await graph.aget_state(config)).values["messages"]) == 2


@pytest.mark.reliability("input")
async def test_a_follow_up_turn_is_routed_with_the_question_before_it() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    model = ScriptedChatModel(plans=[], answer="ok")
    graph = build_graph(
        tools=[slow_lookup], models={"fast": model, "frontier": model}, checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "t-follow-up"}}
    routes = []
    for question in ("Write a Python function that reverses a linked list.", "and in Go?"):
        stream = graph.astream(
            {"messages": [("user", question)]}, config, context=Context(), stream_mode=["custom"]
        )
        events = [event async for event in iter_events(stream)]
        routes += [event["task"] for event in events if event["type"] == "route.decided"]
    assert routes == ["code", "code"]


async def test_empty_question_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="question is empty"):
        await _events(_graph(ScriptedChatModel()), "   ")


async def test_a_thread_keeps_its_messages_and_resets_per_question() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    model = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="ok")
    graph = build_graph(
        tools=[slow_lookup], models={"fast": model, "frontier": model}, checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "t1"}}
    for question in ("Status of order a and b?", "And the price of order a and b?"):
        result = await graph.ainvoke({"messages": [("user", question)]}, config, context=Context())
    assert len(result["messages"]) == 4
    assert len(result["results"]) == 2


def test_default_graph_has_the_shipped_tools_and_serializable_schema() -> None:
    from graphs.agent import graph

    assert graph.name == "expressway"
    json.dumps(graph.get_context_jsonschema())
    assert len(DEFAULT_TOOLS) >= 4


async def test_events_stream_in_real_time_not_at_the_end() -> None:
    model = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="x " * 20, chunk_chars=2, delay_s=0.01)
    graph = _graph(model)
    arrival = []
    loop = asyncio.get_running_loop()
    async for event in iter_events(
        graph.astream(
            {"messages": [("user", "status of order a and b")]},
            context=Context(),
            stream_mode=["custom"],
        )
    ):
        arrival.append((event["type"], loop.time()))
    tokens = [t for kind, t in arrival if kind == "token"]
    assert tokens[-1] - tokens[0] > 0.1  # tokens arrived spread out, as they were produced


def broken_lookup(key: str) -> str:
    """Looks a key up in a store that is down."""
    raise ConnectionError("store unreachable")


@pytest.mark.reliability("model output")
async def test_a_lookup_with_nothing_planned_says_so_instead_of_asking_the_model() -> None:
    # A model that plans nothing (a small one can, whatever the schema says) and would then
    # happily invent a figure.
    model = ScriptedChatModel(plans=[encode_plan([])], answer="Order a shipped on May 3.")
    events = await _events(_graph(model), "What is the status of order a?")
    types = [event["type"] for event in events]
    assert "answer.withheld" in types
    answer = "".join(event["text"] for event in events if event["type"] == "token")
    assert answer.startswith("I could not look that up") and "May 3" not in answer
    assert not [call for call in model.calls if not call["plan"]]  # the model never answered


@pytest.mark.reliability("tools")
async def test_a_lookup_whose_every_tool_failed_names_the_failures_and_invents_nothing() -> None:
    model = ScriptedChatModel(
        plans=[encode_plan([("broken_lookup", {"key": "a"})])], answer="Order a shipped."
    )
    graph = _graph(model, tools=(broken_lookup,))
    events = await _events(graph, "What is the status of order a?", max_replans=0)
    answer = "".join(event["text"] for event in events if event["type"] == "token")
    assert "every tool call failed" in answer and "store unreachable" in answer
    assert "shipped" not in answer


async def test_a_partial_result_or_a_question_needing_no_tool_is_answered_by_the_model() -> None:
    partial = ScriptedChatModel(
        plans=[encode_plan([("slow_lookup", {"key": "a"}), ("broken_lookup", {"key": "b"})])],
        answer="a is value of a; b could not be found.",
    )
    graph = _graph(partial, tools=(slow_lookup, broken_lookup))
    events = await _events(graph, "What is the status of order a and order b?", max_replans=0)
    assert "answer.withheld" not in [event["type"] for event in events]
    # A reasoning request may plan no tool at all; the model answers it.
    thinker = ScriptedChatModel(plans=[encode_plan([])], answer="Renting keeps you flexible.")
    events = await _events(
        _graph(thinker),
        "Compare the trade-offs of renting versus buying a house for a young family.",
    )
    answer = "".join(event["text"] for event in events if event["type"] == "token")
    assert answer == thinker.answer


async def test_the_answer_prompt_is_prefilled_while_slow_tools_run_not_for_instant_ones() -> None:
    def instant_lookup(key: str) -> str:
        """Looks a key up in a local table."""
        return f"value of {key}"

    for tool, warmed in ((slow_lookup, True), (instant_lookup, False)):
        model = ScriptedChatModel(
            plans=[encode_plan([(tool.__name__, {"key": "a"})])], answer="a is value of a."
        )
        await _events(_graph(model, tools=(tool,)), "What is the status of order a?")
        answers = [call for call in model.calls if not call["plan"]]
        warm_ups = [call for call in answers if call.get("max_tokens") == 1]
        assert len(warm_ups) == int(warmed)
        if warmed:  # the answer's own prompt begins with what was prefilled
            assert answers[-1]["prompt"].startswith(warm_ups[0]["prompt"])
            assert "value of a" not in warm_ups[0]["prompt"]


async def test_the_prefill_grows_with_each_result_known_in_order_while_later_tools_run() -> None:
    # A chain: b's lookup needs a's result, so a's result is known 0.3 s before the last tool ends.
    chain = encode_plan([("slow_lookup", {"key": "a"}), ("slow_lookup", {"key": "$1 then b"})])
    model = ScriptedChatModel(plans=[chain], answer="b follows a.")
    await _events(_graph(model), "What follows order a?")
    answers = [call for call in model.calls if not call["plan"]]
    warm_ups = [call["prompt"] for call in answers if call.get("max_tokens") == 1]
    assert len(warm_ups) == 2
    assert "value of a" not in warm_ups[0] and "value of a" in warm_ups[1]
    assert "value of value of a then b" not in warm_ups[1]
    # Each prefill ends with the next task's call, once its arguments are known: only the
    # call's output is missing (b's arguments need a's result).
    assert warm_ups[0].endswith("- slow_lookup(key='a')")
    assert warm_ups[1].endswith("- slow_lookup(key='value of a then b')")
    # Each prefill is the beginning of the next one and of the answer's own prompt.
    assert warm_ups[1].startswith(warm_ups[0]) and answers[-1]["prompt"].startswith(warm_ups[1])
    assert "value of value of a then b" in answers[-1]["prompt"]


class SlowWarmUp(ScriptedChatModel):
    """Its one-token warm-up calls hang (a busy server) until cancelled."""

    warm_up_cancelled: bool = False

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        if kwargs.get("max_tokens") == 1:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.warm_up_cancelled = True
                raise
        return self._generate(messages, stop, **kwargs)


async def test_a_warm_up_still_running_when_the_tools_finish_does_not_hold_the_answer() -> None:
    model = SlowWarmUp(plans=[encode_plan([("slow_lookup", {"key": "a"})])], answer="a is a.")
    events = await asyncio.wait_for(
        _events(_graph(model), "What is the status of order a?"), timeout=30
    )
    assert "".join(event["text"] for event in events if event["type"] == "token") == "a is a."
    assert model.warm_up_cancelled


def test_a_looping_answer_is_recognised_and_an_ordinary_one_is_not() -> None:
    line = "- The return shipping is 5% of the order's value.\n"
    assert is_looping("Returns are easy.\n" + line * 2)
    assert not is_looping(line + line[:20])  # the second one is not complete yet
    assert not is_looping("It is 5 pm. It is 6 pm. It is 7 pm.")
    assert not is_looping("Yes. Yes. Yes.")  # too short to call a loop
    # A block of several lines repeated (SmolLM2-135M echoing the tool results as its answer).
    block = "- count() -> 4\n- docs('returns') -> Refunds are immediate.\nReturns take 30 days.\n"
    assert is_looping("Here is what I found:\n" + block * 2)
    assert not is_looping("Here is what I found:\n" + block + block[:30])
    assert not is_looping("- Tokyo: 10:00.\n- Berlin: 03:00.\n- Tokyo: 10:00, Berlin: 03:00.\n")


async def test_the_answer_stream_stops_when_the_model_loops() -> None:
    loop = "The return window is 30 days. " + "The warranty covers seams. " * 40
    model = ScriptedChatModel(plans=[encode_plan([("slow_lookup", {"key": "a"})])], answer=loop)
    events = await _events(_graph(model), "What is the status of order a?")
    answer = "".join(event["text"] for event in events if event["type"] == "token")
    assert answer.count("The warranty covers seams.") == 2
    assert events[-1]["type"] == "run.finished"
    results = "- lookup(key='a') -> value of a, shipped on Monday\n- lookup(key='b') -> pending\n"
    model = ScriptedChatModel(
        plans=[encode_plan([("slow_lookup", {"key": "a"})])], answer=results * 9
    )
    events = await _events(_graph(model), "What is the status of order a?")
    answer = "".join(event["text"] for event in events if event["type"] == "token")
    assert answer == results * 2


STRICT_RUN = """
import asyncio, json
from langgraph.checkpoint.memory import InMemorySaver
from bench.scripted_model import ScriptedChatModel
from expressway.context import Context
from graphs.agent import build_graph
from tests.unit_tests.test_graph import TWO_LOOKUPS, slow_lookup

async def main():
    model = ScriptedChatModel(plans=[TWO_LOOKUPS], answer="ok")
    graph = build_graph(
        tools=[slow_lookup], models={"fast": model, "frontier": model}, checkpointer=InMemorySaver()
    )
    outputs = {}
    for mode in ("compiler", "parallel_calls"):
        config = {"configurable": {"thread_id": mode}}
        question = {"messages": [("user", "What is the status of order a and order b?")]}
        await graph.ainvoke(question, config, context=Context(execution_mode=mode))
        history = [snapshot async for snapshot in graph.aget_state_history(config)]
        outputs[mode] = [result.output for result in history[0].values["results"]]
    print(json.dumps(outputs))

asyncio.run(main())
"""


@pytest.mark.reliability("durability")
def test_checkpoints_read_back_under_strict_deserialization() -> None:
    """LangGraph announces strict checkpoint deserialization (LANGGRAPH_STRICT_MSGPACK) as its
    future default: every class a checkpoint holds, a fan-out branch's input too, must be one
    the graph's schemas declare, or a resumed run cannot read it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "LANGGRAPH_STRICT_MSGPACK": "true", "PYTHONPATH": str(root)}
    run = subprocess.run(
        [sys.executable, "-c", STRICT_RUN],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Blocked deserialization" not in run.stderr, run.stderr
    expected = ["value of a", "value of b"]
    assert json.loads(run.stdout.splitlines()[-1]) == {
        "compiler": expected,
        "parallel_calls": expected,
    }
