"""The web view's speed: a big task's page, and the task list with many tasks.

Makes, with a scripted model (no inference) and the real sandbox, one task of
`--steps` steps of which `--images` each draw a distinct PNG, and `--tasks`
short tasks (a one-turn answer each: no sandbox). Then serves them with
``throwaway ui`` in a child process on a free loopback port, and measures over
real HTTP, each the median of `--rounds` requests after one warm-up:

- the task page: time to first byte and to the whole HTML;
- the task page fully rendered in Chromium (Playwright; the load event, after
  every image), if Playwright and Chromium are there;
- the tasks page with all the tasks listed;
- the server's resident memory (VmRSS) after serving them, and its peak (VmHWM).

    python bench/bench_ui.py [--steps 50] [--images 20] [--tasks 1000] [--rounds 5]

Prints figures; never passes or fails on time. Targets: task page <= 300 ms,
tasks page with 1,000 tasks <= 300 ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throwaway import Agent
from throwaway.durable import backend, new_task_id
from throwaway.testing import ScriptedModel, tool_call

PICTURE = '''
import struct, zlib
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
w, h, shade = 128, 96, {shade}
rows = b''.join(b'\\x00' + b''.join(bytes((shade, (y * 3) % 256, (x * 2) % 256)) for x in range(w))
               for y in range(h))
png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
png += chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b'')
open('/output/picture_{n:02d}.png', 'wb').write(png)
print('picture {n} drawn')
len(png)
'''


def make_big_task(steps: int, images: int, out: Path) -> str:
    every = max(steps // max(images, 1), 1)
    turns: list = []
    drawn = 0
    for n in range(1, steps):
        if drawn < images and n % every == 0:
            code = PICTURE.format(shade=(n * 37) % 256, n=n)
            drawn += 1
        else:
            code = f"total = sum(range({n} * 1000))\nprint('step {n}:', total)\ntotal % 97"
        turns.append([f"Step {n}: I will **compute** something.", tool_call("execute_python", code=code)])
    turns.append("All done: the pictures are in /output.")
    result = Agent("bench-ui-big", model=ScriptedModel(turns), max_steps=steps + 1).run(
        "A long task with pictures", output_dir=out)
    assert result.status == "done", result
    return result.task_id


def make_small_tasks(count: int, out: Path) -> None:
    agent = Agent("bench-ui-small", model=ScriptedModel(lambda messages, info: "42"))
    for i in range(count):
        agent.run(f"Question {i}: what is six times seven?", task_id=new_task_id(), output_dir=out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[float, float, int]:
    """Seconds to the first byte and to the whole body, and the body's size."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    response.read(1)
    first = time.perf_counter() - start
    body = response.read()
    whole = time.perf_counter() - start
    conn.close()
    assert response.status == 200, (path, response.status)
    return first, whole, len(body) + 1


def measure(port: int, path: str, rounds: int) -> tuple[float, float, int]:
    get(port, path)  # warm-up
    runs = [get(port, path) for _ in range(rounds)]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[0][2])


def memory(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) // 1024
    return found


def browser_load(port: int, path: str, rounds: int) -> float | None:
    chromium = os.environ.get("THROWAWAY_CHROMIUM") or shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium:
        return None
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        for i in range(rounds + 1):
            start = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}{path}", wait_until="load")
            if i:
                times.append(time.perf_counter() - start)
        browser.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        backend.launch(data)
        start = time.perf_counter()
        big = make_big_task(args.steps, args.images, out)
        print(f"made a {args.steps}-step task with {args.images} pictures in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        make_small_tasks(args.tasks, out)
        print(f"made {args.tasks} more tasks in {time.perf_counter() - start:.1f} s")
        backend.shutdown()

        port = free_port()
        env = {**os.environ, "THROWAWAY_DATA": str(data), "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen([sys.executable, "-m", "throwaway.cli", "ui", "--port", str(port)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            server.stdout.readline()
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the ui server did not start") from None
                    time.sleep(0.1)
            base = memory(server.pid)
            first, whole, size = measure(port, f"/tasks/{big}", args.rounds)
            print(f"task page, {args.steps} steps, {args.images} pictures: first byte {first * 1000:.0f} ms, "
                  f"whole HTML {whole * 1000:.0f} ms ({size // 1024} KiB)  [target <= 300 ms]")
            loaded = browser_load(port, f"/tasks/{big}", args.rounds)
            if loaded is None:
                print("task page in Chromium: skipped (no Playwright or Chromium)")
            else:
                print(f"task page in Chromium, to the load event with every picture: {loaded * 1000:.0f} ms")
            limit = args.tasks + 10
            first, whole, size = measure(port, f"/?limit={limit}", args.rounds)
            print(f"tasks page, {args.tasks + 1} tasks: first byte {first * 1000:.0f} ms, whole HTML "
                  f"{whole * 1000:.0f} ms ({size // 1024} KiB)  [target <= 300 ms]")
            after = memory(server.pid)
            print(f"server memory: {base.get('VmRSS')} MB at start, {after.get('VmRSS')} MB after serving, "
                  f"peak {after.get('VmHWM')} MB")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
