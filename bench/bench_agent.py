"""The agent loop's own overhead per step, with a scripted model.

Each step is one model call (a scripted model: no inference) and one
execute_python call that rewrites a 1 MB file under /output, so every step
checkpoints two DBOS steps and snapshots 1 MB of files into the blob store.
The time the guest spends running the cell is measured and taken out: what is
left is what the loop costs (model call plumbing, checkpoints, conversation,
snapshot).

    python bench/bench_agent.py [--steps 50] [--size-mb 1] [--database-url URL]

Prints figures; never passes or fails on time. Target: <= 5 ms a step of loop
overhead on SQLite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from throwaway.agent import Agent, ScriptedModel, call
from throwaway.durable import runtime, workflow


class Timer:
    """Wall time spent in wrapped calls, by name."""

    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent.setdefault(name, []).append(time.perf_counter() - start)

        return timed

    def total(self, name: str) -> float:
        return sum(self.spent.get(name, []))


def script(steps: int, size: int) -> list:
    turns = []
    for n in range(steps):
        # A different 1 MB each step, so each snapshot stores a new blob.
        code = f"data = bytes([{n % 256}]) * {size}\nwith open('/output/blob.bin', 'wb') as f:\n    f.write(data)"
        turns.append(call("execute_python", code=code))
    turns.append("done")
    return turns


def run(steps: int, size_mb: float, database_url: str | None) -> dict[str, float]:
    size = int(size_mb * (1 << 20))
    timer = Timer()
    agent = Agent("bench", model=ScriptedModel(script(steps, size)), max_steps=steps + 1)
    make_sandbox = agent.sandbox

    def timed_sandbox(fs):
        sb = make_sandbox(fs)
        sb.exec = timer.wrap("exec", sb.exec)
        sb.snapshot = timer.wrap("snapshot", sb.snapshot)
        sb.start = timer.wrap("start", sb.start)
        return sb

    agent.sandbox = timed_sandbox
    workflow.call_model = timer.wrap("model", workflow.call_model)
    with tempfile.TemporaryDirectory() as tmp:
        runtime.launch(Path(tmp) / "data", database_url)
        try:
            start = time.perf_counter()
            result = agent.run("benchmark", output_dir=Path(tmp) / "output")
            total = time.perf_counter() - start
        finally:
            runtime.shutdown()
        assert result.status == "done" and result.steps == steps + 1, result
        assert (Path(tmp) / "output" / "blob.bin").stat().st_size == size
    per = 1000 / steps
    in_guest = timer.total("exec") + timer.total("start")
    return {
        "total": total * per,
        "guest": timer.total("exec") * per,
        "boot": timer.total("start") * per,
        "snapshot": timer.total("snapshot") * per,
        "model": timer.total("model") * per,
        "overhead": (total - in_guest) * per,
        "overhead_without_snapshot": (total - in_guest - timer.total("snapshot")) * per,
        "snapshot_median": statistics.median(timer.spent.get("snapshot", [0])) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--database-url", help="Postgres URL (default: SQLite in a temporary folder)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    where = "Postgres" if args.database_url else "SQLite (WAL, synchronous=NORMAL)"
    print(f"agent loop: {args.steps} steps, scripted model, {args.size_mb:g} MB file change per step, {where}")
    rows = [run(args.steps, args.size_mb, args.database_url) for _ in range(args.rounds)]
    best = min(rows, key=lambda r: r["overhead"])
    print(f"  (best of {args.rounds} rounds, ms per step)")
    print(f"  total                          {best['total']:8.2f}")
    print(f"  guest running the cell        {best['guest']:8.2f}")
    print(f"  sandbox boot (once, amortized) {best['boot']:8.2f}")
    print(f"  loop overhead                  {best['overhead']:8.2f}   <- target <= 5 ms")
    print(f"    of which snapshot ({args.size_mb:g} MB)   {best['snapshot']:8.2f}   (median {best['snapshot_median']:.2f})")
    print(f"    of which model call          {best['model']:8.2f}")
    print(f"    checkpoints, conversation    {best['overhead_without_snapshot'] - best['model']:8.2f}")


if __name__ == "__main__":
    main()
