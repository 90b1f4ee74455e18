"""Expressway's agent graph: route -> plan and run tools in parallel -> join -> streamed answer.

    route_request --(use_tools, compiler)-------> plan_and_schedule -> join --> answer
                  --(use_tools, parallel_calls)-> propose_tool_calls => run_tool_call x N -> answer
                  --(no tools needed)-------------------------------------------------> answer

`graph` is what langgraph.json serves; `build_graph` lets an importing service pass its own tools,
MCP servers, chat models per tier and checkpointer. Importing this module starts nothing and calls
nothing (MCP servers start on the first run that needs their tools).
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from expressway.context import Context, unknown_settings
from expressway.mcp_tools import MCPServers
from expressway.state import InputState, State
from expressway.toolbox import Toolbox, as_tools
from nodes.answer import answer
from nodes.joiner import join
from nodes.plan_and_schedule import plan_and_schedule
from nodes.tool_calls import fan_out_calls, propose_tool_calls, run_tool_call
from nodes.tool_choice import tool_catalog
from routers import load_routing_table
from routers.classifier import load_task_model
from routers.route_request import route_request
from tools import DEFAULT_TOOLS

logger = logging.getLogger(__name__)


def after_routing(
    state: State, runtime: Runtime[Context]
) -> Literal["plan_and_schedule", "propose_tool_calls", "answer"]:
    """Questions the routing table marks as needing no tools go straight to the answer."""
    assert state.route is not None
    if not state.route.use_tools:
        return "answer"
    if runtime.context.execution_mode == "parallel_calls":
        return "propose_tool_calls"
    return "plan_and_schedule"


def build_graph(
    tools: Iterable[Callable[..., Any] | BaseTool] = DEFAULT_TOOLS,
    models: Mapping[str, BaseChatModel] | None = None,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    name: str = "expressway",
    mcp_servers: MCPServers | Mapping[str, Mapping[str, Any]] | None = None,
) -> CompiledStateGraph:
    """Compile the agent.

    tools: plain functions (sync or async; the docstring is the description) or LangChain tools.
    models: chat models that replace the "fast" and/or "frontier" endpoints from the context.
    store: where plan templates are shared (e.g. AsyncPostgresStore across replicas). Leave it
    None under the LangGraph server, which brings its own; None elsewhere keeps them in memory.
    mcp_servers: MCP servers whose tools join `tools`: an `MCPServers` (which you close), or
        `mcpServers` entries by name ({"command": ..., "args": [...]} or {"url": ...}).
    """
    if mcp_servers is not None and not isinstance(mcp_servers, MCPServers):
        mcp_servers = MCPServers(mcp_servers)
    toolbox = Toolbox(tools=as_tools(tools), models=dict(models or {}), mcp_servers=mcp_servers)
    # Read the routing table, model and encoder now: a broken one fails at startup, naming it.
    # The planner's tool catalogue (the tools' embeddings) is built now too.
    load_routing_table()
    for warning in unknown_settings():
        logger.warning("%s (.env.example lists the settings)", warning)
    load_task_model()
    tool_catalog(toolbox.tools, Context().tool_ranking_layers)
    builder = StateGraph(State, input_schema=InputState, context_schema=Context)

    builder.add_node("route_request", route_request)
    builder.add_node("plan_and_schedule", partial(plan_and_schedule, toolbox=toolbox))
    builder.add_node("join", join)
    builder.add_node("propose_tool_calls", partial(propose_tool_calls, toolbox=toolbox))
    builder.add_node("run_tool_call", partial(run_tool_call, toolbox=toolbox))
    builder.add_node("answer", partial(answer, toolbox=toolbox))

    builder.add_edge(START, "route_request")
    builder.add_conditional_edges("route_request", after_routing)
    builder.add_edge("plan_and_schedule", "join")
    builder.add_conditional_edges("propose_tool_calls", fan_out_calls, ["run_tool_call", "answer"])
    builder.add_edge("run_tool_call", "answer")
    builder.add_edge("answer", END)

    return builder.compile(checkpointer=checkpointer, store=store, name=name)


graph = build_graph()
