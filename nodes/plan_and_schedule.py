"""The compiler node: streams the plan and hands each task to the task runner as it arrives.

Around the plan, two things overlap model work with tool work. A plan template cached from an
earlier run of the same shape (nodes/plan_cache.py) starts its read-only calls before the planner
has written a line; a planned task that makes an identical call adopts it, the rest are cancelled.
And once the plan is known, while tools still run, the answering tier computes the answer prompt
up to the tool results, so the answer only has to read the results.
"""

import asyncio
import logging
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime

from expressway.context import Context
from expressway.events import emit, now
from expressway.state import PlannedTask, State, last_question
from expressway.toolbox import Toolbox, is_read_only
from nodes.answer import warm_answer_prefix
from nodes.durable_tasks import CallJournal
from nodes.plan_cache import TRUSTED_AFTER, Match, PlanCache
from nodes.planner import announce_plan, plan_question, replay_plan
from nodes.task_runner import TaskRunner

logger = logging.getLogger(__name__)
WARM_UP_GRACE_S = 0.05  # tools still running this long after the plan: warm the answer's prompt
# Template writes happen after the answer has what it needs; keep a reference until they finish.
_BACKGROUND: set[asyncio.Task[None]] = set()


def trusted(match: Match | None, context: Context, tools: list[BaseTool]) -> bool:
    """Whether "trust" mode may run a template without the planner: confirmed often enough, and
    every call read-only (a wrong guess must not have side effects)."""
    by_name = {tool.name: tool for tool in tools}
    return (
        match is not None
        and context.plan_cache == "trust"
        and match.confirmed >= TRUSTED_AFTER
        and all(tool in by_name and is_read_only(by_name[tool]) for tool, _ in match.calls)
    )


async def plan_and_schedule(
    state: State, runtime: Runtime[Context], *, toolbox: Toolbox
) -> dict[str, Any]:
    """Read the question, the route and (on a replan) earlier results and plan errors; write new
    `results`, `plan_errors`, the `plan` timing (the plan stream's duration) and `speculation`
    counts.

    Each task starts while the rest of the plan is still streaming; each finished call is saved
    in the checkpointer at once, so a resumed run reuses it (nodes/durable_tasks.py). Emits
    `plan.started`, `speculation.started`, `plan.task`, `plan.error`, `plan.finished`,
    `task.started`, `task.finished` and `task.in_doubt`."""
    context, route = runtime.context, state.route
    assert route is not None, "route_request runs first"
    # First, so an MCP server's start on a first run counts as tool time, not planning.
    tools = await toolbox.run_tools(context)
    plan_started = now()
    emit(state.started_at, "plan.started", replan=state.replans)
    question = last_question(state)
    journal = await CallJournal.open(runtime, state.started_at, state.results)
    runner = TaskRunner(
        tools,
        state.started_at,
        context.tool_timeout_s,
        context.max_concurrency,
        previous=state.results,
        journal=journal,
    )
    first_plan = not state.results and not state.plan_errors
    id_offset = max((result.id for result in state.results), default=0)
    cache = PlanCache(runtime.store, tools) if context.plan_cache != "off" else None
    match = await cache.lookup(question) if cache and first_plan else None
    speculated = [call for call in match.calls if runner.speculate(*call)] if match else []
    if speculated:
        calls = [{"tool": tool, "args": args} for tool, args in speculated]
        emit(state.started_at, "speculation.started", calls=calls)
    from_cache = trusted(match, context, tools)
    errors: list[str] = []
    planned: list[PlannedTask] = []
    warm_up: asyncio.Future[None] | None = None
    try:
        if match is not None and from_cache:
            steps = replay_plan(match.calls, tools, context.max_plan_tasks)
        else:
            steps = plan_question(state, context, toolbox.models, tools, id_offset)
        async for task in announce_plan(steps, state.started_at, errors):
            runner.submit(task)
            planned.append(task)
        plan_finished = now()
        emit(
            state.started_at,
            "plan.finished",
            steps=len(planned),
            errors=len(errors),
            from_cache=from_cache,
        )
        if context.prefill_answer_early:
            warm_up = asyncio.ensure_future(warm_while_tools_run(runner, state, context, toolbox))
        results = await runner.results()
        results += journal.unclaimed(max((r.id for r in results), default=id_offset) + 1)
        if warm_up is not None and not warm_up.done():
            # The tools finished first: the answer does not wait for the warm-up. Closing its
            # request aborts it; the blocks it already computed stay in the prefix cache.
            warm_up.cancel()
            await asyncio.wait([warm_up])
    except BaseException:
        # A cancelled run (the consumer went away) or a failed plan stream stops every tool call.
        if warm_up is not None:
            warm_up.cancel()
        await runner.cancel()
        raise
    adopted, wasted = await runner.drop_unused_speculation()
    succeeded = planned and not errors and all(result.status == "ok" for result in results)
    if cache and first_plan and succeeded:
        steps_made = [(task.tool, task.args) for task in planned]
        confirm = match is not None and steps_made == match.calls
        remembered = asyncio.ensure_future(remember(cache, question, steps_made, match, confirm))
        _BACKGROUND.add(remembered)
        remembered.add_done_callback(_BACKGROUND.discard)
    return {
        "results": results,
        "plan_errors": errors,
        "timings": {"plan": plan_finished - plan_started},
        "speculation": {
            "speculated": len(speculated),
            "adopted": adopted,
            "wasted": wasted,
            "from_cache": int(from_cache),
        },
    }


async def warm_while_tools_run(
    runner: TaskRunner, state: State, context: Context, toolbox: Toolbox
) -> None:
    """Prefill the answer's prompt on its tier while tools run: first up to the results, then
    again each time the results known in task order grow (a chain's earlier links, a slow task's
    faster predecessors), each time with the next task's call, whose output alone is missing. So
    after the last tool the answer reads only the results not yet in the prefix. One warm-up at
    a time, and only while tools are still running a moment later: tools that finish at once
    leave nothing to overlap, and the request would add load."""
    warmed = -1
    while not await runner.settled(WARM_UP_GRACE_S):
        known = runner.finished_in_order()
        if len(known) > warmed:
            await warm_answer_prefix(state, context, toolbox, known, runner.next_call())
            warmed = len(known)
        else:
            await runner.next_finished()


async def remember(
    cache: PlanCache,
    question: str,
    steps: list[tuple[str, dict[str, Any]]],
    match: Match | None,
    confirm: bool,
) -> None:
    """Store the run's plan as a template, and count a template whose guess was exact. A store
    that fails is logged, never raised: the cache only ever saves time."""
    try:
        await cache.remember(question, steps)
        if confirm and match is not None:
            await cache.confirm(match.key)
    except Exception:
        logger.warning("could not store the plan template in %s", cache.namespace, exc_info=True)
