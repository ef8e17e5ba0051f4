"""Hostile-guest benchmark: what a hostile cell costs the host. Prints figures,
never passes or fails.

    .venv/bin/python bench/bench_hostile.py

For each flood, guest code writes a fake frame prefix and then N MB to the
runtime process's stdout (the host's channel); the figure is the growth of
the host process's peak RSS (VmHWM, reset before each run) and how long the
cell took to come back. The host checks each frame's key and size from its
prefix before it reads the frame, so the growth should stay near zero
whatever N is (tests/test_hostile_output.py holds it under 200 MB).
"""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path

from throwaway.sandbox import Limits, Sandbox

MB = 1 << 20

FLOOD = """
import js
chunk = js.Uint8Array.new(1 << 20)
chunk.fill(65)
js.Deno.stdout.writeSync(js.Uint8Array.new(list({prefix!r})))
try:
    for _ in range({mb}):
        js.Deno.stdout.writeSync(chunk)
except Exception:
    pass
"""

NODE_FS = """
import js, asyncio
js.eval("import('node:fs').then(fs => {{ const c = new Uint8Array(1 << 20).fill(66); "
        "for (let i = 0; i < {mb}; i++) fs.writeSync(1, c) }})")
await asyncio.sleep(1)
"""


def status(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def peak_growth(fn) -> tuple[float, float, object]:
    """(MB the host's peak RSS grew by, seconds, fn's value)."""
    before = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (Linux)
    t = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t
    return (status("VmHWM") - before) / MB, seconds, value


def main() -> None:
    floods = {
        "fake 8-byte prefix (600 MB payload) + 600 MB": FLOOD.format(prefix=struct.pack("<II", 20, 600 * MB), mb=600),
        "guessed 24-byte prefix + 600 MB": FLOOD.format(prefix=os.urandom(16) + struct.pack("<II", 20, 600 * MB),
                                                         mb=600),
        "junk via node:fs on fd 1, 400 MB": NODE_FS.format(mb=400),
    }
    with Sandbox(limits=Limits(timeout=30)) as sb:
        sb.exec("1")
        for name, code in floods.items():
            growth, seconds, r = peak_growth(lambda: sb.exec(code))
            print(f"stdout flood, {name}: host peak RSS +{growth:.1f} MB, cell back in {seconds:.2f} s "
                  f"(limit={r.limit}, restarted={r.restarted})")
        sb.calls.add("bench.len", lambda args, data: len(data))
        growth, seconds, r = peak_growth(lambda: sb.exec(
            "import _throwaway_host\n_throwaway_host.call('bench.len', 'null', bytes(100 << 20))"))
        print(f"one 100 MB frame (past the 16 MiB frame limit): host peak RSS +{growth:.1f} MB, "
              f"cell back in {seconds:.2f} s (limit={r.limit})")
        growth, seconds, r = peak_growth(lambda: sb.exec(
            "import throwaway\nthrowaway.call('bench.len', None, bytes(100 << 20))[0]"))
        print(f"100 MB of host-call data in parts (wanted by the host): host peak RSS +{growth:.1f} MB, "
              f"{seconds:.2f} s (value={r.value})")


if __name__ == "__main__":
    main()
