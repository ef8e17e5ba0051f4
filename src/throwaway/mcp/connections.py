"""One sandbox's MCP client sessions: one per server, opened at first use.

The sessions live on an event loop in a thread of their own (one per
sandbox), never on the loop that runs the sandbox's host calls: an MCP
session is an anyio task group that must be entered and left in one task,
and a server that hangs must not hold any other sandbox's calls. Host-call
handlers hand their work over with `run` and await it; when the cell's
deadline cancels a handler, the call on this loop is cancelled too (the SDK
tells the server so).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from ..wire.calls import Reply
from .servers import MCPServer, Server, Toolset
from .stubs import ToolInfo, tool_infos, wrapped_result

OPEN_TIMEOUT = 60.0  # seconds a server may take to start and answer its handshake
MAX_RESULT_BYTES = 8 << 20  # a tool result (or resource) the guest gets, at most
MAX_PAGES = 100  # pages of a tool or resource listing, at most
MAX_RECORDS = 1000  # calls kept in `Connections.records`
MAX_INSTRUCTIONS = 4000  # characters of a server's instructions kept for its README


@dataclass
class Session:
    """An open MCP client session to one server, and what it offers."""

    server: Server
    client: Any
    description: str
    tools: list[ToolInfo]
    resources: dict[str, str]  # file name under resources/ -> the resource's URI
    instructions: str = ""  # what the server tells its clients to know (shown in its README)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def tool(self, name: str) -> ToolInfo:
        for t in self.tools:
            if t.name == name:
                return t
        if not self.server.policy.offers(name):
            raise PermissionError(f"the tool {name!r} of the server {self.server.name!r} is not offered "
                                  "to this sandbox (its allow/deny policy)")
        raise LookupError(f"the server {self.server.name!r} has no tool named {name!r}; "
                          f"its tools: {', '.join(t.name for t in self.tools) or 'none'}")


class Connections:
    """The sessions of one sandbox, and the record of the calls made on them.

    `approve(server, tool, arguments)` applies to servers that have no
    approve of their own; `on_call(record)` is told of each call made
    (server, tool, arguments, result size in bytes, seconds, error).
    """

    def __init__(self, servers: Sequence[Server], *, approve: Callable[..., Any] | None = None,
                 on_call: Callable[[dict[str, Any]], None] | None = None, errlog: Any = None) -> None:
        self.servers = {s.name: s for s in servers}
        self.approve = approve
        self.on_call = on_call
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self._errlog = errlog
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[str, Session] = {}
        self._opening: dict[str, asyncio.Future[Session]] = {}
        self._holders: set[asyncio.Task[None]] = set()

    # -- running work on this sandbox's loop ------------------------------------

    async def run(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run `make()` on the sessions' loop and await it from any loop;
        cancelling this await cancels it there."""
        future = asyncio.run_coroutine_threadsafe(make(), self._running())
        return await asyncio.wrap_future(future)

    def run_sync(self, make: Callable[[], Coroutine[Any, Any, Any]], timeout: float | None = None) -> Any:
        """The blocking twin of `run`, for code with no event loop."""
        future = asyncio.run_coroutine_threadsafe(make(), self._running())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=_serve, args=(loop,), name="throwaway-mcp", daemon=True).start()
                self._loop = loop
            return self._loop

    def close(self, timeout: float = 10.0) -> None:
        """Close every session (stopping the servers the host started) and the loop."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            done = asyncio.run_coroutine_threadsafe(self._close_all(), loop)
            done.result(timeout)
        except Exception:  # noqa: BLE001, S110 - a server that will not close is left to the loop's end
            pass
        finally:
            loop.call_soon_threadsafe(loop.stop)

    async def _close_all(self) -> None:
        for session in list(self._sessions.values()):
            session.stop.set()
        if self._holders:
            await asyncio.wait(set(self._holders), timeout=8.0)

    # -- sessions (on the loop) ---------------------------------------------------

    async def session(self, name: str) -> Session:
        """The open session to the server `name`, opened now if it is not."""
        server = self.servers.get(name)
        if server is None:
            raise LookupError(f"no server named {name!r}; the servers: {', '.join(self.servers) or 'none'}")
        session = self._sessions.get(name)
        if session is not None:
            return session
        opening = self._opening.get(name)
        if opening is None:
            opening = asyncio.get_running_loop().create_future()
            self._opening[name] = opening
            holder = asyncio.create_task(self._hold(server, opening))
            self._holders.add(holder)
            holder.add_done_callback(self._holders.discard)
        try:
            return await asyncio.wait_for(asyncio.shield(opening), OPEN_TIMEOUT)
        except TimeoutError:
            raise ConnectionError(f"the MCP server {name!r} ({server.label}) did not answer within "
                                  f"{OPEN_TIMEOUT:g} s of starting") from None

    async def _hold(self, server: Server, opening: asyncio.Future[Session]) -> None:
        """Open a session to `server` and keep it open until it is stopped
        (the SDK's session must be entered and left in this one task)."""
        name = server.name
        session: Session | None = None
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(await self._client(server, stack))
                session = Session(server, client, _description(server, client), [], {},
                                  (client.instructions or "").strip()[:MAX_INSTRUCTIONS])
                session.tools = tool_infos(t for t in await _all_tools(client) if server.policy.offers(t.name))
                session.resources = await _all_resources(client)
                self._sessions[name] = session
                opening.set_result(session)
                if self._opening.get(name) is opening:
                    del self._opening[name]  # from now on it is found in _sessions (until dropped)
                await session.stop.wait()
        except BaseException as e:  # handed to whoever waits for the session
            if not opening.done():
                opening.set_exception(ConnectionError(
                    f"could not open the MCP server {name!r} ({server.label}): {_reason(e)}"))
                opening.exception()  # retrieved: nobody may be waiting any more
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            # Only its own entries: a newer session to the same server may be open by now.
            if self._opening.get(name) is opening:
                del self._opening[name]
            if session is not None and self._sessions.get(name) is session:
                del self._sessions[name]

    async def _client(self, server: Server, stack: AsyncExitStack) -> Any:
        from mcp import Client

        if isinstance(server, Toolset):
            return Client(server.server())
        assert isinstance(server, MCPServer)
        if server.url:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http = await stack.enter_async_context(create_mcp_http_client(headers=dict(server.headers or {})))
            return Client(streamable_http_client(server.url, http_client=http))
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=server.command[0], args=list(server.command[1:]),
                                       env=dict(server.env) if server.env else None, cwd=server.cwd)
        return Client(stdio_client(params, errlog=self._errlog or sys.stderr))

    # -- what the guest asks for (on the loop) -----------------------------------------

    async def call(self, server: str, tool: str, arguments: Any) -> Reply:
        """Call a tool for the guest: the reply `servers._call` decodes."""
        if not isinstance(arguments, dict):
            raise TypeError("a tool's arguments are a dict of names to JSON values")
        started = time.monotonic()
        record: dict[str, Any] = {"server": server, "tool": tool, "arguments": arguments}
        try:
            session = await self.session(server)
            info = session.tool(tool)
            await self._check_approval(session.server, tool, arguments)
            try:
                result = await session.client.call_tool(tool, arguments)
            except (asyncio.CancelledError, ConnectionError):
                raise
            except Exception as e:  # noqa: BLE001 - the server's protocol error is the tool's error
                if _connection_lost(e):
                    self._drop(session)
                    raise ConnectionError(f"the MCP server {server!r} closed the connection during the call "
                                          f"({_reason(e)}); the next call starts it again") from None
                value, data = {"error": _reason(e)}, b""
            else:
                value, data = encode_result(result, info)
        except BaseException as e:
            record.update(error=f"{type(e).__name__}: {e}" if not isinstance(e, asyncio.CancelledError)
                          else "cancelled (the cell's deadline)")
            self._record(record, started, 0)
            raise
        if "error" in value:
            record["error"] = value["error"][:500]
        self._record(record, started, len(data) + len(str(value)))
        return Reply(value, data)

    def _drop(self, session: Session) -> None:
        """Forget a session whose server went away (its holder cleans up)."""
        session.stop.set()
        if self._sessions.get(session.server.name) is session:
            del self._sessions[session.server.name]

    async def _check_approval(self, server: Server, tool: str, arguments: dict) -> None:
        approve = server.policy.approve or self.approve
        if approve is None:
            return
        if inspect.iscoroutinefunction(approve):
            ok = await approve(server.name, tool, arguments)
        else:
            ok = await asyncio.to_thread(approve, server.name, tool, arguments)
            if inspect.isawaitable(ok):
                ok = await ok
        if not ok:
            raise PermissionError(f"the host refused the call to {server.name}.{tool}")

    async def read_resource(self, server: str, file: str) -> bytes:
        """The contents of the resource served as resources/<file>."""
        session = await self.session(server)
        uri = session.resources.get(file)
        if uri is None:
            raise FileNotFoundError(f"the server {server!r} has no resource {file!r}")
        result = await session.client.read_resource(uri)
        out = bytearray()
        for contents in result.contents:
            text = getattr(contents, "text", None)
            out += text.encode() if text is not None else base64.b64decode(getattr(contents, "blob", "") or "")
            if len(out) > MAX_RESULT_BYTES:
                raise OSError(f"the resource {uri} is larger than {MAX_RESULT_BYTES} bytes")
        return bytes(out)

    def _record(self, record: dict[str, Any], started: float, size: int) -> None:
        record.update(result_bytes=size, seconds=round(time.monotonic() - started, 4))
        self.records.append(record)
        if self.on_call is not None:
            try:
                self.on_call(dict(record))
            except Exception:  # noqa: BLE001, S110 - a listener's fault is not the guest's
                pass


def encode_result(result: Any, info: ToolInfo) -> tuple[dict[str, Any], bytes]:
    """A `CallToolResult` as the guest's reply: {"error": text}, {"structured":
    data} (when the tool declares an output schema), or {"parts": [...]} with
    the bytes of images and blobs after one another in the raw payload."""
    if result.is_error:
        text = "\n".join(b.text for b in result.content if getattr(b, "type", "") == "text")
        return {"error": text or "the tool reported an error (with no message)"}, b""
    if info.output_schema is not None and result.structured_content is not None:
        data = result.structured_content
        if wrapped_result(info.output_schema) and isinstance(data, dict) and "result" in data:
            data = data["result"]
        return {"structured": data}, b""
    parts: list[dict[str, Any]] = []
    blobs = bytearray()

    def blob(kind: str, b64: str, mime: str | None) -> None:
        raw = base64.b64decode(b64 or "")
        parts.append({"kind": kind, "mime_type": mime, "offset": len(blobs), "size": len(raw)})
        blobs.extend(raw)
        if len(blobs) > MAX_RESULT_BYTES:
            raise OSError(f"the tool's result is larger than {MAX_RESULT_BYTES} bytes")

    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append({"kind": "text", "text": block.text})
        elif kind in ("image", "audio"):
            blob(kind, block.data, block.mime_type)
        elif kind == "resource":
            res = block.resource
            if getattr(res, "text", None) is not None:
                parts.append({"kind": "text", "text": res.text})
            else:
                blob("blob", getattr(res, "blob", ""), getattr(res, "mime_type", None))
        elif kind == "resource_link":
            parts.append({"kind": "link", "uri": str(block.uri)})
    if not parts and result.structured_content is not None:
        return {"structured": result.structured_content}, b""
    return {"parts": parts}, bytes(blobs)


async def _all_tools(client: Any) -> list[Any]:
    tools, cursor = [], None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


async def _all_resources(client: Any) -> dict[str, str]:
    caps = client.server_capabilities
    if caps is None or caps.resources is None:
        return {}
    files: dict[str, str] = {}
    cursor = None
    for _ in range(MAX_PAGES):
        page = await client.list_resources(cursor=cursor)
        for res in page.resources:
            uri = str(res.uri)
            base = re.sub(r"[^A-Za-z0-9._-]+", "_", uri.split("://", 1)[-1]).strip("._") or "resource"
            name, n = base[:120], 2
            while name in files:
                name, n = f"{base[:110]}_{n}", n + 1
            files[name] = uri
        cursor = page.next_cursor
        if not cursor:
            break
    return files


def _connection_lost(error: BaseException) -> bool:
    """Whether a call failed because the connection to the server is gone."""
    import anyio
    from mcp_types import CONNECTION_CLOSED

    if isinstance(error, (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)):
        return True
    return type(error).__name__ == "MCPError" and getattr(error, "code", None) == CONNECTION_CLOSED


def _description(server: Server, client: Any) -> str:
    """One line for the prompt: the configured description, else the server's
    own (its instructions are long, for the README)."""
    if server.description:
        return server.description
    info = client.server_info
    text = (getattr(info, "description", None) or getattr(info, "title", None) or "").strip()
    if not text and info is not None:
        text = f"{info.name} {info.version}".strip()
    return " ".join(text.split())[:300]


def _reason(error: BaseException) -> str:
    """One line for an error, reaching into the exception groups anyio raises."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error) or type(error).__name__
    if type(error).__name__ == "MCPError":
        return text  # the server's own message
    return f"{type(error).__name__}: {text}"


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

