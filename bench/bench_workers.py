"""Workers benchmark: prints figures, never passes or fails.

    .venv/bin/python bench/bench_workers.py [--tasks 24] [--database-url postgresql://...]

Starts a PostgreSQL cluster of its own (tests/pg.py) unless given a URL, then:
tasks per minute through 1, 2 and 4 workers (scripted model; each task 3
steps, a small file written per step); queue latency, submit to the task's
first step, p50 and p99, with idle workers waiting; and the time from a
worker's death (SIGKILL) to its tasks running on another worker, with a lease
of 5 s. Targets: queue latency p50 <= 100 ms; recovery <= lease + 5 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

APP = '''
from pydantic_ai.messages import ModelResponse
from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call
import os

PAUSE = float(os.environ.get("B_PAUSE", "0"))


def turn(messages, info):
    n = sum(isinstance(m, ModelResponse) for m in messages)
    if n < 3:
        return tool_call("execute_python", code=f"open('/output/f{n}.txt', 'w').write('x' * 1000)\\n"
                                                  f"import time; time.sleep({PAUSE})")
    return "done"


agent = Agent("bench-workers", model=ScriptedModel(turn))
'''


class Bench:
    def __init__(self, folder: Path, database_url: str, **env: str) -> None:
        self.folder = folder
        (folder / "app.py").write_text(APP)
        self.env = {**os.environ, "THROWAWAY_DATA": str(folder / "data"), "THROWAWAY_DATABASE_URL": database_url,
                    "THROWAWAY_LOG_LEVEL": "ERROR", **env}
        self.workers: list[subprocess.Popen] = []

    def worker(self, concurrency: int = 2, lease: float = 5.0) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "throwaway.cli", "worker", "--app", "app.py:agent",
                                 "-c", str(concurrency), "--lease", str(lease)], env=self.env, cwd=self.folder,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.workers.clear()


def _api(folder: Path, database_url: str):
    os.environ["THROWAWAY_DATA"] = str(folder / "data")
    os.environ["THROWAWAY_DATABASE_URL"] = database_url
    sys.path.insert(0, str(folder))
    import importlib

    if "app" in sys.modules:
        del sys.modules["app"]
    app = importlib.import_module("app")
    from throwaway.durable import queue, tasks

    queue._clients.clear()
    return app.agent, tasks


def _wait(tasks, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = [tasks.get_task(i).status for i in ids]
        if all(s in ("done", "failed", "cancelled", "max_steps") for s in done):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"tasks not finished: {done}")
        time.sleep(0.25)


def throughput(url_for, n_workers: int, n_tasks: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = url_for(f"bench_tp_{n_workers}_{time.time_ns()}")
        bench = Bench(folder, url)
        agent, tasks = _api(folder, url)
        try:
            for _ in range(n_workers):
                bench.worker(concurrency=2)
            warm = [agent.submit("warm", output_dir=folder / "out" / f"w{i}", app="app.py:agent").task_id
                    for i in range(n_workers)]
            _wait(tasks, warm, 300)
            start = time.monotonic()
            ids = [agent.submit("t", output_dir=folder / "out" / str(i), app="app.py:agent").task_id
                   for i in range(n_tasks)]
            _wait(tasks, ids, 900)
            return n_tasks / (time.monotonic() - start) * 60
        finally:
            bench.stop()


def queue_latency(url_for, samples: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = url_for(f"bench_lat_{time.time_ns()}")
        bench = Bench(folder, url)
        agent, tasks = _api(folder, url)
        try:
            bench.worker(concurrency=2)
            _wait(tasks, [agent.submit("warm", output_dir=folder / "o", app="app.py:agent").task_id], 300)
            latencies = []
            for i in range(samples):
                submitted = time.time()
                handle = agent.submit("lat", output_dir=folder / "out" / str(i), app="app.py:agent")
                _wait(tasks, [handle.task_id], 120)
                first = tasks.checkpoints(handle.task_id)[0]["started_at"]
                latencies.append(first.timestamp() - submitted)
            latencies.sort()
            return statistics.median(latencies), latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        finally:
            bench.stop()


def recovery(url_for, lease: float = 5.0) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = url_for(f"bench_rec_{time.time_ns()}")
        bench = Bench(folder, url, B_PAUSE="3")
        agent, tasks = _api(folder, url)
        try:
            doomed = bench.worker(concurrency=2, lease=lease)
            ids = [agent.submit("r", output_dir=folder / "out" / str(i), app="app.py:agent").task_id for i in range(2)]
            while not all(tasks.get_task(i).status == "running" for i in ids):
                time.sleep(0.1)
            time.sleep(1.0)  # inside a step
            os.killpg(doomed.pid, signal.SIGKILL)
            killed = time.monotonic()
            bench.worker(concurrency=2, lease=lease)
            before = {i: len(tasks.checkpoints(i)) for i in ids}
            while not all(len(tasks.checkpoints(i)) > before[i] or tasks.get_task(i).status == "done" for i in ids):
                time.sleep(0.1)
            return time.monotonic() - killed
        finally:
            bench.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--database-url", help="a Postgres server URL (default: a cluster of its own)")
    args = parser.parse_args()
    cluster = None
    if args.database_url:
        base = args.database_url.rsplit("/", 1)[0]
    else:
        from tests.pg import Cluster

        cluster = Cluster()
        base = cluster.url("x").rsplit("/", 1)[0]
    try:
        url_for = lambda name: f"{base}/{name}"  # noqa: E731
        print(f"workers: scripted model, {args.tasks} tasks of 3 steps each (a 1 KB file per step), Postgres")
        for n in (1, 2, 4):
            print(f"  {n} worker(s), 2 tasks at once each: {throughput(url_for, n, args.tasks):6.1f} tasks/minute")
        p50, p99 = queue_latency(url_for, args.samples)
        print(f"  queue latency, submit to first step: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
              "(target p50 <= 100 ms)")
        print(f"  a killed worker's tasks running elsewhere after {recovery(url_for):.1f} s (lease 5 s; "
              "target <= lease + 5 s)")
    finally:
        if cluster is not None:
            cluster.remove()


if __name__ == "__main__":
    main()
