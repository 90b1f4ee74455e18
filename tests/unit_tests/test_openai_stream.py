"""The lean chat-completions stream gives exactly what the stock langchain-openai path gives."""

import asyncio
import gc
import json
import time
import warnings
import weakref
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web as aiohttp_web
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from expressway.openai_stream import StreamingChatOpenAI, busy_stream_options

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
    # Every event here is waiting at once, so text deltas arrive joined: the same text and
    # metadata in fewer chunks, each saying how many server chunks it joins.
    joined = [c for c in lean if c.response_metadata.get("merged_chunks")]
    assert sum(c.response_metadata.get("merged_chunks", 1) for c in lean) == len(stock)
    merged_lean, merged_stock = sum(lean[1:], lean[0]), sum(stock[1:], stock[0])
    assert merged_lean.content == merged_stock.content
    assert merged_lean.tool_call_chunks == merged_stock.tool_call_chunks
    assert merged_lean.usage_metadata == merged_stock.usage_metadata
    assert {k: v for k, v in merged_lean.response_metadata.items() if k != "merged_chunks"} == (
        merged_stock.response_metadata
    )
    assert lean_requests == stock_requests
    assert bool(joined) == (body is TEXT)


async def test_a_reader_that_keeps_up_gets_every_chunk_as_the_stock_path_does() -> None:
    async def paced() -> Any:
        for event in TEXT.split(b"\n\n"):
            if event:
                await asyncio.sleep(0.02)
                yield event + b"\n\n"

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=paced())

    client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    lean = StreamingChatOpenAI(
        base_url="http://backend/v1", api_key="none", model="fast", http_async_client=client
    )
    stock = await streamed(model_of(ChatOpenAI, TEXT))
    chunks = await streamed(lean)
    assert [comparable(c) for c in chunks] == [comparable(c) for c in stock]


async def test_events_split_anywhere_with_crlf_comments_and_multiline_data_parse_the_same() -> None:
    # The same events as TEXT, framed the other ways SSE allows: CRLF line ends, a keep-alive
    # comment, one event's JSON spread over two data lines, and delivered in 7-byte pieces.
    events = [event for event in TEXT.split(b"\n\n") if event]
    split_json = events[1].replace(b', "delta"', b',\ndata: "delta"')
    framed = b": keep-alive\n\n" + b"\n\n".join([events[0], split_json, *events[2:]]) + b"\n\n"
    body = framed.replace(b"\n", b"\r\n")

    async def pieces() -> Any:
        for start in range(0, len(body), 7):
            await asyncio.sleep(0)
            yield body[start : start + 7]

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=pieces())

    client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    lean = StreamingChatOpenAI(
        base_url="http://backend/v1", api_key="none", model="fast", http_async_client=client
    )
    chunks = await streamed(lean)
    stock = await streamed(model_of(ChatOpenAI, TEXT))
    assert sum(chunks[1:], chunks[0]).content == "Hello, world"
    assert sum(c.response_metadata.get("merged_chunks", 1) for c in chunks) == len(stock)


def _paced_model(count: int, every_s: float) -> StreamingChatOpenAI:
    """A lean model whose backend's token i lands `every_s` * i after the request."""
    events = [choice({"role": "assistant", "content": ""})]
    events += [choice({"content": f" w{i}"}) for i in range(count)]
    events += [choice({}, "stop")]

    async def paced() -> Any:
        start = time.monotonic()
        for index, event in enumerate(events):
            if (wait := start + index * every_s - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            yield sse(event)
        yield sse("[DONE]")

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=paced())

    client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    return StreamingChatOpenAI(
        base_url="http://backend/v1", api_key="none", model="fast", http_async_client=client
    )


@pytest.mark.parametrize("window_s", [0.0, 0.05])
async def test_a_busy_loop_reads_the_answer_stream_once_per_window(window_s: float) -> None:
    model = _paced_model(40, 0.005)
    options = busy_stream_options(model, window_s)
    chunks = []
    async for chunk in model.astream("hi", **options):
        chunks.append(chunk)
        time.sleep(0.015)  # noqa: ASYNC251 -- blocking on purpose: a busy process
    texts = [chunk for chunk in chunks if chunk.text]
    assert "".join(c.text for c in texts) == "".join(f" w{i}" for i in range(40))
    assert sum(c.response_metadata.get("merged_chunks", 1) for c in texts) == 40
    # Unheld, a 15 ms consumer takes what waited each time (about 14 chunks); held, the stream
    # is read once per 50 ms window on top of that (about 6).
    assert (len(texts) <= 8) == (window_s > 0)


def test_only_the_lean_stream_takes_the_busy_options() -> None:
    lean = StreamingChatOpenAI(base_url="http://backend/v1", api_key="none", model="fast")
    stock = ChatOpenAI(base_url="http://backend/v1", api_key="none", model="fast")
    assert busy_stream_options(lean, 0.1, 8) == {
        "busy_merge_window_s": 0.1,
        "busy_stream_interval": 8,
    }
    assert busy_stream_options(lean, 0.0, 1) == {}
    assert busy_stream_options(stock, 0.1, 8) == {}  # it would send the options to its server


@pytest.mark.parametrize(
    ("busy", "vllm", "interval", "sent"),
    [
        (True, True, 8, 8),
        (False, True, 8, None),  # idle: every token at once
        (True, False, 8, None),  # a server not known to take it (OpenAI's API rejects it)
        (True, True, 1, None),
    ],
)
async def test_a_busy_process_asks_a_vllm_server_for_fewer_larger_chunks(
    monkeypatch: pytest.MonkeyPatch, busy: bool, vllm: bool, interval: int, sent: int | None
) -> None:
    monkeypatch.setattr("expressway.openai_stream.process_busy", lambda: busy)
    seen: list[dict] = []
    model = model_of(StreamingChatOpenAI, TEXT, seen)
    model.takes_stream_interval = vllm
    chunks = await streamed(model, **busy_stream_options(model, 0.1, interval))
    assert "".join(chunk.text for chunk in chunks) == "Hello, world"
    assert seen[0].get("stream_interval") == sent
    assert "busy_stream_interval" not in seen[0] and "busy_merge_window_s" not in seen[0]


@pytest.mark.parametrize(("owner", "takes"), [("vllm", True), ("openai", False), (None, False)])
async def test_a_tier_learns_from_its_servers_model_list_whether_it_is_vllm(
    owner: str | None, takes: bool
) -> None:
    from expressway.models import _learn_server

    def reply(request: httpx.Request) -> httpx.Response:
        if owner is None:  # a server that does not list models
            return httpx.Response(404, json={"error": {"message": "not found"}})
        listed = [{"id": "fast", "object": "model", "created": 0, "owned_by": owner}]
        return httpx.Response(200, json={"object": "list", "data": listed})

    model = StreamingChatOpenAI(
        base_url="http://backend/v1",
        api_key="none",
        model="fast",
        max_retries=0,
        http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(reply)),
    )
    await _learn_server(model.root_async_client, weakref.ref(model))
    assert model.takes_stream_interval is takes


async def test_a_backend_that_ignores_max_tokens_is_cut_at_the_limit() -> None:
    words = [choice({"content": f" w{i}"}) for i in range(50)]
    body = sse(choice({"role": "assistant", "content": ""}), *words, choice({}, "stop"), "[DONE]")
    chunks = await streamed(model_of(StreamingChatOpenAI, body), max_tokens=7)
    # All 50 were waiting at once: merges stop at the limit, and so does the stream.
    assert "".join(c.text for c in chunks) == "".join(f" w{i}" for i in range(7))
    assert sum(c.response_metadata.get("merged_chunks", 1) for c in chunks if c.text) == 7


async def test_an_error_event_mid_stream_raises_with_the_servers_message() -> None:
    body = sse(choice({"content": "Hel"}), {"error": {"message": "engine died", "code": 500}})
    chunks: list[Any] = []
    with pytest.raises(openai.APIError, match="engine died"):
        async for chunk in model_of(StreamingChatOpenAI, body).astream("hi"):
            chunks.append(chunk)
    assert [c.content for c in chunks] == ["Hel"]


def test_a_pydantic_schema_keeps_the_stock_path_and_a_dict_schema_is_lean() -> None:
    model = model_of(StreamingChatOpenAI, TEXT)
    parsed = model.with_structured_output(_Plan, method="json_schema").first.kwargs
    assert model._stream_payload([], None, **parsed) is None  # needs the SDK's parsed chunk
    schema = model.bind(response_format={"type": "json_object"}).kwargs
    assert model._stream_payload([], None, **schema) is not None
    assert model._stream_payload([], None) is not None


async def test_a_schema_reply_cut_at_max_tokens_raises_as_the_sdk_does() -> None:
    body = sse(choice({"role": "assistant", "content": ""}), choice({"content": '{"pl'}),
               choice({}, "length"), "[DONE]")  # fmt: skip
    for cls in (ChatOpenAI, StreamingChatOpenAI):
        bound = model_of(cls, body).bind(response_format={"type": "json_object"})
        with pytest.raises(openai.LengthFinishReasonError):
            await streamed(bound)


class _Plan(BaseModel):
    steps: list[str]


async def _sse_backend() -> tuple[aiohttp_web.AppRunner, str]:
    """A real HTTP server on loopback that streams TEXT one event per write."""

    async def completions(request: aiohttp_web.Request) -> aiohttp_web.StreamResponse:
        response = aiohttp_web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in TEXT.split(b"\n\n")[:-1]:
            await response.write(event + b"\n\n")
        return response

    app = aiohttp_web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = aiohttp_web.AppRunner(app)
    await runner.setup()
    site = aiohttp_web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/v1"


def test_each_event_loop_streams_over_its_own_session_closed_when_the_loop_ends() -> None:
    """A tier's model is shared within an event loop (one connection pool) and never crosses
    into another loop (an aiohttp session belongs to its loop); `asyncio.run` closing the loop
    closes the session, so nothing is left open or warns at exit."""
    from expressway.models import _LOOP_MODELS, _openai_model

    async def stream_once() -> tuple[Any, str]:
        runner, url = await _sse_backend()
        try:
            model = _openai_model(url, "fast", 5.0, "")
            assert _openai_model(url, "fast", 5.0, "") is model
            for _ in range(3):  # nothing a lookup made and dropped may close the loop's models
                gc.collect()
                await asyncio.sleep(0.01)
            text = "".join([chunk.text async for chunk in model.astream("hi")])
            text += "".join([chunk.text async for chunk in model.astream("hi")])
            return model, text
        finally:
            await runner.cleanup()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, text = asyncio.run(stream_once())
        second, again = asyncio.run(stream_once())
        gc.collect()
    assert text == again == "Hello, world" * 2
    assert first is not second
    assert first.http_async_client.is_closed and second.http_async_client.is_closed
    assert not [w for w in caught if "Unclosed" in str(w.message)]
    assert not _LOOP_MODELS  # the ended loops and their models can be freed


async def test_a_loop_keeps_a_bounded_number_of_models_and_closes_the_dropped_ones() -> None:
    """A run's context can name any URL: each new one must not open a session for good."""
    from expressway.models import _LOOP_MODELS, MODELS_PER_LOOP, _openai_model

    first = _openai_model("http://127.0.0.1:9/v1", "fast", 5.0, "")
    first_client = first.http_async_client
    for port in range(10, 10 + MODELS_PER_LOOP):
        _openai_model(f"http://127.0.0.1:{port}/v1", "fast", 5.0, "")
    assert len(_LOOP_MODELS[asyncio.get_running_loop()].models) == MODELS_PER_LOOP
    assert not first_client.is_closed  # still referenced here: a run may be streaming from it
    del first
    gc.collect()
    await asyncio.sleep(0.01)
    assert first_client.is_closed
