"""`Toolbox`: MCP servers and host toolsets in a sandbox ("code mode").

>>> from throwaway import Sandbox
>>> from throwaway.mcp import MCPServer, Toolbox
>>> box = Toolbox([MCPServer.stdio("time", ["python", "-m", "mcp_server_time"])])
>>> with Sandbox(extensions=[box]) as sb:                      # doctest: +SKIP
...     sb.exec("from servers.time import get_current_time\\nget_current_time('UTC')['timezone']").value
"'UTC'"

Each server appears in the guest as the package `servers.<name>` and as the
files under `/servers/<name>/`: README.md (one line per tool), one
`<tool>.py` per tool (the generated function), and `resources/` (the
server's resources, read as files). A Toolbox is a definition: attached to
several sandboxes, it gives each its own sessions, opened at first use and
closed with the sandbox.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from ..fs.mounts import FileInfo, Resource
from .connections import Connections
from .servers import Approve, Server
from .stubs import RUNTIME, package_source, readme, tool_source

GUEST_ROOT = "/servers"
SERVERS_DESCRIPTION = ("tools of MCP servers and host functions as Python packages: "
                       "`from servers.<name> import <tool>`; each folder's README.md lists its tools")

# Run in the guest after every boot: `import servers` finds the package the
# host serves at /servers (which is not on sys.path, so nothing else there
# becomes importable).
BOOT_CODE = '''
import sys as _sys


class _ServersFinder:
    """Finds the package `servers` at /servers, where the host serves it."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "servers":
            return None
        import importlib.machinery

        return importlib.machinery.PathFinder.find_spec(name, ["/"])


if not any(getattr(f, "__name__", "") == "_ServersFinder" for f in _sys.meta_path):
    _sys.meta_path.append(_ServersFinder)
del _sys, _ServersFinder
'''


@dataclass(frozen=True)
class ServerSummary:
    """A server as the system prompt shows it: name, one line, tool names."""

    name: str
    description: str
    tools: tuple[str, ...]
    error: str = ""

    def prompt_line(self) -> tuple[str, str]:
        """An (import name, description) pair for `system_prompt(host_modules=...)`."""
        if self.error:
            return f"servers.{self.name}", f"(unavailable: {self.error[:200]})"
        text = f"{self.description.rstrip('.')}. " if self.description else ""
        return (f"servers.{self.name}",
                f"{text}Tools: {', '.join(self.tools) or 'none'} (see {GUEST_ROOT}/{self.name}/README.md)")


class Toolbox:
    """MCP servers (`MCPServer`) and host functions (`Toolset`) for sandboxes.

    Pass it as `Sandbox(extensions=[toolbox])`. `approve(server, tool,
    arguments)` (plain or async; False refuses) is asked before each call to
    a server with no approve of its own; `on_call(record)` hears of each call
    made (server, tool, arguments, result size, seconds, error). `errlog` is
    where stdio servers' stderr goes (default: the host's stderr).
    """

    def __init__(self, servers: Sequence[Server], *, approve: Approve | None = None,
                 on_call: Callable[[dict[str, Any]], None] | None = None, errlog: Any = None) -> None:
        names = [s.name for s in servers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two servers are named {', '.join(dupes)}: each needs a name of its own")
        self.servers = list(servers)
        self.approve = approve
        self.on_call = on_call
        self.errlog = errlog
        self._catalog: list[ServerSummary] | None = None

    def connections(self) -> Connections:
        """A new set of sessions (what one sandbox gets)."""
        return Connections(self.servers, approve=self.approve, on_call=self.on_call, errlog=self.errlog)

    def attach(self, sandbox: Any) -> Attached:
        """Serve the servers to `sandbox` (called by `Sandbox(extensions=[...])`)."""
        conns = self.connections()
        sandbox.fs.mount(GUEST_ROOT, ServersTree(conns), description=SERVERS_DESCRIPTION)

        async def call(args: Any, data: bytes) -> Any:
            if not isinstance(args, dict) or not all(isinstance(args.get(k), str) for k in ("server", "tool")):
                raise TypeError("servers.call takes {'server': str, 'tool': str, 'arguments': dict}")
            arguments = args.get("arguments") or {}
            return await conns.run(lambda: conns.call(args["server"], args["tool"], arguments))

        sandbox.calls.add("servers.call", call)
        return Attached(conns)

    def catalog(self, timeout: float = 60.0) -> list[ServerSummary]:
        """Each server's name, description and tool names, for a system prompt.

        Asked once (a short-lived session per server) and kept; a server that
        cannot be reached is listed with its error."""
        if self._catalog is None:
            conns = self.connections()
            try:
                self._catalog = conns.run_sync(lambda: _summaries(conns), timeout)
            finally:
                conns.close()
        return self._catalog

    def prompt_lines(self) -> list[tuple[str, str]]:
        """(import name, description) pairs for `system_prompt(host_modules=...)`."""
        return [s.prompt_line() for s in self.catalog()]


class Attached:
    """One sandbox's share of a Toolbox: its sessions, and the guest code that
    makes `import servers` work after each boot."""

    boot_code = BOOT_CODE

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    @property
    def records(self) -> list[dict[str, Any]]:
        """The calls this sandbox made (the last 1000)."""
        return list(self.connections.records)

    def close(self) -> None:
        self.connections.close()


async def _summaries(conns: Connections) -> list[ServerSummary]:
    """Every server's summary, the servers started side by side."""

    async def one(name: str) -> ServerSummary:
        try:
            s = await conns.session(name)
        except ConnectionError as e:
            return ServerSummary(name, "", (), str(e))
        return ServerSummary(name, s.description, tuple(t.py_name for t in s.tools))

    return list(await asyncio.gather(*(one(name) for name in conns.servers)))


class ServersTree(Resource):
    """The read-only folder /servers: generated sources, READMEs and the
    servers' resources, computed from each server's session on demand."""

    def __init__(self, connections: Connections) -> None:
        super().__init__("tools of MCP servers and host functions, as Python packages")
        self.conns = connections
        self._fresh: dict[str, tuple[float, bytes]] = {}  # resource contents read for a stat, briefly

    def list(self, path: str) -> Any:
        parts = _parts(path)
        if not parts:
            return ["__init__.py", "README.md", *(f"{n}/" for n in self.conns.servers)]
        self._server(parts[0])
        return self.conns.run(lambda: self._list(parts))

    async def _list(self, parts: list[str]) -> list[str]:
        try:
            session = await self.conns.session(parts[0])
        except ConnectionError:
            if len(parts) == 1:
                return ["__init__.py", "README.md"]
            raise OSError(errno.ENOENT, "No such file or directory") from None
        if len(parts) == 1:
            return ["__init__.py", "README.md", *(f"{t.py_name}.py" for t in session.tools),
                    *(["resources/"] if session.resources else [])]
        if parts[1:] == ["resources"]:
            return sorted(session.resources)
        raise OSError(errno.ENOTDIR, "Not a directory")

    def read(self, path: str) -> Any:
        parts = _parts(path)
        if parts == ["__init__.py"]:
            return RUNTIME
        if parts == ["README.md"]:
            return self._top_readme()
        if not parts:
            raise OSError(errno.EISDIR, "Is a directory")
        self._server(parts[0])
        return self.conns.run(lambda: self._read(parts))

    async def _read(self, parts: list[str]) -> bytes | str:
        name = parts[0]
        try:
            session = await self.conns.session(name)
        except ConnectionError as e:
            if parts[1:] == ["__init__.py"]:
                return f"raise ImportError({str(e)!r})\n"
            if parts[1:] == ["README.md"]:
                return f"# servers.{name}\n\nUnavailable: {e}\n"
            raise OSError(errno.ENOENT, "No such file or directory") from None
        rest = parts[1:]
        if rest == ["__init__.py"]:
            return package_source(name, session.description, session.tools)
        if rest == ["README.md"]:
            return readme(name, session.description, session.tools, sorted(session.resources), session.instructions)
        if len(rest) == 1:
            for t in session.tools:
                if rest[0] == f"{t.py_name}.py":
                    return tool_source(name, t)
        if len(rest) == 2 and rest[0] == "resources" and rest[1] in session.resources:
            key = "/".join(parts)
            fresh = self._fresh.pop(key, None)
            if fresh is not None and time.monotonic() - fresh[0] < 2.0:
                return fresh[1]
            try:
                return await self.conns.read_resource(name, rest[1])
            except (OSError, LookupError):
                raise
            except Exception as e:  # noqa: BLE001 - the server's error, as an I/O error in the guest
                raise OSError(errno.EIO, f"reading {session.resources[rest[1]]}: {e}") from None
        if rest == ["resources"]:
            raise OSError(errno.EISDIR, "Is a directory")
        raise OSError(errno.ENOENT, "No such file or directory")

    def stat(self, path: str) -> Any:
        parts = _parts(path)
        if not parts:
            return FileInfo(True, 0, time.time(), False)
        if len(parts) == 1:
            if parts[0] in ("__init__.py", "README.md"):
                return FileInfo(False, len(_bytes(self.read(path))), time.time(), False)
            self._server(parts[0])
            return FileInfo(True, 0, time.time(), False)
        return self.conns.run(lambda: self._stat(parts))

    async def _stat(self, parts: list[str]) -> FileInfo:
        if parts[1:] == ["resources"]:
            session = await self.conns.session(parts[0])
            if session.resources:
                return FileInfo(True, 0, time.time(), False)
            raise OSError(errno.ENOENT, "No such file or directory")
        data = _bytes(await self._read(parts))
        if len(parts) == 3:
            self._fresh["/".join(parts)] = (time.monotonic(), data)
        return FileInfo(False, len(data), time.time(), False)

    def _server(self, name: str) -> None:
        if name not in self.conns.servers:
            raise OSError(errno.ENOENT, "No such file or directory")

    def _top_readme(self) -> str:
        lines = ["# servers", "", "Tools of MCP servers and host functions, one Python package per server.",
                 "Read a server's README.md for its tools, then import and call them, e.g.",
                 "`from servers.<name> import <tool>`. An error result raises servers.ToolError.", "",
                 "Servers:"]
        for name, server in self.conns.servers.items():
            lines.append(f"- {name}/: {server.description or server.label}")
        return "\n".join(lines) + "\n"


def servers_mount() -> Any:
    """/servers as the system prompt's mount table shows it."""
    return SimpleNamespace(path=GUEST_ROOT, kind="resource", writable=False, description=SERVERS_DESCRIPTION)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _bytes(data: Any) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)

