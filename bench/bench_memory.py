"""Where a live sandbox's memory goes: the PSS of its runtime process (one Deno
process), split by kind of mapping. Prints figures; never passes or fails.

    .venv/bin/python bench/bench_memory.py [--live 8] [--cell CODE]

`--live` sandboxes are started, each runs one cell (`x = 1 + 1` unless
`--cell`), then sit idle for 3 s (the runtime gives malloc's free memory back
1 s after a cell); then each process's /proc/PID/smaps is read. Shared pages
(the Deno binary's code) are split between the processes mapping them, as
in bench_peers' total. Each row is the median over the sandboxes. Linux only.

The kinds, told apart by what V8, glibc and the kernel mark them with:

- wasm linear memory: Pyodide's memory, the interpreter's whole state (the
  snapshot's non-zero pages, then what guest code allocates); anonymous
  read-write mappings V8 reserves without swap accounting (VmFlags `nr`).
- JS heaps: the pages of the two V8 heaps, the main thread's and the Pyodide
  worker's (VmFlags `dc`: V8 keeps them out of a fork); the worker's own
  figure comes from `Deno.memoryUsage()` inside it.
- malloc, large blocks: separate mappings of 1 MB or more: the wasm module's
  bytes (V8 keeps them for lazy compilation, ~9.2 MB), the standard
  library's zip in Pyodide's file system (2.4 MB), thread stacks (barely
  touched).
- malloc heap: glibc's main heap (V8's and Deno's native data).
- code: V8's executable pages (wasm code compiled lazily, JS code).
- Deno binary: its code and read-only data (shared between runtimes) and its
  writable data (private to each).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

from throwaway.sandbox import Sandbox

KINDS = [
    "wasm linear memory",
    "JS heaps (main + worker)",
    "malloc, large blocks",
    "malloc heap",
    "code (wasm + JS)",
    "Deno binary, code (shared)",
    "Deno binary, data (private)",
    "other",
]


def kind_of(name: str, perms: str, flags: set[str], size_kb: int) -> str:
    if name == "[heap]":
        return "malloc heap"
    if name.startswith("/"):
        if Path(name).name.startswith("deno"):
            return "Deno binary, data (private)" if "w" in perms else "Deno binary, code (shared)"
        return "other"
    if name:
        return "other"  # [stack], [vdso], ...
    if "x" in perms:
        return "code (wasm + JS)"
    if perms.startswith("rw"):
        if "nr" in flags:
            return "wasm linear memory"
        if "dc" in flags:
            return "JS heaps (main + worker)"
        if size_kb >= 1024:
            return "malloc, large blocks"
    return "other"


def breakdown(pid: int) -> dict[str, float]:
    """PSS (MB) of process `pid` by kind of mapping."""
    out: dict[str, float] = defaultdict(float)
    head = None
    fields: dict[str, str] = {}

    def flush() -> None:
        if head is None:
            return
        parts = head.split(None, 5)
        start, end = (int(x, 16) for x in parts[0].split("-"))
        name = parts[5].strip() if len(parts) > 5 else ""
        flags = set(fields.get("VmFlags", "").split())
        kind = kind_of(name, parts[1], flags, (end - start) >> 10)
        out[kind] += int(fields.get("Pss", "0 kB").split()[0]) / 1024

    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            flush()
            head, fields = line, {}
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    flush()
    return dict(out)


WORKER_HEAP = "import js\nu = js.Deno.memoryUsage()\n[u.heapTotal, u.heapUsed]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live", type=int, default=8)
    parser.add_argument("--cell", default="x = 1 + 1")
    args = parser.parse_args()

    Sandbox().start().close()  # the boot snapshot exists
    boxes = []
    try:
        for _ in range(args.live):
            sb = Sandbox().start()
            assert sb.exec(args.cell).error is None
            boxes.append(sb)
        heaps = [sb.exec(WORKER_HEAP).json for sb in boxes]
        time.sleep(3)
        rows = [breakdown(sb.pid) for sb in boxes]
    finally:
        for sb in boxes:
            sb.close()

    print(f"{args.live} live sandboxes, each after `{args.cell}`; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'kind of mapping':34} {'PSS MB (median)':>16}")
    for kind in KINDS:
        print(f"{kind:34} {statistics.median(r.get(kind, 0.0) for r in rows):16.1f}")
    totals = [sum(r.values()) for r in rows]
    print(f"{'total':34} {statistics.median(totals):16.1f}   (all {args.live}: {sum(totals):.0f} MB)")
    print(f"the worker's JS heap (Deno.memoryUsage in it): {statistics.median(h[0] for h in heaps) / 2**20:.1f} MB "
          f"reserved, {statistics.median(h[1] for h in heaps) / 2**20:.1f} MB used")


if __name__ == "__main__":
    main()
