"""throwaway as an MCP server (`throwaway mcp`): run_python with sessions, file tools, many sessions at once."""
