"""The naive baseline: a classic sequential ReAct loop, for side-by-side comparison only.

One tool call per model turn, tools run one after another, one model for everything (no routing),
and nothing is shown until the final answer is complete (no streaming). Same tools, same backend.

Every turn must call a tool (`tool_choice="required"`) and the answer is a `final_answer` call,
ReAct's "Final Answer" action: that works on any OpenAI-compatible server, including a vLLM
started without a tool-call parser (the embedded one), where the server's structured outputs
guarantee a well-formed call. The tools are also listed in the system prompt, for chat templates
that do not render them. When the turn budget is spent the last turn must call `final_answer`
(LangChain's old AgentExecutor did the same with early_stopping_method="generate"), and
`min_tool_calls` keeps `final_answer` off the menu until that many tools were called, so a model
too small to decide still does the sequential work a correct run needs.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.json import parse_partial_json

from expressway.toolbox import as_tools
from nodes.planner import describe_tools
from nodes.task_runner import call_tool

SYSTEM = (
    "You are a helpful assistant. Call one tool per turn; when you know the answer, call "
    "final_answer with it.\nTools:\n{tools}"
)


@tool
def final_answer(answer: str) -> str:
    """Give the final answer to the user's question."""
    return answer


@dataclass
class NaiveRun:
    answer: str
    total_s: float
    model_s: float = 0.0
    tools_s: float = 0.0
    turns: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _partial_arguments(arguments: str | None) -> dict[str, Any]:
    """The arguments a call cut off mid-JSON had written so far ({} if nothing usable)."""
    try:
        parsed = parse_partial_json(arguments or "")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


async def run_naive_agent(
    question: str,
    model: BaseChatModel,
    tools: Sequence[Callable[..., Any] | BaseTool],
    max_turns: int = 12,
    tool_timeout_s: float = 30.0,
    min_tool_calls: int = 0,
    tool_call_max_tokens: int | None = None,
) -> NaiveRun:
    """Answer `question` with a sequential ReAct loop; the answer arrives all at once at the end.
    `tool_call_max_tokens` bounds the turns that may only call tools (a malformed or cut-off
    call is reported back to the model, which tries again on its next turn)."""
    started = time.perf_counter()
    wrapped = {each.name: each for each in as_tools(tools)}
    schemas = [*wrapped.values(), final_answer]
    agent = model.bind_tools(schemas, tool_choice="required", parallel_tool_calls=False)
    tools_only = model.bind_tools(
        list(wrapped.values()), tool_choice="required", parallel_tool_calls=False
    ).bind(max_tokens=tool_call_max_tokens)
    last_turn = model.bind_tools(schemas, tool_choice=final_answer.name)
    system = SYSTEM.format(tools=describe_tools(schemas))
    messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(question)]
    run = NaiveRun(answer="", total_s=0.0)
    for turn in range(max_turns):
        turn_started = time.perf_counter()
        if turn == max_turns - 1:
            turn_model = last_turn
        else:
            turn_model = tools_only if len(run.tool_calls) < min_tool_calls else agent
        reply = await turn_model.ainvoke(messages)
        run.model_s += time.perf_counter() - turn_started
        run.turns += 1
        assert isinstance(reply, AIMessage)
        messages.append(reply)
        if reply.invalid_tool_calls and not reply.tool_calls:
            call = reply.invalid_tool_calls[0]
            if call["name"] == final_answer.name:
                # Cut off at the token limit: keep what was written, as a streamed answer would.
                run.answer = str(_partial_arguments(call["args"]).get("answer", ""))
                break
            output = f"error: the call's arguments are not valid JSON ({call['error']}); call again"
            messages.append(ToolMessage(output, tool_call_id=call["id"] or "invalid"))
            run.tool_calls.append({"tool": call["name"], "args": call["args"], "output": output})
            continue
        if not reply.tool_calls:  # a server that ignores tool_choice: its text is the answer
            run.answer = reply.text
            break
        call = reply.tool_calls[0]
        if call["name"] == final_answer.name:
            run.answer = str(call["args"].get("answer", ""))
            break
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
