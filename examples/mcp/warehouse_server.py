"""The fork check's sample tools served over MCP (stdio), to try tools from an MCP server:

    EXPRESSWAY_MCP_CONFIG=examples/mcp/mcp.json expressway ask "How many tents are in Denver?"

Each tool keeps its docstring as its description and declares readOnlyHint when it is read-only.
"""

import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from examples.fork_check.warehouse_tools import TOOLS
from expressway.toolbox import as_tools, is_read_only

server = MCPServer("warehouse", log_level="WARNING")  # no log line per request on stderr
for function, tool in zip(TOOLS, as_tools(TOOLS), strict=True):
    server.add_tool(function, annotations=ToolAnnotations(read_only_hint=is_read_only(tool)))

if __name__ == "__main__":
    server.run("stdio")
