"""Small MCP servers the tests start over stdio (the `mcp` SDK's own MCPServer, no network)."""
