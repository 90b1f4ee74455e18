"""A simulated OpenAI-compatible backend for benchmarks and tests (never the product's default).

Real HTTP with SSE streaming (`/v1/chat/completions`, `/v1/models`), with a latency profile:
time to first token, prefill speed with a prefix-cache effect, inter-token latency that grows with
the number of concurrent streams, and a cap on concurrent sequences (beyond it requests queue, as
in vLLM's continuous batching). The default profile is the seed's vLLM-on-A100 figures: TTFT
~300 ms and ~60 tokens/s per stream.

What it answers is scripted by a `responder(request) -> text` function, so runs are reproducible.
It records when every chunk was sent (time.monotonic() once the chunk's bytes are handed to the
socket, comparable across processes on one machine) and which streams the client abandoned, so
relay overhead and cancellation are measurable.
"""

import asyncio
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CHARS_PER_TOKEN = 4
PREFIX_BLOCK_TOKENS = 16  # vLLM's default KV cache block size
# Tokens of about CHARS_PER_TOKEN characters, as BPE tokenizers produce for English and JSON.
TOKEN = re.compile(rf"\s?[^\s]{{1,{CHARS_PER_TOKEN}}}|\s+")


@dataclass
class ToolCallReply:
    """A scripted reply that calls a tool (OpenAI `tool_calls`) instead of answering; arguments
    given as a string are sent as they are (e.g. malformed JSON)."""

    name: str
    arguments: dict[str, Any] | str

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


# A reply: answer text, one tool call, or several in one turn (parallel function calling).
Reply = "str | ToolCallReply | list[ToolCallReply]"
Responder = Callable[[dict[str, Any]], Reply]


@dataclass
class LatencyProfile:
    """How the simulated server spends time. Defaults: the seed's vLLM on A100 figures."""

    ttft_s: float = 0.3  # queueing + scheduling + first decode step for a short or cached prompt
    tokens_per_s: float = 60.0  # decode speed of one stream
    prefill_tokens_per_s: float = 8000.0  # prompt tokens not in the prefix cache
    prefix_cache: bool = True
    max_num_seqs: int = 256  # concurrent sequences; more wait in a queue
    batch_slowdown: float = 0.002  # each extra concurrent stream slows decoding by this fraction


@dataclass
class Fault:
    """One request's misbehaviour: an HTTP error status, a stall before answering, a stream that
    is cut after some tokens, or a reply longer than the request's max_tokens. Faults are used up
    in order, one per request."""

    status: int = 0
    stall_s: float = 0.0
    cut_after_tokens: int = -1
    ignore_max_tokens: bool = False


@dataclass
class SentChunk:
    request_id: str
    index: int
    text: str
    sent_at: float


@dataclass
class Stats:
    chunks: list[SentChunk] = field(default_factory=list)
    requests: int = 0
    completed: int = 0
    cancelled: int = 0
    cached_prompt_tokens: int = 0
    prompt_tokens: int = 0


@dataclass
class FixedResponder:
    """An empty plan for structured-output requests, else an answer of `answer_tokens` words."""

    answer_tokens: int = 40

    def __call__(self, request: dict[str, Any]) -> str:
        if "response_format" in request:
            return '{"plan": []}'  # nodes/planner.py's empty plan
        return " ".join(f"word{i}" for i in range(self.answer_tokens)) + "."


def _prompt_text(request: dict[str, Any]) -> str:
    """The prompt as a chat template renders it: each message's role, then its content."""
    return "".join(
        f"<{message.get('role', '')}>\n{message.get('content') or ''}\n"
        for message in request.get("messages", [])
    )


class SimulatedBackend:
    """The server's state and its Starlette app."""

    def __init__(
        self,
        responder: Responder | None = None,
        profile: LatencyProfile | None = None,
        model_names: tuple[str, ...] = ("fast", "frontier"),
        model_profiles: dict[str, LatencyProfile] | None = None,
        faults: list[Fault] | None = None,
    ) -> None:
        self.responder = responder or FixedResponder()
        self.profile = profile or LatencyProfile()
        # Per served model name, e.g. a faster small model behind "fast"; others use `profile`.
        self.model_profiles = model_profiles or {}
        self.faults = list(faults or [])
        self.model_names = model_names
        self.stats = Stats()
        self._cached_prefixes: set[str] = set()
        self._active = 0
        self._slots: asyncio.Semaphore | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/health", lambda _: Response("ok"), methods=["GET"]),
                Route("/stats", self._stats, methods=["GET"]),
            ]
        )

    def profile_for(self, request: dict[str, Any]) -> LatencyProfile:
        return self.model_profiles.get(request.get("model", ""), self.profile)

    def prefill_s(self, request: dict[str, Any]) -> float:
        """Seconds to prefill the prompt's uncached part, its blocks then cached."""
        seconds, blocks = self._prefill(request)
        self._cached_prefixes.update(blocks)
        return seconds

    def _prefill(self, request: dict[str, Any]) -> tuple[float, list[str]]:
        """Seconds to prefill the prompt's uncached part, and the keys of its blocks. As vLLM's
        prefix caching: the prompt's tokens are cut into blocks of PREFIX_BLOCK_TOKENS, a block
        is cached when it and every block before it were computed, and only full blocks are
        kept, so two prompts share the blocks of their common beginning whatever their message
        boundaries. The caller caches the blocks once the prefill is done: a request closed
        before its first token leaves nothing cached."""
        tokens = TOKEN.findall(_prompt_text(request))
        digest, uncached, blocks = hashlib.sha256(), len(tokens), []
        self.stats.prompt_tokens += len(tokens)
        caching = self.profile_for(request).prefix_cache
        for start in range(0, len(tokens) - PREFIX_BLOCK_TOKENS + 1, PREFIX_BLOCK_TOKENS):
            digest.update("".join(tokens[start : start + PREFIX_BLOCK_TOKENS]).encode())
            key = digest.hexdigest()
            if caching and key in self._cached_prefixes and uncached == len(tokens) - start:
                self.stats.cached_prompt_tokens += PREFIX_BLOCK_TOKENS
                uncached -= PREFIX_BLOCK_TOKENS
            blocks.append(key)
        return uncached / self.profile_for(request).prefill_tokens_per_s, blocks

    async def _models(self, _: Request) -> JSONResponse:
        data = [
            # Owned by "vllm" as vLLM lists its models: this server takes vLLM's request fields.
            {"id": name, "object": "model", "owned_by": "vllm"}
            for name in self.model_names
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _stats(self, _: Request) -> JSONResponse:
        """What was sent and when, for measurements across processes."""
        return JSONResponse(
            {
                "requests": self.stats.requests,
                "completed": self.stats.completed,
                "cancelled": self.stats.cancelled,
                "prompt_tokens": self.stats.prompt_tokens,
                "cached_prompt_tokens": self.stats.cached_prompt_tokens,
                "chunks": [chunk.__dict__ for chunk in self.stats.chunks],
            }
        )

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.stats.requests += 1
        fault = self.faults.pop(0) if self.faults else Fault()
        if fault.stall_s:
            await asyncio.sleep(fault.stall_s)
        if fault.status:
            error = {"message": f"simulated {fault.status}", "type": "simulated_fault"}
            return JSONResponse({"error": error}, status_code=fault.status)
        body["_cut_after_tokens"] = fault.cut_after_tokens
        if not fault.ignore_max_tokens:
            body["_max_tokens"] = body.get("max_completion_tokens") or body.get("max_tokens")
        reply = self.responder(body)
        calls = [reply] if isinstance(reply, ToolCallReply) else reply
        if isinstance(calls, list):  # each call's arguments, decoded one after another
            tokens = [(i, t) for i, c in enumerate(calls) for t in TOKEN.findall(c.arguments_json)]
        else:
            tokens = [(0, token) for token in TOKEN.findall(reply)]
        finish = _finish_reason(body, len(tokens), isinstance(calls, list))
        if body.get("stream"):
            stream = self._stream(body, calls if isinstance(calls, list) else None, tokens, finish)
            return StreamingResponse(stream, media_type="text/event-stream")
        timed = self._timed_tokens(body, tokens, uuid.uuid4().hex)
        sent = [pair async for group in timed for pair in group]
        self.stats.completed += 1
        message: dict[str, Any] = {"role": "assistant", "content": "".join(t for _, t in sent)}
        if isinstance(calls, list):
            tool_calls = [_tool_call(call) for call in calls]
            for index, call in enumerate(tool_calls):  # cut short by max_tokens, if it was
                call["function"]["arguments"] = "".join(t for i, t in sent if i == index)
            message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": finish,
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": len(sent), "total_tokens": 0},
            }
        )

    async def _timed_tokens(
        self, body: dict[str, Any], tokens: list[tuple[int, str]], request_id: str
    ) -> AsyncIterator[list[tuple[int, str]]]:
        """The reply's (owner, token) pairs at the profile's pace, in the groups a stream sends:
        the owner is the tool call a token belongs to (0 for answer text). As vLLM's per-request
        `stream_interval` N: the first token alone, then N tokens of one owner at a time, the
        rest at the end; without it, every token alone."""
        profile = self.profile_for(body)
        interval = max(1, int(body.get("stream_interval") or 1)) if body.get("stream") else 1
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.profile.max_num_seqs)
        async with self._slots:
            self._active += 1
            try:
                prefill_s, blocks = self._prefill(body)
                await asyncio.sleep(profile.ttft_s + prefill_s)
                self._cached_prefixes.update(blocks)
                group: list[tuple[int, str]] = []
                sent = 0
                for index, (owner, token) in enumerate(tokens[: body.get("_max_tokens")]):
                    if index == body.get("_cut_after_tokens", -1):
                        raise ConnectionAbortedError("simulated stream cut")
                    if index:
                        slowdown = 1 + profile.batch_slowdown * (self._active - 1)
                        await asyncio.sleep(slowdown / profile.tokens_per_s)
                    if group and group[-1][0] != owner:  # a group is one call's tokens
                        yield group
                        sent = self._stamp(group, sent, request_id)
                        group = []
                    group.append((owner, token))
                    if index == 0 or len(group) >= interval:
                        yield group
                        sent = self._stamp(group, sent, request_id)
                        group = []
                if group:
                    yield group
                    self._stamp(group, sent, request_id)
            finally:
                self._active -= 1

    def _stamp(self, group: list[tuple[int, str]], index: int, request_id: str) -> int:
        """Record a group's tokens as sent (called once the stream resumes: its chunk has been
        written, its bytes are on the socket); returns the next token's index."""
        sent_at = time.monotonic()
        for offset, (_, token) in enumerate(group):
            self.stats.chunks.append(SentChunk(request_id, index + offset, token, sent_at))
        return index + len(group)

    async def _stream(
        self,
        body: dict[str, Any],
        calls: list[ToolCallReply] | None,
        tokens: list[tuple[int, str]],
        finish_reason: str,
    ) -> AsyncIterator[str]:
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        created, model = int(time.time()), body.get("model", "")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            payload = {
                "id": request_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }
            return f"data: {json.dumps(payload)}\n\n"

        finished = False
        try:
            yield chunk({"role": "assistant", "content": ""})
            opened = -1
            async for group in self._timed_tokens(body, tokens, request_id):
                owner, text = group[0][0], "".join(token for _, token in group)
                if calls is None:
                    yield chunk({"content": text})
                    continue
                while opened < owner:  # a call's id and name come before its arguments
                    opened += 1
                    call = _tool_call(calls[opened])
                    call["function"]["arguments"] = ""
                    yield chunk({"tool_calls": [{"index": opened, **call}]})
                delta = {"index": owner, "function": {"arguments": text}}
                yield chunk({"tool_calls": [delta]})
            yield chunk({}, finish_reason)
            yield "data: [DONE]\n\n"
            finished = True
            self.stats.completed += 1
        finally:
            if not finished:  # the client went away mid-stream
                self.stats.cancelled += 1


def _finish_reason(body: dict[str, Any], tokens: int, calls_tools: bool) -> str:
    """ "length" when max_tokens cut the reply short, as vLLM reports it."""
    limit = body.get("_max_tokens")
    if limit is not None and tokens > limit:
        return "length"
    return "tool_calls" if calls_tools else "stop"


def _tool_call(reply: ToolCallReply) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": reply.name, "arguments": reply.arguments_json},
    }


class RunningSimulator:
    """A SimulatedBackend served by uvicorn on a background thread, on 127.0.0.1."""

    def __init__(self, backend: SimulatedBackend, port: int = 0) -> None:
        self.backend = backend
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(backend.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "RunningSimulator":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the simulated backend did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator in the foreground: `python -m bench.simulator --port 8100`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.simulator")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--ttft", type=float, default=LatencyProfile.ttft_s)
    parser.add_argument("--tokens-per-s", type=float, default=LatencyProfile.tokens_per_s)
    parser.add_argument("--answer-tokens", type=int, default=FixedResponder.answer_tokens)
    parser.add_argument(
        "--workload", action="store_true", help="script replies from bench/workload.py's questions"
    )
    parser.add_argument(
        "--responder", help="script replies with this function instead, as MODULE:NAME"
    )
    args = parser.parse_args(argv)
    if args.responder:
        import importlib

        module, _, name = args.responder.partition(":")
        responder: Responder = getattr(importlib.import_module(module), name)
    elif args.workload:
        from bench.workload import scripted_reply

        responder = scripted_reply
    else:
        responder = FixedResponder(args.answer_tokens)
    backend = SimulatedBackend(
        responder=responder,
        profile=LatencyProfile(ttft_s=args.ttft, tokens_per_s=args.tokens_per_s),
    )
    uvicorn.run(backend.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
