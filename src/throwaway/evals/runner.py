"""Running the evaluation tasks against a model and tabulating how it did."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_ai.models import Model

from throwaway.durable import checkpoints
from throwaway.durable.agent import Agent, new_task_id
from throwaway.durable.workflow import MODEL_STEP

from .suite import TASKS, Check, EvalTask

ModelChoice = str | Model | Callable[[str], "str | Model"]
"""A model name, a pydantic-ai `Model`, or a function of the task's name returning one (for scripted runs)."""


@dataclass
class EvalResult:
    """How one task went: the check's verdict, the task's end, what it cost."""

    task: str
    ok: bool
    why: str
    status: str
    steps: int
    input_tokens: int
    output_tokens: int
    seconds: float
    task_id: str
    answer: str = ""


def run_eval(
    model: ModelChoice,
    *,
    tasks: Iterable[str] | None = None,
    text_tool_calls: bool | None = None,
    max_tokens: int | None = None,
    model_timeout: float | None = None,
    max_steps: int = 12,
    workdir: str | Path | None = None,
    on_result: Callable[[EvalResult], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> list[EvalResult]:
    """Run the built-in tasks (or those named in `tasks`) with `model`; one `EvalResult` each.

    Each task is an ordinary durable task in the current database (launch
    one first: `throwaway.durable.launch`), so ``throwaway show ID`` shows
    how it went. A task that raises counts as a failure with the error as its
    reason. `workdir` holds each task's data and output (default: a
    temporary folder, removed after).
    """
    chosen = list(TASKS) if tasks is None else [_task(name) for name in tasks]
    with tempfile.TemporaryDirectory(prefix="throwaway-eval-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        results = []
        for task in chosen:
            result = _run_one(task, model, root / task.name, text_tool_calls=text_tool_calls, max_tokens=max_tokens,
                              model_timeout=model_timeout, max_steps=max_steps, on_event=on_event)
            results.append(result)
            if on_result:
                on_result(result)
        return results


def _task(name: str) -> EvalTask:
    for task in TASKS:
        if task.name == name:
            return task
    raise LookupError(f"no eval task {name!r}; the tasks are {', '.join(t.name for t in TASKS)}")


def _run_one(task: EvalTask, model: ModelChoice, scratch: Path, *, on_event: Any = None, **options: Any) -> EvalResult:
    scratch.mkdir(parents=True, exist_ok=True)
    chosen = model(task.name) if callable(model) and not isinstance(model, Model) else model
    agent = Agent(f"eval-{task.name}", model=chosen, max_steps=options.pop("max_steps"))
    extra = task.setup(agent, scratch)
    task_id = f"eval-{task.name}-{new_task_id()[:6]}"
    started = time.monotonic()
    try:
        outcome = agent.run(task.prompt, task_id=task_id, output_dir=scratch / "output", on_event=on_event,
                            **{k: v for k, v in options.items() if v is not None}, **extra)
    except Exception as e:  # noqa: BLE001 - a task that breaks is a failed task, the eval goes on
        seconds = time.monotonic() - started
        tokens = _tokens(task_id)
        return EvalResult(task.name, False, f"{type(e).__name__}: {e}"[:300], "error", tokens[2], tokens[0],
                          tokens[1], seconds, task_id)
    seconds = time.monotonic() - started
    verdict = task.check(outcome) if outcome.status == "done" else Check(False, outcome.reason or outcome.status)
    tokens = _tokens(task_id)
    return EvalResult(task.name, verdict.ok, "" if verdict.ok else verdict.why, outcome.status, outcome.steps, tokens[0], tokens[1],
                      seconds, task_id, outcome.answer)


def _tokens(task_id: str) -> tuple[int, int, int]:
    """Input tokens, output tokens and model steps, summed from the task's checkpoints."""
    inp = out = steps = 0
    try:
        found = checkpoints(task_id)
    except Exception:  # noqa: BLE001 - a task that never started has none
        return 0, 0, 0
    for cp in found:
        if cp["name"] == MODEL_STEP and cp["output"]:
            usage = cp["output"].get("usage") or {}
            inp += usage.get("input_tokens") or 0
            out += usage.get("output_tokens") or 0
            steps += 1
    return inp, out, steps


def format_table(results: list[EvalResult]) -> str:
    """The results as a plain-text table, with a total line."""
    rows = [("TASK", "OK", "STATUS", "STEPS", "TOKENS IN", "TOKENS OUT", "TIME", "WHY NOT")]
    for r in results:
        rows.append((r.task, "yes" if r.ok else "no", r.status, str(r.steps), f"{r.input_tokens:,}",
                     f"{r.output_tokens:,}", f"{r.seconds:.1f} s", r.why))
    passed = sum(r.ok for r in results)
    rows.append((f"{passed}/{len(results)} passed", "", "", str(sum(r.steps for r in results)),
                 f"{sum(r.input_tokens for r in results):,}", f"{sum(r.output_tokens for r in results):,}",
                 f"{sum(r.seconds for r in results):.1f} s", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) if i in (0, 1, 2) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    return "\n".join(lines)
