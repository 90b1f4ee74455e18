"""The answer node: streams the answer from the routed tier, falling back to the other tier."""

import asyncio
import contextlib
import re
from collections.abc import Sequence
from contextlib import aclosing
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from expressway.context import Context
from expressway.events import emit, now
from expressway.models import (
    fall_back,
    fallback_order,
    first_output_timeout_s,
    first_within,
    raise_if_cancelled,
    tier_model,
)
from expressway.openai_stream import MERGED, busy_stream_options
from expressway.state import State, TaskResult
from expressway.toolbox import Toolbox
from nodes.prompts import (
    ANSWER_SYSTEM,
    ANSWER_SYSTEM_WITH_INSTRUCTIONS,
    FAILED_TOOLS_ANSWER,
    NO_PLAN_ANSWER,
    RESULTS_HEADER,
)

# A small model at temperature 0 can loop until max_tokens (seen: SmolLM2-135M repeating a
# results line 20 times, 23 s on a CPU, and repeating the whole five-line results block as
# `make ask`'s answer): the same run of up to LOOP_SENTENCES sentences twice in a row ends it.
LOOP_SENTENCES = 8
# Shorter repeats ("Yes. Yes.") are left alone: at least this many characters per sentence.
LOOP_MIN_CHARS = 8
# The answer's latest chunks (tokens) checked for a loop: two copies of the longest run.
LOOP_WINDOW_CHUNKS = 256
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_SENTENCE_CLOSERS = frozenset(".!?\n")


def is_looping(text: str) -> bool:
    """Whether the text ends with the same sentence (or line), or the same run of up to
    LOOP_SENTENCES of them, twice in a row."""
    sentences = [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]
    complete = sentences if re.search(r"[.!?\n]\s*$", text) else sentences[:-1]
    for size in range(1, min(LOOP_SENTENCES, len(complete) // 2) + 1):
        run = complete[-size:]
        if run == complete[-2 * size : -size] and len("".join(run)) >= LOOP_MIN_CHARS * size:
            return True
    return False


class AnswerStreamBrokenError(RuntimeError):
    """The answer stream failed after tokens were already shown to the caller."""


def answer_messages(state: State) -> list[BaseMessage]:
    """The conversation with the tool results appended to the latest question. Plan errors are
    left out (they are in the events): small models otherwise repeat them as the answer."""
    if not state.results and not state.plan_errors:
        return [SystemMessage(answer_system(state)), *state.messages]
    lines = [result_line(result) for result in state.results]
    return with_results(state, "\n".join(lines or ["- none: no usable tool call could be planned"]))


def results_so_far(
    results: Sequence[TaskResult], next_call: tuple[str, dict[str, Any]] | None = None
) -> str:
    """The answer prompt's results text for the first `results` of a run that has more to come:
    their lines, each with the newline the next line follows, then the call that the next line
    begins with when it is known (`next_call`: only its output is missing), so the text is a
    prefix of the complete list's."""
    known = "".join(f"{result_line(result)}\n" for result in results)
    return f"{known}- {call_text(*next_call)}" if next_call else known


def result_line(result: TaskResult) -> str:
    """One result as the answer prompt lists it (the prefill relies on one format for both)."""
    return f"- {describe(result)}"


def with_results(state: State, results: str) -> list[BaseMessage]:
    """The answer prompt with `results` after the latest question. Everything before `results`
    is the same for every run of the question, so a server's prefix cache can hold it early."""
    history = list(state.messages)
    question = history.pop() if history and isinstance(history[-1], HumanMessage) else None
    text = f"{question.text if question else ''}\n\n{RESULTS_HEADER}\n{results}"
    return [SystemMessage(answer_system(state)), *history, HumanMessage(text)]


def answer_system(state: State) -> str:
    """The answer's system prompt: the routed task's instructions from the routing table (a
    writing task asks for the whole text), else a few sentences."""
    instructions = state.route.answer_instructions if state.route else ""
    if not instructions:
        return ANSWER_SYSTEM
    return ANSWER_SYSTEM_WITH_INSTRUCTIONS.format(instructions=" ".join(instructions.split()))


async def warm_answer_prefix(
    state: State,
    context: Context,
    toolbox: Toolbox,
    results: Sequence[TaskResult] = (),
    next_call: tuple[str, dict[str, Any]] | None = None,
) -> None:
    """Ask the answering tier for one token of the answer prompt up to the tool results, with the
    first `results` (those already known) and the call of the next (`next_call`) in it, while
    the other tools still run: the server computes that prefix now and its prefix cache (vLLM's
    automatic prefix caching) holds it, so the answer's time to first token after the last tool
    covers only the results not yet in it. Best effort: any failure is ignored (the answer does
    the work)."""
    route = state.route
    assert route is not None
    model = tier_model(context, route.tier, toolbox.models)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            model.ainvoke(with_results(state, results_so_far(results, next_call)), max_tokens=1),
            context.model_timeout_s,
        )


def missing_results_answer(state: State) -> str | None:
    """The answer when a request that must be answered from tools got no usable tool result,
    or None when the model may answer. A rule, not a prompt: a small model told "do not guess"
    still states made-up figures, so the model is not asked at all."""
    route = state.route
    assert route is not None
    failed = [result for result in state.results if result.status == "error"]
    if not route.use_tools or len(failed) < len(state.results):
        return None  # some result is usable, or the route never needed tools
    if not state.results and not route.require_tools:
        return None  # the plan found no tool needed (e.g. a reasoning question)
    if not failed:
        return NO_PLAN_ANSWER
    lines = "\n".join(result_line(result) for result in failed)
    return f"{FAILED_TOOLS_ANSWER}\n{lines}"


def describe(result: TaskResult) -> str:
    return f"{call_text(result.tool, result.args)} -> {result.output}"


def call_text(tool: str, args: dict[str, Any]) -> str:
    arguments = ", ".join(f"{name}={value!r}" for name, value in args.items())
    return f"{tool}({arguments})"


async def stream_model_answer(
    state: State, context: Context, toolbox: Toolbox
) -> tuple[list[str], float | None]:
    """Stream the answer from the routed tier, falling back to the other tier when it fails
    before its first token; return the text chunks and when the first one arrived."""
    route = state.route
    assert route is not None
    messages = answer_messages(state)
    tiers = fallback_order(route.tier)
    parts: list[str] = []
    tokens = 0
    first_token_at: float | None = None
    for attempt, tier in enumerate(tiers):
        model = tier_model(context, tier, toolbox.models)
        model_name = route.model or context.model_name(tier)
        passed_in = tier in toolbox.models
        try:
            busy = busy_stream_options(
                model, context.token_merge_window_ms / 1000, context.busy_stream_interval
            )
            stream = model.bind(max_tokens=route.max_tokens, **busy)
            timeout_s = first_output_timeout_s(context, tier, toolbox.models)
            # aclosing: leaving early closes the HTTP stream at once, which ends the generation.
            async with aclosing(first_within(stream.astream(messages), timeout_s)) as chunks:
                async for chunk in chunks:
                    if not chunk.text:
                        continue
                    if first_token_at is None:
                        first_token_at = now()
                    parts.append(chunk.text)
                    # A chunk may join several the server sent (expressway/openai_stream.py).
                    joined = chunk.response_metadata.get(MERGED, 1)
                    tokens += joined
                    extra = {"tokens": joined} if joined > 1 else {}
                    emit(
                        state.started_at,
                        "token",
                        text=chunk.text,
                        tier=tier,
                        model=model_name,
                        **extra,
                    )
                    # Every chunk holds a token or more, so a backend that ignores max_tokens
                    # cannot grow a run's events (queued for a slow consumer) without bound.
                    if tokens >= route.max_tokens:
                        break
                    # A sentence just ended: check the recent text for a loop.
                    if _SENTENCE_CLOSERS & set(chunk.text) and is_looping(
                        "".join(parts[-LOOP_WINDOW_CHUNKS:])
                    ):
                        break
            raise_if_cancelled()
            break
        except Exception as error:
            # Only a failure before any token is retried: a half-streamed answer cannot be undone.
            if parts:
                source = "the model passed to build_graph" if passed_in else context.base_url(tier)
                raise AnswerStreamBrokenError(
                    f"the {tier} tier's answer stream from {source} broke after "
                    f"{len(parts)} chunks ({type(error).__name__}: {error}); the answer shown is "
                    "incomplete: ask again"
                ) from error
            fall_back(context, state.started_at, "answer", tiers, attempt, error)
    return parts, first_token_at


async def answer(state: State, runtime: Runtime[Context], *, toolbox: Toolbox) -> dict[str, Any]:
    """Read the conversation, `route` and `results`; write the answer as an AIMessage and the
    `tools`/`answer`/`ttft`/`total` timings.

    Emits a `token` event per streamed chunk (at most the route's max_tokens) and `run.finished`
    with every stage's timing. If the routed tier fails before its first token, the other tier
    answers (a `fallback` event says so). A request that must be answered from tools but got no
    usable result is answered by the graph itself, saying what could not be looked up (an
    `answer.withheld` event, then the text as one `token` event with an empty model)."""
    context, route = runtime.context, state.route
    assert route is not None, "route_request runs first"
    answer_started = now()
    emit(state.started_at, "answer.started", tier=route.tier)
    withheld = missing_results_answer(state)
    if withheld is None:
        parts, first_token_at = await stream_model_answer(state, context, toolbox)
    else:
        emit(state.started_at, "answer.withheld", reason=withheld.splitlines()[0])
        parts, first_token_at = [withheld], now()
        emit(state.started_at, "token", text=withheld, tier=route.tier, model="")
    finished = now()
    timings = {
        # Tool time not hidden behind planning: from the end of routing and planning to the answer.
        "tools": max(0.0, answer_started - state.started_at - sum(state.timings.values())),
        "answer": finished - answer_started,
        "ttft": (first_token_at or finished) - state.started_at,
        "total": finished - state.started_at,
    }
    all_timings = {**state.timings, **timings}
    emit(
        state.started_at,
        "run.finished",
        timings={stage: round(seconds, 6) for stage, seconds in all_timings.items()},
        tier=route.tier,
        tasks=len(state.results),
        failed_tasks=sum(result.status == "error" for result in state.results),
        speculation={name: int(count) for name, count in state.speculation.items()},
    )
    return {"messages": [AIMessage("".join(parts))], "timings": timings}
