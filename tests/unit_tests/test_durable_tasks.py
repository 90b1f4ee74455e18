"""Per-call durability on a real SQLite checkpointer: a run stopped while tools run (the consumer
closes the stream, which cancels it: nothing more is saved, as in a crash) is resumed by a new
graph instance. Finished calls are reused, calls with side effects that were running are reported
(or retried, if configured), read-only ones run again. Subprocess SIGKILL: bench/durability.py."""

import asyncio
import shutil
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from bench.scripted_model import ScriptedChatModel
from expressway.context import Context
from expressway.events import iter_events
from expressway.state import State
from expressway.toolbox import read_only
from graphs.agent import build_graph
from nodes.answer import answer_messages
from nodes.planner import encode_plan

RECORD_7 = ("record_shipment", {"order_id": 7})
RECORD_8 = ("record_shipment", {"order_id": 8})
RECORD_9 = ("record_shipment", {"order_id": 9})
STOCK = ("check_stock", {"product": "widget"})
EMAIL_AFTER_1 = ("email_customer", {"order_id": 7, "note": "$1"})  # uses step 1's result
ANSWER = "Order 7 is recorded; order 8 may need checking."
Events = list[dict[str, Any]]


def _plan(*steps: tuple[str, dict[str, Any]]) -> str:
    return encode_plan(list(steps))


class Shop:
    """Tools that log each call; calls in `hold` run until the run is stopped, calls in `fail`
    raise."""

    def __init__(self, hold: set[str]) -> None:
        self.calls: list[str] = []
        self.hold = hold
        self.fail: set[str] = set()

    async def _call(self, call: str, output: str) -> str:
        self.calls.append(call)
        if call in self.hold:
            await asyncio.Event().wait()
        if call in self.fail:
            raise RuntimeError("the stock service is down")
        return output

    def tools(self) -> list[Callable[..., Any]]:
        async def record_shipment(order_id: int) -> str:
            """Marks an order as shipped (a side effect)."""
            return await self._call(f"record_shipment {order_id}", f"order {order_id} recorded")

        @read_only
        async def check_stock(product: str) -> str:
            """How many units of a product are in stock."""
            return await self._call(f"check_stock {product}", f"{product}: 12 in stock")

        async def email_customer(order_id: int, note: str) -> str:
            """Emails the customer of an order (a side effect)."""
            return await self._call(f"email_customer {order_id} {note}", "sent")

        return [record_shipment, check_stock, email_customer]


async def _run(
    saver: AsyncSqliteSaver,
    shop: Shop,
    model: ScriptedChatModel,
    question: str | None,
    until: Callable[[Events], bool] | None = None,
    **context: Any,
) -> Events:
    """One attempt at thread "t"; `until` stops it (closing the stream cancels the run)."""
    graph = build_graph(tools=shop.tools(), models={"fast": model}, checkpointer=saver)
    payload = None if question is None else {"messages": [("user", question)]}
    config = {"configurable": {"thread_id": "t"}}
    context = {"force_tier": "fast", **context}
    events: Events = []
    stream = graph.astream(
        payload, config, context=Context(**context), stream_mode=["custom"], durability="sync"
    )
    async with aclosing(stream), aclosing(iter_events(stream)) as items:
        async for event in items:
            events.append(event)
            if until and until(events):
                break
    return events


def _ids(events: Events, kind: str, **fields: Any) -> set[int]:
    return {
        e["task_id"]
        for e in events
        if e["type"] == kind and all(e.get(name) == value for name, value in fields.items())
    }


def _running(finished: set[int], started: set[int]) -> Callable[[Events], bool]:
    """Stop once `finished` tasks have finished and `started` tasks are running."""
    return lambda events: (
        _ids(events, "task.finished") >= finished and _ids(events, "task.started") >= started
    )


def _after_crash(folder: Path) -> str:
    """The database as a process resuming after a crash finds it: its files copied as they are. (In
    this process, the stopped run's closed connection can leave a lock behind; a killed one not.)"""
    copy = folder / "after-crash"
    copy.mkdir()
    for name in ("threads.sqlite", "threads.sqlite-wal"):
        if (folder / name).exists():
            shutil.copy(folder / name, copy / name)
    return str(copy / "threads.sqlite")


async def _state(saver: AsyncSqliteSaver) -> State:
    graph = build_graph(tools=Shop(set()).tools(), checkpointer=saver)
    snapshot = await graph.aget_state({"configurable": {"thread_id": "t"}})
    return State(**snapshot.values)


@pytest.mark.reliability("durability")
async def test_a_resumed_run_reuses_finished_calls_and_reports_side_effects_in_flight(
    tmp_path: Path,
) -> None:
    database = str(tmp_path / "threads.sqlite")
    plan = _plan(RECORD_7, RECORD_8, STOCK, EMAIL_AFTER_1)
    model = ScriptedChatModel(plans=[plan, plan], answer=ANSWER)
    email = "email_customer 7 order 7 recorded"
    shop = Shop(hold={"record_shipment 8", "check_stock widget", email})
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        first = await _run(saver, shop, model, "Ship orders 7 and 8", _running({1}, {2, 3, 4}))
    assert _ids(first, "task.finished") == {1}
    assert len(shop.calls) == 4

    shop.hold = set()
    async with AsyncSqliteSaver.from_conn_string(_after_crash(tmp_path)) as saver:
        resumed = await _run(saver, shop, model, None)
        state = await _state(saver)

    assert shop.calls.count("record_shipment 7") == 1, "a finished side-effect call ran again"
    assert shop.calls.count("record_shipment 8") == 1, "a side-effect call in flight was repeated"
    assert shop.calls.count(email) == 1
    assert shop.calls.count("check_stock widget") == 2, "a read-only call in flight runs again"
    assert _ids(resumed, "task.finished", reused=True) == {1}
    assert _ids(resumed, "task.in_doubt", action="reported") == {2, 4}
    assert _ids(resumed, "task.started") == {3}
    statuses = {result.id: result.status for result in state.results}
    assert statuses == {1: "ok", 2: "in_doubt", 3: "ok", 4: "in_doubt"}
    assert state.results[0].output == "order 7 recorded"
    assert [message.type for message in state.messages] == ["human", "ai"]
    assert state.messages[-1].text == ANSWER
    prompt = answer_messages(state)[-1].text
    assert "record_shipment(order_id=8) -> not run again: record_shipment has side" in prompt


@pytest.mark.reliability("durability")
async def test_the_retry_policy_runs_side_effect_calls_in_flight_again_and_says_so(
    tmp_path: Path,
) -> None:
    database = str(tmp_path / "threads.sqlite")
    plan = _plan(RECORD_7, RECORD_8)
    model = ScriptedChatModel(plans=[plan, plan], answer=ANSWER)
    shop = Shop(hold={"record_shipment 8"})
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        await _run(saver, shop, model, "Ship orders 7 and 8", _running({1}, {2}))
    shop.hold = set()
    async with AsyncSqliteSaver.from_conn_string(_after_crash(tmp_path)) as saver:
        resumed = await _run(saver, shop, model, None, in_flight_side_effects="retry")
        state = await _state(saver)
    assert shop.calls == ["record_shipment 7", "record_shipment 8", "record_shipment 8"]
    assert _ids(resumed, "task.in_doubt", action="retried") == {2}
    assert [(result.id, result.status) for result in state.results] == [(1, "ok"), (2, "ok")]


@pytest.mark.reliability("durability")
async def test_calls_are_matched_by_tool_and_arguments_not_by_order(tmp_path: Path) -> None:
    """The resumed planner streams another plan: order 7's saved result goes to the task that
    asks for order 7, whatever its number, and order 8 (in doubt, not asked for) is reported."""
    database = str(tmp_path / "threads.sqlite")
    model = ScriptedChatModel(
        plans=[_plan(RECORD_7, RECORD_8), _plan(RECORD_9, RECORD_7)], answer=ANSWER
    )
    shop = Shop(hold={"record_shipment 8"})
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        await _run(saver, shop, model, "Ship orders 7 and 8", _running({1}, {2}))
    shop.hold = set()
    async with AsyncSqliteSaver.from_conn_string(_after_crash(tmp_path)) as saver:
        resumed = await _run(saver, shop, model, None)
        state = await _state(saver)
    assert shop.calls == ["record_shipment 7", "record_shipment 8", "record_shipment 9"]
    assert _ids(resumed, "task.finished", reused=True) == {2}
    assert _ids(resumed, "task.in_doubt") == {3}
    assert [(r.id, r.args, r.status, r.output[:17]) for r in state.results] == [
        (1, {"order_id": 9}, "ok", "order 9 recorded"),
        (2, {"order_id": 7}, "ok", "order 7 recorded"),
        (3, {"order_id": 8}, "in_doubt", "not run again: re"),
    ]


@pytest.mark.reliability("durability")
async def test_parallel_calls_branches_are_not_repeated_after_a_crash(tmp_path: Path) -> None:
    database = str(tmp_path / "threads.sqlite")
    plan = _plan(RECORD_7, RECORD_8, STOCK)
    model = ScriptedChatModel(plans=[plan], answer=ANSWER)
    shop = Shop(hold={"record_shipment 8", "check_stock widget"})
    mode = {"execution_mode": "parallel_calls"}
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        await _run(saver, shop, model, "Ship orders 7 and 8", _running({1}, {2, 3}), **mode)
    shop.hold = set()
    async with AsyncSqliteSaver.from_conn_string(_after_crash(tmp_path)) as saver:
        resumed = await _run(saver, shop, model, None, **mode)
        state = await _state(saver)
    assert sorted(shop.calls) == [
        "check_stock widget",
        "check_stock widget",
        "record_shipment 7",
        "record_shipment 8",
    ]
    assert _ids(resumed, "task.in_doubt", action="reported") == {2}
    statuses = {result.id: result.status for result in state.results}
    assert statuses == {1: "ok", 2: "in_doubt", 3: "ok"}
    assert state.messages[-1].text == ANSWER


@pytest.mark.reliability("durability")
async def test_a_replan_after_resume_does_not_run_a_call_in_doubt(tmp_path: Path) -> None:
    """A failed task makes the resumed run replan; the replan asks for the call in doubt again."""
    database = str(tmp_path / "threads.sqlite")
    broken = ("check_stock", {"product": "gadget"})
    plan = _plan(RECORD_8, broken)
    model = ScriptedChatModel(plans=[plan, plan, _plan(RECORD_8)], answer=ANSWER)
    shop = Shop(hold={"record_shipment 8"})
    shop.fail = {"check_stock gadget"}
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        await _run(saver, shop, model, "Ship order 8", _running({2}, {1}))
    shop.hold = set()
    async with AsyncSqliteSaver.from_conn_string(_after_crash(tmp_path)) as saver:
        resumed = await _run(saver, shop, model, None)
        state = await _state(saver)
    assert state.replans == 1
    assert shop.calls.count("record_shipment 8") == 1, "the replan ran a call in doubt again"
    assert _ids(resumed, "task.in_doubt") == {1, 3}
    assert [(r.id, r.status) for r in state.results] == [
        (1, "in_doubt"),
        (2, "error"),
        (3, "in_doubt"),
    ]
