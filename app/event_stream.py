"""Server-sent events for the HTTP app, in the LangGraph server's format, and a response that
closes its source the moment the client goes away."""

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


def sse_message(event: str, data: Any) -> bytes:
    """One SSE message: `event: NAME` and its JSON data (as LangGraph's server sends them)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response that stops reading its source when the client disconnects.

    Starlette's StreamingResponse stops *sending* then, but leaves the source generator suspended
    until it is garbage collected, so a graph run behind it would go on. Here the source is closed
    at once: for a graph run that closes the model's HTTP stream and cancels async tools."""

    def __init__(self, messages: AsyncGenerator[bytes, None]) -> None:
        # no-store: a proxy must not cache a run; X-Accel-Buffering: nginx must not hold tokens.
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        super().__init__(messages, media_type="text/event-stream", headers=headers)
        self.messages = messages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.current_task()
        assert writer is not None
        client_left = asyncio.Event()

        async def watch_for_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            client_left.set()
            writer.cancel()

        watcher = asyncio.create_task(watch_for_disconnect())
        try:
            async with contextlib.aclosing(self.messages) as messages:
                start = {"type": "http.response.start", "status": self.status_code}
                await send({**start, "headers": self.raw_headers})
                async for message in messages:
                    await send({"type": "http.response.body", "body": message, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not client_left.is_set():
                raise
            writer.uncancel()  # the cancellation was ours: the request itself ends normally
        except OSError:  # ASGI 2.4 servers raise on a send after the client left
            pass
        finally:
            watcher.cancel()
