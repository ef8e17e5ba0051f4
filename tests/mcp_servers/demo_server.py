"""An MCP server written with the official SDK, for the tests: structured
output, an error, an image, a resource, a slow tool, and its own pid.

    python demo_server.py                # stdio
    python demo_server.py --http PORT    # streamable HTTP on 127.0.0.1:PORT/mcp;
                                         # requests need the header X-Demo-Key: sesame
"""

import asyncio
import os
import struct
import sys
import zlib

from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

mcp = MCPServer("demo", description="A demo server for throwaway's tests.", log_level="WARNING")


def png(width: int = 2, height: int = 2) -> bytes:
    """A tiny red PNG."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@mcp.tool()
def add(a: int, b: int = 10) -> int:
    """Add two integers.

    Returns their sum."""
    return a + b


@mcp.tool()
def stats(values: list[float]) -> dict[str, float]:
    """Mean and maximum of some numbers."""
    return {"mean": sum(values) / len(values), "max": max(values)}


@mcp.tool()
def fail(message: str) -> str:
    """Always fails with `message`."""
    raise ToolError(message)


@mcp.tool()
def red_square(size: int = 2) -> Image:
    """A red square, as a PNG image."""
    return Image(data=png(size, size), format="png")


@mcp.tool()
def echo(text: str):
    """Echo the text back (as text content, no output schema)."""
    return text


@mcp.tool(name="class")
def class_(from_: str = "x") -> str:
    """A tool whose name is a Python keyword."""
    return f"class {from_}"


@mcp.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "woke up"


@mcp.tool()
def pid() -> int:
    """The server process's id."""
    return os.getpid()


@mcp.tool()
def crash() -> str:
    """End the server process at once (as a crash would)."""
    os._exit(3)


@mcp.resource("demo://greeting", description="A greeting, as text")
def greeting() -> str:
    return "hello from a resource"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        import uvicorn
        from starlette.middleware.base import BaseHTTPMiddleware
        from starlette.responses import PlainTextResponse

        app = mcp.streamable_http_app()

        async def check_key(request, call_next):
            if request.headers.get("x-demo-key") != "sesame":
                return PlainTextResponse("no key", status_code=401)
            return await call_next(request)

        app.add_middleware(BaseHTTPMiddleware, dispatch=check_key)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        mcp.run()
