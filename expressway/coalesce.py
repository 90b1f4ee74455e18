"""Read a stream ahead of its consumer and merge what is waiting, so a consumer that falls behind
does less work per item, and one that keeps up gets every item at once, as it comes."""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

Item = TypeVar("Item")

# An item that waited this long for its consumer means the event loop is busy (at rest the
# consumer takes an item well under a millisecond after it arrives).
BUSY_LAG_S = 0.010
# Late this many times in one stream: busy (one slow step, such as a garbage-collection pause, is
# not).
LATE_TO_HOLD = 2
# How long the process counts as busy after a stream last saw it so (`process_busy`).
BUSY_MEMORY_S = 1.0
# This many streams read at once make the process busy by themselves: their chunks alone keep the
# event loop at work (32 streams at 60 tokens/s are ~2,000 chunks a second) before any of them
# is late, and a request made then should already ask for fewer, larger chunks.
BUSY_STREAMS = 32
_busy_seen_at = -float("inf")
_streams_open = 0


def process_busy() -> bool:
    """Whether the process is busy: BUSY_STREAMS streams or more are being read here, or a stream
    read here saw the event loop busy within the last BUSY_MEMORY_S (an item that waited for its
    consumer, or a hold that woke late). A request made now can ask its server for fewer, larger
    chunks (expressway/openai_stream.py)."""
    return _streams_open >= BUSY_STREAMS or time.monotonic() - _busy_seen_at < BUSY_MEMORY_S


def _seen_busy() -> None:
    global _busy_seen_at
    _busy_seen_at = time.monotonic()


async def merge_waiting(
    source: AsyncGenerator[Item, None],
    merge: Callable[[Item, Item], Item | None],
    hold_s: float = 0.0,
) -> AsyncGenerator[Item, None]:
    """Yield `source`'s items. When the consumer asks for the next one and several are already
    waiting, the first absorbs the ones after it for as long as `merge(merged_so_far, next)`
    returns a merged item (None: that one is not mergeable, it comes next).

    With `hold_s` > 0, a stream read on a busy event loop is read less often. Once LATE_TO_HOLD
    of its items were late (an item waited more than BUSY_LAG_S for its consumer, or the
    consumer took longer than that to ask for it), each next item of this stream is yielded no
    sooner than `hold_s` after the one before, so more items merge and the consumer's per-item
    work falls while CPU is short. Otherwise nothing is held back: no item arrives later than
    it would without merging. The first item is never held. Every stream's late items (and
    holds that wake late) also tell `process_busy` that the process is busy, as does the number
    of streams being read.

    `source` is read on its own task so that what waits can be seen; closing this iterator (or
    cancelling its consumer) cancels that task, which closes `source`. An error from `source`
    reaches the consumer after the items before it."""
    loop = asyncio.get_running_loop()
    waiting: deque[tuple[float, Item]] = deque()
    arrived = asyncio.Event()
    failed: list[BaseException] = []
    done = False

    async def read() -> None:
        nonlocal done
        try:
            async with contextlib.aclosing(source) as items:
                async for item in items:
                    waiting.append((loop.time(), item))
                    arrived.set()
        except Exception as error:
            failed.append(error)
        finally:
            done = True
            arrived.set()

    global _streams_open
    _streams_open += 1
    reader = asyncio.create_task(read())
    holding, late_items = False, 0
    yielded_at: float | None = None
    try:
        while waiting or not done:
            asked_at = loop.time()
            if holding and not done and (pause := (yielded_at or 0) + hold_s - asked_at) > 0:
                await asyncio.sleep(pause)
                if loop.time() - asked_at - pause > BUSY_LAG_S:  # woke late: still busy
                    _seen_busy()
            while not waiting and not done:
                arrived.clear()
                await arrived.wait()
            if not waiting:
                break
            arrived_at, item = waiting.popleft()
            # Late: the item waited for its consumer, or the consumer was slow to ask.
            if (
                not holding
                and yielded_at is not None
                and max(loop.time() - arrived_at, asked_at - yielded_at) > BUSY_LAG_S
            ):
                _seen_busy()
                late_items += 1
                holding = hold_s > 0 and late_items >= LATE_TO_HOLD
            while waiting and (merged := merge(item, waiting[0][1])) is not None:
                waiting.popleft()
                item = merged
            yielded_at = loop.time()
            yield item
        if failed:
            raise failed[0]
    finally:
        _streams_open -= 1
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
