"""The planner: streams a task plan from the model and yields each task the moment it is complete.

The plan is constrained to a JSON schema (structured outputs), so even a small model emits a
parseable plan; each task is checked (known tool, known arguments, dependencies on earlier tasks
only, which also rules out cycles) before it is handed to the task runner.
"""

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool
from openai import LengthFinishReasonError

from expressway.context import Context
from expressway.events import emit
from expressway.models import (
    fall_back,
    fallback_order,
    first_output_timeout_s,
    first_within,
    raise_if_cancelled,
    tier_model,
)
from expressway.state import (
    REFERENCE,
    PlannedTask,
    State,
    TaskResult,
    call_key,
    last_question,
    map_strings,
    strings_in,
)
from expressway.toolbox import tool_parameters
from nodes.prompts import FITTING_TOOLS_NOTE, PLANNER_SYSTEM, REPLAN_NOTE
from nodes.tool_choice import ENCODER_LAYERS, embed_question, tool_catalog

MAX_REPEATS = 2  # consecutive repeated tasks after which the rest of a plan is not read
# A task is ~20-40 tokens; the budget bounds a plan whose strings run on (a small model's do),
# which would otherwise generate up to the context limit: minutes on a CPU.
TOKENS_PER_TASK = 64
# A plan whose text ends in one run of characters repeated this often, over this many characters,
# is stuck in a loop ("price_usd_usd, price_usd_usd, ..." from SmolLM2): reading it to the token
# budget took 72 s on the embedded CPU server. Runs up to LOOP_MAX_UNIT characters are checked.
LOOP_REPEATS, LOOP_MIN_CHARS, LOOP_MAX_UNIT = 4, 96, 48
PLAN_KEY = "plan"
# The plan's text up to its array: a model held to the schema writes nothing before it, so steps
# anywhere else ({"notes": [...]}, another key first) are never run.
_PLAN_OPENING = re.compile(rf'\s*\{{\s*"{PLAN_KEY}"\s*:\s*\[')
_WORD = re.compile(r"\w+")


class PlanError(ValueError):
    """A task or the plan as a whole is invalid; the message says what and why."""

    def __init__(self, message: str, task_id: int | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


def plan_json_schema(
    tools: Sequence[BaseTool], max_tasks: int, min_tasks: int = 0
) -> dict[str, Any]:
    """A schema whose every step is {"<tool>": {<that tool's arguments>}}: the tool's name is the
    step's only key, so a step costs about half the tokens of {"id", "tool", "args", "deps"}; the
    id is the step's position and its dependencies are the "$N" references in its arguments."""
    steps = [
        {
            "type": "object",
            "properties": {tool.name: {**tool_parameters(tool), "additionalProperties": False}},
            "required": [tool.name],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return {
        "type": "object",
        "properties": {
            PLAN_KEY: {
                "type": "array",
                "minItems": min_tasks,
                "maxItems": max_tasks,
                "items": {"anyOf": steps},
            }
        },
        "required": [PLAN_KEY],
        "additionalProperties": False,
    }


def encode_plan(steps: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The plan text the model writes for `steps` of (tool, args), in the schema's compact form."""
    return json.dumps({PLAN_KEY: [{tool: args} for tool, args in steps]}, separators=(",", ":"))


def _type_text(schema: dict[str, Any]) -> str:
    """A parameter's type as a small model reads it best: its choices, or its JSON type."""
    if "enum" in schema:
        return " | ".join(json.dumps(choice) for choice in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type_text(option) for option in schema["anyOf"])
    return {"string": "text", "integer": "int", "number": "number", "boolean": "true/false"}.get(
        schema.get("type", ""), schema.get("type", "value")
    )


def describe_tools(tools: Sequence[BaseTool]) -> str:
    """One line per tool: its signature with types, choices and defaults, and its description."""
    lines = []
    for tool in tools:
        schema = tool_parameters(tool)
        required = set(schema.get("required", []))
        arguments = []
        for name, spec in schema.get("properties", {}).items():
            argument = f"{name}: {_type_text(spec)}"
            if name not in required and "default" in spec:
                argument += f" = {json.dumps(spec['default'])}"
            arguments.append(argument)
        lines.append(f"- {tool.name}({', '.join(arguments)}): {' '.join(tool.description.split())}")
    return "\n".join(lines)


def planner_messages(
    question: str,
    tools: Sequence[BaseTool],
    previous: Sequence[TaskResult] = (),
    problems: Sequence[str] = (),
    ranking_layers: int = ENCODER_LAYERS,
) -> list[BaseMessage]:
    """Static system prompt (the server's prefix cache reuses it), examples for the question
    (nodes/tool_choice.py, ranking tools with `ranking_layers` encoder layers), then the question
    with the tools that fit it best named under it."""
    messages: list[BaseMessage] = [
        SystemMessage(PLANNER_SYSTEM.format(tool_descriptions=describe_tools(tools)))
    ]
    catalog = tool_catalog(tools, ranking_layers)
    fitting = catalog.fitting(question)
    for example_question, steps in catalog.examples(question, fitting):
        messages += [HumanMessage(example_question), AIMessage(encode_plan(steps))]
    if fitting:
        hint = FITTING_TOOLS_NOTE.format(tools=", ".join(tool.name for tool in fitting))
        question = f"{question}\n{hint}"
    if problems or previous:
        note = REPLAN_NOTE.format(
            problems="\n".join(f"- {problem}" for problem in problems) or "- none",
            results="\n".join(f"- step {r.id} {r.tool}: {r.output}" for r in previous) or "- none",
        )
        question = f"{question}\n\n{note}"
    messages.append(HumanMessage(question))
    return messages


def looping_tail(text: str) -> str | None:
    """The run of characters `text` ends with at least LOOP_REPEATS times in a row, over at
    least LOOP_MIN_CHARS characters, if there is one (the shortest such run)."""
    for size in range(1, LOOP_MAX_UNIT + 1):
        repeats = max(LOOP_REPEATS, -(-LOOP_MIN_CHARS // size))
        if len(text) >= size * repeats and text.endswith(text[-size:] * repeats):
            return text[-size:]
    return None


class DuplicateTaskError(PlanError):
    """A step repeats an earlier step of the same plan (small models can loop on one call)."""


class PlanTooLongError(PlanError):
    """The plan goes on past its step limit."""


class TaskStreamParser:
    """Incremental scanner over the plan's JSON text: returns each step of the plan's array as
    soon as its closing brace arrives, without waiting for the rest of the plan."""

    def __init__(self) -> None:
        self._depth = 0
        self._in_plan = False  # inside the "plan" key's array (steps elsewhere never run)
        self.steps_found = 0
        self._in_string = False
        self._escaped = False
        self._task_start: int | None = None
        self._buffer: list[str] = []
        self._length = 0
        self._last_step_end = 0
        self.text = ""

    def feed(self, chunk: str) -> list[str]:
        """The text of each step whose closing brace is in `chunk`."""
        complete: list[str] = []
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
                if char == "[" and self._depth == 2:
                    self._in_plan = _PLAN_OPENING.fullmatch("".join(self._buffer)) is not None
                # Depth 3 is a step object: {"plan": [ {...} ]}
                if char == "{" and self._depth == 3 and self._in_plan:
                    self._task_start = self._length - 1
            elif char in "}]":
                if char == "}" and self._depth == 3 and self._task_start is not None:
                    complete.append("".join(self._buffer[self._task_start :]))
                    self._task_start = None
                    self._last_step_end = self._length
                    self.steps_found += 1
                if char == "]" and self._depth == 2:
                    self._in_plan = False
                self._depth -= 1
        self.text = "".join(self._buffer)
        return complete

    @property
    def chars_since_step(self) -> int:
        """Characters read since the last step closed (or since the start)."""
        return self._length - self._last_step_end

    def finish(self) -> None:
        """Raise PlanError if the whole plan is not one well-formed JSON object."""
        try:
            plan = json.loads(self.text)
        except json.JSONDecodeError as error:
            raise PlanError(
                f"the plan is not complete JSON ({error.msg} at character {error.pos}); "
                f"it may have been cut off by the token limit: {self.text[-120:]!r}"
            ) from error
        if not isinstance(plan, dict) or not isinstance(plan.get(PLAN_KEY), list):
            raise PlanError(f'the plan must be {{"{PLAN_KEY}": [...]}}, got: {self.text[:120]!r}')
        if set(plan) != {PLAN_KEY} or len(plan[PLAN_KEY]) != self.steps_found:
            raise PlanError(
                f'the plan must be {{"{PLAN_KEY}": [...]}} alone, its steps first: steps written '
                f"anywhere else were not run; got: {self.text[:120]!r}"
            )


@dataclass
class PlanValidator:
    """Checks each streamed step against the tools and the steps seen before it."""

    tools: dict[str, BaseTool]
    max_tasks: int
    # A replan's steps are numbered from 1 in its own plan; its errors name them as the run
    # numbers them (after `id_offset` earlier results), as its tasks are (`offset_task`).
    id_offset: int = 0
    steps: int = 0
    seen: set[int] = field(default_factory=set)
    calls: dict[str, int] = field(default_factory=dict)

    def check(self, text: str) -> PlannedTask:
        """Validate the plan's next step (its JSON text); its id is its position (1, 2, ...)."""
        self.steps += 1
        task_id = self.steps
        try:
            return self._check(text, task_id)
        except PlanError as error:
            error.task_id = task_id + self.id_offset
            raise

    def _step(self, task_id: int) -> str:
        return f"step {task_id + self.id_offset}"

    def _check(self, text: str, task_id: int) -> PlannedTask:
        step = self._step(task_id)
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise PlanError(f"{step} is not valid JSON ({error}): {text[:200]}") from error
        if not isinstance(raw, dict) or len(raw) != 1:
            raise PlanError(f'{step} must be {{"<tool>": {{<arguments>}}}}, got: {text[:120]}')
        [(tool_name, args)] = raw.items()
        if len(self.seen) >= self.max_tasks:
            raise PlanTooLongError(
                f"{step}: a plan may have at most {self.max_tasks} steps "
                "(EXPRESSWAY_MAX_PLAN_TASKS); the rest of the plan is not read"
            )
        if tool_name not in self.tools:
            raise PlanError(
                f"{step}: unknown tool {tool_name!r}; available: {', '.join(self.tools)}"
            )
        if not isinstance(args, dict):
            raise PlanError(f"{step}: the arguments of {tool_name} must be an object")
        schema = tool_parameters(self.tools[tool_name])
        unknown = set(args) - set(schema.get("properties", {}))
        missing = set(schema.get("required", [])) - set(args)
        if unknown or missing:
            raise PlanError(
                f"{step}: bad arguments for {tool_name}: "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        deps = set()
        for text in strings_in(args):
            whole = REFERENCE.fullmatch(text.strip())
            for match in REFERENCE.finditer(text):
                dep = int(match.group(1))
                if dep > task_id and not whole:
                    continue  # "a refund of $25" names no later step: it is text
                if dep == task_id:
                    raise PlanError(f"{step}: uses its own result (a cycle)")
                if dep not in self.seen:
                    raise PlanError(
                        f"{step}: uses the result of {self._step(dep)}, which is not a valid "
                        "earlier step"
                    )
                deps.add(dep)
        call = call_key(tool_name, args)
        if call in self.calls:
            raise DuplicateTaskError(
                f"{step}: repeats {self._step(self.calls[call])} ({tool_name} with the same "
                "arguments)"
            )
        self.seen.add(task_id)
        self.calls[call] = task_id
        return PlannedTask(id=task_id, tool=tool_name, args=args, deps=sorted(deps))


def offset_task(task: PlannedTask, offset: int) -> PlannedTask:
    """Renumber a replan's task (numbered from 1 in its own plan) after the earlier results."""
    if not offset:
        return task

    def shift(match: re.Match[str]) -> str:
        dep = int(match.group(1))
        return f"${dep + offset}" if dep in task.deps else match.group(0)

    args = map_strings(task.args, lambda text: REFERENCE.sub(shift, text))
    return PlannedTask(task.id + offset, task.tool, args, [dep + offset for dep in task.deps])


async def stream_plan(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    tools: Sequence[BaseTool],
    max_tasks: int,
    id_offset: int = 0,
    min_tasks: int = 0,
    first_token_timeout_s: float | None = None,
) -> AsyncIterator[PlannedTask | PlanError]:
    """Yield each valid step as soon as the model has written it, and a PlanError for each invalid
    step (or a plan that is not valid JSON). Steps are numbered from 1; on a replan they are
    renumbered after `id_offset` so they never collide with earlier results. A plan that keeps
    repeating a step, or text, is cut off rather than read to its token limit, and a plan's
    tokens are bounded by `max_tasks`. `min_tasks` > 0 makes the schema require that many
    steps; a first chunk slower than `first_token_timeout_s` raises TimeoutError."""
    schema = plan_json_schema(tools, max_tasks, min_tasks)
    max_tokens = TOKENS_PER_TASK * max_tasks
    structured = model.bind(
        response_format={"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}},
        max_tokens=max_tokens,
    )
    parser = TaskStreamParser()
    validator = PlanValidator(
        tools={tool.name: tool for tool in tools}, max_tasks=max_tasks, id_offset=id_offset
    )
    repeats = received = 0
    streamed = first_within(structured.astream(messages), first_token_timeout_s)
    # aclosing: stopping early closes the model's HTTP stream at once, which ends its generation.
    async with aclosing(streamed) as chunks:
        try:
            async for chunk in chunks:
                # Every chunk holds a token or more, so this bounds a backend that ignores
                # max_tokens (or a chat model passed in without it) as the server would.
                received += 1
                if received > max_tokens:
                    yield PlanError(
                        f"the plan ran past its {max_tokens}-token limit (the backend did not "
                        "stop it); the steps read before it run"
                    )
                    return
                for step in parser.feed(chunk.text):
                    try:
                        task = validator.check(step)
                    except PlanTooLongError as error:
                        yield error
                        return
                    except DuplicateTaskError as error:
                        repeats += 1
                        yield error
                        if repeats >= MAX_REPEATS:
                            yield PlanError(
                                f"the planner repeated {repeats} steps; stopped reading"
                            )
                            return
                        continue
                    except PlanError as error:
                        yield error
                        continue
                    repeats = 0
                    yield offset_task(task, id_offset)
                # Checked only once a step runs longer than a loop must be (most never do).
                long_step = parser.chars_since_step >= LOOP_MIN_CHARS
                loop = looping_tail(parser.text) if long_step else None
                if loop is not None:
                    yield PlanError(
                        f"the plan repeats {loop!r} over and over (the model is stuck in a "
                        "loop); stopped reading: the steps read before it run"
                    )
                    return
        except LengthFinishReasonError:  # raised by the OpenAI client once the stream has ended
            yield PlanError(
                f"the plan reached its {max_tokens}-token limit before it closed; "
                "the steps read before it run"
            )
            return
    raise_if_cancelled()
    try:
        parser.finish()
    except PlanError as error:
        yield error


async def plan_question(
    state: State,
    context: Context,
    models: Mapping[str, BaseChatModel],
    tools: Sequence[BaseTool],
    id_offset: int = 0,
) -> AsyncIterator[PlannedTask | PlanError]:
    """Plan the latest question (with the earlier results and plan errors, on a replan): rank
    the tools for it, then `stream_plan` on the routed tier; if that fails before its first step
    (down, 5xx, timeout), on the other tier, with a `fallback` event, as the answer does. When
    the last tier tried cannot be reached, BackendUnavailableError names its URL and the fix."""
    route = state.route
    assert route is not None, "route_request runs first"
    question = last_question(state)
    await embed_question(question, context.tool_ranking_layers)
    messages = planner_messages(
        question, tools, state.results, state.plan_errors, context.tool_ranking_layers
    )
    tiers = fallback_order(route.tier)
    for attempt, tier in enumerate(tiers):
        model = tier_model(context, tier, models)
        streamed = False
        try:
            plan = stream_plan(
                model,
                messages,
                tools,
                context.max_plan_tasks,
                id_offset,
                min_tasks=int(route.require_tools),
                first_token_timeout_s=first_output_timeout_s(context, tier, models),
            )
            async with aclosing(plan) as steps:
                async for step in steps:
                    streamed = True
                    yield step
            return
        except Exception as error:
            fall_back(context, state.started_at, "plan", tiers, attempt, error, streamed)


async def replay_plan(
    steps: Sequence[tuple[str, dict[str, Any]]], tools: Sequence[BaseTool], max_tasks: int
) -> AsyncIterator[PlannedTask | PlanError]:
    """A plan that did not come from the model (a trusted cached template), checked by the same
    validator as a streamed one."""
    validator = PlanValidator(tools={tool.name: tool for tool in tools}, max_tasks=max_tasks)
    for tool, args in steps:
        try:
            yield validator.check(json.dumps({tool: args}))
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
