"""A task whose process is killed with SIGKILL mid-task resumes in a new process.

The task runs in a child process (`throwaway run`), scripted so that its third
model call or its third tool call blocks after announcing itself. The test
kills the child's whole process group (the CLI and its sandbox runtime, as a
machine crash would), then `throwaway resume` carries on in a fresh process.
Every model call and every tool call writes a line to a log when it really
runs, so the log says which steps ran twice: only the interrupted one may.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

APP = '''
import os, time
from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call

def log(line):
    with open(os.environ["CRASH_LOG"], "a") as f:
        f.write(line + "\\n")

def maybe_hang(where):
    if os.environ.get("CRASH_HANG") == where:
        open(os.environ["CRASH_READY"], "w").close()
        time.sleep(600)

def cell(n, body):
    # The cell logs through a writable host folder: one line each time it really runs.
    return f"with open('/log/{LOG_NAME}', 'a') as f:\\n    f.write('tool {n}\\\\n')\\n" + body

LOG_NAME = os.path.basename(os.environ["CRASH_LOG"])
CELLS = [
    cell(1, "open('/output/one.txt', 'w').write('one')"),
    cell(2, "x = open('/output/one.txt').read() + ' two'\\nopen('/home/user/two.txt', 'w').write(x)"),
    cell(3, "open('/hang/3').read()\\nopen('/output/three.txt', 'w').write(open('/home/user/two.txt').read() + ' three')"),
    cell(4, "open('/output/four.txt', 'w').write('four')"),
]

def turn(n, code):
    def respond(messages, info):
        log(f"model {n}")
        maybe_hang(f"model {n}")
        return tool_call("execute_python", code=code)
    return respond

def last(messages, info):
    log("model 5")
    return "All four files are in /output."

agent = Agent("crash-test", model=ScriptedModel([turn(i + 1, c) for i, c in enumerate(CELLS)] + [last]))
agent.fs.mount_host("/log", os.path.dirname(os.environ["CRASH_LOG"]), writable=True, description="the test's log")

@agent.fs.file("/hang/3")
def hang():
    maybe_hang("tool 3")
    return "ok"
'''


def throwaway(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "throwaway.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@pytest.mark.slow
@pytest.mark.parametrize("hang_at", ["tool 3", "model 3"])
def test_killed_task_resumes_without_rerunning_finished_steps(tmp_path, hang_at):
    app = tmp_path / "crash_app.py"
    app.write_text(APP)
    (tmp_path / "log").mkdir()
    log, ready, out = tmp_path / "log" / "ran.txt", tmp_path / "ready", tmp_path / "output"
    env = {**os.environ, "THROWAWAY_DATA": str(tmp_path / "data"), "CRASH_LOG": str(log),
           "CRASH_READY": str(ready), "PYTHONUNBUFFERED": "1"}

    # 1. Run the task until it hangs in the chosen step, then kill its process group.
    first = throwaway("run", "--app", f"{app}:agent", "--id", "crash-1", "-o", str(out), "make four files",
                      env={**env, "CRASH_HANG": hang_at}, start_new_session=True)
    deadline = time.monotonic() + 240
    while not ready.exists():
        if first.poll() is not None:
            pytest.fail(f"the task ended before it hung:\n{first.stdout.read()}")
        assert time.monotonic() < deadline, "the task never reached the step where it hangs"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = log.read_text().splitlines()
    assert before[-1] == hang_at

    # 2. The task is recorded as interrupted, not running.
    code, listing = finish(throwaway("tasks", "--json", env=env))
    assert code == 0, listing
    (task,) = json.loads(listing)
    assert (task["task_id"], task["status"], task["pid"]) == ("crash-1", "interrupted", None)

    # 3. Resume it in a new process; it finishes.
    code, printed = finish(throwaway("resume", "crash-1", env=env))
    assert code == 0, printed
    assert "Step 1: (from checkpoint)" in printed and "Step 2: (from checkpoint)" in printed
    assert "Total steps: 5" in printed
    step_3 = printed[printed.index("Step 3:"):printed.index("Step 4:")]
    assert "wrote  | /output/three.txt" in step_3
    assert "one.txt" not in step_3  # restored files are not reported as written by the cell
    if hang_at == "tool 3":
        assert "Tool result: ok (sandbox restored from checkpoint)" in step_3

    # 4. No finished step ran again: only the interrupted one ran twice.
    ran = Counter(log.read_text().splitlines())
    expected = {f"{kind} {n}": 1 for kind in ("model", "tool") for n in range(1, 5)} | {"model 5": 1}
    expected[hang_at] = 2
    assert ran == expected

    # 5. Its files are intact: from before the crash, restored into the fresh sandbox, and after it.
    assert sorted(p.name for p in out.iterdir()) == ["four.txt", "one.txt", "three.txt"]
    assert (out / "one.txt").read_text() == "one"
    assert (out / "three.txt").read_text() == "one two three"  # read /home/user/two.txt from step 2
    assert (out / "four.txt").read_text() == "four"

    # 6. The record is whole: each step checkpointed once, the task done.
    code, shown = finish(throwaway("show", "crash-1", "--json", env=env))
    assert code == 0, shown
    record = json.loads(shown)
    assert record["status"] == "done" and record["result"]["steps"] == 5
    names = [c["name"] for c in record["checkpoints"]]
    assert names == ["throwaway.prepare"] + ["throwaway.model", "throwaway.tool"] * 4 + [
        "throwaway.model", "throwaway.finish"]
    assert len({c["id"] for c in record["checkpoints"]}) == len(names)
