"""What a sandbox may call: MCP servers (stdio or HTTP) and host toolsets, by name.

These are definitions only (a command, a URL, a list of functions, a
policy); the connections live in each sandbox (see `throwaway.mcp.toolbox`),
so one definition serves any number of sandboxes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import inspect
import keyword
import re
import shlex
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# approve(server, tool, arguments) -> bool (plain or async): False refuses the call.
Approve = Callable[[str, str, dict[str, Any]], "bool | Awaitable[bool]"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # no leading "_": servers/__init__.py's own names start so


def check_name(name: str) -> str:
    """A server's name is its package name in the guest: `from servers.<name> import ...`."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(f"a server's name must be a lowercase Python identifier that starts with a letter "
                         f"(it is imported as servers.<name>), got {name!r}")
    return name


@dataclass(frozen=True)
class Policy:
    """Which tools of a server the guest may call.

    `allow` and `deny` are shell-style patterns on tool names (`read_*`); a
    tool is offered when it matches some `allow` pattern and no `deny` one.
    Tools that are not offered are not generated in the guest at all, and a
    call to one is refused. `approve(server, tool, arguments)` (plain or
    async) is asked before each call; False refuses it.
    """

    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    approve: Approve | None = None

    def offers(self, tool: str) -> bool:
        return (any(fnmatch.fnmatchcase(tool, p) for p in self.allow)
                and not any(fnmatch.fnmatchcase(tool, p) for p in self.deny))


@dataclass(frozen=True)
class MCPServer:
    """An MCP server the guest can call, as the package `servers.<name>`.

    >>> MCPServer.stdio("time", ["python", "-m", "mcp_server_time"]).name
    'time'

    Use `MCPServer.stdio` (a command the host starts, speaking MCP on its
    stdin and stdout) or `MCPServer.http` (a streamable-HTTP endpoint).
    `description` overrides what the server says about itself, for the
    system prompt and its README.
    """

    name: str
    command: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    description: str = ""
    policy: Policy = field(default_factory=Policy)

    def __post_init__(self) -> None:
        check_name(self.name)
        if bool(self.command) == bool(self.url):
            raise ValueError("an MCPServer has either a command (stdio) or a url (http)")

    @classmethod
    def stdio(cls, name: str, command: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: str | None = None, description: str = "", allow: Iterable[str] = ("*",),
              deny: Iterable[str] = (), approve: Approve | None = None) -> MCPServer:
        """A server the host starts as `command` (a list: program and arguments).

        It gets the SDK's short default environment (PATH, HOME and the like),
        plus `env`."""
        if isinstance(command, str):
            raise TypeError("command is a list of words, e.g. ['python', '-m', 'mcp_server_time']")
        if not command:
            raise ValueError("command is empty")
        return cls(name, command=tuple(command), env=dict(env) if env else None, cwd=cwd,
                   description=description, policy=Policy(tuple(allow), tuple(deny), approve))

    @classmethod
    def http(cls, name: str, url: str, *, headers: Mapping[str, str] | None = None, description: str = "",
             allow: Iterable[str] = ("*",), deny: Iterable[str] = (), approve: Approve | None = None) -> MCPServer:
        """A server at a streamable-HTTP `url` (e.g. http://127.0.0.1:8000/mcp);
        `headers` go with every request (e.g. an Authorization header)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"an MCP server's url starts with http:// or https://, got {url!r}")
        return cls(name, url=url, headers=dict(headers) if headers else None, description=description,
                   policy=Policy(tuple(allow), tuple(deny), approve))

    @classmethod
    def parse(cls, text: str) -> MCPServer:
        """Read the command line's `--mcp NAME=COMMAND` or `--mcp NAME=URL`.

        >>> MCPServer.parse("time=python -m mcp_server_time").command
        ('python', '-m', 'mcp_server_time')
        >>> MCPServer.parse("docs=http://127.0.0.1:8000/mcp").url
        'http://127.0.0.1:8000/mcp'
        """
        name, sep, rest = text.partition("=")
        name, rest = name.strip(), rest.strip()
        if not sep or not name or not rest:
            raise ValueError(f"expected NAME=COMMAND or NAME=URL, e.g. 'time=python -m mcp_server_time', got {text!r}")
        if rest.startswith(("http://", "https://")):
            return cls.http(name, rest)
        return cls.stdio(name, shlex.split(rest))

    @property
    def label(self) -> str:
        """The command or URL, for messages."""
        return self.url or shlex.join(self.command)


@dataclass(frozen=True)
class Toolset:
    """Host Python functions the guest can call, as the package `servers.<name>`.

    >>> def find_customer(name: str) -> dict:
    ...     '''The customer record for `name`.'''
    ...     return {"name": name}
    >>> Toolset("crm", [find_customer]).name
    'crm'

    Each function (plain or async) becomes a tool whose signature and
    docstring come from the function itself; arguments are checked against
    its type hints before it is called. A plain function runs in a thread;
    an exception it raises reaches the guest as `servers.ToolError` with its
    type and message (so raise errors the model may read).
    """

    name: str
    functions: tuple[Callable[..., Any], ...]
    description: str = ""
    policy: Policy = field(default_factory=Policy)

    def __init__(self, name: str, functions: Iterable[Callable[..., Any]], *, description: str = "",
                 allow: Iterable[str] = ("*",), deny: Iterable[str] = (), approve: Approve | None = None) -> None:
        object.__setattr__(self, "name", check_name(name))
        object.__setattr__(self, "functions", tuple(functions))
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "policy", Policy(tuple(allow), tuple(deny), approve))
        for fn in self.functions:
            if not callable(fn):
                raise TypeError(f"Toolset {name!r}: {fn!r} is not callable")
        self.server()  # a function the SDK cannot describe fails here, not in the sandbox

    @property
    def label(self) -> str:
        return "host functions " + ", ".join(getattr(f, "__name__", "?") for f in self.functions)

    def server(self) -> Any:
        """An in-process MCP server (the SDK's) holding these functions."""
        from mcp.server.mcpserver import MCPServer as SDKServer

        server = SDKServer(self.name, description=self.description or None, log_level="WARNING")
        for fn in self.functions:
            # A function with a return annotation gives structured data (Python
            # values in the guest), not its result printed as text.
            options = {"name": fn.__name__, "description": inspect.getdoc(fn) or None}
            try:
                server.add_tool(_speaking(fn), structured_output=True, **options)
            except Exception:  # noqa: BLE001 - no return annotation, or one with no schema (a bare dict)
                server.add_tool(_speaking(fn), **options)
        return server


def _speaking(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, with its exceptions turned into the SDK's ToolError carrying their
    message (the SDK would send only 'Error executing tool ...'), and a plain
    function run in a thread so that a slow one holds no other call."""
    from mcp.server.mcpserver.exceptions import ToolError

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def speaking_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except ToolError:
                raise
            except Exception as e:
                raise ToolError(f"{type(e).__name__}: {e}") from e

        return _plain_returns(speaking_async, fn)

    @functools.wraps(fn)
    async def speaking(*args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ToolError:
            raise
        except Exception as e:
            raise ToolError(f"{type(e).__name__}: {e}") from e

    return _plain_returns(speaking, fn)


def _plain_returns(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """A bare `dict` or `list` return annotation read as dict[str, Any] or
    list[Any], which have a schema: the guest gets Python data, not text."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return wrapper
    plain = {dict: dict[str, Any], list: list[Any]}.get(sig.return_annotation)  # type: ignore[call-overload]
    if plain is not None:
        wrapper.__signature__ = sig.replace(return_annotation=plain)  # type: ignore[attr-defined]
    return wrapper


Server = MCPServer | Toolset

