"""`ChatOpenAI` with a leaner chat-completions token stream.

For every streamed chunk the OpenAI SDK builds a pydantic `ChatCompletionChunk`, and
langchain-openai dumps it straight back to a dict before converting it to a LangChain message
chunk. On the 2-core dev machine that round trip was about a third of the relay from the backend's
socket to the graph's consumer (`expressway bench stream`). This class sends the same request
through the same SDK client (payload, auth, retries, timeouts and HTTP status errors unchanged),
reads the response's server-sent events with httpx-sse, and hands each event's JSON to
langchain-openai's own chunk conversion and callbacks, so tracing and LangGraph's `messages`
stream see the same chunks. Structured output (`response_format`), the Responses API and response
headers keep the stock path.

It relies on three of langchain-openai's private methods and two of its error helpers (pinned in
pyproject.toml); `tests/unit_tests/test_openai_stream.py` checks that both paths give the same
chunks, so an upgrade that changes them fails there first.
"""

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import openai
from httpx_sse import EventSource
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage, BaseMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import _handle_openai_api_error, _handle_openai_bad_request


class StreamingChatOpenAI(ChatOpenAI):
    """A `ChatOpenAI` whose chat-completions stream skips the SDK's per-chunk objects."""

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        payload = self._stream_payload(messages, stop, **kwargs)
        if payload is None:
            async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                yield chunk
            return
        try:
            raw = await self.async_client.with_raw_response.create(**payload)
            chunk_class: type[BaseMessageChunk] = AIMessageChunk
            # aclosing: a caller that stops reading closes the HTTP stream at once.
            async with aclosing(_sse_json(raw.http_response)) as events:
                async for data in events:
                    chunk = self._convert_chunk_to_generation_chunk(data, chunk_class, None)
                    if chunk is None:
                        continue
                    chunk_class = chunk.message.__class__
                    if run_manager:
                        logprobs = (chunk.generation_info or {}).get("logprobs")
                        await run_manager.on_llm_new_token(
                            chunk.text, chunk=chunk, logprobs=logprobs
                        )
                    yield chunk
        except openai.BadRequestError as error:
            _handle_openai_bad_request(error)
        except openai.APIError as error:
            _handle_openai_api_error(error)

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
        if "response_format" in payload or self.include_response_headers or self._uses_gateway:
            return None
        return payload


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
