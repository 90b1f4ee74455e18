"""Adaptive token coalescing (expressway.events.coalesce_tokens): a consumer that keeps up gets
every token as its own event; one that falls behind gets the waiting tokens merged, every
character in order, and nothing else reordered or lost."""

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from expressway import coalesce
from expressway.coalesce import merge_waiting, process_busy
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


async def _ticks(count: int, every_s: float) -> AsyncGenerator[dict[str, Any], None]:
    """Token i is due `every_s` * i after the start (as a backend's tokens land on the socket
    whether or not the process reads them); all that are due are yielded at once."""
    start = time.monotonic()
    for index in range(count):
        due = start + index * every_s
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        yield token(index, due)


def _join(first: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {**first, "text": first["text"] + after["text"]}


async def test_a_busy_loop_holds_the_stream_so_more_merges_and_an_idle_one_never_holds() -> None:
    # Idle: a consumer that keeps up gets each of 40 tokens (every 5 ms) as it comes.
    idle = [event async for event in merge_waiting(_ticks(40, 0.005), _join, hold_s=0.05)]
    assert len(idle) == 40
    # Busy: the consumer blocks the loop 15 ms per item (as a loaded server does), so items wait
    # longer than BUSY_LAG_S; the stream is then read once per 50 ms window.
    received, gaps, last = [], [], None
    async for event in merge_waiting(_ticks(40, 0.005), _join, hold_s=0.05):
        if last is not None:
            gaps.append(time.monotonic() - last)
        received.append(event)
        time.sleep(0.015)  # noqa: ASYNC251 -- blocking on purpose: a busy loop
        last = time.monotonic()
    assert "".join(e["text"] for e in received) == "".join(f"<{i}>" for i in range(40))
    # Without the hold the same consumer takes an item per 15 ms (about 14 items); held, about
    # one per 65 ms (its 15 ms plus the 50 ms window).
    assert len(received) <= 8
    assert sum(gap >= 0.03 for gap in gaps) >= len(gaps) // 2


async def test_without_a_hold_a_busy_consumer_is_never_made_to_wait() -> None:
    received = []
    async for event in merge_waiting(_ticks(40, 0.005), _join):
        received.append(event)
        time.sleep(0.015)  # noqa: ASYNC251 -- blocking on purpose: a busy loop
    assert len(received) > 8


async def test_streams_tell_whether_the_process_is_busy_and_it_wears_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coalesce, "_busy_seen_at", -float("inf"))
    monkeypatch.setattr(coalesce, "BUSY_MEMORY_S", 0.2)
    assert len([event async for event in merge_waiting(_ticks(20, 0.005), _join)]) == 20
    assert not process_busy()  # a consumer that keeps up: idle
    async for _ in merge_waiting(_ticks(20, 0.005), _join):
        time.sleep(0.015)  # noqa: ASYNC251 -- blocking on purpose: a busy loop
    assert process_busy()
    await asyncio.sleep(0.25)
    assert not process_busy()


async def test_many_streams_read_at_once_make_the_process_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coalesce, "_busy_seen_at", -float("inf"))
    monkeypatch.setattr(coalesce, "BUSY_STREAMS", 3)
    gate = asyncio.Event()

    async def waiting_stream() -> AsyncGenerator[str, None]:
        await gate.wait()
        yield "token"

    async def read(stream: AsyncGenerator[str, None]) -> list[str]:
        return [item async for item in merge_waiting(stream, _join)]

    readers = [asyncio.create_task(read(waiting_stream())) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert not process_busy()  # two streams: below the threshold, and none was late
    readers.append(asyncio.create_task(read(waiting_stream())))
    await asyncio.sleep(0.01)
    assert process_busy()  # three at once
    gate.set()
    assert await asyncio.gather(*readers) == [["token"]] * 3
    assert not process_busy()  # all closed, none was late
