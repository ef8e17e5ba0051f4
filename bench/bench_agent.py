"""The agent loop's own overhead per step, with a scripted model.

Each step is one model call (a scripted model: no inference) and one
execute_python call that rewrites a 1 MB file under /output, so every step
checkpoints two DBOS steps and snapshots the guest's files (1 MB changed) into
the blob store. What the sandbox spends (booting, running the cell, moving the
snapshot's bytes out of the guest into the blob store, collecting /output) is
timed around the sandbox's own methods and set apart: the rest is what the
loop itself costs. That rest is split into the DBOS checkpoints as they ran
inside the loop (DBOS's system-database calls, timed), the model call
(pydantic-ai plus the scripted model), and the remainder: our glue
(conversation, events, JSON, step bookkeeping).

Wall time on a shared machine swells with its load (a process that is due
waits for a core), so each figure is also given as CPU time of the thread
that runs the loop: the loop's own cost, which load changes much less.

A warm-up task runs first, so one-time costs of the process (imports, the first
model call) are not counted; the sandbox's boot is once per task and is
amortized over its steps. Each figure is the median over the rounds.

    python bench/bench_agent.py [--steps 50] [--size-mb 1] [--rounds 5] [--database-url URL]
    python bench/bench_agent.py --pieces [--steps 30] [--rounds 3]   # CPU per step, piece by piece

Prints figures; never passes or fails on time. Target (issue 12): <= 3 ms a step
of loop overhead on SQLite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from dbos import DBOS, SetWorkflowID
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.usage import RequestUsage

from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call
from throwaway.agent import steps as bodies
from throwaway.agent.task import Task
from throwaway.durable import backend

try:  # DBOS internals, timed only here: where a step's checkpoint is read and written.
    from dbos._sys_db import SystemDatabase
except ImportError:  # pragma: no cover - a DBOS without them: the split is left out
    SystemDatabase = None  # type: ignore[assignment,misc]

SANDBOX_PARTS = ("exec", "boot", "snapshot", "sandbox_other")
CHECKPOINT_CALLS = ("check_operation_execution", "record_operation_result")


class Timer:
    """Wall time spent in wrapped calls, by name.

    Calls of one group nested in another of the same group (a sandbox method
    that starts the sandbox through its own wrapped `start`) count once, for
    the outermost call.
    """

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # CPU time of the calling thread, by name
        self.calls: dict[str, int] = {}
        self._depth: dict[str, int] = {}
        self.enabled = True

    def wrap(self, name: str, fn, group: str | None = None):
        group = group or name

        def timed(*args, **kwargs):
            if not self.enabled or self._depth.get(group):
                return fn(*args, **kwargs)
            self._depth[group] = 1
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - start
                self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - cpu
                self.calls[name] = self.calls.get(name, 0) + 1
                self._depth[group] = 0

        return timed


def script(steps: int, size: int, seed: int = 0, usage: bool = True) -> list:
    """The model's turns: a tool call a step, then the answer.

    With `usage` each reply reports its token counts, as a provider's replies
    do. Without, pydantic-ai's FunctionModel (under `ScriptedModel`) estimates
    them by tokenizing the whole conversation on every call: a cost of the
    test double alone, growing with the conversation (``--estimate-usage``
    puts it back).
    """
    reported = RequestUsage(input_tokens=1000, output_tokens=50)
    turns: list = []
    for n in range(steps):
        # A different 1 MB each step, so each snapshot stores a new blob.
        code = (f"data = bytes([{(seed + n) % 256}]) * {size}\n"
                "with open('/output/blob.bin', 'wb') as f:\n    f.write(data)")
        if usage:  # as ScriptedModel builds it, with the usage a provider would report
            turns.append(ModelResponse(parts=[ToolCallPart("execute_python", {"code": code},
                                                           tool_call_id=f"call_{n + 1}_1")],
                                       usage=reported, finish_reason="tool_call"))
        else:
            turns.append(tool_call("execute_python", code=code))
    turns.append(ModelResponse(parts=[TextPart("done")], usage=reported, finish_reason="stop") if usage else "done")
    return turns


@DBOS.step(name="bench.noop")
def _noop_step(n: int) -> dict:
    return {"n": n}


@DBOS.workflow(name="bench.checkpoints")
def _checkpoints(n: int, pause: float = 0.0) -> float:
    """A no-op step's cost: back to back, or after `pause` seconds idle (as in the loop,
    where the process waits on the sandbox between checkpoints and its caches go cold)."""
    spent = 0.0
    for i in range(n):
        if pause:
            time.sleep(pause)
        start = time.perf_counter()
        _noop_step(i)
        spent += time.perf_counter() - start
    return spent / n


def _task(steps: int, size: int, tmp: Path, timer: Timer, seed: int, usage: bool = True) -> tuple[float, float]:
    """Run one task of `steps` tool steps; its wall time and the CPU time of the thread that ran it."""
    agent = Agent("bench", model=ScriptedModel(script(steps, size, seed, usage)), max_steps=steps + 1)
    make_sandbox = Task.sandbox

    def timed_sandbox(task):
        sb = make_sandbox(task)
        sb.exec = timer.wrap("exec", sb.exec, "sandbox")
        sb.snapshot = timer.wrap("snapshot", sb.snapshot, "sandbox")
        sb.start = timer.wrap("boot", sb.start, "sandbox")
        for name in ("restore", "collect_output", "read_file", "close"):
            setattr(sb, name, timer.wrap("sandbox_other", getattr(sb, name), "sandbox"))
        return sb

    Task.sandbox = timed_sandbox
    out = tmp / f"output-{seed}"
    start, cpu = time.perf_counter(), time.thread_time()
    try:
        result = agent.run("benchmark", output_dir=out)
    finally:
        Task.sandbox = make_sandbox
    total, total_cpu = time.perf_counter() - start, time.thread_time() - cpu
    assert result.status == "done" and result.steps == steps + 1, result
    assert (out / "blob.bin").stat().st_size == size
    return total, total_cpu


def run(steps: int, size_mb: float, database_url: str | None, usage: bool = True) -> dict[str, float]:
    """One round in a fresh data folder: a warm-up task, then the measured one; ms per step."""
    size = int(size_mb * (1 << 20))
    timer = Timer()
    patched = [(bodies, "call_model", bodies.call_model)]
    bodies.call_model = timer.wrap("model", bodies.call_model)
    if SystemDatabase is not None:
        for name in CHECKPOINT_CALLS:
            patched.append((SystemDatabase, name, getattr(SystemDatabase, name)))
            setattr(SystemDatabase, name, timer.wrap("dbos", getattr(SystemDatabase, name)))
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            backend.launch(tmp / "data", database_url)
            try:
                timer.enabled = False
                _task(2, size, tmp, timer, seed=128, usage=usage)  # warm-up: imports, first model call
                timer.enabled = True
                total, total_cpu = _task(steps, size, tmp, timer, seed=0, usage=usage)
                timer.enabled = False
                with SetWorkflowID(f"checkpoints-{time.time_ns()}"):
                    checkpoint = _checkpoints(200)
                with SetWorkflowID(f"checkpoints-idle-{time.time_ns()}"):
                    checkpoint_idle = _checkpoints(100, 0.005)
            finally:
                backend.shutdown()
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
    per = 1000 / steps
    sandbox = sum(timer.spent.get(k, 0.0) for k in SANDBOX_PARTS)
    figures = {k: v * per for k, v in timer.spent.items()}
    figures["total"] = total * per
    figures["sandbox"] = sandbox * per
    figures["overhead"] = (total - sandbox) * per
    figures["glue"] = figures["overhead"] - figures.get("dbos", 0.0) - figures.get("model", 0.0)
    cpu_sandbox = sum(timer.cpu.get(k, 0.0) for k in SANDBOX_PARTS)
    figures["cpu_overhead"] = (total_cpu - cpu_sandbox) * per
    figures["cpu_dbos"] = timer.cpu.get("dbos", 0.0) * per
    figures["cpu_model"] = timer.cpu.get("model", 0.0) * per
    figures["cpu_glue"] = figures["cpu_overhead"] - figures["cpu_dbos"] - figures["cpu_model"]
    figures["checkpoint_alone"] = checkpoint * 1000
    figures["checkpoint_idle"] = checkpoint_idle * 1000
    return figures


def pieces(steps: int, size_mb: float, rounds: int, usage: bool) -> None:
    """Print the loop's CPU time per step, piece by piece (each piece without the pieces inside it)."""
    import pydantic_ai.direct as direct
    from dbos import _core

    from throwaway.agent import task as task_module
    from throwaway.durable import workflow
    from throwaway.sandbox.sandbox import Sandbox

    spent: dict[str, int] = {}
    inner: list[int] = []
    patched: list[tuple[object, str, object]] = []

    def wrap(owner: object, attr: str, name: str) -> None:
        fn = getattr(owner, attr)
        patched.append((owner, attr, fn))

        def timed(*args, **kwargs):
            start = time.thread_time_ns()
            inner.append(0)
            try:
                return fn(*args, **kwargs)
            finally:
                took, within = time.thread_time_ns() - start, inner.pop()
                spent[name] = spent.get(name, 0) + took - within
                if inner:
                    inner[-1] += took

        setattr(owner, attr, timed)

    wrap(workflow, "run_loop", "loop body (run_loop)")
    wrap(workflow.DurableSteps, "model", "DBOS's step wrapper + DurableSteps")
    wrap(workflow.DurableSteps, "tool", "DBOS's step wrapper + DurableSteps")
    wrap(bodies, "call_model", "call_model: the reply as JSON")
    wrap(direct, "model_request_sync", "pydantic-ai model request + scripted model")
    wrap(bodies, "load_response", "load_response: JSON back to a reply")
    wrap(bodies, "call_tool", "call_tool + run_tool")
    wrap(task_module.Task, "emit", "events")
    wrap(_core, "serialize_value", "checkpoint JSON (our serializer)")
    for method in ("exec", "snapshot", "start", "restore", "collect_output", "close", "read_file"):
        wrap(Sandbox, method, "sandbox")
    if SystemDatabase is not None:
        wrap(SystemDatabase, "check_operation_execution", "DBOS: read the checkpoint (1 transaction)")
        wrap(SystemDatabase, "record_operation_result", "DBOS: write the checkpoint (1 transaction)")
    size, timer, rows = int(size_mb * (1 << 20)), Timer(), []
    timer.enabled = False
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            backend.launch(tmp / "data")
            try:
                _task(2, size, tmp, timer, seed=128, usage=usage)
                for n in range(rounds):
                    spent.clear()
                    _, cpu = _task(steps, size, tmp, timer, seed=n, usage=usage)
                    row = {k: v / 1e6 / steps for k, v in spent.items()}
                    row["the rest: Agent.run, the workflow's start and end"] = cpu * 1000 / steps - sum(row.values())
                    rows.append(row)
            finally:
                backend.shutdown()
    finally:
        for owner, attr, fn in reversed(patched):
            setattr(owner, attr, fn)
    print(f"CPU ms per step, each piece without the pieces inside it, median of {rounds} rounds; "
          f"load average {os.getloadavg()[0]:.2f}:")
    med = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in rows[0]}
    for key in sorted(med, key=lambda k: -med[k]):
        print(f"  {key:52} {med[key]:6.3f}")
    print(f"  {'loop overhead (all but the sandbox)':52} "
          f"{statistics.median(sum(v for k, v in r.items() if k != 'sandbox') for r in rows):6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="Postgres URL (default: SQLite in a temporary folder)")
    parser.add_argument("--estimate-usage", action="store_true",
                        help="scripted replies without token usage: FunctionModel estimates it on every call")
    parser.add_argument("--pieces", action="store_true",
                        help="instead: the loop's CPU time per step, piece by piece (SQLite)")
    args = parser.parse_args()
    if args.pieces:
        pieces(args.steps, args.size_mb, args.rounds, not args.estimate_usage)
        return

    where = "Postgres" if args.database_url else "SQLite (WAL, synchronous=NORMAL)"
    usage = "usage estimated by FunctionModel" if args.estimate_usage else "replies report usage"
    print(f"agent loop: {args.steps} steps, scripted model ({usage}), {args.size_mb:g} MB file change per step, "
          f"{where}")
    rows = [run(args.steps, args.size_mb, args.database_url, not args.estimate_usage) for _ in range(args.rounds)]

    def med(key: str) -> float:
        return statistics.median(r.get(key, 0.0) for r in rows)

    overheads = sorted(r["overhead"] for r in rows)
    cp, cp_idle = med("checkpoint_alone"), med("checkpoint_idle")
    print(f"ms per step, median of {args.rounds} rounds (after a warm-up task); load average "
          f"{os.getloadavg()[0]:.2f} at the end:")
    print(f"{'':46}{'wall':>7}  {'CPU':>6}")
    print(f"  total                                       {med('total'):7.2f}")
    print(f"  sandbox (not the loop's)                    {med('sandbox'):7.2f}")
    print(f"    running the cell                          {med('exec'):7.2f}")
    print(f"    snapshot, {args.size_mb:g} MB changed, into the blob store {med('snapshot'):5.2f}")
    print(f"    boot (once per task, amortized)           {med('boot'):7.2f}")
    print(f"    collecting /output, closing (once)        {med('sandbox_other'):7.2f}")
    print(f"  loop overhead: total minus sandbox          {med('overhead'):7.2f}  {med('cpu_overhead'):6.2f}"
          "   <- target <= 3 ms")
    print(f"    DBOS checkpoints, as run in the loop      {med('dbos'):7.2f}  {med('cpu_dbos'):6.2f}   (2 a step)")
    print(f"      a no-op DBOS step alone: back to back {cp:.2f} ms; after 5 ms idle {cp_idle:.2f} ms")
    print(f"    model call (scripted, via pydantic-ai)    {med('model'):7.2f}  {med('cpu_model'):6.2f}")
    print(f"    glue: conversation, events, JSON, steps   {med('glue'):7.2f}  {med('cpu_glue'):6.2f}")
    print(f"  loop overhead per round: {' '.join(f'{o:.2f}' for o in overheads)} (min {overheads[0]:.2f})")

if __name__ == "__main__":
    main()
