"""Sandbox benchmark: prints figures, never passes or fails.

    .venv/bin/python bench/bench_sandbox.py
    .venv/bin/python bench/bench_sandbox.py --pool [--rounds 5] [--baseline SRC]

`--pool` prints only the warm-pool figure, one child process a round; with
`--baseline SRC` (another checkout's `src`) that checkout's in turns with ours.

Targets on a 2-core machine: first result <= 0.25 s, warm exec <= 0.5 ms,
host call <= 150 us, idle sandbox <= 60 MB RSS. A host call that never
returns ends its cell at the cell's deadline (2 s here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from throwaway.sandbox import AsyncSandbox, HostCalls, Sandbox, SandboxPool
from throwaway.sandbox.runtime import ensure_runtime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_result(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sb = Sandbox().start()
        sb.exec("1 + 1")
        times.append(time.perf_counter() - t)
        sb.close()
    return statistics.median(times)


def pool_first_result(runs: int = 5) -> float:
    """With a warm pool, a user's wait: acquire a booted sandbox, run a cell.

    The pool has refilled and rested 3 s first (a checkout whose pool has no
    `wait_warm` gets the 3 s only)."""
    times = []
    with SandboxPool(size=1) as pool:
        for _ in range(runs):
            pool.acquire(timeout=120).close()  # let the pool refill
            if hasattr(pool, "wait_warm"):
                pool.wait_warm(timeout=120)
            time.sleep(3)
            t = time.perf_counter()
            sb = pool.acquire(timeout=120)
            sb.exec("1 + 1")
            times.append(time.perf_counter() - t)
            pool.release(sb)
    return statistics.median(times)


def warm_exec(sb: Sandbox, n: int = 2000) -> float:
    for _ in range(50):
        sb.exec("1 + 1")
    times = []
    for _ in range(n):
        t = time.perf_counter()
        sb.exec("1 + 1")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def host_call(sb: Sandbox, n: int = 2000) -> float:
    sb.calls.add("echo", lambda args, data: data)
    code = f"""
import time, statistics
from throwaway import call
ts = []
for _ in range({n}):
    t = time.perf_counter(); call('echo', None, b'x'); ts.append(time.perf_counter() - t)
statistics.median(ts)
"""
    return sb.exec(code).json


def stuck_host_call(kind: str, timeout: float = 2.0) -> tuple[float, str | None]:
    """Seconds from exec to result for a cell whose host call never returns
    (cut at the cell's deadline), and the cell's limit. `kind`: 'plain',
    'async' (awaits forever), 'async-blocking' (blocks its loop's thread), or
    'async-sandbox' (a plain handler in an AsyncSandbox)."""
    forever = threading.Event().wait

    def plain(args, data):
        forever()

    async def awaits(args, data):
        await asyncio.Event().wait()

    async def blocks(args, data):
        forever()

    calls = HostCalls()
    calls.add("stuck", {"plain": plain, "async": awaits, "async-blocking": blocks, "async-sandbox": plain}[kind])
    code = "from throwaway import call\ncall('stuck')"
    if kind == "async-sandbox":
        async def run() -> tuple[float, str | None]:
            async with AsyncSandbox(calls=calls, timeout=timeout) as sb:
                t = time.perf_counter()
                r = await sb.exec(code)
                return time.perf_counter() - t, r.limit

        return asyncio.run(run())
    with Sandbox(calls=calls, timeout=timeout) as sb:
        t = time.perf_counter()
        r = sb.exec(code)
        return time.perf_counter() - t, r.limit


def pool_throughput(size: int = 4, seconds: float = 3.0) -> float:
    boxes = [Sandbox().start() for _ in range(size)]
    counts = [0] * size
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        while time.perf_counter() < stop:
            boxes[i].exec("1 + 1")
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sb in boxes:
        sb.close()
    return sum(counts) / seconds


def pool_ab(rounds: int, baseline: str | None) -> None:
    """The warm-pool figure alone, from child processes taking turns."""
    sides = {"ours": None, **({"baseline": baseline} if baseline else {})}
    found: dict[str, list[float]] = {side: [] for side in sides}
    print(f"load before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    for r in range(rounds):
        for side, src in sides.items():
            env = {**os.environ, "PYTHONPATH": src} if src else None
            code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
                   "from bench_sandbox import pool_first_result; print(pool_first_result(5))"
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            found[side].append(float(out.stdout.split()[-1]) * 1000)
            print(f"  round {r + 1} {side:8} {found[side][-1]:6.2f} ms   load {os.getloadavg()[0]:.1f}", flush=True)
    for side, values in found.items():
        print(f"warm pool: acquire to first result, {side:8} median of {rounds} rounds (each a median of 5): "
              f"{statistics.median(values):6.2f} ms   ({' / '.join(f'{v:.1f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", action="store_true", help="only the warm-pool figure")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="SRC", help="with --pool: another checkout's src, in turns with ours")
    args = parser.parse_args()
    if args.pool:
        pool_ab(args.rounds, args.baseline)
        return
    ensure_runtime()
    Sandbox().start().close()  # warm cache: Pyodide and the boot snapshot exist
    print(f"new process to first result (warm cache, median of 5): {first_result() * 1000:8.1f} ms   target <= 250 ms")
    print(f"warm pool: acquire to first result (median of 5):     {pool_first_result() * 1000:8.1f} ms")
    with Sandbox() as sb:
        print(f"warm exec('1 + 1') round trip (median of 2000):      {warm_exec(sb) * 1e6:8.1f} us   target <= 500 us")
        print(f"host call round trip from guest (median of 2000):    {host_call(sb) * 1e6:8.1f} us   target <= 150 us")
        time.sleep(0.5)
        print(f"RSS of an idle sandbox (its Deno process):           {rss_mb(sb.pid):8.1f} MB   target <= 60 MB")
    print(f"execs per second across a pool of 4:                 {pool_throughput():8.0f} /s")
    for kind in ("plain", "async", "async-blocking", "async-sandbox"):
        seconds, limit = stuck_host_call(kind)
        print(f"stuck host call ({kind + ')':15} ends its 2 s cell in: {seconds:8.2f} s   limit={limit}")


if __name__ == "__main__":
    main()
