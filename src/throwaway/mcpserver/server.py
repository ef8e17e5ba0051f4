"""The MCP server's tools, on the official SDK's `MCPServer`, over stdio or streamable HTTP.

Tools: `run_python(code, session=None, timeout=None)`, `read_file(session,
path)`, `write_file(session, path, content)`, `list_sessions()`,
`close_session(session)`. A mistake (bad arguments, an unknown session, a
missing file) is a tool error whose message says what to do.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import mimetypes
import secrets
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import BlobResourceContents, EmbeddedResource, ImageContent, TextContent

from throwaway.sandbox import ExecResult, SandboxError

from .sessions import SessionError, Sessions

INSTRUCTIONS = """\
Runs Python (Pyodide: CPython compiled to WebAssembly) in sandboxes with no network and no access to
this machine beyond what the server mounts. Call run_python with code; it answers with the session id:
pass it again to keep your variables and files. Files written under /output come back with the result
(images as images). Top-level await works. Pure-Python packages from PyPI are installed on import."""

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
MAX_IMAGE_BYTES = 5 << 20  # an /output image bigger than this is listed, not sent
MAX_FILE_BYTES = 10 << 20  # read_file and write_file, at most
MAX_TEXT = 100_000  # characters of stdout, stderr or value in one result


def build(sessions: Sessions, *, default_timeout: float = 30.0, max_timeout: float = 600.0) -> MCPServer:
    """The SDK server with throwaway's tools, serving `sessions`."""
    mcp = MCPServer("throwaway", instructions=INSTRUCTIONS, log_level="WARNING",
                    description="Python in a WebAssembly sandbox, with sessions and files")

    def deadline(timeout: float | None) -> float:
        if timeout is None:
            return default_timeout
        if not 0 < timeout <= max_timeout:
            raise ToolError(f"timeout must be more than 0 and at most {max_timeout:g} seconds, got {timeout:g}")
        return timeout

    async def use(session: str | None, work: Any) -> Any:
        try:
            return await sessions.use(session, work)
        except SessionError as e:
            raise ToolError(str(e)) from None
        except SandboxError as e:  # the runtime could not be started (the SDK would hide the message)
            raise ToolError(f"the sandbox failed: {e}") from None

    @mcp.tool(structured_output=False)
    async def run_python(code: str, session: str | None = None, timeout: float | None = None) -> list[Any]:
        """Run Python code in a sandbox session and return its output.

        Args:
            code: Python source, run like a notebook cell: the last expression's value is returned.
            session: the id of a session to run in (keeps its variables and files); none starts a new one.
            timeout: seconds the code may run before it is interrupted (default: the server's).

        Returns stdout, stderr, the value, the error and the files written under /output (images
        among them as images), with the session id to pass next time.
        """
        seconds = deadline(timeout)

        async def cell(s: Any) -> tuple[ExecResult, list[Any]]:
            result = await s.sandbox.exec(code, timeout=seconds)
            s.cells += 1
            return result, await _images(s.sandbox, result.files)

        s, (result, images) = await use(session, cell)
        return [TextContent(type="text", text=json.dumps(_summary(s.id, result), indent=1, ensure_ascii=False)),
                *images]

    @mcp.tool(structured_output=False)
    async def read_file(session: str, path: str) -> list[Any]:
        """Read a file from a session's file system (e.g. /output/plot.png or /home/user/data.csv).

        Text comes back as text, images as images, other files as a base64 blob."""
        _check_path(path)

        async def read(s: Any) -> bytes:
            return await s.sandbox.read_file(path)

        try:
            _, data = await use(session, read)
        except (OSError, ValueError) as e:
            raise ToolError(f"cannot read {path}: {e}") from None
        if len(data) > MAX_FILE_BYTES:
            raise ToolError(f"{path} has {len(data)} bytes; read_file gives at most {MAX_FILE_BYTES}")
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if mime in IMAGE_TYPES:
            return [ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime)]
        try:
            return [TextContent(type="text", text=data.decode())]
        except UnicodeDecodeError:
            blob = BlobResourceContents(uri=f"file://{path}", mime_type=mime, blob=base64.b64encode(data).decode())
            return [EmbeddedResource(type="resource", resource=blob)]

    @mcp.tool()
    async def write_file(session: str, path: str, content: str, base64_encoded: bool = False) -> str:
        """Write a file into a session's file system (its folders are made as needed).

        Args:
            session: the session's id.
            path: an absolute guest path, e.g. /home/user/data.csv.
            content: the file's text, or its bytes in base64 with base64_encoded=true.
        """
        _check_path(path)
        if base64_encoded:
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise ToolError("content is not valid base64 (or pass base64_encoded=false for text)") from None
        else:
            data = content.encode()
        if len(data) > MAX_FILE_BYTES:
            raise ToolError(f"the file would have {len(data)} bytes; write_file takes at most {MAX_FILE_BYTES}")

        async def write(s: Any) -> None:
            await s.sandbox.write_file(path, data)

        try:
            await use(session, write)
        except (OSError, ValueError) as e:
            raise ToolError(f"cannot write {path}: {e}") from None
        return f"wrote {len(data)} bytes to {path}"

    @mcp.tool()
    async def list_sessions() -> list[dict[str, Any]]:
        """The open sessions: id, cells run, whether busy, seconds idle."""
        return sessions.list()

    @mcp.tool()
    async def close_session(session: str) -> str:
        """Close a session: its variables and files are gone."""
        try:
            await sessions.close(session)
        except SessionError as e:
            raise ToolError(str(e)) from None
        return f"closed {session}"

    return mcp


def _check_path(path: str) -> None:
    if not path.startswith("/") or "\0" in path:
        raise ToolError(f"path must be an absolute guest path such as /home/user/file.txt, got {path!r}")


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n... ({len(text) - MAX_TEXT} more characters)"


def _summary(session_id: str, r: ExecResult) -> dict[str, Any]:
    out: dict[str, Any] = {"session": session_id}
    for key in ("stdout", "stderr", "value"):
        value = _clip(getattr(r, key))
        if value:
            out[key] = value
    if r.error is not None:
        out["error"] = {"type": r.error.type, "message": _clip(r.error.message),
                        "traceback": _clip(r.error.traceback)}
    if r.limit:
        out["limit"] = r.limit
    if r.restarted:
        out["restarted"] = "the sandbox's runtime was replaced: its variables are gone; files come from the last snapshot"
    if r.files:
        out["files"] = r.files
    return out


async def _images(sandbox: Any, files: list[str]) -> list[ImageContent]:
    images = []
    for path in files:
        mime = mimetypes.guess_type(path)[0]
        if mime not in IMAGE_TYPES:
            continue
        try:
            data = await sandbox.read_file(path)
        except (OSError, ValueError):
            continue  # removed since; it is still listed
        if len(data) <= MAX_IMAGE_BYTES:
            images.append(ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime))
    return images


# -- transports -----------------------------------------------------------------------


async def serve_stdio(sessions: Sessions, **options: Any) -> None:
    """Serve MCP on this process's stdin and stdout."""
    async with sessions:
        await build(sessions, **options).run_stdio_async()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def serve_http(sessions: Sessions, host: str, port: int, token: str | None = None, **options: Any) -> None:
    """Serve streamable HTTP at http://HOST:PORT/mcp. Beyond loopback a bearer
    token is required (a new one is made and printed when none is given)."""
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
        print(f"throwaway mcp: clients must send the header  Authorization: Bearer {token}", file=sys.stderr)
    security = None if is_loopback(host) else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = build(sessions, **options).streamable_http_app(host=host, transport_security=security)
    if token is not None:
        app = BearerAuth(app, token)
    config = uvicorn.Config(app, host=host.strip("[]"), port=port, log_level="warning", lifespan="on")
    async with sessions:
        await uvicorn.Server(config).serve()


class BearerAuth:
    """ASGI middleware: HTTP requests need `Authorization: Bearer <token>`."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": b"a bearer token is required\n"})
                return
        await self.app(scope, receive, send)
