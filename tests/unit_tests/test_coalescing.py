"""Adaptive token coalescing (expressway.events.coalesce_tokens): a consumer that keeps up gets
every token as its own event; one that falls behind gets the waiting tokens merged, every
character in order, and nothing else reordered or lost."""

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from expressway.events import coalesce_tokens


def token(index: int, t: float, tier: str = "fast") -> dict[str, Any]:
    return {"type": "token", "v": 1, "t": t, "text": f"<{index}>", "tier": tier, "model": "m"}


def marker(kind: str, t: float) -> dict[str, Any]:
    return {"type": kind, "v": 1, "t": t}


async def source(
    events: list[dict[str, Any]], pause_s: float = 0.0
) -> AsyncGenerator[dict[str, Any], None]:
    for event in events:
        if pause_s:
            await asyncio.sleep(pause_s)
        yield event


RUN = [
    marker("run.started", 0.0),
    *(token(i, 1.0 + i * 0.001) for i in range(50)),
    marker("fallback", 1.2),
    *(token(i, 1.3 + (i - 50) * 0.001, tier="frontier") for i in range(50, 80)),
    marker("run.finished", 2.0),
]


def texts(events: list[dict[str, Any]]) -> str:
    return "".join(event["text"] for event in events if event["type"] == "token")


async def test_a_consumer_that_keeps_up_gets_every_token_as_its_own_event() -> None:
    received = [event async for event in coalesce_tokens(source(RUN, pause_s=0.001), 0.05)]
    assert received == RUN


async def test_a_slow_consumer_gets_every_token_in_order_in_fewer_events() -> None:
    received = []
    async for event in coalesce_tokens(source(RUN), 0.05):
        received.append(event)
        await asyncio.sleep(0.005)  # slower than the source: events wait
    tokens = [event for event in received if event["type"] == "token"]
    assert texts(received) == texts(RUN)
    assert len(tokens) < 80
    assert sum(event.get("tokens", 1) for event in tokens) == 80
    # Markers keep their place, and no merged event spans two tiers.
    assert [event["type"] for event in received if event["type"] != "token"] == [
        "run.started",
        "fallback",
        "run.finished",
    ]
    fallback_at = next(i for i, event in enumerate(received) if event["type"] == "fallback")
    assert {event["tier"] for event in received[:fallback_at] if event["type"] == "token"} == {
        "fast"
    }
    assert texts(received[fallback_at:]) == texts(RUN[51:])


async def test_merging_never_spans_more_than_the_window() -> None:
    spread = [token(i, i * 0.02) for i in range(20)]  # 20 ms apart
    received = []
    async for event in coalesce_tokens(source(spread), 0.05):
        received.append(event)
        await asyncio.sleep(0.01)
    assert texts(received) == texts(spread)
    assert max(event.get("tokens", 1) for event in received) == 3  # t, t+20 ms, t+40 ms
    assert len(received) < 20


async def test_a_zero_window_never_merges() -> None:
    received = []
    async for event in coalesce_tokens(source(RUN), 0.0):
        received.append(event)
        await asyncio.sleep(0.001)
    assert received == RUN


async def test_an_error_arrives_after_the_events_before_it() -> None:
    async def failing() -> AsyncGenerator[dict[str, Any], None]:
        yield token(0, 0.0)
        yield token(1, 0.001)
        raise ValueError("backend went away")

    received = []
    with pytest.raises(ValueError, match="backend went away"):
        async for event in coalesce_tokens(failing(), 0.05):
            received.append(event)
            await asyncio.sleep(0.01)
    assert texts(received) == "<0><1>"


async def test_closing_early_closes_the_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[dict[str, Any], None]:
        try:
            index = 0
            while True:
                await asyncio.sleep(0.001)
                yield token(index, index * 0.001)
                index += 1
        finally:
            closed.set()

    stream = coalesce_tokens(endless(), 0.05)
    async for _ in stream:
        break
    await stream.aclose()
    assert closed.is_set()
