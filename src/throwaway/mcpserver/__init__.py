"""throwaway as an MCP server (`throwaway mcp`): Python sandboxes for any MCP client.

Tools: `run_python(code, session=None, timeout=None)` (globals and files
persist per session; images written under /output come back as MCP image
content), `read_file`, `write_file`, `list_sessions`, `close_session`.
Sessions come warm from a pool, are closed when idle, and run side by side:
calls to one session in order, calls to different sessions at once.
Served over stdio or streamable HTTP (a bearer token beyond loopback).
"""

from .server import build, serve_http, serve_stdio
from .sessions import Session, SessionError, Sessions

__all__ = ["Session", "SessionError", "Sessions", "build", "serve_http", "serve_stdio"]
