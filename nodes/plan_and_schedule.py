"""The compiler node: streams the plan and hands each task to the task runner as it arrives."""

from typing import Any

from langgraph.runtime import Runtime

from expressway.context import Context
from expressway.events import now
from expressway.models import is_connection_error, tier_model, unreachable
from expressway.state import State, last_question
from expressway.toolbox import Toolbox
from nodes.durable_tasks import CallJournal
from nodes.planner import announce_plan, planner_messages, stream_plan
from nodes.task_runner import TaskRunner


async def plan_and_schedule(
    state: State, runtime: Runtime[Context], *, toolbox: Toolbox
) -> dict[str, Any]:
    """Read the question, the route and (on a replan) earlier results and plan errors; write new
    `results`, `plan_errors` and the `plan` timing (the plan stream's duration).

    Each task starts while the rest of the plan is still streaming; each finished call is saved
    in the checkpointer at once, so a resumed run reuses it (nodes/durable_tasks.py). Emits
    `plan.task`, `plan.error`, `task.started`, `task.finished` and `task.in_doubt`."""
    context, route = runtime.context, state.route
    assert route is not None, "route_request runs first"
    plan_started = now()
    journal = await CallJournal.open(runtime, state.started_at, state.results)
    runner = TaskRunner(
        toolbox.tools,
        state.started_at,
        context.tool_timeout_s,
        context.max_concurrency,
        previous=state.results,
        journal=journal,
    )
    id_offset = max((result.id for result in state.results), default=0)
    messages = planner_messages(
        last_question(state), toolbox.tools, state.results, state.plan_errors
    )
    model = tier_model(context, route.tier, toolbox.models)
    errors: list[str] = []
    try:
        plan = stream_plan(model, messages, toolbox.tools, context.max_plan_tasks, id_offset)
        async for task in announce_plan(plan, state.started_at, errors):
            runner.submit(task)
        plan_finished = now()
        results = await runner.results()
        results += journal.unclaimed(max((r.id for r in results), default=id_offset) + 1)
    except BaseException as error:
        # A cancelled run (the consumer went away) or a failed plan stream stops every tool call.
        await runner.cancel()
        if is_connection_error(error):
            raise unreachable(context, route.tier) from error
        raise
    return {
        "results": results,
        "plan_errors": errors,
        "timings": {"plan": plan_finished - plan_started},
    }
