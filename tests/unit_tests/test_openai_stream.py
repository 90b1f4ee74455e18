"""The lean chat-completions stream gives exactly what the stock langchain-openai path gives."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from expressway.openai_stream import StreamingChatOpenAI

HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "fast"}


def sse(*events: dict[str, Any] | str) -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return "".join(lines).encode()


def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


TEXT = sse(
    choice({"role": "assistant", "content": ""}),
    choice({"content": "Hello"}),
    choice({"content": ", world"}),
    choice({}, "stop"),
    {
        **HEAD,
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    },
    "[DONE]",
)
TOOL_CALL = sse(
    choice({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                 "function": {"name": "clock", "arguments": ""}}]}),
    choice({"tool_calls": [{"index": 0, "function": {"arguments": '{"tz": '}}]}),
    choice({"tool_calls": [{"index": 0, "function": {"arguments": '"UTC"}'}}]}),
    choice({}, "tool_calls"),
    "[DONE]",
)  # fmt: skip


def model_of(cls: type[ChatOpenAI], body: bytes, seen: list[dict] | None = None) -> ChatOpenAI:
    def reply(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(json.loads(request.content))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    return cls(
        base_url="http://backend/v1",
        api_key="none",
        model="fast",
        streaming=True,
        max_retries=0,
        http_async_client=client,
    )


def comparable(chunk: AIMessageChunk) -> tuple:
    return (chunk.content, chunk.tool_call_chunks, chunk.response_metadata, chunk.usage_metadata)


async def streamed(model: Any, **options: Any) -> list[AIMessageChunk]:
    return [chunk async for chunk in model.astream("hi", **options)]


@pytest.mark.parametrize(
    ("body", "options"),
    [(TEXT, {}), (TEXT, {"stream_usage": True}), (TOOL_CALL, {})],
    ids=["text", "text-with-usage", "tool-call"],
)
async def test_lean_stream_yields_the_stock_chunks(body: bytes, options: dict) -> None:
    stock_requests: list[dict] = []
    lean_requests: list[dict] = []
    stock = await streamed(model_of(ChatOpenAI, body, stock_requests), **options)
    lean = await streamed(model_of(StreamingChatOpenAI, body, lean_requests), **options)
    assert [comparable(c) for c in lean] == [comparable(c) for c in stock]
    assert lean_requests == stock_requests
    merged = sum(lean[1:], lean[0])
    assert merged.content or merged.tool_calls


async def test_an_error_event_mid_stream_raises_with_the_servers_message() -> None:
    body = sse(choice({"content": "Hel"}), {"error": {"message": "engine died", "code": 500}})
    chunks: list[Any] = []
    with pytest.raises(openai.APIError, match="engine died"):
        async for chunk in model_of(StreamingChatOpenAI, body).astream("hi"):
            chunks.append(chunk)
    assert [c.content for c in chunks] == ["Hel"]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda model: model.with_structured_output(_Plan, method="json_schema"),
        lambda model: model.bind(response_format={"type": "json_object"}),
    ],
    ids=["structured-output", "response-format"],
)
def test_structured_output_keeps_the_stock_path(wrap: Callable[[Any], Any]) -> None:
    model = model_of(StreamingChatOpenAI, TEXT)
    bound = wrap(model)
    kwargs = bound.first.kwargs if hasattr(bound, "first") else bound.kwargs
    assert model._stream_payload([], None, **kwargs) is None
    assert model._stream_payload([], None) is not None


class _Plan(BaseModel):
    steps: list[str]
