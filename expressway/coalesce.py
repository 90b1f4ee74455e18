"""Read a stream ahead of its consumer and merge what is waiting, so a consumer that falls behind
does less work per item, and one that keeps up gets every item at once, as it comes."""

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

Item = TypeVar("Item")


async def merge_waiting(
    source: AsyncGenerator[Item, None], merge: Callable[[Item, Item], Item | None]
) -> AsyncGenerator[Item, None]:
    """Yield `source`'s items. When the consumer asks for the next one and several are already
    waiting, the first absorbs the ones after it for as long as `merge(merged_so_far, next)`
    returns a merged item (None: that one is not mergeable, it comes next). Nothing is held back
    to wait for more, so no item arrives later than it would without merging.

    `source` is read on its own task so that what waits can be seen; closing this iterator (or
    cancelling its consumer) cancels that task, which closes `source`. An error from `source`
    reaches the consumer after the items before it."""
    waiting: deque[Item] = deque()
    arrived = asyncio.Event()
    failed: list[BaseException] = []
    done = False

    async def read() -> None:
        nonlocal done
        try:
            async with contextlib.aclosing(source) as items:
                async for item in items:
                    waiting.append(item)
                    arrived.set()
        except Exception as error:
            failed.append(error)
        finally:
            done = True
            arrived.set()

    reader = asyncio.create_task(read())
    try:
        while waiting or not done:
            if not waiting:
                arrived.clear()
                await arrived.wait()
                continue
            item = waiting.popleft()
            while waiting and (merged := merge(item, waiting[0])) is not None:
                waiting.popleft()
                item = merged
            yield item
        if failed:
            raise failed[0]
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
