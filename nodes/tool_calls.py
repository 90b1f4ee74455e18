"""The parallel_calls mode: one model turn proposes several tool calls, each runs in its own
branch (LangGraph `Send`), and the results are joined in call order."""

from typing import Any, TypedDict

from langgraph.runtime import Runtime
from langgraph.types import Send

from expressway.context import Context
from expressway.events import now
from expressway.state import PlannedTask, State, TaskResult, call_key
from expressway.toolbox import Toolbox
from nodes.durable_tasks import CallJournal, SaveResult
from nodes.planner import announce_plan, plan_question
from nodes.task_runner import call_tool, execute_call


class ToolCall(TypedDict):
    """What one fan-out branch receives: the call and the run's clock. Plain data: a branch's
    input is saved in the checkpoint, and LangGraph's strict deserialization (its announced
    default) refuses classes it does not know, which would stop a resumed run."""

    id: int
    tool: str
    args: dict[str, Any]
    started_at: float


async def propose_tool_calls(
    state: State, runtime: Runtime[Context], *, toolbox: Toolbox
) -> dict[str, Any]:
    """Read the question and route; write the proposed calls to `pending_calls`, invalid ones to
    `plan_errors`, and the `plan` timing. Calls that reference other calls' results are refused:
    in this mode every call is independent."""
    context, route = runtime.context, state.route
    assert route is not None, "route_request runs first"
    tools = await toolbox.run_tools(context)  # first: an MCP server's start is not planning
    started = now()
    errors: list[str] = []
    plan = plan_question(state, context, toolbox.models, tools)
    calls = [
        task async for task in announce_plan(plan, state.started_at, errors, independent_only=True)
    ]
    return {"pending_calls": calls, "plan_errors": errors, "timings": {"plan": now() - started}}


def fan_out_calls(state: State) -> list[Send] | str:
    """One `run_tool_call` branch per proposed call, all in the same step; none -> answer."""
    if not state.pending_calls:
        return "answer"
    return [
        Send(
            "run_tool_call",
            ToolCall(id=call.id, tool=call.tool, args=call.args, started_at=state.started_at),
        )
        for call in state.pending_calls
    ]


async def run_tool_call(
    branch: ToolCall, runtime: Runtime[Context], *, toolbox: Toolbox
) -> dict[str, Any]:
    """Read one call; write its result to `results` (the answer orders them by call id).
    Emits `task.started` and `task.finished`, or `task.in_doubt` when the branch is resumed after
    a crash that stopped it while it ran a tool with side effects (nodes/durable_tasks.py)."""
    call = PlannedTask(branch["id"], branch["tool"], branch["args"])
    started_at, timeout_s = branch["started_at"], runtime.context.tool_timeout_s
    tools = await toolbox.run_tools(runtime.context)
    tool = next(tool for tool in tools if tool.name == call.tool)

    async def execute(save: SaveResult) -> TaskResult:
        run = call_tool(tool, call.args, timeout_s)
        return await execute_call(call.id, call.tool, call.args, run, started_at, timeout_s, save)

    # LangGraph saves a finished branch's writes and does not run it again: only calls with side
    # effects need a record, so one that was running at a crash is reported, not repeated.
    journal = await CallJournal.open(runtime, started_at, save_read_only=False)
    result = await journal.run(call.id, tool, call.args, call_key(call.tool, call.args), execute)
    return {"results": [result]}
