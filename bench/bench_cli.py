"""The read-only commands' time: `throwaway tasks` and `throwaway show` on a
data folder of 20 finished tasks. Prints figures; never passes or fails.

    .venv/bin/python bench/bench_cli.py [--runs 7] [--data FOLDER] [--db URL] [--baseline SRC]

Each command runs as a new process, as a user runs it; the figures are the
median wall time and the median CPU time (user + system, from the child's
rusage: on a shared, loaded machine the CPU time is the steadier of the two)
and the load average. `--baseline SRC` times the same commands with another
checkout's `src` first on PYTHONPATH, run by run in turns with this one, so a
change is compared within one run. `--db` puts the tasks in a Postgres
database (it must not hold other tasks). The floor is timed in the same
turns: a bare interpreter (`python -c pass`) and one that imports click.
Target: <= 0.3 s each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE = """
import sys
from throwaway import Agent
from throwaway.durable import backend
from throwaway.testing import ScriptedModel, tool_call

backend.launch(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
for i in range(20):
    agent = Agent("bench", model=ScriptedModel([tool_call("execute_python", code=f"print({i})"), "done"]), max_steps=3)
    agent.run(f"task number {i}", output_dir=f"{sys.argv[1]}/out{i}")
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data", help="a data folder with tasks (default: a new one with 20)")
    parser.add_argument("--db", metavar="URL", help="a Postgres database for the tasks (default: SQLite)")
    parser.add_argument("--baseline", help="another checkout's src folder, timed in turns with this one")
    args = parser.parse_args()

    data = Path(args.data) if args.data else Path(tempfile.mkdtemp()) / "data"
    if not args.data:
        print("making 20 tasks (a scripted model, one cell each)...", flush=True)
        subprocess.run([sys.executable, "-c", MAKE, str(data), *([args.db] if args.db else [])], check=True,
                       stdout=subprocess.DEVNULL)
    env = {**os.environ, "THROWAWAY_DATA": str(data)}
    if args.db:
        env["THROWAWAY_DATABASE_URL"] = args.db
    cli = [sys.executable, "-m", "throwaway.cli"]
    listing = subprocess.run([*cli, "tasks", "--json"], env=env, check=True, capture_output=True, text=True).stdout
    task_id = listing.split('"task_id": "', 1)[1].split('"', 1)[0]

    setups = {"this tree": env}
    if args.baseline:
        setups = {"baseline": {**env, "PYTHONPATH": args.baseline}, **setups}
    commands = {"throwaway tasks": ["tasks"], "throwaway show": ["show", task_id]}
    floor = {"python -c pass": [sys.executable, "-c", "pass"],
             "import click": [sys.executable, "-c", "import click"]}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    print(f"load before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for _ in range(args.runs):
        for name, argv in commands.items():
            for setup, setup_env in setups.items():
                times.setdefault((name, setup), []).append(timed([*cli, *argv], setup_env))
        for name, cmd in floor.items():
            times.setdefault((name, "floor"), []).append(timed(cmd, env))
    print(f"load after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for (name, setup), runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        target = "" if setup == "floor" else "   target <= 0.3 s"
        print(f"{name:16} {setup:10} wall {wall:6.3f} s   cpu {cpu:6.3f} s   (median of {len(runs)}){target}")


if __name__ == "__main__":
    main()
