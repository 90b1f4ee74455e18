"""The task-fetching unit: starts each task the moment its dependencies have finished.

Async tools run on the event loop; sync tools run on a thread pool sized for the concurrency cap,
so neither kind serializes. Every call has a timeout, a failing call becomes an error result that
the answer can read, identical calls in one run execute once, and tasks that depend on a failed
task fail fast with a message naming it.
"""

import asyncio
import contextvars
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from langsmith.utils import tracing_is_enabled
from pydantic import BaseModel

from expressway.events import emit, now
from expressway.state import REFERENCE, PlannedTask, TaskResult, call_key, map_strings
from expressway.toolbox import is_read_only
from nodes.durable_tasks import CallJournal, SaveResult

MAX_OUTPUT_CHARS = 4000
_CUT_NOTE = re.compile(r"\.\.\. \[\d+ more characters cut\]$")
CONTENT_BLOCK_TYPES = frozenset({"text", "image", "audio", "video", "file"})  # LangChain's
# Threads are created lazily, so a large pool costs nothing until sync tools run in parallel.
_SYNC_TOOL_POOL = ThreadPoolExecutor(max_workers=256, thread_name_prefix="expressway-tool")


def resolve_references(args: dict[str, Any], outputs: dict[int, str]) -> dict[str, Any]:
    """Replace "$N" in the arguments' strings (also inside lists and objects) with the output of
    task N, for each task N in `outputs` (the task's dependencies); any other "$N" is text, such
    as a price. A string that is only "$N" becomes the raw output, which the tool's own argument
    parsing then converts (e.g. to a number)."""

    def substitute(text: str) -> str:
        whole = REFERENCE.fullmatch(text.strip())
        if whole and int(whole.group(1)) in outputs:
            return outputs[int(whole.group(1))]
        return REFERENCE.sub(lambda match: outputs.get(int(match.group(1)), match.group(0)), text)

    return map_strings(args, substitute)


def _clip(text: str) -> str:
    """The text cut to MAX_OUTPUT_CHARS, saying how much was cut; a text cut before stays."""
    cut = _CUT_NOTE.search(text, MAX_OUTPUT_CHARS)
    if len(text) <= MAX_OUTPUT_CHARS or (cut is not None and cut.start() == MAX_OUTPUT_CHARS):
        return text
    return f"{text[:MAX_OUTPUT_CHARS]}... [{len(text) - MAX_OUTPUT_CHARS} more characters cut]"


def _direct_call(tool: BaseTool) -> bool:
    """Whether to call the tool's function directly after validating its arguments. LangChain's
    invoke sets up callbacks on every call (about 10x the direct path: `per_call_overhead` in
    `expressway bench fanout`), which serializes on the event loop at wide fan-outs; it is kept
    when LangSmith tracing is on, so tool spans appear there."""
    return (
        isinstance(tool, StructuredTool)
        and tool.response_format == "content"  # content_and_artifact: invoke splits the pair
        and isinstance(tool.args_schema, type)
        and issubclass(tool.args_schema, BaseModel)
        and _takes_only_its_arguments(tool.coroutine or tool.func, tool.args_schema)
        and not tracing_is_enabled()
    )


@lru_cache(maxsize=1024)
def _takes_only_its_arguments(function: Callable[..., Any] | None, schema: type[BaseModel]) -> bool:
    """Whether the function's parameters are all arguments the model gives: one that also takes
    what LangChain injects (a `config: RunnableConfig`, callbacks, an InjectedToolArg) is called
    through invoke, which fills them in."""
    if function is None:
        return False
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    named = {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return named <= set(schema.model_fields)


async def call_tool(tool: BaseTool, args: dict[str, Any], timeout_s: float) -> str:
    """Run one tool call to completion within `timeout_s`, off the event loop if it is sync."""
    run_async: Callable[[], Awaitable[Any]] | None = None
    run_sync: Callable[[], Any] | None = None
    if _direct_call(tool):
        assert isinstance(tool, StructuredTool) and isinstance(tool.args_schema, type)
        arguments = dict(tool.args_schema.model_validate(args))
        if tool.coroutine is not None:
            run_async = partial(tool.coroutine, **arguments)
        else:
            run_sync = partial(tool.func, **arguments)  # type: ignore[arg-type]
    elif isinstance(tool, StructuredTool) and tool.coroutine is None and tool.func is not None:
        run_sync = partial(tool.invoke, args)
    else:
        run_async = partial(tool.ainvoke, args)
    if run_async is not None:
        call = run_async()
    else:
        context = contextvars.copy_context()
        call = asyncio.get_running_loop().run_in_executor(_SYNC_TOOL_POOL, context.run, run_sync)
    return output_text(await asyncio.wait_for(_contained(call), timeout=timeout_s))


class ToolEscapedError(RuntimeError):
    """A tool raised what would stop more than its own call (SystemExit, CancelledError)."""


async def _contained(call: Awaitable[Any]) -> Any:
    """Await a tool's call, keeping to it what it raises that would stop more than the call: a
    wrapped CLI's sys.exit (argparse exits on bad arguments) would end the event loop and every
    run on it, and a CancelledError of its own would cancel the run. A real cancellation (a
    timeout, the run cancelled) still goes through."""
    try:
        return await call
    except SystemExit as error:
        raise ToolEscapedError(f"the tool called sys.exit({error.code!r})") from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise ToolEscapedError("the tool raised CancelledError without being cancelled") from None


def output_text(output: Any) -> str:
    """A tool's return value as text for the answer. Content blocks (what LangChain tools with
    `response_format="content_and_artifact"`, such as langchain-mcp-adapters' MCP tools, return)
    become their text, with a note for each non-text block."""
    if isinstance(output, str):
        return output
    if (
        isinstance(output, list)
        and output
        and all(
            isinstance(block, dict) and block.get("type") in CONTENT_BLOCK_TYPES for block in output
        )
    ):
        return "\n".join(block.get("text") or f"[{block['type']} content]" for block in output)
    try:
        # Names and places as they are written, not as \u escapes the model cannot quote.
        return json.dumps(output, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(output)


async def execute_call(
    task_id: int,
    tool_name: str,
    args: dict[str, Any],
    call: Awaitable[str],
    started_at: float,
    timeout_s: float,
    speculated_s: float | None = None,
    save: SaveResult | None = None,
) -> TaskResult:
    """Await one tool call, turning a timeout or an exception into an error result the answer can
    read, and `save` it before it counts as finished. Emits `task.started` (with `speculated_at`
    when the call was started speculatively before the plan asked for it) and `task.finished`."""
    started_s = round(now() - started_at, 6)
    extra = {} if speculated_s is None else {"speculated_at": speculated_s}
    emit(started_at, "task.started", task_id=task_id, tool=tool_name, args=args, **extra)
    try:
        output, status = _clip(await call), "ok"
    except TimeoutError:
        output, status = f"error: {tool_name} timed out after {timeout_s:g} s", "error"
    except Exception as error:  # a tool's failure is data for the answer, not a crash
        output = _clip(f"error: {tool_name} failed: {type(error).__name__}: {error}")
        status = "error"
    finished_s = round(now() - started_at, 6)
    result = TaskResult(task_id, tool_name, args, status, output, started_s, finished_s)
    if save is not None:
        await save(result)
    emit(
        started_at,
        "task.finished",
        task_id=task_id,
        tool=tool_name,
        status=status,
        duration_s=round(finished_s - started_s, 6),
        output=output[:200],
    )
    return result


class TaskRunner:
    """Runs submitted tasks concurrently in dependency order and collects their results."""

    def __init__(
        self,
        tools: Sequence[BaseTool],
        started_at: float,
        timeout_s: float,
        max_concurrency: int,
        previous: Sequence[TaskResult] = (),
        journal: CallJournal | None = None,
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._journal = journal
        self._started_at = started_at
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_concurrency)
        self._finished: dict[int, asyncio.Future[TaskResult]] = {}
        self._submitted: dict[int, PlannedTask] = {}
        self._calls: dict[str, asyncio.Future[str]] = {}
        self._running: list[asyncio.Task[TaskResult]] = []
        # Calls started before the plan asked for them (key -> start, seconds into the run).
        self._speculated: dict[str, float] = {}
        self._adopted: set[str] = set()
        loop = asyncio.get_running_loop()
        for result in previous:
            done: asyncio.Future[TaskResult] = loop.create_future()
            done.set_result(result)
            self._finished[result.id] = done
            if result.status == "ok":
                # A replan's call that an earlier round made reuses its result (one execution
                # per identical call in a run); a failed call may be tried again.
                output: asyncio.Future[str] = loop.create_future()
                output.set_result(result.output)
                self._calls.setdefault(call_key(result.tool, result.args), output)

    def submit(self, task: PlannedTask) -> None:
        """Schedule `task`; it starts as soon as every task in its deps has a result."""
        self._finished[task.id] = asyncio.get_running_loop().create_future()
        self._submitted[task.id] = task
        self._running.append(asyncio.create_task(self._run(task), name=f"task-{task.id}"))

    def speculate(self, tool_name: str, args: dict[str, Any]) -> bool:
        """Start a call of a read-only tool before any task asks for it; a task that later makes
        the identical call adopts it. Tools with side effects are never started this way, nor
        calls that need another task's result. Returns whether the call was started."""
        tool = self._tools.get(tool_name)
        key = call_key(tool_name, args)
        if (
            tool is None
            or not is_read_only(tool)
            or key in self._calls
            or any(REFERENCE.search(str(value)) for value in args.values())
        ):
            return False
        self._calls[key] = asyncio.ensure_future(call_tool(tool, args, self._timeout_s))
        self._speculated[key] = round(now() - self._started_at, 6)
        return True

    async def drop_unused_speculation(self) -> tuple[int, int]:
        """Cancel the speculative calls no task adopted; return (adopted, cancelled). Their
        results never reach the answer."""
        unused = [self._calls[key] for key in self._speculated if key not in self._adopted]
        for call in unused:
            call.cancel()
        await asyncio.gather(*unused, return_exceptions=True)
        return len(self._adopted), len(unused)

    async def settled(self, timeout_s: float) -> bool:
        """Whether every submitted task has finished within `timeout_s` (waiting at most that)."""
        pending = [task for task in self._running if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        return all(task.done() for task in self._running)

    def finished_in_order(self) -> list[TaskResult]:
        """The results so far in task-id order (earlier rounds' first), up to the first task not
        finished: always the beginning of what `results` will list after the earlier ones."""
        finished = []
        for task_id in sorted(self._finished):
            if not self._finished[task_id].done():
                break
            finished.append(self._finished[task_id].result())
        return finished

    def next_call(self) -> tuple[str, dict[str, Any]] | None:
        """The call (tool, arguments) of the first task in task-id order not finished, when its
        arguments are already known (every task it depends on succeeded): the line that follows
        `finished_in_order` in the results begins with it."""
        for task_id in sorted(self._finished):
            if self._finished[task_id].done():
                continue
            task = self._submitted.get(task_id)
            if task is None:
                return None
            dependencies = [self._finished[dep] for dep in task.deps]
            if not all(dep.done() and dep.result().status == "ok" for dep in dependencies):
                return None
            outputs = {dep.result().id: dep.result().output for dep in dependencies}
            return task.tool, resolve_references(task.args, outputs)
        return None

    async def next_finished(self) -> None:
        """Wait until another submitted task finishes (at once if none is running)."""
        pending = [task for task in self._running if not task.done()]
        if pending:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    async def results(self) -> list[TaskResult]:
        """Wait for every submitted task and return their results in task-id order."""
        results = await asyncio.gather(*self._running)
        return sorted(results, key=lambda result: result.id)

    async def cancel(self) -> None:
        for running in [*self._running, *self._calls.values()]:
            running.cancel()
        await asyncio.gather(*self._running, *self._calls.values(), return_exceptions=True)

    async def _run(self, task: PlannedTask) -> TaskResult:
        result = await self._execute(task)
        self._finished[task.id].set_result(result)
        return result

    async def _execute(self, task: PlannedTask) -> TaskResult:
        dependencies = [await self._finished[dep] for dep in task.deps]
        failed = [dep.id for dep in dependencies if dep.status != "ok"]
        if failed:
            t = round(now() - self._started_at, 6)
            reason = f"error: not run because task(s) {failed} it depends on did not succeed"
            return TaskResult(task.id, task.tool, task.args, "error", reason, t, t)
        args = resolve_references(task.args, {dep.id: dep.output for dep in dependencies})
        async with self._slots:
            key = call_key(task.tool, args)
            if self._journal is None:
                return await self._call(task, args, key)
            execute = partial(self._call, task, args, key)
            return await self._journal.run(task.id, self._tools[task.tool], args, key, execute)

    async def _call(
        self, task: PlannedTask, args: dict[str, Any], key: str, save: SaveResult | None = None
    ) -> TaskResult:
        call = self._calls.get(key)
        if call is None:  # identical calls in one run share a single execution
            call = asyncio.ensure_future(call_tool(self._tools[task.tool], args, self._timeout_s))
            self._calls[key] = call
        elif key in self._speculated:
            self._adopted.add(key)
        return await execute_call(
            task.id,
            task.tool,
            args,
            asyncio.shield(call),
            self._started_at,
            self._timeout_s,
            speculated_s=self._speculated.get(key),
            save=save,
        )
