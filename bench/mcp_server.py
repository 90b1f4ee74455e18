"""The MCP benchmark's stdio server (the `mcp` SDK's MCPServer): one tool that waits."""

import asyncio

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("bench", log_level="WARNING")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def wait(seconds: float) -> str:
    """Answer after `seconds` (0 answers at once)."""
    await asyncio.sleep(seconds)
    return f"waited {seconds:g} s"


if __name__ == "__main__":
    server.run("stdio")
