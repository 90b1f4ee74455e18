"""Per-call durability: each tool call's outcome is saved in the run's checkpointer the moment it
finishes, so a run resumed after a crash reuses it instead of calling the tool again, and a call
with side effects that was running at the crash is reported (or, if configured, retried) rather
than silently repeated.

Records are LangGraph pending writes (`BaseCheckpointSaver.aput_writes`) on the checkpoint the node
runs from, on a channel no node reads: every checkpointer stores them, a resumed step finds them
with its checkpoint, and they stay behind with that checkpoint once the step is done. A call is
identified by its tool and resolved arguments (`call_key`), not by the order calls start in, which
depends on timing. A call with side effects is recorded as running before it starts, so a resumed
run can tell "was running" from "never started". Why not LangGraph's functional-API tasks: they
are identified by call order and saved only once finished (README, "Durability").
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

# Private flags: whether this step is being resumed, and the run's durability mode.
from langgraph._internal._constants import CONFIG_KEY_DURABILITY, CONFIG_KEY_RESUMING
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.constants import CONF, CONFIG_KEY_CHECKPOINTER
from langgraph.runtime import Runtime

from expressway.context import Context
from expressway.events import emit, now
from expressway.state import TaskResult, call_key
from expressway.toolbox import is_read_only

CHANNEL = "expressway:tool_call"
RUNNING = "running"
IN_DOUBT = (
    "not run again: {tool} has side effects and was running when an earlier attempt of this run "
    "stopped, so it may or may not have taken effect; check before calling it again"
)
Record = dict[str, Any]  # plain data, so every serializer (strict msgpack too) restores it
SaveResult = Callable[[TaskResult], Awaitable[None]]


class CallJournal:
    """One node's tool calls: saves each outcome as it finishes and answers for calls an earlier
    attempt at the same step saved. Without a checkpointer it saves nothing."""

    def __init__(
        self,
        saver: BaseCheckpointSaver | None,
        at: RunnableConfig,
        records: dict[str, Record],
        started_at: float,
        retry_in_flight: bool,
        save_read_only: bool = True,
    ) -> None:
        self._saver = saver
        self._save_read_only = save_read_only
        self._at = at  # addresses the checkpoint the node runs from
        self._records = records
        self._claimed = set(records)  # calls given at the start are already among the results
        self._started_at = started_at
        self._retry_in_flight = retry_in_flight
        self._queue: list[tuple[Record, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        runtime: Runtime[Context],
        started_at: float,
        previous: Sequence[TaskResult] = (),
        save_read_only: bool = True,
    ) -> "CallJournal":
        """The journal of the node now running. It reads an earlier attempt's records only when
        LangGraph resumes this step, and saves nothing with durability="exit" (then no step of a
        run is saved before it ends, so there is nothing to resume). `save_read_only=False` saves
        only calls with side effects (for nodes whose own output LangGraph saves per call)."""
        configurable = get_config().get(CONF, {})
        saver = configurable.get(CONFIG_KEY_CHECKPOINTER)
        retry = runtime.context.in_flight_side_effects == "retry"
        # A call reported in doubt by an earlier step (before a replan) stays in doubt.
        records = {}
        for result in previous:
            if result.status == "in_doubt":
                key = call_key(result.tool, result.args)
                records[key] = _record_of(key, result, side_effects=True)
        if not isinstance(saver, BaseCheckpointSaver) or (
            configurable.get(CONFIG_KEY_DURABILITY) == "exit"
        ):
            journal = cls(None, {}, records, started_at, retry, save_read_only)
        else:
            info = runtime.execution_info
            at: RunnableConfig = {
                CONF: {
                    "thread_id": info.thread_id,
                    # The node's namespace is "<graph's namespace>|<node>:<task id>".
                    "checkpoint_ns": info.checkpoint_ns.rpartition("|")[0],
                    "checkpoint_id": info.checkpoint_id,
                }
            }
            journal = cls(saver, at, records, started_at, retry, save_read_only)
            if configurable.get(CONFIG_KEY_RESUMING) or info.node_attempt > 1:
                await journal._load()
        return journal

    async def run(
        self,
        task_id: int,
        tool: BaseTool,
        args: dict[str, Any],
        key: str,
        execute: Callable[[SaveResult | None], Awaitable[TaskResult]],
    ) -> TaskResult:
        """The task's result: the one an earlier attempt saved, a report for a call with side
        effects that was running at the crash, or `execute(save)`'s, which must await `save` with
        its result before it reports the task finished (None: nothing to save)."""
        side_effects = not is_read_only(tool)
        record = self._records.get(key)
        if record is not None:
            self._claimed.add(key)
            if record["status"] != RUNNING:
                return self._reuse(task_id, record)
            if side_effects:
                in_doubt = self._report_in_doubt(task_id, record, retried=self._retry_in_flight)
                if not self._retry_in_flight:
                    return in_doubt
        if self._saver is None or not (side_effects or self._save_read_only):
            return await execute(None)
        if side_effects:
            running = {"call": key, "tool": tool.name, "args": args, "status": RUNNING}
            await self._save({**running, "side_effects": True})
        return await execute(lambda result: self._save(_record_of(key, result, side_effects)))

    def unclaimed(self, first_id: int) -> list[TaskResult]:
        """Calls with side effects that an earlier attempt made and the resumed plan did not ask
        for again, numbered from `first_id`: finished ones (they took effect) and ones in doubt."""
        results = []
        for key, record in self._records.items():
            if key in self._claimed or not record["side_effects"]:
                continue
            task_id = first_id + len(results)
            if record["status"] == RUNNING:
                results.append(self._report_in_doubt(task_id, record, retried=False))
            else:
                results.append(self._reuse(task_id, record))
        return results

    async def _load(self) -> None:
        assert self._saver is not None
        saved = await self._saver.aget_tuple(self._at)
        for _, channel, record in (saved.pending_writes or []) if saved else []:
            if channel != CHANNEL:
                continue
            # A call's finished record wins over its running one, whatever order they load in.
            known = self._records.get(record["call"])
            if known is None or known["status"] == RUNNING:
                self._records[record["call"]] = record

    def _reuse(self, task_id: int, record: Record) -> TaskResult:
        emit(
            self._started_at,
            "task.finished",
            task_id=task_id,
            tool=record["tool"],
            status=record["status"],
            duration_s=round(record["finished_s"] - record["started_s"], 6),
            output=record["output"][:200],
            reused=True,
        )
        return TaskResult(
            task_id,
            record["tool"],
            record["args"],
            record["status"],
            record["output"],
            record["started_s"],
            record["finished_s"],
        )

    def _report_in_doubt(self, task_id: int, record: Record, retried: bool) -> TaskResult:
        emit(
            self._started_at,
            "task.in_doubt",
            task_id=task_id,
            tool=record["tool"],
            args=record["args"],
            action="retried" if retried else "reported",
        )
        t = round(now() - self._started_at, 6)
        output = IN_DOUBT.format(tool=record["tool"])
        return TaskResult(task_id, record["tool"], record["args"], "in_doubt", output, t, t)

    async def _save(self, record: Record) -> None:
        """Return once `record` is in the checkpointer. Records that arrive while a write is under
        way go together in the next one: tasks finishing at once share one commit."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append((record, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued())
        await done

    async def _write_queued(self) -> None:
        assert self._saver is not None
        while self._queue:
            batch, self._queue = self._queue, []
            writes = [(CHANNEL, record) for record, _ in batch]
            try:
                # A new id per write: savers keep the first write of a (task id, index) pair.
                await self._saver.aput_writes(self._at, writes, f"{CHANNEL}:{uuid.uuid4()}")
            except Exception as error:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


def _record_of(key: str, result: TaskResult, side_effects: bool) -> Record:
    return {
        "call": key,
        "tool": result.tool,
        "args": result.args,
        "status": RUNNING if result.status == "in_doubt" else result.status,
        "output": result.output,
        "started_s": result.started_s,
        "finished_s": result.finished_s,
        "side_effects": side_effects,
    }
