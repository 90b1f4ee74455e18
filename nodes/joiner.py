"""The joiner: after the tasks finish, answer or (bounded) replan."""

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from expressway.context import Context
from expressway.state import State


async def join(
    state: State, runtime: Runtime[Context]
) -> Command[Literal["plan_and_schedule", "answer"]]:
    """Read `results`, `plan_errors` and `replans`; go back to planning when the plan was invalid
    or a task failed and replans are left, otherwise to the answer.

    A rule rather than an LLM call (LLMCompiler's joiner asks the model): it saves a full model
    round trip on every question, and the answer model still says what could not be found."""
    failed = state.plan_errors or any(result.status == "error" for result in state.results)
    if failed and state.replans < runtime.context.max_replans:
        return Command(goto="plan_and_schedule", update={"replans": state.replans + 1})
    return Command(goto="answer")
