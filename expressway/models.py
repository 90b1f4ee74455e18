"""The model tiers as OpenAI-compatible chat models (langchain-openai `ChatOpenAI`, with the
leaner token stream of expressway/openai_stream.py)."""

import asyncio
import os
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing, suppress
from typing import TypeVar

import httpx
import httpx2
import openai
from langchain_core.language_models import BaseChatModel

from expressway.context import ENV_PREFIX, Context, TierName
from expressway.events import emit
from expressway.openai_stream import StreamingChatOpenAI

Item = TypeVar("Item")


def _get_models(base_url: str, timeout_s: float, api_key: str = "") -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.get(f"{base_url.rstrip('/')}/models", headers=headers, timeout=timeout_s)


def serving_models(base_url: str, timeout_s: float = 2.0) -> list[str] | None:
    """The model names an OpenAI-compatible server at base_url serves, or None if unreachable."""
    try:
        response = _get_models(base_url, timeout_s)
        response.raise_for_status()
        return [model["id"] for model in response.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


class BackendUnavailableError(RuntimeError):
    """A tier's endpoint cannot be reached; the message names the URL, the variable and the fix."""


class BackendMisconfiguredError(BackendUnavailableError):
    """A tier's endpoint answers, but refuses its API key or has no OpenAI API at its URL."""


def fallback_order(tier: TierName) -> list[TierName]:
    """The routed tier, then the built-in tier a request goes to when it fails before its first
    output (down, 5xx, timeout)."""
    return [tier, "frontier" if tier == "fast" else "fast"]


# A tier's model per event loop: its aiohttp session belongs to the loop that opened it.
# A run's context may name its own URL (expressway/context.py), so the number kept is bounded.
MODELS_PER_LOOP = 16
_LOOP_MODELS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopModels]" = (
    weakref.WeakKeyDictionary()
)


class _LoopModels:
    """The models one event loop uses, and an async generator that closes their HTTP sessions
    when the loop shuts down (`asyncio.run`, uvicorn and pytest close their loops' async
    generators first), so no session is left open and none warns about it at exit."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, str, float, str], StreamingChatOpenAI] = {}
        self.questions: set[asyncio.Task[None]] = set()  # kept: the loop holds tasks weakly
        self.closer = self._close_at_shutdown()
        # Run it to its `yield` now: the loop tracks a generator from its first step.
        with suppress(StopIteration):
            self.closer.asend(None).send(None)

    async def _close_at_shutdown(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # This generator refers to its loop, so the loop's entry must go, or neither is freed.
            loop = asyncio.get_running_loop()
            if _LOOP_MODELS.get(loop) is self:
                del _LOOP_MODELS[loop]
            for model in self.models.values():
                await model.http_async_client.aclose()

    def ask_server(self, model: StreamingChatOpenAI) -> None:
        """Learn in the background whether the model's server takes vLLM's `stream_interval`.
        The question holds the model weakly: a model dropped meanwhile is closed as usual."""
        client = model.root_async_client.with_options(max_retries=0)
        task = asyncio.get_running_loop().create_task(_learn_server(client, weakref.ref(model)))
        self.questions.add(task)
        task.add_done_callback(self.questions.discard)


async def _learn_server(
    client: openai.AsyncOpenAI, model: "weakref.ref[StreamingChatOpenAI]"
) -> None:
    """vLLM's model list names it as each model's owner; a server that says otherwise, or does
    not answer, is sent no vLLM-only request fields (OpenAI's API rejects unknown ones)."""
    with suppress(openai.APIError):
        listed = await client.models.list()
        if (learner := model()) is not None:
            learner.takes_stream_interval = any(
                getattr(served, "owned_by", None) == "vllm" for served in listed.data
            )


def _openai_model(
    base_url: str, model: str, timeout_s: float, api_key_env: str
) -> StreamingChatOpenAI:
    """One model per tier setting and event loop, so every call of a tier shares one connection
    pool (no TCP/TLS setup per call). It reads the stream over aiohttp, whose C parser takes all
    the server-sent events waiting on the socket at once: httpx parsed each HTTP chunk (a token)
    on its own, and aiohttp cut the graph's CPU per run by a fifth (`expressway bench load`)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop (a synchronous caller): nothing to stream with here
        return _configured_model(base_url, model, timeout_s, api_key_env, None)
    models = _LOOP_MODELS.get(loop)
    if models is None:  # made only when missing: a dropped one would close its models
        models = _LOOP_MODELS[loop] = _LoopModels()
    key = (base_url, model, timeout_s, api_key_env)
    if key not in models.models:
        if len(models.models) >= MODELS_PER_LOOP:
            _close_when_unused(models.models.pop(next(iter(models.models))), loop)
        client = openai.DefaultAioHttpClient(timeout=timeout_s)
        models.models[key] = _configured_model(*key, client)
        models.ask_server(models.models[key])
    return models.models[key]


def _close_when_unused(model: StreamingChatOpenAI, loop: asyncio.AbstractEventLoop) -> None:
    """Close a dropped model's HTTP session once no run streams from it any more."""
    client = model.http_async_client

    def close() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(client.aclose()))

    weakref.finalize(model, close)


def _configured_model(
    base_url: str,
    model: str,
    timeout_s: float,
    api_key_env: str,
    http_async_client: httpx2.AsyncClient | None,
) -> StreamingChatOpenAI:
    return StreamingChatOpenAI(
        base_url=base_url,
        model=model,
        # The key is read here and never stored in state or events; local vLLM needs none.
        api_key=(os.environ.get(api_key_env) if api_key_env else None) or "not-needed",
        timeout=timeout_s,
        max_retries=1,
        temperature=0,
        streaming=True,
        stream_usage=False,
        http_async_client=http_async_client,
    )


def tier_model(
    context: Context, tier: TierName, overrides: Mapping[str, BaseChatModel] | None = None
) -> BaseChatModel:
    """The chat model serving `tier`: one passed to build_graph, or the tier's endpoint."""
    if overrides and tier in overrides:
        return overrides[tier]
    return _openai_model(
        context.base_url(tier),
        context.model_name(tier),
        context.model_timeout_s,
        context.api_key_env(tier) if key_may_go_to(context, tier) else "",
    )


def first_output_timeout_s(
    context: Context, tier: TierName, overrides: Mapping[str, BaseChatModel] | None = None
) -> float | None:
    """How long `first_within` waits for the tier's first output: EXPRESSWAY_MODEL_TIMEOUT_S for
    a chat model passed to build_graph, which may have no timeout of its own; None for the tier's
    endpoint, whose HTTP client times each attempt out itself (and retries once)."""
    return context.model_timeout_s if overrides and tier in overrides else None


def key_may_go_to(context: Context, tier: TierName) -> bool:
    """Whether the tier's API key may be sent to the URL this run uses. A run's context can come
    from an HTTP request (the LangGraph server passes it through), so a URL it sets is not
    trusted with the key: the key goes only to the URL configured in the environment (or in the
    routing table, for an added tier)."""
    if context.added_tier(tier):
        return True
    configured = os.environ.get(f"{ENV_PREFIX}{tier.upper()}_BASE_URL") or ""
    return context.own_base_url(tier) == configured


def unreachable(context: Context, tier: TierName) -> BackendUnavailableError:
    """The error for a tier whose endpoint does not answer, naming the URL, variable and fix."""
    url = context.base_url(tier)
    if context.uses_embedded(tier):
        fix = "start it with `expressway serve-local` (or let `expressway ask` start it)"
        variable = "EXPRESSWAY_EMBEDDED_PORT"
    else:
        fix = "check the server is up and the URL is right"
        variable = context.base_url_setting(tier)
    return BackendUnavailableError(
        f"the {tier} tier's backend at {url} is unreachable ({variable}); {fix}."
    )


def fall_back(
    context: Context,
    started_at: float,
    stage: str,
    tiers: Sequence[TierName],
    attempt: int,
    error: Exception,
    gave_output: bool = False,
) -> None:
    """After a request of `stage` ("plan" or "answer") failed on `tiers[attempt]`: when it gave
    no output and another tier is left, a `fallback` event, and the caller tries the next tier;
    otherwise raise the error (an endpoint that cannot be reached as BackendUnavailableError
    naming its URL, not as the client's timeout)."""
    tier = tiers[attempt]
    if gave_output or attempt == len(tiers) - 1:
        if is_connection_error(error):
            raise unreachable(context, tier) from error
        raise error
    reason = (
        str(unreachable(context, tier))
        if is_connection_error(error)
        else f"{type(error).__name__}: {error}"
    )
    emit(
        started_at,
        "fallback",
        stage=stage,
        from_tier=tier,
        to_tier=tiers[attempt + 1],
        reason=reason[:300],
    )


def check_backend(context: Context, tier: TierName, timeout_s: float = 2.0) -> None:
    """Raise BackendUnavailableError with a fix if the tier's endpoint does not answer, and
    BackendMisconfiguredError if it refuses the tier's API key (sent as a request would send it)
    or serves no model list at its URL."""
    url, key_env = context.base_url(tier), context.api_key_env(tier)
    may_send = key_may_go_to(context, tier)
    api_key = os.environ.get(key_env, "") if key_env and may_send else ""
    try:
        response = _get_models(url, timeout_s, api_key)
    except httpx.HTTPError as error:
        raise unreachable(context, tier) from error
    status = response.status_code
    if status in (401, 403):
        if not may_send:
            fix = "its key is only sent to the URL configured in the environment"
        elif api_key:
            fix = f"check the key in {key_env}"
        else:
            fix = f"set {key_env} to its API key"
        raise BackendMisconfiguredError(
            f"the {tier} tier's backend at {url} refused the request (HTTP {status}); {fix}."
        )
    if status == 404:
        raise BackendMisconfiguredError(
            f"the {tier} tier's backend at {url} has no {url.rstrip('/')}/models (HTTP 404): is "
            f"the URL right? An OpenAI-compatible one usually ends in /v1 "
            f"({context.base_url_setting(tier)})."
        )


def first_within(
    stream: AsyncGenerator[Item, None], timeout_s: float | None
) -> AsyncGenerator[Item, None]:
    """The stream, failing with TimeoutError if its first item takes over `timeout_s` (for a chat
    model passed to build_graph, which may have no timeout of its own; None: the stream as it
    is). Closing it closes the stream."""
    return stream if timeout_s is None else _first_within(stream, timeout_s)


async def _first_within(
    stream: AsyncGenerator[Item, None], timeout_s: float
) -> AsyncGenerator[Item, None]:
    async with aclosing(stream):
        try:
            async with asyncio.timeout(timeout_s):
                first = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError as error:
            raise TimeoutError(
                f"no output within {timeout_s:g} s (EXPRESSWAY_MODEL_TIMEOUT_S)"
            ) from error
        yield first
        async for item in stream:
            yield item


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that the HTTP client swallowed.

    A CancelledError that arrives while an httpx/openai response stream is closing can be
    absorbed there; the task still counts it (Task.cancelling(), Python 3.11+), so raise it
    again after a model stream ends, or a cancelled run would go on to run its tools."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


# aiohttp's transport reports a refused connection as httpx2.ConnectTimeout, which the OpenAI
# client turns into "Request timed out": the refusal is further down the exception's causes.
_CONNECT_FAILURES = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    ConnectionRefusedError,
)


def is_connection_error(error: BaseException) -> bool:
    """True when an exception (or its cause) means the endpoint could not be reached at all."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _CONNECT_FAILURES) or type(seen).__name__ == "APIConnectionError":
            return True
        seen = seen.__cause__ or seen.__context__
    return False
