"""Guest code cannot reach the host's protocol pipes, on the real runtime.

The host and the runtime's main thread talk over two pipes (frames down,
frames up). Guest code reaches the worker's whole JS world (`import js`):
Deno.stdin and Deno.stdout, node:fs and node:process on fds 0 and 1, Deno's
core ops on resource ids, /dev/stdin and /proc/self/fd/N. If the protocol
travelled on fds 0 and 1, a read the guest starts there would take the host's
next frame (the next cell's code, a host call's reply) and the runtime would
hang until the host replaced it. So the pipes are other file descriptors,
which only the main thread opens (by /proc/self/fd/N, a permission the worker
lacks), and fds 0 and 1 are /dev/null.

Each test starts one route from the guest, then runs a cell whose code
carries a marker, then collects what the guest read: the cell answers on the
same runtime (a global set before survives; nothing replaced it) and the
guest read nothing of it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from throwaway.sandbox import AsyncSandbox, Limits, Sandbox

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

MARKER = "host-frame-marker-7f3a"

# What a read got, as text the host can check: "EOF" (read returned null), the
# bytes (latin-1), or "error ..." when the route is shut.
SHOW = ("globalThis.__show = (b, n) => n === null || n === undefined ? 'EOF' : "
        "Array.from(b.subarray(0, n), (c) => String.fromCharCode(c)).join('')")

# Each route: a JS expression evaluated in the worker (a value or a Promise of
# one), that reads from the runtime's stdin by one road or another.
READS = {
    "Deno.stdin.read": "(async () => { const b = new Uint8Array(65536); return __show(b, await Deno.stdin.read(b)); })()",
    "Deno.stdin.readSync": "(async () => { await null; const b = new Uint8Array(65536); "
                           "return __show(b, Deno.stdin.readSync(b)); })()",
    "Deno.stdin.readable": "(async () => { const r = await Deno.stdin.readable.getReader().read(); "
                           "return r.done ? 'EOF' : __show(r.value, r.value.length); })()",
    "node:fs read fd 0": "import('node:fs').then((fs) => new Promise((res) => { const b = new Uint8Array(65536); "
                         "fs.read(0, b, 0, b.length, null, (e, n) => res(e ? 'error ' + e.message : __show(b, n))); }))",
    "node:fs readSync fd 0": "import('node:fs').then((fs) => { const b = new Uint8Array(65536); return __show(b, fs.readSync(0, b)); })",
    "node:process.stdin": "import('node:process').then(({ default: p }) => new Promise((res) => { "
                          "p.stdin.on('data', (d) => res(__show(d, d.length))); p.stdin.on('end', () => res('EOF')); "
                          "p.stdin.on('error', (e) => res('error ' + e.message)); }))",
    "core.read rid 0": "(async () => { const core = Deno[Deno.internal]?.core; if (!core?.read) return 'error no core.read'; "
                       "const b = new Uint8Array(65536); return __show(b, await core.read(0, b)); })()",
    "Deno.read rid 0": "(async () => { if (typeof Deno.read !== 'function') return 'error no Deno.read'; "
                       "const b = new Uint8Array(65536); return __show(b, await Deno.read(0, b)); })()",
    "open /dev/stdin": "(async () => { const f = await Deno.open('/dev/stdin'); const b = new Uint8Array(65536); "
                       "return __show(b, await f.read(b)); })()",
    "open /proc/self/fd/0": "(async () => { const f = await Deno.open('/proc/self/fd/0'); const b = new Uint8Array(65536); "
                            "return __show(b, await f.read(b)); })()",
    "node:fs open /dev/fd/0": "import('node:fs').then((fs) => { const fd = fs.openSync('/dev/fd/0', 'r'); "
                              "const b = new Uint8Array(65536); return __show(b, fs.readSync(fd, b)); })",
    "nested worker": "new Promise((res, rej) => { const w = new Worker('data:text/javascript,"
                     "const b = new Uint8Array(65536); const n = Deno.stdin.readSync(b); postMessage(n)', "
                     "{ type: 'module' }); w.onmessage = (e) => res('read ' + e.data); w.onerror = rej; })",
}

START = """
import js, asyncio
js.eval({show!r})
kept = 'still here'
got = js.Promise.resolve().then(lambda _: js.eval({route!r})).then(str, lambda e: 'error ' + str(e))
await asyncio.sleep(0.1)
"""


def nothing_read(got: str) -> None:
    """What the guest read: nothing at all (end of file, no bytes, or a refusal)."""
    assert MARKER not in got, f"the guest read the host's frame: {got[:300]!r}"
    assert got in ("EOF", "") or got.startswith("error"), got[:300]


def same_runtime(sb: Sandbox, pid: int) -> None:
    r = sb.exec(f"'{MARKER}'\nkept")
    assert r.error is None and r.json == "still here" and not r.restarted, r
    assert sb.pid == pid


@pytest.mark.parametrize("route", READS.values(), ids=READS.keys())
def test_guest_reads_nothing_of_the_next_cell(fresh, route):
    sb = fresh(limits=Limits(grace=0.5))
    pid = sb.pid
    r = sb.exec(START.format(show=SHOW, route=route))
    assert r.error is None and not r.restarted, r
    same_runtime(sb, pid)
    r = sb.exec("await got")
    assert r.error is None and not r.restarted, r
    nothing_read(r.json)
    assert sb.exec("6 * 7").json == 42 and sb.pid == pid


@pytest.mark.parametrize("route", ["Deno.stdin.read", "Deno.stdin.readSync", "node:fs read fd 0", "core.read rid 0"])
def test_guest_reads_nothing_of_a_host_calls_reply(fresh, route):
    """A read started in the cell, then a host call: the reply reaches the call."""
    sb = fresh(limits=Limits(grace=0.5))
    pid = sb.pid
    sb.calls.add("pipes.echo", lambda args, data: args)
    r = sb.exec(START.format(show=SHOW, route=READS[route]) +
                f"import throwaway\nanswer = throwaway.call('pipes.echo', '{MARKER}')[0]\n"
                "[answer, await got]")
    assert r.error is None and not r.restarted, r
    assert r.json[0] == MARKER
    nothing_read(r.json[1])
    same_runtime(sb, pid)


def test_python_stdin_reads_nothing(fresh):
    """Pyodide's own sys.stdin (and input()) end at once."""
    sb = fresh(limits=Limits(grace=0.5))
    pid = sb.pid
    r = sb.exec("import sys\nkept = 'still here'\ntry:\n    got = sys.stdin.read()\nexcept Exception as e:\n"
                "    got = 'error ' + repr(e)\ntry:\n    input()\nexcept EOFError:\n    pass\ngot")
    assert r.error is None and not r.restarted, r
    nothing_read(r.json)
    same_runtime(sb, pid)


def runtime_pipes(pid: int) -> list[int]:
    """The runtime process's file descriptors that are pipes (the protocol's among them)."""
    fds = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(entry).startswith("pipe:"):
                fds.append(int(entry.name))
        except OSError:
            pass
    return sorted(fds)


def test_guest_cannot_open_the_protocol_pipes(fresh):
    """Every pipe of the runtime process, by path and by number, from the
    guest: opening it by path is refused (the worker may read no /proc path),
    and a number names the worker's own resources, never the main thread's."""
    sb = fresh(limits=Limits(grace=0.5))
    pid = sb.pid
    fds = runtime_pipes(pid)
    assert len(fds) >= 2, fds
    code = ["import js, asyncio", f"js.eval({SHOW!r})", "kept = 'still here'", "opened = []", "pending = []"]
    for fd in fds:
        for path in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}", f"/proc/{pid}/fd/{fd}"):
            for mode in ("{read: true}", "{write: true}"):
                code.append(f"try:\n    js.Deno.openSync({path!r}, js.eval('({mode})'))\n    opened.append({path!r})\n"
                            "except Exception as e:\n    assert 'NotCapable' in str(e), str(e)")
        code.append("pending.append(js.eval(" + repr(
            f"import('node:fs').then((fs) => new Promise((res) => {{ const b = new Uint8Array(65536); "
            f"fs.read({fd}, b, 0, b.length, null, (e, n) => res(e ? 'error ' + e.message : __show(b, n))); }}))"
        ) + "))")
    for rid in sorted(set(fds) | set(range(16))):  # the numbers as the worker's own resource ids
        code.append("pending.append(js.eval(" + repr(
            f"(async () => {{ const b = new Uint8Array(65536); "
            f"return __show(b, await Deno[Deno.internal].core.read({rid}, b)); }})().catch((e) => 'error ' + e)"
        ) + "))")
    code.append("await asyncio.sleep(0.1)\nopened")
    r = sb.exec("\n".join(code))
    assert r.error is None and not r.restarted, r
    assert r.json == []
    same_runtime(sb, pid)
    r = sb.exec("[await p for p in pending]")
    assert r.error is None and not r.restarted, r
    for got in r.json:
        assert MARKER not in got, got[:300]


WRITES = {
    "Deno.stdout": "js.Deno.stdout.writeSync(junk)",
    "node:fs fd 1": "(await js.eval(\"import('node:fs')\")).writeSync(1, junk)",
    "core.writeSync rid 1": "js.eval('(b) => Deno[Deno.internal]?.core?.writeSync?.(1, b)')(junk)",
    "console.log": "js.console.log('junk from the guest')",
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_guest_writes_to_stdout_reach_nothing(fresh, write):
    """fd 1 is /dev/null: junk written there neither reaches the host nor
    costs the runtime (before, the host saw a frame without its key and
    replaced the runtime)."""
    sb = fresh(limits=Limits(grace=0.5))
    pid = sb.pid
    r = sb.exec(f"import js\nkept = 'still here'\njunk = js.Uint8Array.new([255] * 64)\n{write}\n'written'")
    assert r.json == "written" and not r.restarted, r
    same_runtime(sb, pid)


def test_async_sandbox_guest_reads_nothing():
    async def main():
        async with AsyncSandbox(limits=Limits(grace=0.5)) as sb:
            pid = sb.pid
            sb.calls.add("pipes.echo", lambda args, data: args)
            r = await sb.exec(START.format(show=SHOW, route=READS["Deno.stdin.read"]))
            assert r.error is None and not r.restarted, r
            r = await sb.exec(f"import throwaway\n[throwaway.call('pipes.echo', '{MARKER}')[0], kept]")
            assert r.json == [MARKER, "still here"] and not r.restarted and sb.pid == pid, r
            r = await sb.exec("await got")
            nothing_read(r.json)

    asyncio.run(main())


def test_the_runtimes_stdio_is_dev_null(fresh):
    """The host's side: fds 0 and 1 of the runtime are /dev/null, its stderr a file."""
    sb = fresh()
    assert os.readlink(f"/proc/{sb.pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{sb.pid}/fd/1") == "/dev/null"
    assert not os.readlink(f"/proc/{sb.pid}/fd/2").startswith("pipe:")
