"""`throwaway resume` of a 6-step task killed mid-way, against the same task
run whole. Prints figures; never passes or fails.

    .venv/bin/python bench/bench_resume.py [--runs 3]

The task (a scripted model, one small cell a step) runs in a child
`throwaway run`; in the killed runs its fourth cell blocks, the child's
process group gets SIGKILL, and `throwaway resume` (a new process) carries it
to its end. Figures: the whole task unkilled (a new process: imports, DBOS
launch, sandbox boot, 6 steps), the resume, and the resume's cost over the
steps it had left (3 of 6, at the unkilled run's pace). Target: the remaining
steps + 0.5 s. Each figure is a median, printed with the load average.
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

APP = '''
import os, time
from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call

def cell(n):
    return f"open('/output/step{n}.txt', 'w').write('{n}')" + ("\\nopen('/hang/now').read()" if n == 4 else "")

agent = Agent("bench-resume", model=ScriptedModel([tool_call("execute_python", code=cell(n)) for n in range(1, 7)]
                                                 + ["done"]), max_steps=8)

@agent.fs.file("/hang/now")
def hang():
    if os.environ.get("HANG"):
        open(os.environ["HANG"], "w").close()
        time.sleep(600)
    return "ok"
'''


def cli(*args: str, env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "throwaway.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def one(root: Path, n: int, kill: bool) -> float:
    """Seconds of the whole task (kill=False) or of its resume after a kill at step 4."""
    app = root / "app.py"
    env = {**os.environ, "THROWAWAY_DATA": str(root / f"data{n}")}
    task_id = f"r{n}"
    out = root / f"out{n}"
    if not kill:
        t = time.perf_counter()
        proc = cli("run", "--app", f"{app}:agent", "--id", task_id, "-o", str(out), "six steps", env=env)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        return time.perf_counter() - t
    ready = root / f"ready{n}"
    first = cli("run", "--app", f"{app}:agent", "--id", task_id, "-o", str(out), "six steps",
                env={**env, "HANG": str(ready)}, start_new_session=True)
    while not ready.exists():
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    t = time.perf_counter()
    proc = cli("resume", task_id, env=env)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    spent = time.perf_counter() - t
    assert sorted(p.name for p in out.iterdir()) == [f"step{i}.txt" for i in range(1, 7)]
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    (root / "app.py").write_text(APP)
    print(f"load before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    whole, resumed = [], []
    for i in range(args.runs):
        whole.append(one(root, 2 * i, kill=False))
        resumed.append(one(root, 2 * i + 1, kill=True))
    print(f"load after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    w, r = statistics.median(whole), statistics.median(resumed)
    print(f"whole 6-step task, unkilled (new process):  {w:6.2f} s  ({' '.join(f'{x:.2f}' for x in whole)})")
    print(f"resume after a kill at step 4, to its end:  {r:6.2f} s  ({' '.join(f'{x:.2f}' for x in resumed)})")
    print(f"resume minus the 3 steps left (at 1/2 of the whole run): {r - w / 2:6.2f} s   target <= 0.5 s")


if __name__ == "__main__":
    main()
