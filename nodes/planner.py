"""The planner: streams a task plan from the model and yields each task the moment it is complete.

The plan is constrained to a JSON schema (structured outputs), so even a small model emits a
parseable plan; each task is checked (known tool, known arguments, dependencies on earlier tasks
only, which also rules out cycles) before it is handed to the task runner.
"""

import json
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from openai import LengthFinishReasonError
from rank_bm25 import BM25Okapi

from expressway.events import emit
from expressway.models import raise_if_cancelled
from expressway.state import REFERENCE, PlannedTask, TaskResult, call_key
from nodes.prompts import PLAN_EXAMPLES, PLANNER_SYSTEM, REPLAN_NOTE

MAX_REPEATS = 2  # consecutive repeated tasks after which the rest of a plan is not read
# A task is ~20-40 tokens; the budget bounds a plan whose strings run on (a small model's do),
# which would otherwise generate up to the context limit: minutes on a CPU.
TOKENS_PER_TASK = 64
_WORD = re.compile(r"\w+")


class PlanError(ValueError):
    """A task or the plan as a whole is invalid; the message says what and why."""

    def __init__(self, message: str, task_id: int | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


def tool_parameters(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, as the model sees it."""
    return convert_to_openai_tool(tool)["function"]["parameters"]


def plan_json_schema(tools: Sequence[BaseTool], max_tasks: int) -> dict[str, Any]:
    """A schema whose every task names a real tool with that tool's own argument schema."""
    task_schemas = [
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "tool": {"const": tool.name},
                "args": {**tool_parameters(tool), "additionalProperties": False},
                "deps": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["id", "tool", "args", "deps"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return {
        "type": "object",
        "properties": {
            "tasks": {"type": "array", "maxItems": max_tasks, "items": {"anyOf": task_schemas}}
        },
        "required": ["tasks"],
        "additionalProperties": False,
    }


def describe_tools(tools: Sequence[BaseTool]) -> str:
    lines = []
    for tool in tools:
        arguments = ", ".join(tool_parameters(tool).get("properties", {}))
        lines.append(f"- {tool.name}({arguments}): {' '.join(tool.description.split())}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def _example_index() -> BM25Okapi:
    return BM25Okapi([_WORD.findall(question.lower()) for question, _ in PLAN_EXAMPLES])


def similar_examples(question: str, tool_names: set[str], count: int = 2) -> list[tuple[str, str]]:
    """The example plans most similar to `question` that use only the available tools."""
    scores = _example_index().get_scores(_WORD.findall(question.lower()))
    ranked = sorted(range(len(PLAN_EXAMPLES)), key=lambda i: scores[i], reverse=True)
    usable = [
        PLAN_EXAMPLES[i]
        for i in ranked
        if {task["tool"] for task in json.loads(PLAN_EXAMPLES[i][1])["tasks"]} <= tool_names
    ]
    # Most similar last: small models lean on the example nearest the question.
    return list(reversed(usable[:count]))


def planner_messages(
    question: str,
    tools: Sequence[BaseTool],
    previous: Sequence[TaskResult] = (),
    problems: Sequence[str] = (),
) -> list[BaseMessage]:
    """Static system prompt (the server's prefix cache reuses it), similar examples, question."""
    messages: list[BaseMessage] = [
        SystemMessage(PLANNER_SYSTEM.format(tool_descriptions=describe_tools(tools)))
    ]
    for example_question, example_plan in similar_examples(question, {t.name for t in tools}):
        messages += [HumanMessage(example_question), AIMessage(example_plan)]
    if problems or previous:
        note = REPLAN_NOTE.format(
            problems="\n".join(f"- {problem}" for problem in problems) or "- none",
            results="\n".join(f"- task {r.id} {r.tool}: {r.output}" for r in previous) or "- none",
        )
        question = f"{question}\n\n{note}"
    messages.append(HumanMessage(question))
    return messages


class DuplicateTaskError(PlanError):
    """A task repeats an earlier task of the same plan (small models can loop on one call)."""


class TaskStreamParser:
    """Incremental scanner over the plan's JSON text: returns each object of the "tasks" array as
    soon as its closing brace arrives, without waiting for the rest of the plan."""

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._task_start: int | None = None
        self._buffer: list[str] = []
        self._length = 0
        self.text = ""

    def feed(self, chunk: str) -> list[dict[str, Any]]:
        complete: list[dict[str, Any]] = []
        for char in chunk:
            self._buffer.append(char)
            self._length += 1
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
                continue
            if char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
                # Depth 3 is a task object: {"tasks": [ {...} ]}
                if char == "{" and self._depth == 3:
                    self._task_start = self._length - 1
            elif char in "}]":
                if char == "}" and self._depth == 3 and self._task_start is not None:
                    text = "".join(self._buffer[self._task_start :])
                    self._task_start = None
                    try:
                        complete.append(json.loads(text))
                    except json.JSONDecodeError as error:
                        raise PlanError(
                            f"task is not valid JSON ({error}): {text[:200]}"
                        ) from error
                self._depth -= 1
        self.text = "".join(self._buffer)
        return complete

    def finish(self) -> None:
        """Raise PlanError if the whole plan is not one well-formed JSON object."""
        try:
            plan = json.loads(self.text)
        except json.JSONDecodeError as error:
            raise PlanError(
                f"the plan is not complete JSON ({error.msg} at character {error.pos}); "
                f"it may have been cut off by the token limit: {self.text[-120:]!r}"
            ) from error
        if not isinstance(plan, dict) or not isinstance(plan.get("tasks"), list):
            raise PlanError(f'the plan must be {{"tasks": [...]}}, got: {self.text[:120]!r}')


@dataclass
class PlanValidator:
    """Checks each streamed task against the tools and the tasks seen before it."""

    tools: dict[str, BaseTool]
    max_tasks: int
    seen: set[int] = field(default_factory=set)
    calls: dict[str, int] = field(default_factory=dict)

    def check(self, raw: dict[str, Any]) -> PlannedTask:
        task_id, tool_name = raw.get("id"), raw.get("tool")
        args, deps = raw.get("args", {}), raw.get("deps", [])
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise PlanError(f"task {raw!r} has no integer id")
        if task_id in self.seen:
            raise PlanError(f"task {task_id}: the id is used twice")
        if len(self.seen) >= self.max_tasks:
            raise PlanError(
                f"task {task_id}: a plan may have at most {self.max_tasks} tasks "
                "(EXPRESSWAY_MAX_PLAN_TASKS)",
                task_id,
            )
        if tool_name not in self.tools:
            raise PlanError(
                f"task {task_id}: unknown tool {tool_name!r}; available: {', '.join(self.tools)}",
                task_id,
            )
        if not isinstance(args, dict) or not isinstance(deps, list):
            raise PlanError(f"task {task_id}: args must be an object and deps a list", task_id)
        schema = tool_parameters(self.tools[tool_name])
        unknown = set(args) - set(schema.get("properties", {}))
        missing = set(schema.get("required", [])) - set(args)
        if unknown or missing:
            raise PlanError(
                f"task {task_id}: bad arguments for {tool_name}: "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}",
                task_id,
            )
        referenced = {int(n) for value in args.values() for n in REFERENCE.findall(str(value))}
        for dep in {*deps, *referenced}:
            if dep == task_id:
                raise PlanError(f"task {task_id}: depends on itself (a cycle)", task_id)
            if dep not in self.seen:
                raise PlanError(
                    f"task {task_id}: depends on task {dep}, which is not an earlier task "
                    "(missing, or a cycle)",
                    task_id,
                )
        call = call_key(tool_name, args)
        if call in self.calls:
            raise DuplicateTaskError(
                f"task {task_id}: repeats task {self.calls[call]} ({tool_name} with the same "
                "arguments)",
                task_id,
            )
        self.seen.add(task_id)
        self.calls[call] = task_id
        return PlannedTask(id=task_id, tool=tool_name, args=args, deps=sorted({*deps, *referenced}))


def offset_task(task: PlannedTask, offset: int) -> PlannedTask:
    """Renumber a replan's task (numbered from 1 in its own plan) after the earlier results."""
    if not offset:
        return task
    args = {
        name: REFERENCE.sub(lambda m: f"${int(m.group(1)) + offset}", value)
        if isinstance(value, str)
        else value
        for name, value in task.args.items()
    }
    return PlannedTask(task.id + offset, task.tool, args, [dep + offset for dep in task.deps])


async def stream_plan(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    tools: Sequence[BaseTool],
    max_tasks: int,
    id_offset: int = 0,
) -> AsyncIterator[PlannedTask | PlanError]:
    """Yield each valid task as soon as the model has written it, and a PlanError for each invalid
    task (or a plan that is not valid JSON). The model numbers tasks from 1; on a replan they are
    renumbered after `id_offset` so they never collide with earlier results. A plan that keeps
    repeating a task is cut off rather than read to its token limit, and a plan's tokens are
    bounded by `max_tasks`."""
    schema, max_tokens = plan_json_schema(tools, max_tasks), TOKENS_PER_TASK * max_tasks
    structured = model.bind(
        response_format={"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}},
        max_tokens=max_tokens,
    )
    parser = TaskStreamParser()
    validator = PlanValidator(tools={tool.name: tool for tool in tools}, max_tasks=max_tasks)
    repeats = 0
    # aclosing: stopping early closes the model's HTTP stream at once, which ends its generation.
    async with aclosing(structured.astream(messages)) as chunks:
        try:
            async for chunk in chunks:
                try:
                    raw_tasks = parser.feed(chunk.text)
                except PlanError as error:
                    yield error
                    continue
                for raw in raw_tasks:
                    try:
                        task = validator.check(raw)
                    except DuplicateTaskError as error:
                        repeats += 1
                        yield error
                        if repeats >= MAX_REPEATS:
                            yield PlanError(
                                f"the planner repeated {repeats} tasks; stopped reading"
                            )
                            return
                        continue
                    except PlanError as error:
                        yield error
                        continue
                    repeats = 0
                    yield offset_task(task, id_offset)
        except LengthFinishReasonError:  # raised by the OpenAI client once the stream has ended
            yield PlanError(
                f"the plan reached its {max_tokens}-token limit before it closed; "
                "the tasks read before it run"
            )
            return
    raise_if_cancelled()
    try:
        parser.finish()
    except PlanError as error:
        yield error


async def announce_plan(
    items: AsyncIterator[PlannedTask | PlanError],
    started_at: float,
    errors: list[str],
    independent_only: bool = False,
) -> AsyncIterator[PlannedTask]:
    """Emit `plan.task` or `plan.error` for each streamed item, collect the errors in `errors`,
    and yield the valid tasks (refusing tasks with dependencies when `independent_only`)."""
    async for item in items:
        if independent_only and isinstance(item, PlannedTask) and item.deps:
            item = PlanError(f"task {item.id}: parallel_calls mode runs independent calls only")
        if isinstance(item, PlanError):
            errors.append(str(item))
            emit(started_at, "plan.error", error=str(item), task_id=item.task_id)
            continue
        emit(
            started_at, "plan.task", task_id=item.id, tool=item.tool, args=item.args, deps=item.deps
        )
        yield item
