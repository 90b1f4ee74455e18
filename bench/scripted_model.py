"""A scripted chat model, a benchmark and test instrument (never a product default).

It streams a plan for structured-output calls and an answer otherwise, in small chunks with a
delay, so streaming and eager execution are observable, and records when each chunk left it.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


class ScriptedChatModel(BaseChatModel):
    plans: list[str] = []  # noqa: RUF012 (pydantic copies field defaults per instance)
    answer: str = "The answer."
    chunk_chars: int = 8
    delay_s: float = 0.0
    fail_with: str = ""
    calls: list[dict[str, Any]] = []  # noqa: RUF012
    chunk_times: list[float] = []  # noqa: RUF012 (time.monotonic() of each streamed chunk)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _script(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
        if self.fail_with:
            raise ConnectionError(self.fail_with)
        is_plan = "response_format" in kwargs
        prompt = "\n".join(message.text for message in messages)
        self.calls.append({"plan": is_plan, "prompt": prompt, **kwargs})
        if not is_plan:
            return self.answer
        planned = sum(call["plan"] for call in self.calls)
        return self.plans[min(planned, len(self.plans)) - 1] if self.plans else '{"plan": []}'

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(self._script(messages, kwargs)))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        text = self._script(messages, kwargs)
        for i in range(0, len(text), self.chunk_chars):
            yield ChatGenerationChunk(message=AIMessageChunk(text[i : i + self.chunk_chars]))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        text = self._script(messages, kwargs)
        for i in range(0, len(text), self.chunk_chars):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            chunk = ChatGenerationChunk(message=AIMessageChunk(text[i : i + self.chunk_chars]))
            self.chunk_times.append(time.monotonic())
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
