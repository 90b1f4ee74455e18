"""The naive baseline: a classic sequential ReAct loop, for side-by-side comparison only.

One tool call per model turn, tools run one after another, one model for everything (no routing),
and nothing is shown until the final answer is complete (no streaming). Same tools, same backend.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool

from nodes.task_runner import as_tools, call_tool

SYSTEM = "You are a helpful assistant. Use the tools, one call at a time, then answer."


@dataclass
class NaiveRun:
    answer: str
    total_s: float
    model_s: float = 0.0
    tools_s: float = 0.0
    turns: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


async def run_naive_agent(
    question: str,
    model: BaseChatModel,
    tools: Sequence[Callable[..., Any] | BaseTool],
    max_turns: int = 12,
    tool_timeout_s: float = 30.0,
) -> NaiveRun:
    """Answer `question` with a sequential ReAct loop; the answer arrives all at once at the end."""
    started = time.perf_counter()
    wrapped = {tool.name: tool for tool in as_tools(tools)}
    agent = model.bind_tools(list(wrapped.values()), parallel_tool_calls=False)
    messages: list[BaseMessage] = [SystemMessage(SYSTEM), HumanMessage(question)]
    run = NaiveRun(answer="", total_s=0.0)
    for _ in range(max_turns):
        turn_started = time.perf_counter()
        reply = await agent.ainvoke(messages)
        run.model_s += time.perf_counter() - turn_started
        run.turns += 1
        assert isinstance(reply, AIMessage)
        messages.append(reply)
        if not reply.tool_calls:
            run.answer = reply.text
            break
        call = reply.tool_calls[0]
        tool_started = time.perf_counter()
        try:
            output = await call_tool(wrapped[call["name"]], call["args"], tool_timeout_s)
        except Exception as error:  # the model reads the error and carries on, as in ReAct
            output = f"error: {type(error).__name__}: {error}"
        run.tools_s += time.perf_counter() - tool_started
        run.tool_calls.append({"tool": call["name"], "args": call["args"], "output": output})
        messages.append(ToolMessage(output, tool_call_id=call["id"]))
    run.total_s = time.perf_counter() - started
    return run
