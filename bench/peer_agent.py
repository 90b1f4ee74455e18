"""The peer users would pick instead: LangChain's prebuilt tool-calling agent, for comparison only.

`langchain.agents.create_agent` (what replaced LangGraph's `create_react_agent`), a LangGraph
graph with a model node and a `ToolNode`: the model may call several tools in one turn (parallel
function calling, the OpenAI default), the tool node runs them concurrently, and the model sees
the results on its next turn, until it answers in text. One model for everything, as the prebuilt
takes one. Its answer is streamed (`stream_mode="messages"`), so its first answer token is
measured like Expressway's.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, ToolMessage
from langchain_core.tools import BaseTool


@dataclass
class PeerRun:
    answer: str
    total_s: float
    first_token_s: float
    turns: int
    tool_calls: int


async def run_peer_agent(
    question: str, model: BaseChatModel, tools: Sequence[Callable[..., Any] | BaseTool]
) -> PeerRun:
    """Answer `question` with the prebuilt agent; time the first answer token and the end."""
    agent = create_agent(model, list(tools))
    started = time.perf_counter()
    first_token_s = None
    answer: list[str] = []
    turns = tool_calls = 0
    seen_turns: set[str] = set()
    async for chunk, _ in agent.astream({"messages": [("user", question)]}, stream_mode="messages"):
        if isinstance(chunk, ToolMessage):
            tool_calls += 1
        elif isinstance(chunk, AIMessageChunk):
            if chunk.id not in seen_turns:
                seen_turns.add(chunk.id or "")
                turns += 1
            if chunk.text and not chunk.tool_call_chunks:
                first_token_s = first_token_s or time.perf_counter() - started
                answer.append(chunk.text)
    total_s = time.perf_counter() - started
    return PeerRun("".join(answer), total_s, first_token_s or total_s, turns, tool_calls)
