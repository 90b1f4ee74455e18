"""The run's tools and model overrides, and the flag a tool sets to say it has no side effects."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as as_tool

from expressway.context import Context
from expressway.mcp_tools import MCPServers, configured_servers, drop_duplicate_names

READ_ONLY = "read_only"
# MCP servers declare the same thing as a tool annotation; langchain-mcp-adapters puts the
# annotations in the tool's metadata.
MCP_READ_ONLY = "readOnlyHint"
ToolLike = TypeVar("ToolLike", bound=Callable[..., Any] | BaseTool)


def read_only(tool: ToolLike) -> ToolLike:
    """Mark a tool as free of side effects (it only reads). Only such tools may be started
    speculatively before the plan asks for them, and re-run after a crash without a report.
    Undeclared tools are treated as having side effects. Use as a decorator on a plain
    function, or call it on a LangChain tool; `metadata={"read_only": True}` does the same."""
    if isinstance(tool, BaseTool):
        tool.metadata = {**(tool.metadata or {}), READ_ONLY: True}
    else:
        setattr(tool, f"__{READ_ONLY}__", True)
    return tool


def is_read_only(tool: BaseTool) -> bool:
    """Whether the tool declared that it has no side effects (ours, or MCP's readOnlyHint)."""
    metadata = tool.metadata or {}
    return metadata.get(READ_ONLY) is True or metadata.get(MCP_READ_ONLY) is True


def as_tools(functions: Iterable[Callable[..., Any] | BaseTool]) -> list[BaseTool]:
    """Wrap plain functions (sync or async; the docstring is the description) as LangChain tools,
    carrying the read-only flag into the tool's metadata."""
    tools = []
    for function in functions:
        if isinstance(function, BaseTool):
            tools.append(function)
            continue
        wrapped = as_tool(function)
        if getattr(function, f"__{READ_ONLY}__", False):
            read_only(wrapped)
        tools.append(wrapped)
    return tools


@dataclass(frozen=True)
class Toolbox:
    """The run's tools, and chat models that replace a tier's endpoint (e.g. fakes in tests)."""

    tools: list[BaseTool]
    models: Mapping[str, BaseChatModel] = field(default_factory=dict)
    mcp_servers: MCPServers | None = None

    async def run_tools(self, context: Context) -> list[BaseTool]:
        """The local tools, then the tools of the MCP servers given to build_graph and of the file
        named by `context.mcp_config` (each server starts on the first run that needs it)."""
        sources = [self.mcp_servers] if self.mcp_servers else []
        if context.mcp_config:
            sources.append(configured_servers(context.mcp_config))
        if not sources:
            return self.tools
        timeout_s = context.mcp_startup_timeout_s
        remote = [tool for source in sources for tool in await source.tools(timeout_s)]
        return drop_duplicate_names([*self.tools, *remote])
