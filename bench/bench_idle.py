"""Idle benchmark: the CPU a runtime uses between cells. Prints figures,
never passes or fails.

    .venv/bin/python bench/bench_idle.py

Between cells the Pyodide thread sleeps in Atomics.wait and the main thread
wakes twice a second to sample the process's CPU time (see the idle watch in
main.js). The figures: CPU-seconds of the runtime process (all threads, from
/proc/PID/stat) over 10 s of idle, after a plain cell, and after cells that
leave JavaScript timers or an asyncio task behind (held between cells); and
how long the runtime takes to end itself when a cell hands work to Deno's
own threads (a PBKDF2 of 2e9 rounds) and does not wait for it.
tests/test_guest_workers.py holds each under 0.3 s in 2 s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from throwaway.sandbox import Sandbox

WALL = 10.0

CELLS = {
    "a plain cell": "sum(range(10**6))",
    "setInterval left behind": "import js\njs.eval('setInterval(() => { const t = Date.now(); "
                               "while (Date.now() - t < 20) {} }, 0)')",
    "asyncio task left behind": "import asyncio\nasync def spin():\n    while True:\n        await asyncio.sleep(0)\n"
                                "task = asyncio.ensure_future(spin())\nawait asyncio.sleep(0.01)",
}

HANDED_OFF = ("import js\nc = await js.eval(\"import('node:crypto')\")\n"
              "js.eval('(c) => c.pbkdf2(\"x\", \"y\", 2e9, 64, \"sha512\", () => {})')(c)")


def cpu_time(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    if fields[0] == "Z":
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle(sb: Sandbox) -> float:
    time.sleep(1.0)  # the cell's aftermath
    before = cpu_time(sb.pid)
    time.sleep(WALL)
    return cpu_time(sb.pid) - before


def main() -> None:
    t = time.perf_counter()
    with Sandbox() as sb:
        print(f"boot: {time.perf_counter() - t:.2f} s")
        print(f"idle after boot: {idle(sb):.3f} CPU-s in {WALL:.0f} s")
        for name, code in CELLS.items():
            r = sb.exec(code)
            assert r.error is None, r.error
            print(f"idle after {name}: {idle(sb):.3f} CPU-s in {WALL:.0f} s")
        pid = sb.pid
        sb.exec(HANDED_OFF)
        t = time.perf_counter()
        while cpu_time(pid) is not None and time.perf_counter() - t < 30:
            time.sleep(0.05)
        print(f"work handed to Deno's threads: the runtime ended itself {time.perf_counter() - t:.2f} s after the cell")
        print(f"next cell restarted: {sb.exec('1').restarted}")


if __name__ == "__main__":
    main()
