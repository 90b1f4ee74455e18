"""A stdio MCP server for the tests: a slow read-only lookup, a hanging, a raising, a crashing and
a content-block tool. Run as `python tests/mcp_servers/lookup_server.py`."""

import asyncio
import os

from mcp.server.mcpserver import MCPServer
from mcp.types import ImageContent, TextContent, ToolAnnotations

server = MCPServer("lookup", log_level="WARNING")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def remote_lookup(key: str, seconds: float = 0.4) -> str:
    """Look a key up in the remote store (answers after `seconds`)."""
    await asyncio.sleep(seconds)
    return f"{key} = {len(key) * 7}"


@server.tool()
async def remote_hang(key: str) -> str:
    """A lookup whose backend never answers."""
    await asyncio.sleep(3600)
    return key


@server.tool()
async def remote_broken(key: str) -> str:
    """A lookup whose backend fails."""
    raise ValueError(f"no record for {key}")


@server.tool()
async def remote_crash(key: str) -> str:
    """Kills the server process in the middle of the call."""
    os._exit(3)


@server.tool()
async def remote_chart(key: str) -> list[TextContent | ImageContent]:
    """A text block and an image block."""
    return [
        TextContent(type="text", text=f"chart of {key}"),
        ImageContent(type="image", data="aGVsbG8=", mime_type="image/png"),
    ]


if __name__ == "__main__":
    server.run("stdio")
