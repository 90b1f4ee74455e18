"""The run's tools and model overrides, and the flag a tool sets to say it has no side effects."""

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as as_tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from expressway.context import Context
from expressway.mcp_tools import MCPServers, configured_servers, drop_duplicate_names

READ_ONLY = "read_only"
PLAN_EXAMPLES = "plan_examples"
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


def example(question: str, **arguments: Any) -> Callable[[ToolLike], ToolLike]:
    """Show the planner a question this tool answers and the arguments it takes for it:
    `@example("Is LH400 on time?", flight_number="LH400")`. Stack it for several. Optional:
    tools without examples get one derived from their description and argument schema."""

    def attach(tool: ToolLike) -> ToolLike:
        if isinstance(tool, BaseTool):
            metadata = tool.metadata or {}
            tool.metadata = {
                **metadata,
                PLAN_EXAMPLES: [*metadata.get(PLAN_EXAMPLES, []), (question, arguments)],
            }
        else:
            setattr(
                tool,
                f"__{PLAN_EXAMPLES}__",
                [*getattr(tool, f"__{PLAN_EXAMPLES}__", []), (question, arguments)],
            )
        return tool

    return attach


def tool_examples(tool: BaseTool) -> list[tuple[str, dict[str, Any]]]:
    """The (question, arguments) examples a tool was given with `example`."""
    return list((tool.metadata or {}).get(PLAN_EXAMPLES, []))


def tool_parameters(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, as the model sees it."""
    return convert_to_openai_tool(tool)["function"]["parameters"]


def as_tools(functions: Iterable[Callable[..., Any] | BaseTool]) -> list[BaseTool]:
    """Wrap plain functions (sync or async; the docstring is the description) as LangChain tools,
    carrying the read-only flag and plan examples into the tool's metadata."""
    tools = []
    for function in functions:
        if isinstance(function, BaseTool):
            tools.append(function)
            continue
        wrapped = as_tool(function)
        if getattr(function, f"__{READ_ONLY}__", False):
            read_only(wrapped)
        # Decorators apply bottom-up; keep the examples in the order they are written.
        for question, arguments in reversed(getattr(function, f"__{PLAN_EXAMPLES}__", [])):
            example(question, **arguments)(wrapped)
        tools.append(wrapped)
    names = Counter(tool.name for tool in tools)
    if repeated := sorted(name for name, count in names.items() if count > 1):
        # The planner could not tell them apart, and only one of them would ever run.
        raise ValueError(
            f"two or more tools are named {', '.join(map(repr, repeated))}: give each tool its "
            "own name (the function's name, or name= of LangChain's @tool)"
        )
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
