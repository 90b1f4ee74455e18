"""The graph's state: conversation, routing decision, task results and stage timings."""

import json
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph import add_messages

from expressway.context import TierName

# "$2" or "${2}" in a task's string argument: the output of task 2. An amount such as "$25.00"
# or "$1,200" is not one (the planner decides which of the rest are: `PlanValidator`).
REFERENCE = re.compile(r"\$\{?(\d+)\}?(?!\d|[.,]\d)")


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a tool argument's value, at any depth of its lists and objects."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)


def map_strings(value: Any, change: Callable[[str], Any]) -> Any:
    """`value` with `change` applied to each of its strings, at any depth of lists and objects."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list | tuple):
        return [map_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {key: map_strings(item, change) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Route:
    """A routing decision: what kind of request it is (a task of the routing table) and which
    tier answers it."""

    task: str
    tier: TierName
    confidence: float
    latency_ms: float
    use_tools: bool
    max_tokens: int
    model: str = ""
    escalated: bool = False
    # The request is answered from tool results (a lookup): the plan must call at least one tool,
    # and without a usable result the answer says so instead of guessing.
    require_tools: bool = False
    # The routing table's instruction for this task's answer, in place of "a few sentences".
    answer_instructions: str = ""


def call_key(tool: str, args: dict[str, Any]) -> str:
    """Identifies a tool call by name and arguments (argument order does not matter)."""
    return f"{tool}:{json.dumps(args, sort_keys=True, default=str)}"


@dataclass
class PlannedTask:
    """One step of a plan: call `tool` with `args` once the tasks in `deps` have finished.
    A string arg may reference an earlier result as "$<id>"."""

    id: int
    tool: str
    args: dict[str, Any]
    deps: list[int] = field(default_factory=list)


TaskStatus = Literal["ok", "error", "in_doubt"]


@dataclass
class TaskResult:
    """What running a task produced; `started_s`/`finished_s` are seconds since the run started.
    "in_doubt": a call with side effects was running when an earlier process stopped, so whether
    it took effect is unknown; it was not run again (nodes/durable_tasks.py)."""

    id: int
    tool: str
    args: dict[str, Any]
    status: TaskStatus
    output: str
    started_s: float
    finished_s: float


def sum_per_key(left: dict[str, float], right: dict[str, float]) -> dict[str, float]:
    """Sum values per key: a replanned run reports the total time spent planning, and the
    speculation counts of all its plans."""
    merged = dict(left)
    for stage, seconds in right.items():
        merged[stage] = round(merged.get(stage, 0.0) + seconds, 6)
    return merged


@dataclass(kw_only=True)
class InputState:
    """What a caller sends: the conversation, whose last human message is the question."""

    messages: Annotated[Sequence[AnyMessage], add_messages] = field(default_factory=list)


@dataclass(kw_only=True)
class State(InputState):
    """Everything the nodes share during a run. The first node of each question overwrites the
    per-question fields (langgraph.types.Overwrite), so a thread's earlier turns do not leak in."""

    started_at: float = 0.0
    route: Route | None = None
    results: Annotated[list[TaskResult], operator.add] = field(default_factory=list)
    plan_errors: Annotated[list[str], operator.add] = field(default_factory=list)
    pending_calls: list[PlannedTask] = field(default_factory=list)
    replans: int = 0
    timings: Annotated[dict[str, float], sum_per_key] = field(default_factory=dict)
    # Calls started from a cached plan template: speculated, adopted by the plan, wasted.
    speculation: Annotated[dict[str, float], sum_per_key] = field(default_factory=dict)


def last_question(state: InputState) -> str:
    """The text of the latest human message."""
    for message in reversed(state.messages):
        if isinstance(message, HumanMessage):
            return message.text.strip()
    return ""


def previous_question(state: InputState) -> str:
    """The text of the human message before the latest one ("" in a thread's first turn)."""
    questions = [message for message in state.messages if isinstance(message, HumanMessage)]
    return questions[-2].text.strip() if len(questions) > 1 else ""
