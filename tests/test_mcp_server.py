"""`throwaway mcp` through the official MCP client SDK, over stdio and streamable HTTP."""

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

PNG = ("import struct, zlib\n"
       "def chunk(k, d): return struct.pack('>I', len(d)) + k + d + struct.pack('>I', zlib.crc32(k + d))\n"
       "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 2, 0, 0, 0))\n"
       "png += chunk(b'IDAT', zlib.compress(b'\\x00\\xff\\x00\\x00')) + chunk(b'IEND', b'')\n"
       "open('/output/dot.png', 'wb').write(png)\n")


def stdio(*args):
    return Client(StdioServerParameters(command=sys.executable, args=["-m", "throwaway.cli", "mcp", *args]))


async def run(client, code, session=None, timeout=None, error=False):
    args = {"code": code}
    if session is not None:
        args["session"] = session
    if timeout is not None:
        args["timeout"] = timeout
    r = await client.call_tool("run_python", args)
    assert r.is_error == error, r.content
    if error:
        return r.content[0].text
    return json.loads(r.content[0].text), r.content[1:]


def test_stdio_sessions_files_images_and_clear_errors():
    async def main():
        async with stdio("--pool", "1") as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert names == ["run_python", "read_file", "write_file", "list_sessions", "close_session"]

            # Globals and files persist in a session; a new session starts clean.
            first, _ = await run(client, "x = 41\nopen('/home/user/note.txt', 'w').write('kept')\nx + 1")
            sid = first["session"]
            assert first["value"] == "42"
            again, _ = await run(client, "x, open('/home/user/note.txt').read()", sid)
            assert (again["session"], again["value"]) == (sid, "(41, 'kept')")
            other, _ = await run(client, "'x' in globals()")
            assert other["session"] != sid and other["value"] == "False"

            # Images written under /output come back as image content.
            result, images = await run(client, PNG, sid)
            assert result["files"] == ["/output/dot.png"]
            assert [(i.type, i.mime_type) for i in images] == [("image", "image/png")]
            assert base64.b64decode(images[0].data).startswith(b"\x89PNG")

            # The file tools.
            w = await client.call_tool("write_file", {"session": sid, "path": "/home/user/in.csv", "content": "a,b\n1,2\n"})
            assert not w.is_error and "wrote 8 bytes" in w.content[0].text
            r = await client.call_tool("read_file", {"session": sid, "path": "/home/user/in.csv"})
            assert r.content[0].text == "a,b\n1,2\n"
            r = await client.call_tool("read_file", {"session": sid, "path": "/output/dot.png"})
            assert r.content[0].type == "image"
            r = await client.call_tool("read_file", {"session": sid, "path": "/home/user/missing.txt"})
            assert r.is_error and "cannot read /home/user/missing.txt" in r.content[0].text

            # The guest's exceptions and limits are data, not tool errors.
            failed, _ = await run(client, "1 / 0", sid)
            assert failed["error"]["type"] == "ZeroDivisionError"

            # Mistakes are tool errors that say what to do.
            text = await run(client, "1", session="nope", error=True)
            assert "no session 'nope'" in text and "without a session" in text
            r = await client.call_tool("run_python", {"code": 5})
            assert r.is_error and "code" in r.content[0].text and "valid string" in r.content[0].text
            text = await run(client, "1", sid, timeout=-1, error=True)
            assert "timeout must be more than 0" in text
            r = await client.call_tool("read_file", {"session": sid, "path": "relative.txt"})
            assert r.is_error and "absolute guest path" in r.content[0].text

            listed = await client.call_tool("list_sessions", {})
            ids = {s["session"] for s in listed.structured_content["result"]}
            assert ids == {sid, other["session"]}
            closed = await client.call_tool("close_session", {"session": sid})
            assert not closed.is_error
            text = await run(client, "x", sid, error=True)
            assert f"no session {sid!r}" in text

    asyncio.run(main())


@pytest.mark.slow
def test_calls_to_one_session_in_order_to_many_at_once_and_a_runaway_holds_no_one():
    async def main():
        async with stdio("--pool", "2", "--max-sessions", "6") as client:
            sessions = []
            for _ in range(4):
                made, _ = await run(client, "seen = []")
                sessions.append(made["session"])

            # 16 calls over 4 sessions at once: each session sees its own calls in the order sent.
            calls = [run(client, f"import time; time.sleep(0.05); seen.append({n}); list(seen)", sessions[n % 4])
                     for n in range(16)]
            results = await asyncio.gather(*calls)
            for n, (result, _) in enumerate(results):
                assert result["session"] == sessions[n % 4]
            for k, sid in enumerate(sessions):
                final, _ = await run(client, "seen", sid)
                assert final["value"] == repr([n for n in range(16) if n % 4 == k])

            # A runaway cell in a fifth session: the others answer while it runs.
            finished = []

            async def runaway():
                result, _ = await run(client, "while True: pass", timeout=20)
                finished.append("runaway")
                return result

            async def quick(sid, n):
                result, _ = await run(client, f"seen.append('q{n}'); len(seen)", sid)
                finished.append(f"quick {n}")
                return result

            stuck = asyncio.create_task(runaway())
            await asyncio.sleep(1.0)
            quick_results = await asyncio.gather(*(quick(sid, n) for n, sid in enumerate(sessions * 2)))
            assert all("error" not in r for r in quick_results)
            assert "runaway" not in finished, "a quick call waited for the runaway cell"
            result = await stuck
            assert result["limit"] == "timeout"
            # The runaway's session still works after its deadline.
            after, _ = await run(client, "1 + 1", result["session"])
            assert after["value"] == "2"

    asyncio.run(main())


def test_idle_sessions_are_closed():
    async def main():
        async with stdio("--pool", "0", "--idle", "1") as client:
            made, _ = await run(client, "x = 1")
            for _ in range(100):
                listed = await client.call_tool("list_sessions", {})
                if not listed.structured_content["result"]:
                    break
                await asyncio.sleep(0.2)
            text = await run(client, "x", made["session"], error=True)
            assert "no session" in text and "idle" in text

    asyncio.run(main())


@asynccontextmanager
async def http_client(url, headers=None):
    async with (create_mcp_http_client(headers=headers) as http,
                Client(streamable_http_client(url, http_client=http)) as client):
        yield client


@pytest.fixture
def http_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "throwaway.cli", "mcp", "--http", f"127.0.0.1:{port}",
                             "--token", "s3cret", "--pool", "2"])
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, "the server exited"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_streamable_http_with_a_token_and_eight_clients_at_once(http_server):
    auth = {"Authorization": "Bearer s3cret"}

    # Without the token (or with a wrong one) the server answers 401 before MCP starts.
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        request = urllib.request.Request(http_server, data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401

    async def main():
        with pytest.raises(BaseException, match="unhandled errors"):  # the SDK's task group, around the 401
            async with http_client(http_server):
                pass

        async with http_client(http_server, auth) as client:
            made, _ = await run(client, "n = 0")
            sid = made["session"]
            _, images = await run(client, PNG, sid)
            assert [i.mime_type for i in images] == ["image/png"]

            other, _ = await run(client, "n = 100")
            shared = [sid, other["session"]]

        async def one_client(k):
            async with http_client(http_server, auth) as c:
                results = []
                for _ in range(3):
                    r, _ = await run(c, "n += 1\nn", shared[k % 2])
                    results.append(int(r["value"]))
                return results

        per_client = await asyncio.gather(*(one_client(k) for k in range(8)))
        for k, values in enumerate(per_client):
            assert values == sorted(values)  # each client's calls ran in the order it made them
        firsts = sorted(v for k, vs in enumerate(per_client) if k % 2 == 0 for v in vs)
        seconds = sorted(v for k, vs in enumerate(per_client) if k % 2 == 1 for v in vs)
        assert firsts == list(range(1, 13)) and seconds == list(range(101, 113))

    asyncio.run(main())


def test_the_servers_sessions_can_import_mcp_servers_code_mode():
    demo = Path(__file__).parent / "mcp_servers" / "demo_server.py"

    async def main():
        async with stdio("--pool", "1", "--mcp", f"demo={sys.executable} {demo}") as client:
            result, images = await run(client, "from servers.demo import add, red_square\n"
                                               "red_square().save('/output/red.png')\nadd(2, 3)")
            assert result["value"] == "5" and [i.mime_type for i in images] == ["image/png"]

    asyncio.run(main())


def test_beyond_loopback_a_token_is_made_and_required():
    from throwaway.mcpserver.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "THROWAWAY_MCP_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "throwaway.cli", "mcp", "--http", f"0.0.0.0:{port}", "--pool", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert "Authorization: Bearer " in line, line
        token = line.split("Bearer ", 1)[1].strip()
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401

        async def main():
            async with http_client(url, {"Authorization": f"Bearer {token}"}) as client:
                result, _ = await run(client, "6 * 7")
                assert result["value"] == "42"

        asyncio.run(main())
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
