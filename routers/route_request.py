"""The graph's first node: starts the run clock and routes the question to a tier."""

from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from expressway.context import Context
from expressway.events import emit, now
from expressway.state import Route, State, last_question, previous_question
from routers.classifier import classify_turn


async def route_request(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Read the latest question (with the one before it, for a follow-up such as "and in
    Berlin?"); write `started_at`, `route` and reset the per-question fields.

    Emits `run.started` and `route.decided`. A forced tier (context.force_tier) overrides the
    classifier's tier but keeps its task."""
    started_at = now()
    emit(started_at, "run.started")
    if state.messages and not isinstance(state.messages[-1], HumanMessage):
        # Otherwise a turn that adds no message would answer the thread's last question again.
        raise ValueError(
            "no new question: the thread's latest message is "
            f"{type(state.messages[-1]).__name__}, not the user's; send a human message"
        )
    question = last_question(state)
    if not question:
        raise ValueError("the question is empty: send a human message with some text")
    if len(question) > runtime.context.max_question_chars:
        raise ValueError(
            f"the question is {len(question):,} characters, over the limit of "
            f"{runtime.context.max_question_chars:,} (EXPRESSWAY_MAX_QUESTION_CHARS): shorten it, "
            "or attach long documents through a tool instead of the prompt"
        )
    route = classify_turn(question, previous_question(state))
    if runtime.context.force_tier:
        route = Route(**{**route.__dict__, "tier": runtime.context.force_tier})
    emit(
        started_at,
        "route.decided",
        task=route.task,
        tier=route.tier,
        confidence=route.confidence,
        latency_ms=route.latency_ms,
        use_tools=route.use_tools,
        escalated=route.escalated,
    )
    return {
        "started_at": started_at,
        "route": route,
        "results": Overwrite([]),
        "plan_errors": Overwrite([]),
        "replans": 0,
        "timings": Overwrite({"route": route.latency_ms / 1000}),
        "speculation": Overwrite({}),
    }
