"""MCP benchmark: prompt size with code mode against tool definitions, and round trips.
Prints figures, never passes or fails.

    .venv/bin/python bench/bench_mcp.py

1. Prompt tokens (characters / 4) for mcp-server-time, mcp-server-git and
   @modelcontextprotocol/server-everything (when Node has it: set
   EVERYTHING_JS to its dist/index.js, or it is looked for where
   tests/test_codemode.py installs it): what code mode puts in the system
   prompt (one line per server: description and tool names), against the
   same tools as ordinary tool definitions (name, description, input schema,
   as a provider is sent them).
2. A guest-to-MCP-tool call round trip: get_current_time from guest code, in
   a loop inside one cell (stdio server, warm session), and a host Toolset
   function (in process).
3. run_python through `throwaway mcp` over stdio on a warm session, from the
   official client.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from throwaway import Sandbox
from throwaway.mcp import MCPServer, Toolbox, Toolset

N = 200
EVERYTHING_DEFAULT = (Path.home() / ".cache/throwaway-tests/server-everything/node_modules/@modelcontextprotocol"
                      / "server-everything/dist/index.js")


def servers() -> list[MCPServer]:
    found = [MCPServer.stdio("time", [sys.executable, "-m", "mcp_server_time"]),
             MCPServer.stdio("git", [sys.executable, "-m", "mcp_server_git"])]
    everything = Path(os.environ.get("EVERYTHING_JS") or EVERYTHING_DEFAULT)
    if everything.exists():
        found.append(MCPServer.stdio("everything", ["node", str(everything), "stdio"]))
    else:
        print(f"(server-everything not found at {everything}: left out)")
    return found


def prompt_sizes() -> None:
    box = Toolbox(servers())
    conns = box.connections()

    async def definitions() -> list[dict]:
        out = []
        for name in conns.servers:
            session = await conns.session(name)
            for t in session.tools:
                out.append({"name": f"{name}_{t.name}", "description": t.description, "input_schema": t.input_schema})
        return out

    try:
        tools = conns.run_sync(definitions, 120)
    finally:
        conns.close()
    code_mode = "\n".join(f"- {n}: {d}" for n, d in box.prompt_lines())
    as_tools = json.dumps(tools)
    print(f"1. prompt for {', '.join(s.name for s in box.servers)} ({len(tools)} tools):")
    print(f"   code mode (servers and tool names)  {len(code_mode):>7} chars  ~{len(code_mode) // 4:>6} tokens")
    print(f"   tool definitions (schemas)          {len(as_tools):>7} chars  ~{len(as_tools) // 4:>6} tokens")


def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


def guest_round_trip() -> None:
    box = Toolbox([MCPServer.stdio("time", [sys.executable, "-m", "mcp_server_time"]), Toolset("words", [shout])])
    with Sandbox(extensions=[box], timeout=120) as sb:
        r = sb.exec("from servers.time import get_current_time\nfrom servers.words import shout\n"
                    "get_current_time('UTC'); shout('x')")  # opens both sessions
        assert r.ok, r.error
        for label, call in (("mcp-server-time (stdio)", "get_current_time('UTC')"),
                            ("host Toolset (in process)", "shout('x')")):
            r = sb.exec(f"import time\nt = time.perf_counter()\nfor _ in range({N}):\n    {call}\n"
                        "(time.perf_counter() - t) / " + str(N))
            assert r.ok, r.error
            print(f"2. guest-to-tool call, {label}: {float(r.value) * 1e3:.2f} ms a call (mean of {N}, in one cell)")


def run_python_round_trip() -> None:
    from mcp import Client, StdioServerParameters

    async def main() -> list[float]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "throwaway.cli", "mcp", "--pool", "1"])
        async with Client(params) as client:
            r = await client.call_tool("run_python", {"code": "x = 1"})
            session = json.loads(r.content[0].text)["session"]
            times = []
            for _ in range(N):
                t = time.perf_counter()
                await client.call_tool("run_python", {"code": "x + 1", "session": session})
                times.append(time.perf_counter() - t)
            return times

    times = asyncio.run(main())
    print(f"3. run_python over stdio, warm session: median {statistics.median(times) * 1e3:.2f} ms, "
          f"p90 {sorted(times)[int(len(times) * 0.9)] * 1e3:.2f} ms ({N} calls)")


if __name__ == "__main__":
    prompt_sizes()
    guest_round_trip()
    run_python_round_trip()
