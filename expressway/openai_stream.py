"""`ChatOpenAI` with a leaner chat-completions token stream.

For every streamed chunk the OpenAI SDK builds a pydantic `ChatCompletionChunk`, and
langchain-openai dumps it straight back to a dict before converting it to a LangChain message
chunk. On the 2-core dev machine that round trip was about a third of the relay from the backend's
socket to the graph's consumer (`expressway bench stream`). This class sends the same request
through the same SDK client (payload, auth, retries, timeouts and HTTP status errors unchanged),
reads the response's server-sent events with httpx-sse, and hands each event's JSON to
langchain-openai's own chunk conversion and callbacks, so tracing and LangGraph's `messages`
stream see the same chunks. A `response_format` given as a dict (the planner's JSON schema) takes
the lean path too, and a reply cut by max_tokens raises `openai.LengthFinishReasonError` at the
end, as the SDK's structured stream does; a pydantic schema (`with_structured_output`, which needs
the SDK's parsed final chunk), the Responses API and response headers keep the stock path.

It relies on three of langchain-openai's private methods and two of its error helpers, and on the
OpenAI SDK's raw-response header (both pinned in pyproject.toml);
`tests/unit_tests/test_openai_stream.py` checks that both paths send the same requests and give
the same chunks, so an upgrade that changes them fails there first.
"""

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import openai
from httpx_sse import EventSource
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, BaseMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import _handle_openai_api_error, _handle_openai_bad_request
from openai._constants import RAW_RESPONSE_HEADER
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from expressway.coalesce import merge_waiting, process_busy

# generation_info key (so response_metadata's) of a chunk that joins this many server chunks: text
# deltas already waiting when the reader asks for the next are converted as one (one LangChain
# chunk, one token event), which cuts the per-chunk work of a run that fell behind.
MERGED = "merged_chunks"
# `bind()` option (seconds): on a busy event loop, read the stream at most once per this window
# (expressway/coalesce.py), so a loaded server converts and relays fewer, larger chunks.
BUSY_MERGE_WINDOW = "busy_merge_window_s"
# `bind()` option (tokens): a request made while the process is busy asks a server that honours
# vLLM's per-request `stream_interval` to send its tokens this many per chunk (vLLM sends the
# first token at once). Fewer chunks to read is most of what a loaded server saves per run.
BUSY_STREAM_INTERVAL = "busy_stream_interval"
# Keys of `create`'s arguments that configure the request rather than make up its body.
_REQUEST_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


class StreamingChatOpenAI(ChatOpenAI):
    """A `ChatOpenAI` whose chat-completions stream skips the SDK's per-chunk objects."""

    # Whether the server takes vLLM's `stream_interval` (expressway/models.py asks the server).
    takes_stream_interval: bool = False

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        hold_s = float(kwargs.pop(BUSY_MERGE_WINDOW, 0.0))
        stream_interval = int(kwargs.pop(BUSY_STREAM_INTERVAL, 1))
        payload = self._stream_payload(messages, stop, **kwargs)
        if payload is None:
            async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                yield chunk
            return
        if stream_interval > 1 and self.takes_stream_interval and process_busy():
            payload["stream_interval"] = stream_interval
        finish_reason = None
        try:
            raw = await self._post_stream(payload)
            chunk_class: type[BaseMessageChunk] = AIMessageChunk
            # A backend that ignores max_tokens is cut here: merges stop at the limit, and the
            # stream ends (finish reason "length") once that many text chunks came.
            limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
            text_chunks = 0

            def merge(first: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
                merged = _merge_text_deltas(first, after)
                if merged is None or (limit and text_chunks + merged[MERGED] > limit):
                    return None
                return merged

            # aclosing: a caller that stops reading closes the HTTP stream at once.
            events = merge_waiting(_sse_json(raw.http_response), merge, hold_s)
            async with aclosing(events) as merged:
                async for data in merged:
                    chunk = self._convert_chunk_to_generation_chunk(data, chunk_class, None)
                    if chunk is None:
                        continue
                    if chunk.text:
                        text_chunks += data.get(MERGED, 1)
                    chunk_class = chunk.message.__class__
                    info = chunk.generation_info or {}
                    if MERGED in data:
                        info = chunk.generation_info = {**info, MERGED: data[MERGED]}
                    finish_reason = info.get("finish_reason", finish_reason)
                    if run_manager:
                        await run_manager.on_llm_new_token(
                            chunk.text, chunk=chunk, logprobs=info.get("logprobs")
                        )
                    yield chunk
                    if limit and text_chunks >= limit:
                        finish_reason = "length"
                        break
        except openai.BadRequestError as error:
            _handle_openai_bad_request(error)
        except openai.APIError as error:
            _handle_openai_api_error(error)
        if finish_reason == "length" and "response_format" in payload:
            raise openai.LengthFinishReasonError(
                completion=ChatCompletion.model_construct(model=payload.get("model", ""))
            )

    async def _post_stream(self, payload: dict[str, Any]) -> Any:
        """POST the payload as the SDK's `create` would (same client: base URL, auth, retries,
        timeouts, status errors), without its typed transform of the body: the payload is already
        plain JSON, and the transform walked the planner's schema for about 3 ms per request."""
        body = {k: v for k, v in payload.items() if k not in _REQUEST_OPTIONS}
        body.update(payload.get("extra_body") or {})
        options: dict[str, Any] = {
            "headers": {**(payload.get("extra_headers") or {}), RAW_RESPONSE_HEADER: "true"}
        }
        if payload.get("extra_query"):
            options["params"] = payload["extra_query"]
        if payload.get("timeout") is not None:
            options["timeout"] = payload["timeout"]
        return await self.root_async_client.post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
            options=options,  # type: ignore[arg-type]
        )

    def _stream_payload(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> dict[str, Any] | None:
        """The streamed request's body, or None where the stock path must serve the call."""
        options = {**kwargs, "stream": True}
        stream_usage = options.pop("stream_usage", None)
        if self._use_responses_api({**options, **self.model_kwargs}):
            return None
        if self._should_stream_usage(stream_usage, **options):
            options["stream_options"] = {"include_usage": True}
        payload = self._get_request_payload(messages, stop=stop, **options)
        parsed = "response_format" in payload and not isinstance(
            kwargs.get("response_format"), dict
        )
        if parsed or self.include_response_headers or self._uses_gateway:
            return None
        return payload


def busy_stream_options(
    model: BaseChatModel, window_s: float = 0.0, stream_interval: int = 1
) -> dict[str, float]:
    """`bind()` options for a busy process: `model`'s stream merges chunks over `window_s`, and a
    request asks the server for `stream_interval` tokens per chunk; none for a model without the
    lean stream (it would send them to its server)."""
    if not isinstance(model, StreamingChatOpenAI):
        return {}
    options: dict[str, float] = {}
    if window_s > 0:
        options[BUSY_MERGE_WINDOW] = window_s
    if stream_interval > 1:
        options[BUSY_STREAM_INTERVAL] = stream_interval
    return options


def _merge_text_deltas(first: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
    """Two text-only chunks as one, or None: only plain content deltas merge (a role, a tool call,
    a finish reason, log probabilities or usage keep their own chunk)."""
    texts = []
    for data in (first, after):
        choices = data.get("choices") or []
        if data.get("usage") or len(choices) != 1:
            return None
        choice = choices[0]
        if set(choice) - {"index", "delta", "finish_reason"} or choice.get("finish_reason"):
            return None
        if set(choice.get("delta") or {}) != {"content"}:
            return None
        texts.append(choice["delta"]["content"])
    merged_choice = {**first["choices"][0], "delta": {"content": "".join(texts)}}
    count = first.get(MERGED, 1) + after.get(MERGED, 1)
    return {**first, "choices": [merged_choice], MERGED: count}


async def _sse_json(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of a chat-completions SSE response, until `[DONE]`; an `error` event
    raises `openai.APIError` as the SDK does. The response is closed however the loop ends."""
    try:
        async with aclosing(EventSource(response).aiter_sse()) as events:
            async for event in events:
                if event.data.startswith("[DONE]"):
                    return
                if not event.data:
                    continue
                data = json.loads(event.data)
                if isinstance(data, dict) and data.get("error"):
                    raise _error_event(data["error"], response)
                yield data
    finally:
        await response.aclose()


def _error_event(error: Any, response: httpx.Response) -> openai.APIError:
    message = error.get("message") if isinstance(error, dict) else str(error)
    return openai.APIError(
        f"the server sent an error event: {message}", response.request, body=error
    )
