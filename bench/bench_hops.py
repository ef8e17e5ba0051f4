"""Where a host call's time goes: each hop of the path measured alone (its
floor on this machine), next to the whole round trips. Prints figures; never
passes or fails.

    .venv/bin/python bench/bench_hops.py [--rounds 3]

A guest's `throwaway.call(...)` crosses: the guest's Python to JS (Pyodide's
FFI) -> the worker posts into a SharedArrayBuffer and parks in Atomics.wait ->
Deno's main thread wakes (Atomics.waitAsync) -> a framed write to the host's
pipe -> the Python host wakes (select), runs the handler (a thread of its own
for a plain handler; on its own thread for a read of a host folder) and writes
the reply -> Deno's main thread reads it (synchronously while a cell runs) ->
Atomics.notify wakes the worker. The floors, each alone in a tight loop:

- worker <-> main thread, SharedArrayBuffer + Atomics (two wake-ups);
- Python <-> Deno over pipes, Deno reading stdin synchronously and with an
  async read (two wake-ups; the async read adds a thread of Deno's);
- a plain handler's hand-off to a thread of its own and back, in Python;
- the guest's side: a call into JS that returns at once, through the same
  FFI conversions as `throwaway.call`.

Each figure is the median of its round trips; the machine may be shared, so
the load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from throwaway.fs import FileSystem
from throwaway.sandbox import Sandbox
from throwaway.sandbox.runtime import deno_bin

N = 5000

PIPE_JS = """
const buf = new Uint8Array(65536);
if (Deno.args[0] === "sync") {
  for (;;) { const n = Deno.stdin.readSync(buf); if (n === null) break; Deno.stdout.writeSync(buf.subarray(0, n)); }
} else {
  for (;;) { const n = await Deno.stdin.read(buf); if (n === null) break; Deno.stdout.writeSync(buf.subarray(0, n)); }
}
"""

SAB_MAIN_JS = """
const ctl = new Int32Array(new SharedArrayBuffer(16));
const w = new Worker(new URL("./sab_worker.js", import.meta.url).href, { type: "module" });
w.postMessage([ctl, Number(Deno.args[0])]);
for (;;) {
  const r = Atomics.waitAsync(ctl, 0, 0);
  if (r.async) await r.value;
  if (Atomics.load(ctl, 2) === 1) break;
  Atomics.store(ctl, 0, 0);
  Atomics.store(ctl, 1, 1);
  Atomics.notify(ctl, 1);
}
w.terminate();
"""

SAB_WORKER_JS = """
self.onmessage = (e) => {
  const [ctl, n] = e.data;
  const ts = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    Atomics.store(ctl, 1, 0);
    Atomics.store(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    Atomics.wait(ctl, 1, 0);
    ts.push(performance.now() - t);
  }
  ts.sort((a, b) => a - b);
  console.log(ts[ts.length >> 1] * 1000);
  Atomics.store(ctl, 2, 1); Atomics.store(ctl, 0, 1); Atomics.notify(ctl, 0);
};
"""

GUEST_FFI = r"""
import time, statistics, js, _throwaway
js.eval("globalThis.__floor = (n, a, d) => { if (d != null) { d.toJs(); d.destroy(); } return ['{\"ok\":true,\"value\":null}', new Uint8Array(1)]; }")
f = js.__floor
ts = []
for _ in range({n}):
    t = time.perf_counter(); _throwaway._check(*f("echo", "null", b"x")); ts.append(time.perf_counter() - t)
statistics.median(ts)
"""

CALL = """
import time, statistics
from throwaway import call
ts = []
for _ in range({n}):
    t = time.perf_counter(); call('echo', None, b'x'); ts.append(time.perf_counter() - t)
statistics.median(ts)
"""

READ = """
import time, statistics
ts = []
for _ in range({n}):
    t = time.perf_counter()
    with open('/data/small.txt') as f:
        f.read()
    ts.append(time.perf_counter() - t)
statistics.median(ts)
"""


def pipe_round_trip(folder: Path, mode: str) -> float:
    proc = subprocess.Popen([str(deno_bin()), "run", "--quiet", str(folder / "pipe.js"), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, inp = proc.stdout.fileno(), proc.stdin.fileno()
    times = []
    for _ in range(N):
        t = time.perf_counter()
        os.write(inp, b"x" * 40)
        select.select([out], [], [])
        os.read(out, 65536)
        times.append(time.perf_counter() - t)
    proc.stdin.close()
    proc.wait()
    return statistics.median(times[N // 10 :])


def sab_round_trip(folder: Path) -> float:
    out = subprocess.run([str(deno_bin()), "run", "--quiet", f"--allow-read={folder}", str(folder / "sab_main.js"), str(N)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip()) / 1e6


def thread_hand_off() -> float:
    from throwaway.sandbox.handlers import HandlerLoop, call_blocking
    from throwaway.sandbox.session import Call
    from throwaway.wire.calls import HostCalls

    calls = HostCalls()
    calls.add("echo", lambda args, data: data)
    loop = HandlerLoop()
    op = Call(calls, "echo", "null", b"x", time.monotonic() + 3600, 1)
    sent = threading.Event()
    times = []
    for _ in range(N):
        sent.clear()
        t = time.perf_counter()
        call_blocking(op, loop, lambda frame: sent.set())  # its thread encodes and "sends" the reply
        sent.wait()
        times.append(time.perf_counter() - t)
    loop.close()
    inline = []
    for _ in range(N):
        t = time.perf_counter()
        calls.resolve("echo", "null")[0](None, b"x")
        inline.append(time.perf_counter() - t)
    return statistics.median(times) - statistics.median(inline)


def once() -> dict[str, float]:
    f: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pipe.js").write_text(PIPE_JS)
        (folder / "sab_main.js").write_text(SAB_MAIN_JS)
        (folder / "sab_worker.js").write_text(SAB_WORKER_JS)
        f["sab"] = sab_round_trip(folder)
        f["pipe_sync"] = pipe_round_trip(folder, "sync")
        f["pipe_async"] = pipe_round_trip(folder, "async")
        f["thread"] = thread_hand_off()
        (folder / "small.txt").write_text("hello from the host\n")
        fs = FileSystem()
        fs.mount_host("/data", folder)
        with Sandbox(fs=fs) as sb:
            sb.calls.add("echo", lambda args, data: data)
            sb.exec("1 + 1")
            r = sb.exec(GUEST_FFI.replace("{n}", str(N)))
            assert r.error is None, r.error
            f["ffi"] = r.json
            f["call"] = sb.exec(CALL.format(n=N)).json
            f["read"] = sb.exec(READ.format(n=N)).json
    return f


ROWS = [
    ("sab", "worker <-> main thread (SharedArrayBuffer, Atomics)"),
    ("pipe_sync", "Python <-> Deno pipes, Deno reading synchronously"),
    ("pipe_async", "Python <-> Deno pipes, Deno's async read"),
    ("thread", "a plain handler's hand-off to its thread (Python)"),
    ("ffi", "guest Python -> JS and back (call's conversions)"),
    ("call", "whole: throwaway.call('echo', None, b'x')"),
    ("read", "whole: open()+read() of a small host file"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    runs = [once() for _ in range(args.rounds)]
    print(f"load after:  {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"\n{'hop (round trip, median)':55} {'us':>8}   rounds")
    for key, name in ROWS:
        values = [r[key] * 1e6 for r in runs]
        print(f"{name:55} {statistics.median(values):8.1f}   {'/'.join(f'{v:.0f}' for v in values)}")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
