"""`throwaway mcp`: serve sandboxes to MCP clients (stdio, or streamable HTTP)."""

from __future__ import annotations

import asyncio

import click

from .mounts import mounted_file_system
from .sandbox import _toolbox
from .tasks import mcp_specs


@click.command("mcp")
@click.option("--http", "http", metavar="HOST:PORT",
              help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (e.g. 127.0.0.1:8765).")
@click.option("--token", envvar="THROWAWAY_MCP_TOKEN", metavar="TOKEN",
              help="Bearer token HTTP clients must send; required beyond loopback (one is made and printed "
                   "if none is given) [env: THROWAWAY_MCP_TOKEN].")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds a cell may run when the call gives no timeout.")
@click.option("--max-timeout", type=click.FloatRange(min=0.1), default=600.0, show_default=True,
              help="The most seconds a call may ask for.")
@click.option("--memory", "memory_mb", type=int, default=1024, show_default=True, help="Guest memory limit in MB.")
@click.option("--mount", "mounts", multiple=True, metavar="HOST:GUEST[:rw]",
              help="Serve a host folder at a guest path in every session, read-only unless :rw. Repeatable.")
@click.option("--mcp", "mcp", multiple=True, metavar="NAME=COMMAND|URL", callback=lambda c, p, v: mcp_specs(v),
              help="An MCP server the sessions' code can import as servers.NAME (code mode). Repeatable.")
@click.option("--pool", type=click.IntRange(min=0), default=2, show_default=True,
              help="Sandboxes kept booted, so a new session starts at once.")
@click.option("--idle", "idle_seconds", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Close a session nobody used for this many seconds.")
@click.option("--max-sessions", type=click.IntRange(min=1), default=8, show_default=True,
              help="The most sessions open at once (each holds a runtime of about 200 MB).")
def mcp(http: str | None, token: str | None, timeout: float, max_timeout: float, memory_mb: int,
        mounts: tuple[str, ...], mcp: tuple[str, ...], pool: int, idle_seconds: float, max_sessions: int) -> None:
    """Serve Python sandboxes to MCP clients: run_python with sessions, read_file, write_file,
    list_sessions, close_session. Speaks MCP on stdin/stdout unless --http is given."""
    from throwaway.mcpserver import Sessions, serve_http, serve_stdio
    from throwaway.sandbox import Limits

    fs = mounted_file_system(mounts)
    sessions = Sessions(pool=pool, idle_seconds=idle_seconds, max_sessions=max_sessions, fs=fs,
                        limits=Limits(timeout=timeout, memory_mb=memory_mb),
                        extensions=[_toolbox(mcp)] if mcp else [])
    options = {"default_timeout": timeout, "max_timeout": max_timeout}
    if http is None:
        asyncio.run(serve_stdio(sessions, **options))
        return
    host, sep, port = http.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, e.g. 127.0.0.1:8765, got {http!r}", param_hint="--http")
    try:
        asyncio.run(serve_http(sessions, host, int(port), token, **options))
    except KeyboardInterrupt:
        pass


COMMANDS = [mcp]
