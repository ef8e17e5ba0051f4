"""MCP code mode: the tools of MCP servers and host functions as Python packages in the guest.

    from throwaway import Sandbox
    from throwaway.mcp import MCPServer, Toolbox, Toolset

    box = Toolbox([MCPServer.stdio("time", ["python", "-m", "mcp_server_time"]),
                   Toolset("crm", [find_customer, add_note])])
    with Sandbox(extensions=[box]) as sb:
        sb.exec("from servers.time import get_current_time; get_current_time('UTC')")

This layer sits above the sandbox (it mounts /servers and adds a host call to
a sandbox) and below the agent (`Agent(mcp=[...])`). The MCP server face,
`throwaway mcp`, is `throwaway.mcpserver`.
"""

from .servers import MCPServer, Policy, Toolset
from .toolbox import Attached, ServerSummary, Toolbox

__all__ = ["Attached", "MCPServer", "Policy", "ServerSummary", "Toolbox", "Toolset"]
